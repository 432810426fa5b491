//! `parity rewrap`: after a key rotation, re-wraps the data key of every encrypted attribute
//! of a table to the key's active version. The envelope's ciphertext body is untouched and no
//! plaintext leaves the key service (KMS ReEncrypt). Each item is updated only if the attribute
//! still holds what was read (conditional update), so it is safe while the app writes; a
//! checkpoint file after every page makes it resumable.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::connect::{AwsArgs, Redacted, client, error_chain};
use super::live::describe;
use super::seed::fixture::{FixtureSchema, render_context};
use super::seed::item::{self, Item};
use super::topology::Table;
use crate::crypto::{EncryptionContext, Encryptor, Envelope, KmsKeyProvider, blob};

#[derive(Debug, clap::Args)]
pub struct RewrapArgs {
    /// DynamoDB endpoint URL.
    #[arg(long, env = "PARITY_DYNAMODB_ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The table to rewrap.
    #[arg(long)]
    pub table: String,
    /// Encrypted attributes (comma-separated); default: the schema's `encrypt` list.
    #[arg(long, value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// Fixture schema (`<table>.fixture.yaml`) whose `context` template rebuilds each field's
    /// encryption context; without it the context is empty.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// KMS-compatible endpoint holding the key.
    #[arg(long, env = "PARITY_KMS_ENDPOINT")]
    pub kms_endpoint: String,
    /// Key id, ARN or alias to rewrap to (its active version).
    #[arg(long, env = "PARITY_KMS_KEY_ID")]
    pub kms_key_id: String,
    /// Access key id for the key service (default: --access-key-id).
    #[arg(long, env = "PARITY_KMS_ACCESS_KEY_ID", hide_env_values = true)]
    pub kms_access_key_id: Option<String>,
    /// Secret access key for the key service (default: --secret-access-key). Never logged.
    #[arg(long, env = "PARITY_KMS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub kms_secret_access_key: Option<Redacted>,
    /// Where to keep the scan position; an existing file resumes from it, and it is removed
    /// when the table is done.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Items per Scan page (one checkpoint per page).
    #[arg(long, default_value_t = 100)]
    pub page_size: i32,
}

/// Counts for the summary. `versions_*` are key versions seen in parity kms / local blobs
/// (AWS KMS blobs do not show theirs).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RewrapSummary {
    pub items_scanned: usize,
    pub fields_rewrapped: usize,
    /// Already on the active version: nothing written.
    pub fields_current: usize,
    /// Changed by someone else between read and write (the condition failed): left alone.
    pub fields_changed_concurrently: usize,
    /// Not an envelope (e.g. plaintext left over): left alone.
    pub fields_not_envelopes: usize,
    pub fields_failed: usize,
    pub versions_before: BTreeSet<u32>,
    pub versions_after: BTreeSet<u32>,
}

impl std::fmt::Display for RewrapSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} items scanned; fields rewrapped {}, already current {}, changed concurrently {}, not envelopes {}, failed {}; key versions before {:?}, now {:?}",
            self.items_scanned,
            self.fields_rewrapped,
            self.fields_current,
            self.fields_changed_concurrently,
            self.fields_not_envelopes,
            self.fields_failed,
            self.versions_before,
            self.versions_after
        )
    }
}

fn key_to_json(key: &HashMap<String, AttributeValue>) -> Value {
    let map: serde_json::Map<String, Value> = key
        .iter()
        .map(|(k, v)| {
            let typed = match v {
                AttributeValue::S(s) => serde_json::json!({ "S": s }),
                AttributeValue::N(n) => serde_json::json!({ "N": n }),
                other => serde_json::json!({ "B": item::key_text(other) }),
            };
            (k.clone(), typed)
        })
        .collect();
    Value::Object(map)
}

fn read_checkpoint(path: &Path) -> anyhow::Result<Option<Item>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("checkpoint {}", path.display()))?;
            let obj = v
                .as_object()
                .ok_or_else(|| anyhow!("checkpoint {}: not an object", path.display()))?;
            Ok(Some(item::item_from_typed(obj).map_err(|e| {
                anyhow!("checkpoint {}: {e}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("checkpoint {}: {e}", path.display())),
    }
}

fn write_checkpoint(path: &Path, key: &HashMap<String, AttributeValue>) -> anyhow::Result<()> {
    // Write then rename: a crash never leaves a half-written checkpoint.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, key_to_json(key).to_string())
        .with_context(|| format!("writing checkpoint {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing checkpoint {}", path.display()))
}

fn version_of(envelope: &Envelope) -> Option<u32> {
    blob::parse_header(&envelope.wrapped_key)
        .ok()
        .map(|h| h.kek_version)
}

enum FieldOutcome {
    Rewrapped(Vec<u8>, Option<u32>),
    Current(Option<u32>),
    NotEnvelope,
}

async fn rewrap_field(
    enc: &Encryptor<KmsKeyProvider>,
    bytes: &[u8],
    ctx: &EncryptionContext,
    summary: &mut RewrapSummary,
) -> anyhow::Result<FieldOutcome> {
    let Ok(before) = Envelope::parse(bytes) else {
        return Ok(FieldOutcome::NotEnvelope);
    };
    let v_before = version_of(&before);
    if let Some(v) = v_before {
        summary.versions_before.insert(v);
    }
    let out = enc.rewrap(bytes, ctx).await?;
    let after = Envelope::parse(&out)?;
    let v_after = version_of(&after);
    // Same version (known on both sides): the re-encryption is pointless churn, skip the write.
    if v_before.is_some() && v_before == v_after {
        return Ok(FieldOutcome::Current(v_after));
    }
    Ok(FieldOutcome::Rewrapped(out, v_after))
}

/// Rewraps `attributes` of one scanned item and writes them back only if they still hold
/// what was scanned; counts go to `summary`. Public for the concurrency test.
pub async fn rewrap_item(
    ddb: &Client,
    enc: &Encryptor<KmsKeyProvider>,
    table: &Table,
    schema: &FixtureSchema,
    attributes: &[String],
    item: &Item,
    summary: &mut RewrapSummary,
) {
    let mut updates: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    for attr in attributes {
        let Some(AttributeValue::B(old)) = item.get(attr) else {
            continue;
        };
        let ctx = match EncryptionContext::from_map(render_context(schema, &table.name, attr, item))
        {
            Ok(c) => c,
            Err(e) => {
                summary.fields_failed += 1;
                tracing::warn!(table = %table.name, attribute = %attr, "encryption context: {e}");
                continue;
            }
        };
        match rewrap_field(enc, old.as_ref(), &ctx, summary).await {
            Ok(FieldOutcome::Rewrapped(new, v)) => {
                if let Some(v) = v {
                    summary.versions_after.insert(v);
                }
                updates.push((attr.clone(), old.as_ref().to_vec(), new));
            }
            Ok(FieldOutcome::Current(v)) => {
                if let Some(v) = v {
                    summary.versions_after.insert(v);
                }
                summary.fields_current += 1;
            }
            Ok(FieldOutcome::NotEnvelope) => summary.fields_not_envelopes += 1,
            Err(e) => {
                summary.fields_failed += 1;
                tracing::warn!(table = %table.name, attribute = %attr, "rewrap failed: {e:#}");
            }
        }
    }
    if updates.is_empty() {
        return;
    }
    let key: HashMap<String, AttributeValue> = table
        .key_attributes()
        .iter()
        .filter_map(|k| item.get(&k.name).map(|v| (k.name.clone(), v.clone())))
        .collect();
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::new();
    let mut conds = Vec::new();
    for (i, (attr, old, new)) in updates.iter().enumerate() {
        names.insert(format!("#a{i}"), attr.clone());
        values.insert(format!(":o{i}"), AttributeValue::B(Blob::new(old.clone())));
        values.insert(format!(":n{i}"), AttributeValue::B(Blob::new(new.clone())));
        sets.push(format!("#a{i} = :n{i}"));
        conds.push(format!("#a{i} = :o{i}"));
    }
    let result = ddb
        .update_item()
        .table_name(&table.name)
        .set_key(Some(key))
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(conds.join(" AND "))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await;
    match result {
        Ok(_) => summary.fields_rewrapped += updates.len(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            summary.fields_changed_concurrently += updates.len();
        }
        Err(e) => {
            summary.fields_failed += updates.len();
            tracing::warn!(table = %table.name, "UpdateItem failed: {}", error_chain(&e));
        }
    }
}

pub async fn run(args: RewrapArgs) -> anyhow::Result<()> {
    let summary = rewrap(&args).await?;
    println!("rewrap {}: {summary}", args.table);
    if summary.fields_failed > 0 {
        bail!(
            "{} field(s) could not be rewrapped (see the warnings); re-run to retry",
            summary.fields_failed
        );
    }
    Ok(())
}

/// Rewraps the table; returns the counts (failures included, not turned into an error).
pub async fn rewrap(args: &RewrapArgs) -> anyhow::Result<RewrapSummary> {
    let schema: FixtureSchema = match &args.schema {
        Some(p) => serde_yaml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{}", p.display()))?,
        None => FixtureSchema::default(),
    };
    let attributes = if args.attributes.is_empty() {
        schema.encrypt.clone()
    } else {
        args.attributes.clone()
    };
    if attributes.is_empty() {
        bail!("no attributes to rewrap: give --attributes or a --schema with `encrypt`");
    }
    let ddb = client(&args.endpoint, &args.aws, 5);
    let table = describe(&ddb, &args.table)
        .await?
        .ok_or_else(|| anyhow!("table {} does not exist", args.table))?
        .table;
    let kms = KmsKeyProvider::client_for(
        &args.kms_endpoint,
        &args.aws.region,
        args.kms_access_key_id
            .as_deref()
            .unwrap_or(&args.aws.access_key_id),
        args.kms_secret_access_key
            .as_ref()
            .unwrap_or(&args.aws.secret_access_key)
            .expose(),
    );
    let enc = Encryptor::new(KmsKeyProvider::new(kms, &args.kms_key_id));

    let mut start = match &args.checkpoint {
        Some(p) => read_checkpoint(p)?,
        None => None,
    };
    if start.is_some() {
        tracing::info!(table = %table.name, "resuming {} from the checkpoint", table.name);
    }
    let mut summary = RewrapSummary::default();
    loop {
        let page = ddb
            .scan()
            .table_name(&table.name)
            .limit(args.page_size.max(1))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| anyhow!("Scan {}: {}", table.name, error_chain(&e)))?;
        for it in page.items() {
            summary.items_scanned += 1;
            rewrap_item(&ddb, &enc, &table, &schema, &attributes, it, &mut summary).await;
        }
        tracing::info!(
            table = %table.name,
            "rewrap {}: {} items scanned, {} fields rewrapped, {} current, {} changed concurrently, {} failed",
            table.name,
            summary.items_scanned,
            summary.fields_rewrapped,
            summary.fields_current,
            summary.fields_changed_concurrently,
            summary.fields_failed
        );
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => {
                if let Some(p) = &args.checkpoint {
                    write_checkpoint(p, &k)?;
                }
                start = Some(k);
            }
            _ => break,
        }
    }
    if let Some(p) = &args.checkpoint {
        let _ = std::fs::remove_file(p);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_every_key_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        let key: Item = [
            ("pk".to_string(), AttributeValue::S("a#1".into())),
            ("n".to_string(), AttributeValue::N("12.5".into())),
            (
                "b".to_string(),
                AttributeValue::B(Blob::new(vec![0, 255, 7])),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(read_checkpoint(&path).unwrap(), None);
        write_checkpoint(&path, &key).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), Some(key));
    }

    #[test]
    fn the_summary_reads_as_one_line() {
        let s = RewrapSummary {
            items_scanned: 3,
            fields_rewrapped: 2,
            versions_before: [1].into_iter().collect(),
            versions_after: [2].into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(
            s.to_string(),
            "3 items scanned; fields rewrapped 2, already current 0, changed concurrently 0, not envelopes 0, failed 0; key versions before {1}, now {2}"
        );
    }
}
