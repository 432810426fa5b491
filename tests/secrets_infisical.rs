//! The InfisicalSecret builder (matches the test CRD fixture and the Infisical operator's field
//! names) and validation of the Secret that Infisical syncs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use parity_operator::secrets::{
    InfisicalProject, InfisicalSecret, InfisicalSource, SecretsSchema, build_infisical_secret,
    managed_secret_name, validate_synced_secret,
};
use serde_json::{Value, json};

fn source() -> InfisicalSource {
    InfisicalSource {
        host_api: Some("https://app.infisical.com/api".into()),
        project: InfisicalProject::Slug("shop-backend".into()),
        environment: "staging".into(),
        path: "/api".into(),
        credentials_secret: "infisical-universal-auth".into(),
        resync_interval_seconds: None,
    }
}

fn fixture() -> CustomResourceDefinition {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/infisical-crd.yaml"
    ))
    .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn builds_the_object_the_infisical_operator_watches() {
    let obj = build_infisical_secret("shop-staging", "team-a", &source()).unwrap();
    let v = serde_json::to_value(&obj).unwrap();
    assert_eq!(v["apiVersion"], "secrets.infisical.com/v1alpha1");
    assert_eq!(v["kind"], "InfisicalSecret");
    assert_eq!(v["metadata"]["name"], "shop-staging-secrets");
    assert_eq!(v["metadata"]["namespace"], "team-a");
    assert_eq!(
        v["spec"],
        json!({
            "hostAPI": "https://app.infisical.com/api",
            "resyncInterval": 60,
            "authentication": {"universalAuth": {
                "credentialsRef": {"secretName": "infisical-universal-auth", "secretNamespace": "team-a"},
                "secretsScope": {"projectSlug": "shop-backend", "envSlug": "staging",
                                 "secretsPath": "/api", "recursive": false},
            }},
            "managedSecretReference": {"secretName": "shop-staging-secrets", "secretNamespace": "team-a",
                                       "creationPolicy": "Owner", "secretType": "Opaque"},
        })
    );
    assert_eq!(managed_secret_name("shop-staging"), "shop-staging-secrets");

    let mut by_id = source();
    by_id.project = InfisicalProject::Id("6f1c2a7e-3b9d-4c1e-8f2a-1b2c3d4e5f60".into());
    let v = serde_json::to_value(build_infisical_secret("e", "n", &by_id).unwrap()).unwrap();
    let scope = &v["spec"]["authentication"]["universalAuth"]["secretsScope"];
    assert_eq!(scope["projectId"], "6f1c2a7e-3b9d-4c1e-8f2a-1b2c3d4e5f60");
    assert!(scope.get("projectSlug").is_none());
}

#[test]
fn maps_the_parity_environment_spec() {
    let spec: parity_operator::api::InfisicalSpec =
        serde_json::from_value(json!({"projectSlug": "shop", "envSlug": "staging"})).unwrap();
    let source = InfisicalSource::from_spec("shop-staging", &spec);
    assert_eq!(source.project, InfisicalProject::Slug("shop".into()));
    assert_eq!(source.environment, "staging");
    assert_eq!(source.path, "/");
    assert_eq!(source.credentials_secret, "shop-staging-infisical-auth");
    let obj = build_infisical_secret("shop-staging", "ns", &source).unwrap();
    assert_eq!(
        obj.spec
            .authentication
            .universal_auth
            .credentials_ref
            .secret_name,
        "shop-staging-infisical-auth"
    );
}

#[test]
fn rejects_spec_values_naming_the_field() {
    type Mutation = fn(&mut InfisicalSource);
    let cases: Vec<(Mutation, &str)> = vec![
        (|s| s.path = "api".into(), "secrets.infisical.path"),
        (
            |s| s.environment = String::new(),
            "secrets.infisical.environment",
        ),
        (
            |s| s.project = InfisicalProject::Id(String::new()),
            "secrets.infisical.project",
        ),
        (
            |s| s.host_api = Some("ftp://x".into()),
            "secrets.infisical.hostAPI",
        ),
        (
            |s| s.resync_interval_seconds = Some(0),
            "secrets.infisical.resyncInterval",
        ),
        (
            |s| s.credentials_secret = String::new(),
            "secrets.infisical.credentialsSecret",
        ),
    ];
    for (mutate, field) in cases {
        let mut s = source();
        mutate(&mut s);
        let e = build_infisical_secret("e", "n", &s).unwrap_err();
        assert!(e.to_string().starts_with(field), "{e}");
    }
}

#[test]
fn fixture_crd_names_the_same_group_version_kind_and_plural() {
    let crd = fixture();
    assert_eq!(crd.spec.group, InfisicalSecret::group(&()));
    assert_eq!(crd.spec.names.kind, InfisicalSecret::kind(&()));
    assert_eq!(crd.spec.names.plural, InfisicalSecret::plural(&()));
    assert_eq!(crd.spec.versions[0].name, InfisicalSecret::version(&()));
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some(format!("{}.{}", crd.spec.names.plural, crd.spec.group).as_str())
    );
}

/// A structural-schema check like the apiserver's pruning and validation: types, required
/// fields, and no field the schema does not declare (it would be pruned silently).
fn check(value: &Value, schema: &Value, at: &str, problems: &mut Vec<String>) {
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match (ty, value) {
        ("object", Value::Object(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("array", Value::Array(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64(),
        _ => false,
    };
    if !ok {
        problems.push(format!("{at}: expected {ty}, got {value}"));
        return;
    }
    if let Value::Object(map) = value {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !map.contains_key(req.as_str().unwrap()) {
                problems.push(format!("{at}: missing required {req}"));
            }
        }
        let Some(props) = schema["properties"].as_object() else {
            return;
        };
        for (k, v) in map {
            match props.get(k) {
                Some(sub) => check(v, sub, &format!("{at}.{k}"), problems),
                None => problems.push(format!("{at}.{k}: not in the CRD (would be pruned)")),
            }
        }
    }
}

#[test]
fn built_object_fits_the_fixture_crd() {
    let crd = fixture();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    for project in [
        InfisicalProject::Slug("shop".into()),
        InfisicalProject::Id("abc".into()),
    ] {
        let mut s = source();
        s.project = project;
        let v = serde_json::to_value(build_infisical_secret("e", "n", &s).unwrap()).unwrap();
        let mut problems = Vec::new();
        check(&v, &schema, "", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    // The checker itself catches a stray field.
    let mut v = serde_json::to_value(build_infisical_secret("e", "n", &source()).unwrap()).unwrap();
    v["spec"]["secretsPath"] = json!("/");
    let mut problems = Vec::new();
    check(&v, &schema, "", &mut problems);
    assert_eq!(
        problems,
        vec![".spec.secretsPath: not in the CRD (would be pruned)"]
    );
}

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

fn synced(pairs: &[(&str, &str)]) -> Secret {
    Secret {
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

#[test]
fn synced_secret_is_validated_against_the_schema_without_values() {
    let schema = example();
    let good = [
        (
            "SESSION_SIGNING_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        (
            "WEBHOOK_SECRET",
            "abababababababababababababababababababababababababababababababab",
        ),
        ("ADMIN_PASSWORD", "abcdefghijklmnopqrstuvw1"),
        ("INSTANCE_ID", "6f1c2a7e-3b9d-4c1e-8f2a-1b2c3d4e5f60"),
        (
            "DYNAMODB_ENDPOINT",
            "https://dynamodb.us-east-1.amazonaws.com",
        ),
        ("KMS_ENDPOINT", "https://kms.us-east-1.amazonaws.com"),
        ("AWS_REGION", "us-east-1"),
    ];
    assert_eq!(validate_synced_secret(&schema, &synced(&good)), vec![]);

    let mut bad = good.to_vec();
    bad[2] = ("ADMIN_PASSWORD", "CANARY-synced-value-without-digits");
    bad.remove(3);
    let errors = validate_synced_secret(&schema, &synced(&bad));
    let named: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.secret.as_str(), e.rule.as_str()))
        .collect();
    assert_eq!(
        named,
        vec![("ADMIN_PASSWORD", "pattern"), ("INSTANCE_ID", "required")]
    );
    for e in &errors {
        assert!(!format!("{e} {e:?}").contains("CANARY"), "{e}");
    }
}
