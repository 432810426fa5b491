//! Envelope encryption, identical in every tier: a root key (local keyring or AWS KMS)
//! wraps per-message data keys; AES-256-GCM with HKDF-derived per-message keys, key
//! commitment and the encryption context as AAD. docs/envelope.md has the byte layout.
//!
//! Pure except for the RNG and the KMS provider's network calls.

pub mod blob;
pub mod cache;
pub mod context;
pub mod encryptor;
pub mod envelope;
pub mod key;
pub mod keyring;
pub mod kms_provider;
pub mod local;
pub mod provider;
mod suite;

pub use cache::{CacheLimits, MAX_MESSAGES_HARD_LIMIT};
pub use context::{ContextError, EncryptionContext};
pub use encryptor::{CryptoError, Encryptor, open_with_data_key};
pub use envelope::{Envelope, EnvelopeError};
pub use key::{SecretBytes, SecretKey};
pub use keyring::{
    KEYRING_SECRET_KEY, KeyVersionStatus, Keyring, KeyringError, KeyringSource, VersionState,
};
pub use kms_provider::KmsKeyProvider;
pub use local::LocalKeyProvider;
pub use provider::{DataKey, KeyProvider, ProviderError, Rewrapped};
pub use suite::OpenError;
