//! `parity kms`: a KMS-compatible endpoint (AWS JSON 1.1, `X-Amz-Target: TrentService.*`)
//! over keyring files, so unmodified aws-sdk-kms / boto3 code runs against local keys by
//! changing only the endpoint. docs/kms.md has the flags, credentials and behaviour.

mod error;
mod metrics;
mod ops;
mod server;
pub mod sigv4;
mod store;

pub use server::{KmsArgs, run};
