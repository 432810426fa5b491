//! Server-mode decryption through the environment's key service, one audit line per attempt
//! (who, table, key, attribute, outcome; never the value).

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

/// Who asked, what was opened, and how it went; logged on the `parity::audit` target.
pub struct AuditEntry<'a> {
    pub who: &'a str,
    pub table: &'a str,
    pub key: &'a str,
    pub attribute: &'a str,
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
    pub async fn open(
        &self,
        audit: &AuditEntry<'_>,
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
                tracing::info!(
                    target: "parity::audit",
                    who = ?audit.who,
                    table = ?audit.table,
                    key = ?audit.key,
                    attribute = ?audit.attribute,
                    outcome = "decrypted",
                    "decryption"
                );
                view.kind = Kind::Decrypted;
                // The view is what the dashboard shows: its copy is the one that leaves.
                view.value = Some(match std::str::from_utf8(&plaintext) {
                    Ok(s) => Value::String(s.to_owned()),
                    Err(_) => Value::String(B64.encode(&*plaintext)),
                });
                true
            }
            Err(reason) => {
                tracing::warn!(
                    target: "parity::audit",
                    who = ?audit.who,
                    table = ?audit.table,
                    key = ?audit.key,
                    attribute = ?audit.attribute,
                    outcome = "failed",
                    %reason,
                    "decryption"
                );
                view.error = Some(format!("not decrypted: {reason}"));
                false
            }
        }
    }
}
