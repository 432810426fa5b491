//! Seed fixtures: read from a directory, validated as a whole, optionally encrypted field by
//! field, then written with BatchWriteItem.

pub mod encrypt;
pub mod envelope;
pub mod fixture;
pub mod item;
pub mod load;

pub use crate::crypto::EncryptionContext;
pub use encrypt::FieldEncryptor;
pub use envelope::kms_encryptor;
pub use fixture::{FixtureError, FixtureErrors, FixtureSchema, TableSeed};
pub use load::SeedMode;
