use kube::CustomResourceExt;
use serde_json::Value;

use super::*;

fn env(spec: &str) -> ParityEnvironment {
    let yaml = format!(
        "apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\nmetadata: {{name: e1, namespace: ns}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("test yaml")
}

fn fields(spec: &str) -> Vec<String> {
    match validate(&env(spec)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.path).collect(),
    }
}

#[test]
fn defaults_resolve_per_tier() {
    let v = validate(&env("  tier: Local\n")).unwrap();
    assert_eq!(v.spec.parity_level, 1);
    assert_eq!(v.persistence, PersistenceMode::Volume);
    assert_eq!(v.spec.dashboard.decryption, Decryption::Disabled);
    assert_eq!(v.spec.keys.rotation.retain_versions, 3);
    assert_eq!(v.spec.dynamodb.image(), DEFAULT_DYNAMODB_IMAGE);
    let v = validate(&env("  tier: CI\n  ttl: 2h\n")).unwrap();
    assert_eq!(v.persistence, PersistenceMode::InMemory);
    assert_eq!(v.ttl, Some(std::time::Duration::from_secs(7200)));
}

#[test]
fn long_names_are_rejected() {
    let mut e = env("  tier: Local\n");
    e.metadata.name = Some("a".repeat(41));
    let errs = validate(&e).unwrap_err();
    assert_eq!(errs[0].path, "metadata.name");
}

#[test]
fn expires_at_is_creation_plus_ttl() {
    let mut e = env("  tier: CI\n  ttl: 90m\n");
    e.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:00Z".parse().unwrap(),
    ));
    let v = validate(&e).unwrap();
    assert_eq!(
        v.expires_at().unwrap().0.to_string(),
        "2026-01-01T01:30:00Z"
    );
}

#[test]
fn mirror_source_must_be_staging() {
    let v = validate(&env("  tier: CI\n  mirror: {from: {name: stg}}\n")).unwrap();
    let err = check_mirror_source(&v, None).unwrap_err();
    assert_eq!(err.path, "spec.mirror.from");
    let local = env("  tier: Local\n");
    assert!(check_mirror_source(&v, Some(&local)).is_err());
    let stg = env("  tier: Staging\n  parityLevel: 0\n  keys: {provider: Kms, kms: {keyId: k}}\n");
    assert!(check_mirror_source(&v, Some(&stg)).is_ok());
}

#[test]
fn a_source_in_another_namespace_must_opt_in_and_absence_is_not_told_apart() {
    let v = validate(&env(
        "  tier: CI\n  mirror: {from: {name: stg, namespace: other}}\n",
    ))
    .unwrap();
    let staging = |annotation: Option<&str>| {
        let mut s =
            env("  tier: Staging\n  parityLevel: 0\n  keys: {provider: Kms, kms: {keyId: k}}\n");
        s.metadata.namespace = Some("other".into());
        if let Some(a) = annotation {
            s.metadata.annotations = Some(
                [(
                    ANNOTATION_MIRROR_ALLOWED_NAMESPACES.to_string(),
                    a.to_string(),
                )]
                .into(),
            );
        }
        s
    };
    let missing = check_mirror_source(&v, None).unwrap_err();
    assert_eq!(missing.path, "spec.mirror.from");
    assert!(
        missing
            .message
            .contains(ANNOTATION_MIRROR_ALLOWED_NAMESPACES),
        "{missing:?}"
    );
    for refused in [None, Some("ci-1, dev"), Some("")] {
        assert_eq!(
            check_mirror_source(&v, Some(&staging(refused))).unwrap_err(),
            missing
        );
    }
    // A Local source that did not opt in reads the same: its tier is not told either.
    let mut local = env("  tier: Local\n");
    local.metadata.namespace = Some("other".into());
    assert_eq!(check_mirror_source(&v, Some(&local)).unwrap_err(), missing);
    for allowed in ["ns", "dev, ns", "*"] {
        assert!(
            check_mirror_source(&v, Some(&staging(Some(allowed)))).is_ok(),
            "{allowed}"
        );
    }
}

/// Walks the CRD's spec schema: every string, list and map must be bounded or the API
/// server's CEL cost estimate explodes.
fn assert_bounded(path: &str, s: &Value) {
    match s.get("type").and_then(Value::as_str) {
        Some("string") if s.get("enum").is_none() && s.get("format").is_none() => {
            assert!(s.get("maxLength").is_some(), "{path} has no maxLength");
        }
        Some("array") => {
            assert!(s.get("maxItems").is_some(), "{path} has no maxItems");
            assert_bounded(&format!("{path}[]"), &s["items"]);
        }
        Some("object") => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    assert_bounded(&format!("{path}.{k}"), v);
                }
            } else {
                assert!(
                    s.get("maxProperties").is_some(),
                    "{path} has no maxProperties"
                );
            }
        }
        _ => {}
    }
}

#[test]
fn crd_bounds_every_string_list_and_map() {
    let crd = serde_json::to_value(ParityEnvironment::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    assert_bounded("spec", &schema["spec"]);
    assert_bounded("status", &schema["status"]);
}

#[test]
fn crd_carries_rules_defaults_and_columns() {
    let yaml = crd_yaml().unwrap();
    for needle in [
        "self == oldSelf",
        "shortNames:\n    - penv",
        "default: Disabled",
        "default: Retain",
        "default: DynamoDBLocal",
        "name: Ready",
        "subresources:\n      status: {}",
        "x-kubernetes-list-type: map",
    ] {
        assert!(yaml.contains(needle), "CRD lacks {needle:?}");
    }
    // YAML 1.1 readers (kubectl) turn these into booleans.
    for word in ["Off", "On", "Yes", "No"] {
        assert!(
            !yaml.contains(&format!(": {word}\n")),
            "unquoted {word} in CRD"
        );
    }
}

#[test]
fn condition_types_round_trip() {
    for t in ConditionType::ALL {
        assert_eq!(ConditionType::parse(t.as_str()), Some(t));
    }
    assert_eq!(ConditionType::DynamoDbReady.as_str(), "DynamoDBReady");
}

#[test]
fn set_condition_keeps_transition_time_when_status_is_unchanged() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let t0 = Time("2026-01-01T00:00:00Z".parse().unwrap());
    let t1 = Time("2026-01-01T00:05:00Z".parse().unwrap());
    let mut s = ParityEnvironmentStatus::default();
    let c = |st| Condition::new(ConditionType::Ready, st, "Reconciled", "ok", Some(1));
    s.set_condition(c(ConditionStatus::True), t0.clone());
    let before = s.clone();
    s.set_condition(c(ConditionStatus::True), t1.clone());
    assert_eq!(s, before);
    s.set_condition(c(ConditionStatus::False), t1.clone());
    assert_eq!(
        s.condition(ConditionType::Ready)
            .unwrap()
            .last_transition_time,
        Some(t1)
    );
}

#[test]
fn crd_yaml_quotes_what_yaml_1_1_reads_as_booleans() {
    let yaml = crate::api::crd_yaml().expect("crd yaml");
    // DynamoDB's number type: kubectl would install a bare N as `false`.
    assert!(yaml.contains("- 'N'"), "the N enum value is not quoted");
    for line in yaml.lines() {
        let value = line
            .rsplit_once(": ")
            .map(|(_, v)| v)
            .or_else(|| line.trim_start().strip_prefix("- "))
            .unwrap_or_default();
        assert!(
            ![
                "y", "Y", "yes", "n", "N", "no", "on", "off", "On", "Off", "Yes", "No"
            ]
            .contains(&value),
            "unquoted YAML 1.1 boolean in the CRD: {line}"
        );
    }
    // And it still reads back (YAML 1.2) as the same CRD.
    let back: serde_json::Value = serde_yaml::from_str(&yaml).expect("parse");
    let want =
        serde_json::to_value(<crate::api::ParityEnvironment as kube::CustomResourceExt>::crd())
            .expect("json");
    assert_eq!(back, want);
}

#[test]
fn adopting_foreign_secrets_takes_the_exact_opt_in_annotation() {
    let with = |value: Option<&str>| {
        let mut e = env("  tier: Local\n");
        if let Some(v) = value {
            e.metadata.annotations =
                Some([(super::ANNOTATION_ADOPT_EXISTING.to_string(), v.to_string())].into());
        }
        validate(&e).expect("valid").adopt_existing_secrets
    };
    assert!(!with(None));
    assert!(!with(Some("yes")));
    assert!(with(Some("true")));
}

#[test]
fn engine_moto_runs_in_memory_and_refuses_a_volume() {
    let v = validate(&env("  tier: Local\n  dynamodb: {engine: Moto}\n")).unwrap();
    assert_eq!(
        v.persistence,
        PersistenceMode::InMemory,
        "Local's Volume default does not apply"
    );
    assert_eq!(v.spec.dynamodb.image(), DEFAULT_MOTO_IMAGE);
    assert_eq!(
        fields("  tier: Local\n  dynamodb: {engine: Moto, persistence: {mode: Volume}}\n"),
        ["spec.dynamodb.persistence.mode"]
    );
    let pinned = validate(&env(
        "  tier: CI\n  dynamodb: {engine: Moto, image: moto:mine}\n",
    ))
    .unwrap();
    assert_eq!(pinned.spec.dynamodb.image(), "moto:mine");
}
