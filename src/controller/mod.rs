//! The reconciler: fetch -> validate -> build -> apply (server-side, one field manager) -> status.

pub mod http;
pub mod leader;
pub mod metrics;
