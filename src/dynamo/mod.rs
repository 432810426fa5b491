//! dynamo (filled in by its issue).
