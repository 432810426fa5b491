//! The real field encryptor: the crypto module's envelope over a KMS-compatible key service
//! (`parity kms` in Local and CI, AWS KMS in Staging), so seeded ciphertext is exactly what
//! the applications write and read.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::encrypt::FieldEncryptor;
use crate::crypto::{EncryptionContext, Encryptor, KeyProvider, KmsKeyProvider};

impl<P: KeyProvider + 'static> FieldEncryptor for Encryptor<P> {
    fn encrypt<'a>(
        &'a self,
        plaintext: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async move { Ok(Encryptor::encrypt(self, plaintext, context).await?) })
    }
}

/// Envelope encryption with data keys from the KMS-compatible endpoint, under `key_id` (key
/// id, ARN or alias). One data key per field: seed contexts name the item, so a data-key
/// cache would never hit.
pub fn kms_encryptor(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    key_id: &str,
) -> Arc<dyn FieldEncryptor> {
    let client = KmsKeyProvider::client_for(endpoint, region, access_key_id, secret_access_key);
    Arc::new(Encryptor::new(KmsKeyProvider::new(client, key_id)))
}
