//! DynamoDB parity: the typed topology of an environment's data tier, mirroring it from
//! staging, drift between two topologies (or a topology and live tables), and the commands
//! that act on an endpoint: `parity bootstrap` (tables + seeds), and what `parity capture`
//! and `parity diff` (src/cmd/) read live. Pure modules (topology, mirror, drift, plan, seed::fixture, seed::item)
//! decide; the rest talks to DynamoDB. See docs/dynamo.md.

pub mod apply;
pub mod backoff;
pub mod bootstrap;
pub mod connect;
pub mod drift;
pub mod live;
pub mod mirror;
pub mod plan;
pub mod rewrap;
pub mod seed;
pub mod topology;

pub use drift::{Drift, MAX_DRIFTS, diff};
pub use mirror::{Overrides, resolve};
pub use seed::{EncryptionContext, FieldEncryptor};
pub use topology::Topology;
