//! DynamoDB reads for the dashboard: pages of a Scan (resumable with an opaque token), a
//! partition-key filter, and single items. The page token is the Scan's LastEvaluatedKey as
//! typed JSON, base64url: opaque to users, checked when it comes back.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value};

use aws_credential_types::provider::SharedCredentialsProvider;

use super::config::CredentialSource;
use crate::dynamo::connect::{AwsArgs, error_chain};
use crate::dynamo::seed::item::{self, Item};
use crate::dynamo::topology::{AttributeType, KeyAttribute, Table};

/// Scan calls one page request may make while a filter skips items (bounds latency; the
/// token continues where it stopped).
const MAX_SCANS_PER_PAGE: usize = 20;
/// Items a filtered Scan call reads.
const FILTERED_READ: usize = 1000;

/// The credentials DynamoDB and Streams calls are signed with: the static pair of the flags
/// (emulators), or the SDK's default chain (IRSA web identity, EKS pod identity, instance
/// profile), which refreshes them itself.
pub async fn credentials(source: CredentialSource, aws: &AwsArgs) -> SharedCredentialsProvider {
    match source {
        CredentialSource::Static => SharedCredentialsProvider::new(Credentials::new(
            aws.access_key_id.clone(),
            aws.secret_access_key.expose().to_string(),
            aws.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "parity-dashboard",
        )),
        CredentialSource::DefaultChain => SharedCredentialsProvider::new(
            aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                .region(Region::new(aws.region.clone()))
                .build()
                .await,
        ),
    }
}

pub fn dynamodb_client(
    endpoint: Option<&str>,
    aws: &AwsArgs,
    credentials: SharedCredentialsProvider,
) -> Client {
    let mut b = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(15))
                .build(),
        );
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

pub fn streams_client(
    endpoint: Option<&str>,
    aws: &AwsArgs,
    credentials: SharedCredentialsProvider,
) -> aws_sdk_dynamodbstreams::Client {
    use aws_sdk_dynamodbstreams::config as c;
    let mut b = c::Builder::new()
        .behavior_version(c::BehaviorVersion::latest())
        .region(c::Region::new(aws.region.clone()))
        .credentials_provider(credentials)
        .retry_config(c::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            c::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(15))
                .build(),
        );
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_dynamodbstreams::Client::from_conf(b.build())
}

/// A request the user can get wrong: answered with 400 and this text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("token: not a page token of this dashboard ({0})")]
    BadToken(String),
    #[error("{field}: {reason}")]
    BadKey { field: String, reason: String },
}

pub fn encode_token(key: &Item) -> String {
    let map: Map<String, Value> = key
        .iter()
        .map(|(k, v)| {
            let typed = match v {
                AttributeValue::N(n) => serde_json::json!({ "N": n }),
                AttributeValue::B(b) => serde_json::json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) }),
                other => serde_json::json!({ "S": item::key_text(other) }),
            };
            (k.clone(), typed)
        })
        .collect();
    B64URL.encode(Value::Object(map).to_string())
}

/// Decodes a token and checks it names exactly the table's key attributes.
pub fn decode_token(token: &str, table: &Table) -> Result<Item, QueryError> {
    let bytes = B64URL
        .decode(token.trim())
        .map_err(|_| QueryError::BadToken("not base64url".into()))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|_| QueryError::BadToken("not JSON".into()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| QueryError::BadToken("not an object".into()))?;
    let key = item::item_from_typed(obj).map_err(QueryError::BadToken)?;
    let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
    names.sort();
    let mut want = vec![table.partition_key.name.as_str()];
    if let Some(sk) = &table.sort_key {
        want.push(sk.name.as_str());
    }
    want.sort();
    if names != want {
        return Err(QueryError::BadToken(format!(
            "names attributes {names:?}, the table's key is {want:?}"
        )));
    }
    Ok(key)
}

/// A key value typed by the table's key definition, from the text in a URL.
pub fn key_value(attr: &KeyAttribute, text: &str) -> Result<AttributeValue, QueryError> {
    let bad = |reason: &str| QueryError::BadKey {
        field: attr.name.clone(),
        reason: reason.to_string(),
    };
    match attr.attr_type {
        AttributeType::S => Ok(AttributeValue::S(text.to_string())),
        AttributeType::N if item::valid_number(text) => Ok(AttributeValue::N(text.to_string())),
        AttributeType::N => Err(bad("not a number")),
        AttributeType::B => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|b| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b)))
            .map_err(|_| bad("not base64")),
    }
}

/// The table's key attributes of an item (a valid ExclusiveStartKey).
pub fn key_of(table: &Table, item: &Item) -> Item {
    std::iter::once(&table.partition_key)
        .chain(table.sort_key.as_ref())
        .filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
        .collect()
}

/// The key of an item as `pk=a, sk=b` (for audit lines and links).
pub fn key_label(table: &Table, item: &Item) -> String {
    let mut parts = Vec::new();
    for attr in std::iter::once(&table.partition_key).chain(table.sort_key.as_ref()) {
        if let Some(v) = item.get(&attr.name) {
            parts.push(format!("{}={}", attr.name, item::key_text(v)));
        }
    }
    parts.join(", ")
}

pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

/// One page of `table`: up to `limit` items from `token`, keeping only items whose partition
/// key starts with `filter` (S keys) or equals it (N, B keys).
pub async fn scan_page(
    client: &Client,
    table: &Table,
    limit: u32,
    token: Option<&str>,
    filter: Option<&str>,
) -> anyhow::Result<Result<Page, QueryError>> {
    let mut start = match token.filter(|t| !t.is_empty()) {
        Some(t) => match decode_token(t, table) {
            Ok(k) => Some(k),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    let filter_value = match filter.filter(|f| !f.is_empty()) {
        Some(f) => match key_value(&table.partition_key, f) {
            Ok(v) => Some(v),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    let mut items = Vec::new();
    for _ in 0..MAX_SCANS_PER_PAGE {
        let want = limit as usize - items.len();
        // Scan's Limit counts items read, not matched: a filtered page reads more per call
        // and keeps only what fits, resuming after the last item kept.
        let read = if filter_value.is_some() {
            FILTERED_READ.max(want)
        } else {
            want
        };
        let mut req = client
            .scan()
            .table_name(&table.name)
            .limit(read as i32)
            .set_exclusive_start_key(start.take());
        if let Some(v) = &filter_value {
            let expr = if table.partition_key.attr_type == AttributeType::S {
                "begins_with(#k, :v)"
            } else {
                "#k = :v"
            };
            req = req
                .filter_expression(expr)
                .expression_attribute_names("#k", &table.partition_key.name)
                .expression_attribute_values(":v", v.clone());
        }
        let out = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("scan {}: {}", table.name, error_chain(&e)))?;
        let mut got = out.items.unwrap_or_default();
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if got.len() > want {
            got.truncate(want);
            start = got.last().map(|item| key_of(table, item));
        }
        items.extend(got);
        if start.is_none() || items.len() >= limit as usize {
            break;
        }
    }
    Ok(Ok(Page {
        items,
        next: start.as_ref().map(encode_token),
    }))
}

/// The item with this key, if any. `sk` is required when the table has a sort key.
pub async fn get_item(
    client: &Client,
    table: &Table,
    pk: &str,
    sk: Option<&str>,
) -> anyhow::Result<Result<Option<Item>, QueryError>> {
    let mut key: HashMap<String, AttributeValue> = HashMap::new();
    match key_value(&table.partition_key, pk) {
        Ok(v) => key.insert(table.partition_key.name.clone(), v),
        Err(e) => return Ok(Err(e)),
    };
    if let Some(attr) = &table.sort_key {
        let Some(sk) = sk else {
            return Ok(Err(QueryError::BadKey {
                field: "sk".into(),
                reason: format!("the table's sort key {} is required", attr.name),
            }));
        };
        match key_value(attr, sk) {
            Ok(v) => key.insert(attr.name.clone(), v),
            Err(e) => return Ok(Err(e)),
        };
    }
    let out = client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("get item from {}: {}", table.name, error_chain(&e)))?;
    Ok(Ok(out.item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::topology::Topology;

    fn table() -> Table {
        Topology::from_yaml_str(
            "tables:\n  - name: orders\n    partitionKey: {name: pk, type: S}\n    sortKey: {name: n, type: N}\n",
        )
        .unwrap()
        .tables
        .remove(0)
    }

    #[test]
    fn tokens_round_trip_and_reject_foreign_keys() {
        let t = table();
        let key: Item = [
            ("pk".to_string(), AttributeValue::S("a/b?c".into())),
            ("n".to_string(), AttributeValue::N("7".into())),
        ]
        .into();
        let token = encode_token(&key);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(decode_token(&token, &t), Ok(key));
        let other: Item = [("id".to_string(), AttributeValue::S("x".into()))].into();
        let err = decode_token(&encode_token(&other), &t).unwrap_err();
        assert!(err.to_string().starts_with("token: "), "{err}");
        assert!(matches!(
            decode_token("%%%", &t),
            Err(QueryError::BadToken(_))
        ));
    }

    #[test]
    fn key_values_follow_the_key_type() {
        let t = table();
        let err = key_value(t.sort_key.as_ref().unwrap(), "seven").unwrap_err();
        assert_eq!(err.to_string(), "n: not a number");
        assert_eq!(
            key_label(
                &t,
                &[
                    ("pk".to_string(), AttributeValue::S("a".into())),
                    ("n".to_string(), AttributeValue::N("1".into())),
                    ("x".to_string(), AttributeValue::S("y".into()))
                ]
                .into()
            ),
            "pk=a, n=1"
        );
    }
}
