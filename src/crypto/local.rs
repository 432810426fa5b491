//! `LocalKeyProvider`: data keys wrapped by a keyring held in memory, in the same blob
//! format `parity kms` returns, so either side opens what the other wrapped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::blob;
use super::context::EncryptionContext;
use super::key::SecretKey;
use super::keyring::{Keyring, KeyringError};
use super::provider::{DataKey, KeyProvider, ProviderError, Rewrapped};
use super::suite::random_nonce;

#[derive(Clone, Debug)]
pub struct LocalKeyProvider {
    keyring: Arc<RwLock<Keyring>>,
    enabled: Arc<AtomicBool>,
}

impl LocalKeyProvider {
    pub fn new(keyring: Keyring) -> LocalKeyProvider {
        LocalKeyProvider {
            keyring: Arc::new(RwLock::new(keyring)),
            enabled: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Read access to the keyring (ids, versions).
    pub fn keyring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access, e.g. to rotate.
    pub fn keyring_mut(&self) -> RwLockWriteGuard<'_, Keyring> {
        self.keyring.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Disables or enables the key, like KMS DisableKey/EnableKey.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    fn check_enabled(&self, key_id: &str) -> Result<(), ProviderError> {
        if self.enabled.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ProviderError::Disabled(key_id.to_owned()))
        }
    }

    fn canonical(ctx: &EncryptionContext) -> Result<Vec<u8>, ProviderError> {
        ctx.canonical()
            .map_err(|e| ProviderError::Validation(e.to_string()))
    }

    /// Accepts the keyring's own id or a KMS key ARN ending in `key/<id>` (an envelope made
    /// through `parity kms` over the same keyring).
    fn matches(keyring: &Keyring, key_id: &str) -> bool {
        key_id == keyring.key_id()
            || key_id
                .strip_suffix(keyring.key_id())
                .is_some_and(|p| p.starts_with("arn:") && p.ends_with(":key/"))
    }

    fn unwrap(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<(SecretKey, u32), ProviderError> {
        let kr = self.keyring();
        if !Self::matches(&kr, key_id) {
            return Err(ProviderError::NotFound(key_id.to_owned()));
        }
        self.check_enabled(key_id)?;
        let header = blob::parse_header(wrapped)
            .map_err(|e| ProviderError::InvalidCiphertext(e.to_string()))?;
        if header.key_id != kr.key_id() {
            return Err(ProviderError::IncorrectKey(header.key_id));
        }
        // The envelope repeats the version for readers; it must agree with the
        // authenticated one in the blob. Envelopes made through a KMS (key id is an ARN)
        // carry 0: the KMS keeps the version inside its blob.
        let expected = if key_id.starts_with("arn:") {
            0
        } else {
            header.kek_version
        };
        if key_version != expected {
            return Err(ProviderError::InvalidCiphertext(format!(
                "envelope names key version {key_version}, expected {expected}"
            )));
        }
        let kek = kr.kek(header.kek_version).map_err(|e| match e {
            KeyringError::VersionDestroyed(_) | KeyringError::UnknownVersion(_) => {
                ProviderError::InvalidCiphertext(e.to_string())
            }
            other => ProviderError::InvalidCiphertext(other.to_string()),
        })?;
        let pt = blob::open(kek, &header, wrapped, &Self::canonical(ctx)?)
            .map_err(|e| ProviderError::InvalidCiphertext(e.to_string()))?;
        let key = SecretKey::from_slice(pt.expose()).ok_or_else(|| {
            ProviderError::InvalidCiphertext("wrapped key is not 32 bytes".into())
        })?;
        Ok((key, header.kek_version))
    }

    /// Wraps `data_key` under the active version with a chosen nonce (known-answer vectors).
    pub(crate) fn wrap_with_nonce(
        &self,
        data_key: &SecretKey,
        nonce: [u8; 12],
        ctx: &EncryptionContext,
    ) -> Result<(String, u32, Vec<u8>), ProviderError> {
        let kr = self.keyring();
        self.check_enabled(kr.key_id())?;
        let (version, kek) = kr
            .active_kek()
            .map_err(|e| ProviderError::Validation(e.to_string()))?;
        let wrapped = blob::seal(
            kek,
            kr.key_id(),
            version,
            nonce,
            data_key.expose(),
            &Self::canonical(ctx)?,
        )
        .map_err(|e| ProviderError::Validation(e.to_string()))?;
        Ok((kr.key_id().to_owned(), version, wrapped))
    }
}

impl KeyProvider for LocalKeyProvider {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, ProviderError> {
        let plaintext = SecretKey::generate();
        let (key_id, key_version, wrapped) =
            self.wrap_with_nonce(&plaintext, random_nonce(), ctx)?;
        Ok(DataKey {
            plaintext,
            wrapped,
            key_id,
            key_version,
        })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<SecretKey, ProviderError> {
        Ok(self.unwrap(key_id, key_version, wrapped, ctx)?.0)
    }

    async fn rewrap_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Rewrapped, ProviderError> {
        let (key, _) = self.unwrap(key_id, key_version, wrapped, ctx)?;
        let (key_id, key_version, wrapped) = self.wrap_with_nonce(&key, random_nonce(), ctx)?;
        Ok(Rewrapped {
            wrapped,
            key_id,
            key_version,
        })
    }
}
