//! secrets.schema.json: bad schemas and bad values are rejected with the secret and the rule
//! named, and never with the value.

use std::collections::BTreeMap;

use parity_operator::secrets::{SchemaError, SecretsSchema, ValueError};
use serde_json::{Value, json};

const CANARY: &str = "CANARY-7f3a9c-value";

fn schema_with(name: &str, prop: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": { name: prop },
    })
}

fn parse(v: &Value) -> Result<SecretsSchema, SchemaError> {
    SecretsSchema::parse(&v.to_string())
}

fn parse_err(v: &Value) -> SchemaError {
    match parse(v) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn alnum(len: u32) -> Value {
    json!({"kind": "alphanumeric", "length": len})
}

#[test]
fn example_schema_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/secrets.schema.json"
    ))
    .unwrap();
    let schema = SecretsSchema::parse(&text).unwrap();
    let names: Vec<&str> = schema.secrets().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ADMIN_PASSWORD",
            "AWS_REGION",
            "DYNAMODB_ENDPOINT",
            "INSTANCE_ID",
            "KMS_ENDPOINT",
            "SESSION_SIGNING_KEY",
            "WEBHOOK_SECRET"
        ]
    );
    assert_eq!(schema.required().len(), 7);
}

#[test]
fn rejects_text_that_is_not_json_with_its_position() {
    let e = SecretsSchema::parse("{\n  \"$schema\": ,\n}").unwrap_err();
    match &e {
        SchemaError::NotJson { line, .. } => assert_eq!(*line, 2),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn rejects_other_drafts_and_a_missing_schema_keyword() {
    let mut v = schema_with(
        "A",
        json!({"type": "string", "x-parity-generate": alnum(8)}),
    );
    v["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    let e = parse_err(&v);
    assert!(matches!(e, SchemaError::Draft { .. }), "{e:?}");
    assert!(e.to_string().contains("draft-07"), "{e}");

    v.as_object_mut().unwrap().remove("$schema");
    assert!(matches!(parse_err(&v), SchemaError::Draft { .. }));
}

#[test]
fn rejects_documents_that_break_the_2020_12_meta_schema() {
    let v = schema_with(
        "API_TOKEN",
        json!({"type": "string", "minLength": -1, "x-parity-generate": alnum(8)}),
    );
    let e = parse_err(&v);
    match &e {
        SchemaError::MetaSchema { at, rule, .. } => {
            assert_eq!(at, "/properties/API_TOKEN/minLength");
            assert_eq!(rule, "minimum");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_a_root_that_is_not_an_object_of_secrets() {
    let v = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"});
    assert!(parse_err(&v).to_string().contains("\"type\": \"object\""));
    let v = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {}});
    assert!(parse_err(&v).to_string().contains("at least one secret"));
}

#[test]
fn rejects_secrets_that_are_not_strings() {
    let v = schema_with(
        "PORT",
        json!({"type": "integer", "x-parity-generate": alnum(4)}),
    );
    let e = parse_err(&v);
    assert_eq!(
        e,
        SchemaError::NotString {
            secret: "PORT".into()
        }
    );
    assert!(
        e.to_string().starts_with("secret \"PORT\": rule type"),
        "{e}"
    );
}

#[test]
fn rejects_a_secret_without_a_generator() {
    let e = parse_err(&schema_with("DB_PASSWORD", json!({"type": "string"})));
    assert_eq!(
        e,
        SchemaError::MissingGenerator {
            secret: "DB_PASSWORD".into()
        }
    );
    assert!(e.to_string().contains("x-parity-generate"));
}

#[test]
fn rejects_unknown_generator_kinds_and_fields() {
    let e = parse_err(&schema_with(
        "K",
        json!({"type": "string", "x-parity-generate": {"kind": "password"}}),
    ));
    assert!(matches!(&e, SchemaError::BadGenerator { secret, .. } if secret == "K"));
    assert!(e.to_string().contains("unknown variant `password`"), "{e}");

    let e = parse_err(&schema_with(
        "K",
        json!({"type": "string", "x-parity-generate": {"kind": "alphanumeric", "length": 8, "lenght": 9}}),
    ));
    assert!(e.to_string().contains("unknown field `lenght`"), "{e}");
}

#[test]
fn rejects_generator_parameters_out_of_bounds() {
    let e = parse_err(&schema_with(
        "KEY",
        json!({"type": "string", "x-parity-generate": {"kind": "randomBytes", "bytes": 0}}),
    ));
    assert_eq!(
        e.to_string(),
        "secret \"KEY\": rule x-parity-generate: randomBytes: \"bytes\" must be 1..=4096 (got 0)"
    );
    let e = parse_err(&schema_with(
        "KEY",
        json!({"type": "string", "x-parity-generate": {"kind": "randomBytes", "bytes": 16, "encoding": "base32"}}),
    ));
    assert!(e.to_string().contains("base32"), "{e}");
}

#[test]
fn rejects_unknown_template_placeholders() {
    let e = parse_err(&schema_with(
        "DB_URL",
        json!({"type": "string", "x-parity-generate": {"kind": "endpointUrl", "endpoint": "dynamodb", "template": "{proto}://{host}"}}),
    ));
    assert!(matches!(&e, SchemaError::BadGenerator { secret, .. } if secret == "DB_URL"));
    assert!(e.to_string().contains("{proto}"), "{e}");
}

#[test]
fn rejects_names_that_cannot_be_secret_keys() {
    let e = parse_err(&schema_with(
        "db password",
        json!({"type": "string", "x-parity-generate": alnum(8)}),
    ));
    assert!(matches!(&e, SchemaError::BadName { secret, .. } if secret == "db password"));
    assert!(e.to_string().contains("' '"), "{e}");
}

#[test]
fn rejects_generators_that_cannot_meet_the_rules() {
    // Length conflict.
    let e = parse_err(&schema_with(
        "TOKEN",
        json!({"type": "string", "maxLength": 32, "x-parity-generate": alnum(40)}),
    ));
    match &e {
        SchemaError::Unsatisfiable {
            secret, kind, rule, ..
        } => {
            assert_eq!(
                (secret.as_str(), kind.as_str(), rule.as_str()),
                ("TOKEN", "alphanumeric", "maxLength")
            );
        }
        other => panic!("{other:?}"),
    }
    // Alphabet conflict: hex output never matches upper-case only.
    let e = parse_err(&schema_with(
        "HEXKEY",
        json!({"type": "string", "pattern": "^[A-Z]+$", "x-parity-generate": {"kind": "randomBytes", "bytes": 8, "encoding": "hex"}}),
    ));
    assert!(
        matches!(&e, SchemaError::Unsatisfiable { rule, .. } if rule == "pattern"),
        "{e:?}"
    );
    // A fixed value outside the enum.
    let e = parse_err(&schema_with(
        "REGION",
        json!({"type": "string", "enum": ["eu-west-1"], "x-parity-generate": {"kind": "fixed", "value": "us-east-1"}}),
    ));
    assert!(
        matches!(&e, SchemaError::Unsatisfiable { rule, .. } if rule == "enum"),
        "{e:?}"
    );
    // A uuid generator under a format it does not meet.
    let e = parse_err(&schema_with(
        "ID",
        json!({"type": "string", "format": "email", "x-parity-generate": {"kind": "uuid"}}),
    ));
    assert!(
        matches!(&e, SchemaError::Unsatisfiable { rule, .. } if rule == "format"),
        "{e:?}"
    );
}

#[test]
fn patterns_that_need_a_digit_are_met_by_retrying() {
    let v = schema_with(
        "PIN_LIKE",
        json!({"type": "string", "pattern": "^(?=.*[0-9])[A-Za-z0-9]{6}$", "x-parity-generate": alnum(6)}),
    );
    parse(&v).unwrap();
}

#[test]
fn rejects_required_names_that_are_not_declared() {
    let mut v = schema_with(
        "A",
        json!({"type": "string", "x-parity-generate": alnum(8)}),
    );
    v["required"] = json!(["A", "B"]);
    assert_eq!(
        parse_err(&v),
        SchemaError::RequiredUndeclared { secret: "B".into() }
    );
}

#[test]
fn refuses_remote_references() {
    let v = schema_with(
        "A",
        json!({"type": "string", "$ref": "https://example.com/secret.json", "x-parity-generate": alnum(8)}),
    );
    let e = parse_err(&v);
    assert!(
        matches!(&e, SchemaError::Compile { secret, .. } if secret == "A"),
        "{e:?}"
    );
}

#[test]
fn local_defs_are_resolved_per_secret() {
    let v = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"token": {"type": "string", "minLength": 16, "pattern": "^[A-Za-z0-9]+$"}},
        "properties": {
            "A": {"type": "string", "$ref": "#/$defs/token", "x-parity-generate": alnum(16)},
        },
    });
    let s = parse(&v).unwrap();
    let errs = s.get("A").unwrap().validate(b"short").unwrap_err();
    assert_eq!(errs[0].rule, "minLength");
}

// ---- values ----

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

fn good_data() -> BTreeMap<String, Vec<u8>> {
    [
        (
            "SESSION_SIGNING_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        ("WEBHOOK_SECRET", &"ab".repeat(32)),
        ("ADMIN_PASSWORD", "abcdefghijklmnopqrstuvw1"),
        ("INSTANCE_ID", "6f1c2a7e-3b9d-4c1e-8f2a-1b2c3d4e5f60"),
        ("DYNAMODB_ENDPOINT", "http://demo-dynamodb:8000"),
        ("KMS_ENDPOINT", "http://demo-kms:8080"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .collect()
}

fn assert_no_canary(errors: &[ValueError]) {
    for e in errors {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(CANARY), "value leaked: {shown}");
    }
}

#[test]
fn good_data_validates() {
    assert_eq!(example().validate_data(&good_data()), vec![]);
}

#[test]
fn bad_values_name_the_secret_and_rule_but_not_the_value() {
    let schema = example();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ADMIN_PASSWORD", CANARY.as_bytes().to_vec(), "pattern"),
        ("ADMIN_PASSWORD", b"CANARY1".to_vec(), "minLength"),
        ("WEBHOOK_SECRET", CANARY.as_bytes().to_vec(), "pattern"),
        ("INSTANCE_ID", CANARY.as_bytes().to_vec(), "format"),
        ("AWS_REGION", CANARY.as_bytes().to_vec(), "enum"),
        (
            "SESSION_SIGNING_KEY",
            format!("{CANARY}-{}", "x".repeat(40)).into_bytes(),
            "maxLength",
        ),
        ("DYNAMODB_ENDPOINT", CANARY.as_bytes().to_vec(), "format"),
        ("KMS_ENDPOINT", vec![0xff, 0xfe, b'C'], "utf8"),
    ];
    for (secret, value, rule) in cases {
        let mut data = good_data();
        data.insert(secret.into(), value);
        let errors = schema.validate_data(&data);
        assert!(
            errors.iter().any(|e| e.secret == secret && e.rule == rule),
            "{secret}: expected rule {rule}, got {errors:?}"
        );
        assert!(errors.iter().all(|e| e.secret == secret), "{errors:?}");
        assert_no_canary(&errors);
        // The per-secret check agrees with the whole-Secret check.
        let per = schema
            .get(secret)
            .unwrap()
            .validate(&data[secret])
            .unwrap_err();
        assert!(per.iter().any(|e| e.rule == rule), "{per:?}");
        assert_no_canary(&per);
    }
}

#[test]
fn missing_and_undeclared_keys_are_named() {
    let schema = example();
    let mut data = good_data();
    data.remove("WEBHOOK_SECRET");
    data.insert("LEFTOVER".into(), CANARY.as_bytes().to_vec());
    let errors = schema.validate_data(&data);
    assert_eq!(
        errors,
        vec![
            ValueError {
                secret: "LEFTOVER".into(),
                rule: "additionalProperties".into(),
                reason: "not declared in the schema".into()
            },
            ValueError {
                secret: "WEBHOOK_SECRET".into(),
                rule: "required".into(),
                reason: "missing from the Secret".into()
            },
        ]
    );
}
