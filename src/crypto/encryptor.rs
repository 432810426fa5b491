//! `Encryptor`: what applications call. Encrypts into envelopes with data keys from a
//! `KeyProvider`, optionally cached; decrypts and re-wraps envelopes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cache::{CacheLimits, DataKeyCache};
use super::context::{ContextError, EncryptionContext};
use super::envelope::{Envelope, EnvelopeError, MAX_PLAINTEXT_LEN};
use super::key::SecretKey;
use super::provider::{KeyProvider, ProviderError};
use super::suite::{self, OpenError, random_nonce};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("plaintext of {0} bytes exceeds the envelope limit of {MAX_PLAINTEXT_LEN}")]
    PlaintextTooLarge(usize),
}

pub struct Encryptor<P> {
    provider: P,
    cache: Option<Mutex<DataKeyCache>>,
    provider_calls: AtomicU64,
}

impl<P: KeyProvider> Encryptor<P> {
    /// One data key per message (no cache).
    pub fn new(provider: P) -> Encryptor<P> {
        Encryptor {
            provider,
            cache: None,
            provider_calls: AtomicU64::new(0),
        }
    }

    /// Reuses a data key per encryption context within `limits`.
    pub fn with_cache(provider: P, limits: CacheLimits) -> Encryptor<P> {
        Encryptor {
            provider,
            cache: Some(Mutex::new(DataKeyCache::new(limits))),
            provider_calls: AtomicU64::new(0),
        }
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// Calls made to the provider (for KMS: requests, hence cost and latency).
    pub fn provider_calls(&self) -> u64 {
        self.provider_calls.load(Ordering::Relaxed)
    }

    fn cache(&self) -> Option<std::sync::MutexGuard<'_, DataKeyCache>> {
        self.cache
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, CryptoError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(CryptoError::PlaintextTooLarge(plaintext.len()));
        }
        let canonical = ctx.canonical()?;
        let now = Instant::now();
        let cached = self
            .cache()
            .and_then(|mut c| c.take(&canonical, plaintext.len(), now));
        let key = match cached {
            Some(k) => k,
            None => {
                self.provider_calls.fetch_add(1, Ordering::Relaxed);
                let k = Arc::new(self.provider.generate_data_key(ctx).await?);
                if let Some(mut c) = self.cache() {
                    c.put(canonical.clone(), k.clone(), plaintext.len(), now);
                }
                k
            }
        };
        Ok(suite::seal_to_bytes(
            &key.plaintext,
            random_nonce(),
            &key.key_id,
            key.key_version,
            &key.wrapped,
            &canonical,
            plaintext,
        )?)
    }

    /// The plaintext is wiped when dropped; copy it out only where it must outlive that.
    pub async fn decrypt(
        &self,
        envelope: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        let env = Envelope::parse(envelope)?;
        let canonical = ctx.canonical()?;
        self.provider_calls.fetch_add(1, Ordering::Relaxed);
        let dk = self
            .provider
            .decrypt_data_key(&env.key_id, env.key_version, &env.wrapped_key, ctx)
            .await?;
        Ok(suite::open(&env, &dk, &canonical)?)
    }

    /// Re-wraps the envelope's data key under the provider's current key version; the
    /// ciphertext is untouched (it does not authenticate the wrapping).
    pub async fn rewrap(
        &self,
        envelope: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut env = Envelope::parse(envelope)?;
        ctx.canonical()?;
        self.provider_calls.fetch_add(1, Ordering::Relaxed);
        let r = self
            .provider
            .rewrap_data_key(&env.key_id, env.key_version, &env.wrapped_key, ctx)
            .await?;
        env.key_id = r.key_id;
        env.key_version = r.key_version;
        env.wrapped_key = r.wrapped;
        Ok(env.to_bytes()?)
    }
}

/// Decrypts with an already unwrapped data key (used by the vectors and the fuzz target).
pub fn open_with_data_key(
    envelope: &[u8],
    data_key: &SecretKey,
    ctx: &EncryptionContext,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    let env = Envelope::parse(envelope)?;
    Ok(suite::open(&env, data_key, &ctx.canonical()?)?)
}

/// Deterministic sealing for known-answer vectors. Test-only: a fixed nonce reused with
/// the same data key would break GCM, so nothing in production calls this.
#[doc(hidden)]
pub fn seal_for_vectors(
    provider: &super::local::LocalKeyProvider,
    data_key: &SecretKey,
    wrap_nonce: [u8; 12],
    payload_nonce: [u8; 12],
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let canonical = ctx.canonical()?;
    let (key_id, key_version, wrapped) = provider.wrap_with_nonce(data_key, wrap_nonce, ctx)?;
    let env = suite::seal(
        data_key,
        payload_nonce,
        key_id,
        key_version,
        wrapped,
        &canonical,
        plaintext,
    );
    Ok(env.to_bytes()?)
}
