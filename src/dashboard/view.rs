//! How an attribute is shown: the `DashboardEnvelope`. Encrypted attributes are recognised by
//! the parity envelope header (magic, version, suite), never by their names. Pure.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::{Value, json};

use crate::crypto::Envelope;
use crate::crypto::envelope::MAGIC;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Plaintext,
    Encrypted,
    Decrypted,
}

/// One attribute as the page and the API show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardEnvelope {
    pub kind: Kind,
    /// DynamoDB type of the stored value (`B` for every encrypted attribute).
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Plaintext attributes: the value (JSON); decrypted: the plaintext as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// The encryption context decryption uses (names and key values, never secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    /// Why an encrypted value is not shown decrypted (malformed envelope, key service error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DashboardEnvelope {
    pub fn plaintext(ty: &'static str, value: Value) -> DashboardEnvelope {
        DashboardEnvelope {
            kind: Kind::Plaintext,
            ty,
            value: Some(value),
            key_id: None,
            key_version: None,
            context: None,
            error: None,
        }
    }

    /// Text shown in a table cell or on the item page.
    pub fn display(&self) -> String {
        match (self.kind, &self.value) {
            (Kind::Encrypted, _) => {
                let key = self.key_id.as_deref().unwrap_or("?");
                match &self.error {
                    Some(e) => format!("encrypted ({e})"),
                    None => format!("encrypted (key {key} v{})", self.key_version.unwrap_or(0)),
                }
            }
            (_, Some(Value::String(s))) => s.clone(),
            (_, Some(v)) => v.to_string(),
            (_, None) => String::new(),
        }
    }
}

/// Whether bytes claim to be a parity envelope (its magic), parsed or not.
pub fn looks_like_envelope(bytes: &[u8]) -> bool {
    bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] == MAGIC
}

/// A stored attribute, before any decryption: plaintext, or encrypted with its envelope
/// metadata. Values that start with the magic but do not parse are shown as encrypted with
/// the parser's reason.
pub fn classify(v: &AttributeValue) -> DashboardEnvelope {
    if let AttributeValue::B(b) = v {
        let bytes = b.as_ref();
        if looks_like_envelope(bytes) {
            return match Envelope::parse(bytes) {
                Ok(env) => DashboardEnvelope {
                    kind: Kind::Encrypted,
                    ty: "B",
                    value: None,
                    key_id: Some(env.key_id),
                    key_version: Some(env.key_version),
                    context: None,
                    error: None,
                },
                Err(e) => DashboardEnvelope {
                    kind: Kind::Encrypted,
                    ty: "B",
                    value: None,
                    key_id: None,
                    key_version: None,
                    context: None,
                    error: Some(format!("malformed envelope: {e}")),
                },
            };
        }
    }
    DashboardEnvelope::plaintext(type_name(v), to_json(v))
}

pub fn type_name(v: &AttributeValue) -> &'static str {
    crate::dynamo::seed::item::type_name(v)
}

/// A value as plain JSON: numbers stay text (DynamoDB numbers exceed f64), binaries base64.
pub fn to_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => Value::String(s.clone()),
        AttributeValue::B(b) => Value::String(B64.encode(b.as_ref())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => json!(v),
        AttributeValue::Bs(v) => {
            json!(v.iter().map(|b| B64.encode(b.as_ref())).collect::<Vec<_>>())
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
        AttributeValue::M(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, to_json(v))).collect();
            json!(sorted)
        }
        _ => Value::Null,
    }
}

/// Every attribute of an item, sorted by name.
pub fn classify_item(
    item: &HashMap<String, AttributeValue>,
) -> BTreeMap<String, DashboardEnvelope> {
    item.iter().map(|(k, v)| (k.clone(), classify(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn envelope_bytes() -> Vec<u8> {
        Envelope {
            suite: 1,
            key_id: "1214631f-d8a9-45f1-9260-7452d05389e3".into(),
            key_version: 3,
            wrapped_key: vec![7; 40],
            nonce: [4; 12],
            commitment: [5; 32],
            ciphertext: vec![9; 29],
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn envelopes_are_found_by_header_whatever_the_attribute_name() {
        let v = classify(&AttributeValue::B(Blob::new(envelope_bytes())));
        assert_eq!(v.kind, Kind::Encrypted);
        assert_eq!(
            v.key_id.as_deref(),
            Some("1214631f-d8a9-45f1-9260-7452d05389e3")
        );
        assert_eq!(v.key_version, Some(3));
        assert!(v.value.is_none());
        // A binary that is not an envelope stays plaintext, even if named like a secret.
        let item: HashMap<String, AttributeValue> = [
            (
                "password".to_string(),
                AttributeValue::B(Blob::new(b"PEN".to_vec())),
            ),
            (
                "x".to_string(),
                AttributeValue::B(Blob::new(envelope_bytes())),
            ),
        ]
        .into();
        let c = classify_item(&item);
        assert_eq!(c["password"].kind, Kind::Plaintext);
        assert_eq!(c["x"].kind, Kind::Encrypted);
    }

    #[test]
    fn a_broken_envelope_is_encrypted_with_the_parser_reason() {
        let mut b = envelope_bytes();
        b.truncate(20);
        let v = classify(&AttributeValue::B(Blob::new(b)));
        assert_eq!(v.kind, Kind::Encrypted);
        let e = v.error.unwrap();
        assert!(
            e.starts_with("malformed envelope: envelope truncated"),
            "{e}"
        );
    }

    #[test]
    fn plain_values_keep_their_type_and_text() {
        let v = classify(&AttributeValue::N("12345678901234567890.5".into()));
        assert_eq!(v.ty, "N");
        assert_eq!(v.display(), "12345678901234567890.5");
        let m = classify(&AttributeValue::M(
            [
                ("b".to_string(), AttributeValue::Bool(true)),
                ("a".to_string(), AttributeValue::Null(true)),
            ]
            .into(),
        ));
        assert_eq!(m.display(), r#"{"a":null,"b":true}"#);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "plaintext");
        assert_eq!(json["type"], "M");
    }
}
