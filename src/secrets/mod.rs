//! secrets (filled in by its issue).
