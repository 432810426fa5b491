//! `KmsKeyProvider`: data keys from AWS KMS or anything speaking its protocol (`parity
//! kms`, moto) through aws-sdk-kms. Envelopes record the KMS key ARN and version 0: the
//! backing-key version lives inside the KMS ciphertext blob.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use super::context::EncryptionContext;
use super::key::SecretKey;
use super::provider::{DataKey, KeyProvider, ProviderError, Rewrapped};

#[derive(Clone, Debug)]
pub struct KmsKeyProvider {
    client: Client,
    key_id: String,
    calls: Arc<AtomicU64>,
}

impl KmsKeyProvider {
    /// `key_id`: key id, key ARN, alias name or alias ARN for new data keys.
    pub fn new(client: Client, key_id: impl Into<String>) -> KmsKeyProvider {
        KmsKeyProvider {
            client,
            key_id: key_id.into(),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client for `endpoint` (any KMS-compatible URL) with static credentials.
    pub fn client_for(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Client {
        let creds = aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "parity",
        );
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .build();
        Client::from_conf(conf)
    }

    /// KMS requests made so far (successful or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

fn ctx_map(ctx: &EncryptionContext) -> Option<std::collections::HashMap<String, String>> {
    if ctx.is_empty() {
        None
    } else {
        Some(ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// Maps a KMS error by its wire code, the one thing every KMS implementation agrees on.
fn map_err<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    err: aws_sdk_kms::error::SdkError<E>,
) -> ProviderError {
    let code = err.code().unwrap_or("").to_owned();
    let msg = err.message().unwrap_or("").to_owned();
    let detail = if msg.is_empty() {
        code.clone()
    } else {
        format!("{code}: {msg}")
    };
    match code.as_str() {
        "NotFoundException" => ProviderError::NotFound(detail),
        "DisabledException" | "KMSInvalidStateException" => ProviderError::Disabled(detail),
        "InvalidCiphertextException" => ProviderError::InvalidCiphertext(detail),
        "IncorrectKeyException" => ProviderError::IncorrectKey(detail),
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            ProviderError::AccessDenied(detail)
        }
        "ValidationException" | "InvalidKeyUsageException" => ProviderError::Validation(detail),
        "" => ProviderError::Unavailable(aws_sdk_kms::error::DisplayErrorContext(&err).to_string()),
        _ => ProviderError::Unavailable(detail),
    }
}

/// KMS envelopes carry version 0 (KMS keeps the version inside its blob); anything else
/// was altered or made by another provider.
fn check_version(v: u32) -> Result<(), ProviderError> {
    if v == 0 {
        Ok(())
    } else {
        Err(ProviderError::InvalidCiphertext(format!(
            "envelope names key version {v}; KMS envelopes carry 0"
        )))
    }
}

fn data_key(bytes: Option<Blob>) -> Result<SecretKey, ProviderError> {
    let blob =
        bytes.ok_or_else(|| ProviderError::Unavailable("KMS returned no plaintext".into()))?;
    let mut raw = blob.into_inner();
    let key = SecretKey::from_slice(&raw);
    zeroize::Zeroize::zeroize(&mut raw);
    key.ok_or_else(|| {
        ProviderError::Unavailable("KMS returned a data key that is not 32 bytes".into())
    })
}

impl KeyProvider for KmsKeyProvider {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, ProviderError> {
        self.count();
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(ctx_map(ctx))
            .send()
            .await
            .map_err(map_err)?;
        let wrapped = out
            .ciphertext_blob
            .clone()
            .ok_or_else(|| ProviderError::Unavailable("KMS returned no CiphertextBlob".into()))?
            .into_inner();
        let key_id = out.key_id.clone().unwrap_or_else(|| self.key_id.clone());
        Ok(DataKey {
            plaintext: data_key(out.plaintext)?,
            wrapped,
            key_id,
            key_version: 0,
        })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<SecretKey, ProviderError> {
        check_version(key_version)?;
        self.count();
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(ctx_map(ctx))
            .send()
            .await
            .map_err(map_err)?;
        data_key(out.plaintext)
    }

    async fn rewrap_data_key(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Rewrapped, ProviderError> {
        check_version(key_version)?;
        self.count();
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(key_id)
            .set_source_encryption_context(ctx_map(ctx))
            .destination_key_id(&self.key_id)
            .set_destination_encryption_context(ctx_map(ctx))
            .send()
            .await
            .map_err(map_err)?;
        Ok(Rewrapped {
            wrapped: out
                .ciphertext_blob
                .ok_or_else(|| ProviderError::Unavailable("KMS returned no CiphertextBlob".into()))?
                .into_inner(),
            key_id: out.key_id.unwrap_or_else(|| self.key_id.clone()),
            key_version: 0,
        })
    }
}
