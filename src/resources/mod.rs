//! resources (filled in by its issue).
