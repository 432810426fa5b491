//! Encrypted seed fields. The envelope format and the key service belong to the crypto
//! module; seeding only needs something that turns a field's plaintext and its encryption
//! context into the bytes to store, so it depends on this trait and the operator plugs in the
//! real implementation (envelope + the environment's KMS-compatible key service).

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use zeroize::Zeroizing;

use super::fixture::{FixtureError, FixtureErrors, TableSeed, render_context};
use super::item::{MAX_ITEM_BYTES, item_size};
use crate::crypto::EncryptionContext;

/// Ciphertexts of one item's fields, by item index.
type EncryptedFields = (usize, Vec<(String, Vec<u8>)>);

/// Encrypts one field value. Implementations must not put the plaintext in errors or logs.
pub trait FieldEncryptor: Send + Sync {
    /// Returns the bytes stored as the attribute's binary (B) value.
    fn encrypt<'a>(
        &'a self,
        plaintext: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, anyhow::Result<Vec<u8>>>;
}

/// The bytes encrypted for a value: S and N as their UTF-8 text, B as is. Validation has
/// already rejected other types for encrypted fields.
fn plaintext_of(v: &AttributeValue) -> Option<Zeroizing<Vec<u8>>> {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(Zeroizing::new(s.as_bytes().to_vec())),
        AttributeValue::B(b) => Some(Zeroizing::new(b.as_ref().to_vec())),
        _ => None,
    }
}

/// Files whose schema asks for encryption (to fail early when no encryptor is configured).
pub fn files_needing_encryption(seeds: &[TableSeed]) -> Vec<String> {
    seeds
        .iter()
        .filter(|s| !s.schema.encrypt.is_empty())
        .map(|s| s.file.clone())
        .collect()
}

/// Replaces every field marked encrypted with its ciphertext (B), `concurrency` items at a
/// time. Returns the number of fields encrypted. Items that grow past 400 KB are reported
/// like any bad fixture, before anything is written.
pub async fn encrypt_seeds(
    seeds: &mut [TableSeed],
    encryptor: Option<&dyn FieldEncryptor>,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut oversized = Vec::new();
    for seed in seeds.iter_mut() {
        if seed.schema.encrypt.is_empty() {
            continue;
        }
        let enc = encryptor.ok_or_else(|| {
            anyhow!(
                "{}: fields {:?} are marked encrypted, but no key service is configured",
                seed.file,
                seed.schema.encrypt
            )
        })?;
        let (schema, table, file) = (&seed.schema, &seed.table, &seed.file);
        let results: Vec<EncryptedFields> = stream::iter(seed.items.iter().enumerate())
            .map(|(i, si)| async move {
                let mut out = Vec::new();
                for attr in &schema.encrypt {
                    let Some(pt) = si.item.get(attr).and_then(plaintext_of) else {
                        continue;
                    };
                    let ctx =
                        EncryptionContext::from_map(render_context(schema, table, attr, &si.item))
                            .with_context(|| {
                                format!("{file}:{}: encryption context of {attr:?}", si.line)
                            })?;
                    let ct = enc.encrypt(&pt, &ctx).await.with_context(|| {
                        format!("{file}:{}: encrypting attribute {attr:?}", si.line)
                    })?;
                    out.push((attr.clone(), ct));
                }
                anyhow::Ok((i, out))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        for (i, fields) in results {
            let si = &mut seed.items[i];
            for (attr, ct) in fields {
                count += 1;
                si.item.insert(attr, AttributeValue::B(Blob::new(ct)));
            }
            let size = item_size(&si.item);
            if size > MAX_ITEM_BYTES {
                oversized.push(FixtureError {
                    file: file.clone(),
                    line: Some(si.line),
                    reason: format!(
                        "item is {size} bytes once encrypted, over DynamoDB's 400 KB ({MAX_ITEM_BYTES} bytes) limit"
                    ),
                });
            }
        }
    }
    if !oversized.is_empty() {
        oversized.sort_by_key(|e| e.line);
        return Err(FixtureErrors {
            errors: oversized,
            more: 0,
        }
        .into());
    }
    Ok(count)
}
