//! The subcommands that are nothing but an entry point: each file holds its clap arguments
//! and its `run()` (reading files, talking to a cluster or an endpoint, printing), so the
//! modules they call stay free of I/O (resources/ builds objects, api/ is the CRD's types).
//! `cli.rs` dispatches to them. The long-running workloads (operator, kms, secrets-api,
//! dashboard, bootstrap, rewrap, dev) keep their arguments next to the code they configure:
//! those structs are passed on into the servers and loops, not just read by an entry point.

pub mod capture;
pub mod crd;
pub mod diff;
pub mod env;
pub mod probe;
pub mod render;
pub mod status;
