//! LocalSecretsProvider: generated values satisfy the schema for every generator kind,
//! Seeded generation is reproducible, values are created once and kept, removed schema
//! entries are reported (pruned only when asked), and nothing Debug-prints a value.

use std::collections::BTreeMap;

use parity_operator::secrets::{
    GenerateError, GenerationMode, LocalSecretsProvider, SecretsSchema,
};
use proptest::prelude::*;
use serde_json::{Value, json};

type Data = BTreeMap<String, Vec<u8>>;

fn example() -> SecretsSchema {
    SecretsSchema::parse(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/secrets.schema.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn endpoints() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("dynamodb".into(), "http://demo-dynamodb.ci.svc:8000".into()),
        ("kms".into(), "http://demo-kms.ci.svc:8080".into()),
    ])
}

fn seeded(seed: &str) -> GenerationMode {
    GenerationMode::Seeded(seed.as_bytes().to_vec().into())
}

fn provider(schema: &SecretsSchema, mode: GenerationMode, prune: bool) -> LocalSecretsProvider<'_> {
    LocalSecretsProvider {
        schema,
        mode,
        prune,
    }
}

fn schema_from(props: Value) -> SecretsSchema {
    SecretsSchema::from_value(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": props,
    }))
    .unwrap()
}

#[test]
fn first_reconcile_generates_every_secret_and_they_validate() {
    let schema = example();
    let out = provider(&schema, GenerationMode::Random, false).reconcile(None, &endpoints());
    assert!(out.report.changed);
    assert_eq!(out.report.created.len(), 7, "{:?}", out.report);
    assert!(out.report.failed.is_empty() && out.report.invalid.is_empty());
    assert_eq!(schema.validate_data(&out.data), vec![]);
    assert_eq!(
        out.data["DYNAMODB_ENDPOINT"],
        b"http://demo-dynamodb.ci.svc:8000"
    );
    assert_eq!(out.data["AWS_REGION"], b"us-east-1");
    let c = out.report.condition();
    assert!(c.ready);
    assert_eq!(c.reason, "SecretsReady");
    assert_eq!(c.message, "7 secrets: 7 created, 0 kept, 0 updated");
}

#[test]
fn values_are_created_once_and_kept() {
    let schema = example();
    let p = provider(&schema, GenerationMode::Random, false);
    let first = p.reconcile(None, &endpoints());
    let second = p.reconcile(Some(&first.data), &endpoints());
    assert_eq!(second.data, first.data);
    assert!(!second.report.changed, "a no-op reconcile must not write");
    assert_eq!(second.report.kept.len(), 7);
    assert!(second.report.created.is_empty());
}

#[test]
fn new_schema_entries_are_added_without_touching_the_others() {
    let small = schema_from(json!({
        "A": {"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 20}},
    }));
    let big = schema_from(json!({
        "A": {"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 20}},
        "B": {"type": "string", "x-parity-generate": {"kind": "uuid"}},
    }));
    let first = provider(&small, GenerationMode::Random, false).reconcile(None, &endpoints());
    let second =
        provider(&big, GenerationMode::Random, false).reconcile(Some(&first.data), &endpoints());
    assert_eq!(second.report.created, vec!["B".to_string()]);
    assert_eq!(second.report.kept, vec!["A".to_string()]);
    assert_eq!(second.data["A"], first.data["A"]);
    assert!(second.report.changed);
}

#[test]
fn removed_entries_are_reported_and_kept_unless_pruning() {
    let big = schema_from(json!({
        "A": {"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 20}},
        "OLD": {"type": "string", "x-parity-generate": {"kind": "uuid"}},
    }));
    let small = schema_from(json!({
        "A": {"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 20}},
    }));
    let first = provider(&big, GenerationMode::Random, false).reconcile(None, &endpoints());

    let kept =
        provider(&small, GenerationMode::Random, false).reconcile(Some(&first.data), &endpoints());
    assert_eq!(kept.report.undeclared, vec!["OLD".to_string()]);
    assert!(kept.report.pruned.is_empty());
    assert_eq!(kept.data, first.data);
    assert!(!kept.report.changed);
    let c = kept.report.condition();
    assert!(c.ready);
    assert_eq!(c.reason, "UndeclaredKeysKept");
    assert!(c.message.contains("OLD"), "{}", c.message);

    let pruned =
        provider(&small, GenerationMode::Random, true).reconcile(Some(&first.data), &endpoints());
    assert_eq!(pruned.report.pruned, vec!["OLD".to_string()]);
    assert!(!pruned.data.contains_key("OLD"));
    assert!(pruned.report.changed);
}

#[test]
fn existing_values_that_no_longer_validate_are_reported_not_replaced() {
    let schema = example();
    let p = provider(&schema, GenerationMode::Random, false);
    let mut data = p.reconcile(None, &endpoints()).data;
    data.insert("ADMIN_PASSWORD".into(), b"CANARY-short".to_vec());
    let out = p.reconcile(Some(&data), &endpoints());
    assert_eq!(out.data["ADMIN_PASSWORD"], b"CANARY-short");
    let rules: Vec<(&str, &str)> = out
        .report
        .invalid
        .iter()
        .map(|e| (e.secret.as_str(), e.rule.as_str()))
        .collect();
    assert!(
        rules.contains(&("ADMIN_PASSWORD", "minLength")),
        "{rules:?}"
    );
    let c = out.report.condition();
    assert!(!c.ready);
    assert_eq!(c.reason, "InvalidValues");
    assert!(c.message.contains("ADMIN_PASSWORD") && !c.message.contains("CANARY"));
}

#[test]
fn derived_values_follow_the_environment() {
    let schema = example();
    let p = provider(&schema, GenerationMode::Random, false);
    let first = p.reconcile(None, &endpoints());
    let mut moved = endpoints();
    moved.insert("kms".into(), "http://other-kms:9000".into());
    let second = p.reconcile(Some(&first.data), &moved);
    assert_eq!(second.report.updated, vec!["KMS_ENDPOINT".to_string()]);
    assert_eq!(second.data["KMS_ENDPOINT"], b"http://other-kms:9000");
    assert_eq!(second.data["ADMIN_PASSWORD"], first.data["ADMIN_PASSWORD"]);
}

#[test]
fn a_missing_endpoint_fails_that_secret_only() {
    let schema = example();
    let mut eps = endpoints();
    eps.remove("kms");
    let out = provider(&schema, GenerationMode::Random, false).reconcile(None, &eps);
    assert_eq!(
        out.report.failed,
        vec![GenerateError::MissingEndpoint {
            secret: "KMS_ENDPOINT".into(),
            endpoint: "kms".into()
        }]
    );
    assert!(!out.data.contains_key("KMS_ENDPOINT"));
    assert_eq!(out.data.len(), 6);
    let c = out.report.condition();
    assert_eq!((c.ready, c.reason), (false, "GenerationFailed"));
}

#[test]
fn seeded_generation_is_reproducible_and_seed_specific() {
    let schema = example();
    let a1 = provider(&schema, seeded("ci-seed-1"), false).reconcile(None, &endpoints());
    let a2 = provider(&schema, seeded("ci-seed-1"), false).reconcile(None, &endpoints());
    let b = provider(&schema, seeded("ci-seed-2"), false).reconcile(None, &endpoints());
    assert_eq!(a1.data, a2.data);
    assert_ne!(a1.data["ADMIN_PASSWORD"], b.data["ADMIN_PASSWORD"]);
    assert_ne!(
        a1.data["SESSION_SIGNING_KEY"],
        b.data["SESSION_SIGNING_KEY"]
    );
    // Derived values do not depend on the seed.
    assert_eq!(a1.data["AWS_REGION"], b.data["AWS_REGION"]);

    let r1 = provider(&schema, GenerationMode::Random, false).reconcile(None, &endpoints());
    let r2 = provider(&schema, GenerationMode::Random, false).reconcile(None, &endpoints());
    assert_ne!(r1.data["WEBHOOK_SECRET"], r2.data["WEBHOOK_SECRET"]);
}

#[test]
fn a_secret_seeded_value_does_not_depend_on_its_neighbours() {
    let one = schema_from(json!({
        "B": {"type": "string", "x-parity-generate": {"kind": "randomBytes", "bytes": 32}},
    }));
    let two = schema_from(json!({
        "A": {"type": "string", "x-parity-generate": {"kind": "randomBytes", "bytes": 32}},
        "B": {"type": "string", "x-parity-generate": {"kind": "randomBytes", "bytes": 32}},
    }));
    let x = provider(&one, seeded("s"), false).reconcile(None, &endpoints());
    let y = provider(&two, seeded("s"), false).reconcile(None, &endpoints());
    assert_eq!(x.data["B"], y.data["B"]);
}

#[test]
fn debug_output_carries_no_values() {
    let schema = schema_from(json!({
        "CANARY_FIXED": {"type": "string", "x-parity-generate": {"kind": "fixed", "value": "CANARY-fixed-9d2e"}},
        "TOKEN": {"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 30}},
    }));
    let mut existing = Data::new();
    existing.insert("TOKEN".into(), b"CANARY-token-value-000000000000".to_vec());
    let p = provider(&schema, seeded("CANARY-seed"), false);
    let out = p.reconcile(Some(&existing), &endpoints());
    for shown in [
        format!("{out:?}"),
        format!("{:?}", out.report),
        format!("{p:?}"),
        format!("{schema:?}"),
        format!("{:?}", out.report.condition()),
    ] {
        assert!(!shown.contains("CANARY-"), "value in Debug: {shown}");
    }
}

// ---- property tests: every generator kind meets the rules it is declared with ----

#[derive(Debug, Clone)]
enum Kind {
    Bytes(u32, &'static str),
    Alnum(u32),
    Uuid,
    Endpoint(String, u16, Option<&'static str>),
    Fixed(String),
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (
            1u32..300,
            prop::sample::select(vec!["base64", "base64url", "hex"])
        )
            .prop_map(|(n, e)| Kind::Bytes(n, e)),
        (1u32..300).prop_map(Kind::Alnum),
        Just(Kind::Uuid),
        (
            "[a-z][a-z0-9-]{0,20}",
            1u16..,
            prop::option::of(prop::sample::select(vec![
                "{url}/v1",
                "{scheme}://{host}:{port}",
                "redis://{host}:{port}/0"
            ]))
        )
            .prop_map(|(h, p, t)| Kind::Endpoint(h, p, t)),
        "[ -~]{0,64}".prop_map(Kind::Fixed),
    ]
}

/// The generator and the strictest rules its output must meet.
fn declare(kind: &Kind) -> Value {
    match kind {
        Kind::Bytes(n, enc) => {
            let (len, pattern) = match *enc {
                "base64" => (4 * n.div_ceil(3), "^[A-Za-z0-9+/]*={0,2}$"),
                "base64url" => ((4 * n).div_ceil(3), "^[A-Za-z0-9_-]+$"),
                _ => (2 * n, "^[0-9a-f]+$"),
            };
            json!({"type": "string", "minLength": len, "maxLength": len, "pattern": pattern,
                   "x-parity-generate": {"kind": "randomBytes", "bytes": n, "encoding": enc}})
        }
        Kind::Alnum(n) => json!({"type": "string", "minLength": n, "maxLength": n,
            "pattern": "^[A-Za-z0-9]*$", "x-parity-generate": {"kind": "alphanumeric", "length": n}}),
        Kind::Uuid => json!({"type": "string", "format": "uuid",
            "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
            "x-parity-generate": {"kind": "uuid"}}),
        Kind::Endpoint(_, _, t) => {
            let mut g = json!({"kind": "endpointUrl", "endpoint": "svc"});
            if let Some(t) = t {
                g["template"] = json!(t);
            }
            json!({"type": "string", "format": "uri", "x-parity-generate": g})
        }
        Kind::Fixed(v) => json!({"type": "string", "const": v,
            "x-parity-generate": {"kind": "fixed", "value": v}}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generation_satisfies_the_schema_for_every_kind(
        kinds in prop::collection::vec(kind_strategy(), 1..6),
        seed in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut props = serde_json::Map::new();
        let mut eps = BTreeMap::new();
        for (i, k) in kinds.iter().enumerate() {
            props.insert(format!("S{i}"), declare(k));
            if let Kind::Endpoint(h, p, _) = k {
                eps.insert("svc".to_string(), format!("http://{h}:{p}"));
            }
        }
        let schema = schema_from(Value::Object(props));
        for mode in [GenerationMode::Seeded(seed.clone().into()), GenerationMode::Random] {
            let out = provider(&schema, mode, false).reconcile(None, &eps);
            prop_assert!(out.report.failed.is_empty(), "{:?}", out.report);
            prop_assert_eq!(out.data.len(), kinds.len());
            prop_assert_eq!(schema.validate_data(&out.data), vec![]);
        }
        let a = provider(&schema, GenerationMode::Seeded(seed.clone().into()), false).reconcile(None, &eps);
        let b = provider(&schema, GenerationMode::Seeded(seed.into()), false).reconcile(None, &eps);
        prop_assert_eq!(a.data, b.data);
    }
}
