//! Server-mode decryption through the environment's key service. The caller writes one audit
//! line per attempt (src/dashboard/audit.rs).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::view::{DashboardEnvelope, Kind};
use crate::crypto::{EncryptionContext, Encryptor, KmsKeyProvider};
use crate::dynamo::seed::FixtureSchema;
use crate::dynamo::seed::fixture::render_context;

/// Decrypts envelopes through a KMS-compatible endpoint. The key id in each envelope names
/// the key; the provider's default key is only used for encryption, which never happens here.
pub struct Decryptor {
    encryptor: Encryptor<KmsKeyProvider>,
    schemas: BTreeMap<String, FixtureSchema>,
}

impl Decryptor {
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        schemas: BTreeMap<String, FixtureSchema>,
    ) -> Decryptor {
        let client = KmsKeyProvider::client_for(endpoint, region, access_key_id, secret_access_key);
        Decryptor {
            encryptor: Encryptor::new(KmsKeyProvider::new(client, "unused-for-decryption")),
            schemas,
        }
    }

    /// The encryption context the table's fixture schema rebuilds for `attribute` of `item`
    /// (empty without a schema).
    pub fn context(
        &self,
        table: &str,
        attribute: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> BTreeMap<String, String> {
        match self.schemas.get(table) {
            Some(schema) => render_context(schema, table, attribute, item),
            None => BTreeMap::new(),
        }
    }

    /// Turns an `Encrypted` view into `Decrypted` (or keeps it encrypted with the reason).
    /// The caller writes the audit line (who asked is known there).
    pub async fn open(
        &self,
        stored: &[u8],
        context: BTreeMap<String, String>,
        view: &mut DashboardEnvelope,
    ) -> bool {
        view.context = Some(context.clone());
        let result = match EncryptionContext::from_map(context) {
            Ok(ctx) => self
                .encryptor
                .decrypt(stored, &ctx)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("encryption context: {e}")),
        };
        match result {
            Ok(plaintext) => {
                view.kind = Kind::Decrypted;
                // The view is what the dashboard shows: its copy is the one that leaves.
                view.value = Some(match std::str::from_utf8(&plaintext) {
                    Ok(s) => Value::String(s.to_owned()),
                    Err(_) => Value::String(B64.encode(&*plaintext)),
                });
                true
            }
            Err(reason) => {
                // The reason comes from the key service or the envelope parser: ids and
                // codes, never the value.
                tracing::warn!(%reason, "decryption failed");
                view.error = Some(format!("not decrypted: {reason}"));
                false
            }
        }
    }
}
