//! controller (filled in by its issue).
