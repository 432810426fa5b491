//! kms (filled in by its issue).
