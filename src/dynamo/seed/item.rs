//! Fixture items as DynamoDB attribute values: conversion from plain JSON and from
//! DynamoDB JSON (typed values), and DynamoDB's item size rule. Pure.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's maximum item size (names plus values).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

const TYPE_KEYS: &[&str] = &["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

/// True when every attribute is a one-key object naming a DynamoDB type (`{"S": "x"}`): the
/// DynamoDB JSON of the CLI and SDKs. A plain item almost never looks like that.
pub fn looks_typed(obj: &Map<String, Value>) -> bool {
    !obj.is_empty()
        && obj.values().all(|v| {
            v.as_object()
                .is_some_and(|m| m.len() == 1 && m.keys().all(|k| TYPE_KEYS.contains(&k.as_str())))
        })
}

/// A plain JSON value: string S, number N, bool BOOL, null NULL, array L, object M.
pub fn from_plain(v: &Value) -> AttributeValue {
    match v {
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::Array(a) => AttributeValue::L(a.iter().map(from_plain).collect()),
        Value::Object(o) => {
            AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), from_plain(v))).collect())
        }
    }
}

pub fn item_from_plain(obj: &Map<String, Value>) -> Item {
    obj.iter()
        .map(|(k, v)| (k.clone(), from_plain(v)))
        .collect()
}

/// DynamoDB number syntax: optional sign, digits, optional fraction, optional exponent.
pub fn valid_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-') || b.first() == Some(&b'+'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int = digits(&mut i);
    let mut frac = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac = digits(&mut i);
    }
    if int + frac == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn typed_string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a JSON string"))
}

/// Whether an error may quote the value it is about. A field marked encrypted holds
/// plaintext that must never reach an error (and so stderr, a Job's log, a condition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    Shown,
    Hidden,
}

fn number(v: &Value, at: &str, values: Values) -> Result<String, String> {
    let s = typed_string(v, &format!("{at}: N"))?;
    if valid_number(s) {
        Ok(s.to_string())
    } else if values == Values::Hidden {
        Err(format!(
            "{at}: N value is not a number (value not shown: the attribute is marked encrypted)"
        ))
    } else {
        Err(format!("{at}: N value {s:?} is not a number"))
    }
}

fn binary(v: &Value, at: &str) -> Result<Blob, String> {
    let s = typed_string(v, &format!("{at}: B"))?;
    B64.decode(s)
        .map(Blob::new)
        .map_err(|_| format!("{at}: B value is not valid base64"))
}

fn set<T>(
    v: &Value,
    at: &str,
    kind: &str,
    values: Values,
    one: impl Fn(&Value, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{at}: {kind} must be a JSON array"))?;
    if arr.is_empty() {
        return Err(format!("{at}: {kind} must not be empty"));
    }
    let mut seen = BTreeSet::new();
    for x in arr {
        if !seen.insert(x.to_string()) {
            return Err(match values {
                Values::Shown => format!("{at}: {kind} has a duplicate value {x}"),
                Values::Hidden => format!(
                    "{at}: {kind} has a duplicate value (not shown: the attribute is marked encrypted)"
                ),
            });
        }
    }
    arr.iter()
        .enumerate()
        .map(|(i, x)| one(x, &format!("{at}[{i}]")))
        .collect()
}

/// One DynamoDB JSON value (`{"S": "x"}`, `{"M": {...}}`, ...). `at` names it in errors,
/// which quote the value only when `values` is [`Values::Shown`].
pub fn from_typed(v: &Value, at: &str, values: Values) -> Result<AttributeValue, String> {
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("{at}: expected a typed value like {{\"S\": \"text\"}}"))?;
    let (t, inner) = obj.iter().next().ok_or_else(|| format!("{at}: empty"))?;
    Ok(match t.as_str() {
        "S" => AttributeValue::S(typed_string(inner, &format!("{at}: S"))?.to_string()),
        "N" => AttributeValue::N(number(inner, at, values)?),
        "B" => AttributeValue::B(binary(inner, at)?),
        "BOOL" => AttributeValue::Bool(
            inner
                .as_bool()
                .ok_or_else(|| format!("{at}: BOOL must be true or false"))?,
        ),
        "NULL" => match inner {
            Value::Bool(true) => AttributeValue::Null(true),
            _ => return Err(format!("{at}: NULL must be true")),
        },
        "M" => {
            let m = inner
                .as_object()
                .ok_or_else(|| format!("{at}: M must be a JSON object"))?;
            AttributeValue::M(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), from_typed(v, &format!("{at}.{k}"), values)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        "L" => {
            let l = inner
                .as_array()
                .ok_or_else(|| format!("{at}: L must be a JSON array"))?;
            AttributeValue::L(
                l.iter()
                    .enumerate()
                    .map(|(i, v)| from_typed(v, &format!("{at}[{i}]"), values))
                    .collect::<Result<_, String>>()?,
            )
        }
        "SS" => AttributeValue::Ss(set(inner, at, "SS", values, |x, a| {
            Ok(typed_string(x, a)?.to_string())
        })?),
        "NS" => AttributeValue::Ns(set(inner, at, "NS", values, |x, a| number(x, a, values))?),
        "BS" => AttributeValue::Bs(set(inner, at, "BS", values, binary)?),
        other => {
            return Err(format!(
                "{at}: unknown type {other:?} (expected one of {})",
                TYPE_KEYS.join(", ")
            ));
        }
    })
}

/// A DynamoDB JSON item: either the attribute map itself or an export line `{"Item": {...}}`.
pub fn item_from_typed(obj: &Map<String, Value>) -> Result<Item, String> {
    item_from_typed_hiding(obj, &[])
}

/// [`item_from_typed`], whose errors never quote the values of the attributes in `hidden`
/// (a fixture's encrypted fields).
pub fn item_from_typed_hiding(obj: &Map<String, Value>, hidden: &[String]) -> Result<Item, String> {
    let obj = match obj.get("Item").and_then(Value::as_object) {
        Some(inner) if obj.len() == 1 => inner,
        _ => obj,
    };
    obj.iter()
        .map(|(k, v)| {
            let values = if hidden.contains(k) {
                Values::Hidden
            } else {
                Values::Shown
            };
            Ok((
                k.clone(),
                from_typed(v, &format!("attribute {k:?}"), values)?,
            ))
        })
        .collect()
}

/// Significant digits of a number string, for the size rule.
fn significant_digits(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0').trim_end_matches('0');
    trimmed.len().max(1)
}

/// Bytes a value counts for, by DynamoDB's documented rule.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => significant_digits(n).div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s
            .iter()
            .map(|n| significant_digits(n).div_ceil(2) + 1)
            .sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Item size: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The DynamoDB type letter of a value, for messages.
pub fn type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        _ => "unknown",
    }
}

/// A key value as text, for duplicate detection, messages and encryption contexts.
pub fn key_text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::B(b) => B64.encode(b.as_ref()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_and_plain_items_convert_to_the_same_values() {
        let plain = json!({"id": "a", "n": 12.5, "ok": true, "tags": ["x"], "m": {"k": null}});
        let typed = json!({
            "id": {"S": "a"}, "n": {"N": "12.5"}, "ok": {"BOOL": true},
            "tags": {"L": [{"S": "x"}]}, "m": {"M": {"k": {"NULL": true}}}
        });
        assert!(!looks_typed(plain.as_object().unwrap()));
        assert!(looks_typed(typed.as_object().unwrap()));
        assert_eq!(
            item_from_plain(plain.as_object().unwrap()),
            item_from_typed(typed.as_object().unwrap()).unwrap()
        );
        let export = json!({"Item": typed});
        assert_eq!(
            item_from_typed(export.as_object().unwrap()).unwrap(),
            item_from_plain(plain.as_object().unwrap())
        );
    }

    #[test]
    fn typed_errors_name_the_attribute_and_the_problem() {
        let cases = [
            (
                json!({"a": {"N": "12x"}}),
                "attribute \"a\": N value \"12x\" is not a number",
            ),
            (
                json!({"a": {"B": "!!"}}),
                "attribute \"a\": B value is not valid base64",
            ),
            (
                json!({"a": {"Q": 1}}),
                "attribute \"a\": unknown type \"Q\"",
            ),
            (
                json!({"a": {"SS": []}}),
                "attribute \"a\": SS must not be empty",
            ),
            (
                json!({"a": {"SS": ["x", "x"]}}),
                "attribute \"a\": SS has a duplicate value",
            ),
            (
                json!({"a": {"M": {"b": {"L": [{"S": 1}]}}}}),
                "attribute \"a\".b[0]: S must be a JSON string",
            ),
        ];
        for (v, want) in cases {
            let err = item_from_typed(v.as_object().unwrap()).unwrap_err();
            assert!(err.starts_with(want), "{err} vs {want}");
        }
    }

    #[test]
    fn number_syntax() {
        for ok in ["0", "-1", "1.5", ".5", "5.", "1e10", "-2.5E-3", "+7"] {
            assert!(valid_number(ok), "{ok}");
        }
        for bad in ["", "-", "e5", "1e", "1.2.3", "0x10", "NaN", "1 "] {
            assert!(!valid_number(bad), "{bad}");
        }
    }

    #[test]
    fn sizes_follow_dynamodbs_rule() {
        let item: Item = [
            ("id".to_string(), AttributeValue::S("abc".into())),
            ("n".to_string(), AttributeValue::N("123.450".into())),
            ("b".to_string(), AttributeValue::B(Blob::new(vec![0u8; 10]))),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Bool(true)]),
            ),
        ]
        .into_iter()
        .collect();
        // id: 2+3, n: 1 + (5 digits -> 3) + 1, b: 1+10, l: 1 + 3 + (1+1)
        assert_eq!(item_size(&item), 5 + 5 + 11 + 6);
    }
}
