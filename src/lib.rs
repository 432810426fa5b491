//! parity-operator: reconciles a `ParityEnvironment` into DynamoDB, a key service,
//! secrets and a dashboard that mirror staging. See docs/architecture.md.

pub mod api;
pub mod cidr;
pub mod cli;
pub mod cmd;
pub mod connection;
pub mod controller;
pub mod crypto;
pub mod dashboard;
pub mod dev;
pub mod duration;
pub mod dynamo;
pub mod field_error;
pub mod formats;
pub mod kms;
pub mod manifest;
pub mod mirror;
pub mod operator_bin;
pub mod resources;
pub mod secrets;
pub mod signal;
pub mod telemetry;
pub mod tier;
pub mod verdict;
