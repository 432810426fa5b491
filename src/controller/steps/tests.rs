//! In-process reconcile tests (placeholder).
