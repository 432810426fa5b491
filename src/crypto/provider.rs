//! Where data keys come from: the `KeyProvider` trait and its shared types.

use std::fmt;
use std::future::Future;

use super::context::EncryptionContext;
use super::key::SecretKey;

/// A fresh data key: the plaintext to encrypt with, and the same key wrapped by the root
/// (what the envelope stores).
pub struct DataKey {
    pub plaintext: SecretKey,
    pub wrapped: Vec<u8>,
    /// The id that unwraps it (keyring key id, or the KMS key ARN).
    pub key_id: String,
    /// KEK version for a local keyring; 0 when the KMS tracks versions inside the blob.
    pub key_version: u32,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_len", &self.wrapped.len())
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// A wrapped data key after ReEncrypt: same data key, new wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrapped {
    pub wrapped: Vec<u8>,
    pub key_id: String,
    pub key_version: u32,
}

/// Provider failures, named like the KMS errors they mirror so callers (and the
/// conformance suite) can match on them whichever provider is behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("key not found: {0}")]
    NotFound(String),
    #[error("key is disabled: {0}")]
    Disabled(String),
    #[error("wrapped data key is invalid for this key and context: {0}")]
    InvalidCiphertext(String),
    #[error("wrapped data key belongs to another key: {0}")]
    IncorrectKey(String),
    #[error("access denied by the key service: {0}")]
    AccessDenied(String),
    #[error("request rejected: {0}")]
    Validation(String),
    #[error("key service unreachable or failed: {0}")]
    Unavailable(String),
}

/// Source of data keys. `LocalKeyProvider` (a keyring in memory) and `KmsKeyProvider`
/// (AWS KMS or `parity kms`) implement it; the envelope format is the same for both.
pub trait KeyProvider: Send + Sync {
    /// A new 256-bit data key bound to `context`.
    fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<DataKey, ProviderError>> + Send;

    /// Unwraps a data key an envelope carries.
    fn decrypt_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<SecretKey, ProviderError>> + Send;

    /// Re-wraps a data key under the current key version without exposing it (KMS
    /// ReEncrypt), e.g. after a rotation.
    fn rewrap_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<Rewrapped, ProviderError>> + Send;
}
