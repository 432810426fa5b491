//! Seed fixtures: read from a directory, validated as a whole, optionally encrypted field by
//! field, then written with BatchWriteItem.

pub mod encrypt;
pub mod fixture;
pub mod item;
pub mod load;

pub use encrypt::{EncryptionContext, FieldEncryptor};
pub use fixture::{FixtureError, FixtureErrors, FixtureSchema, TableSeed};
pub use load::SeedMode;
