//! crypto (filled in by its issue).
