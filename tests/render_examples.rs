//! `parity render` as a process: the examples render and validate, invalid input fails with
//! the field named on stderr.

use std::io::Write;
use std::process::{Command, Output};

use parity_operator::api::{ParityEnvironment, validate};

/// The mirror source each example names: a live Staging environment for the `-from-staging`
/// variant, the committed topology that the ConfigMap is made from for the others.
fn mirror_source(path: &str) -> &'static str {
    if path.ends_with("from-staging.yaml") {
        "examples/staging.yaml"
    } else {
        "examples/topology.yaml"
    }
}

fn render(path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["render", "-f", path, "--image", "example.com/parity:test"])
        .args(["--mirror-source", mirror_source(path)])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run parity render")
}

fn docs(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn names(docs: &[serde_json::Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_example_parses_and_validates() {
    for file in [
        "examples/local.yaml",
        "examples/local-from-staging.yaml",
        "examples/ci.yaml",
        "examples/staging.yaml",
    ] {
        let text =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut found = 0;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.get("kind").and_then(|k| k.as_str()) != Some("ParityEnvironment") {
                continue;
            }
            let mut env: ParityEnvironment = serde_yaml::from_value(v).unwrap();
            env.metadata.namespace = Some("default".into());
            validate(&env).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            found += 1;
        }
        assert_eq!(found, 1, "{file}");
    }
}

#[test]
fn local_example_renders_every_component() {
    let d = docs(&render("examples/local.yaml"));
    let n = names(&d);
    for want in [
        "Secret/dev-keyring",
        "ConfigMap/dev-topology",
        "Deployment/dev-kms",
        "Deployment/dev-dynamodb",
        "Deployment/dev-dashboard",
    ] {
        assert!(n.contains(&want.to_string()), "missing {want} in {n:?}");
    }
    assert!(n.iter().any(|x| x.starts_with("Job/dev-bootstrap-")));
    // Engine Moto: in memory (no claim), moto_server plus the restore sidecar.
    assert!(
        !n.iter().any(|x| x.starts_with("PersistentVolumeClaim/")),
        "{n:?}"
    );
    let ddb = d
        .iter()
        .find(|x| x["kind"] == "Deployment" && x["metadata"]["name"] == "dev-dynamodb")
        .unwrap();
    let containers = &ddb["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["command"][0], "/usr/local/bin/moto_server");
    assert_eq!(containers[1]["name"], "restore");
    assert_eq!(containers[1]["args"][0], "bootstrap");
    for doc in &d {
        assert_eq!(doc["metadata"]["namespace"], "default");
        if doc["metadata"]["name"] == "dev-keyring" {
            // Never garbage collected: the finalizer decides its fate.
            assert!(doc["metadata"].get("ownerReferences").is_none());
            continue;
        }
        assert_eq!(
            doc["metadata"]["ownerReferences"][0]["kind"],
            "ParityEnvironment"
        );
    }
    // No key material is rendered: the keyring's data is the controller's to create once.
    let keyring = d.iter().find(|x| x["kind"] == "Secret").unwrap();
    assert!(keyring.get("data").is_none() && keyring.get("stringData").is_none());
}

#[test]
fn ci_example_isolates_the_dashboard() {
    let n = names(&docs(&render("examples/ci.yaml")));
    assert!(
        n.contains(&"NetworkPolicy/ci-kms-ingress".to_string()),
        "{n:?}"
    );
    assert!(
        n.contains(&"NetworkPolicy/ci-dashboard-egress".to_string()),
        "{n:?}"
    );
    // The seed Secret in the file is the user's, not something the operator makes.
    assert!(!n.contains(&"Secret/ci-key-seed".to_string()));
}

#[test]
fn staging_example_runs_only_the_dashboard() {
    let n = names(&docs(&render("examples/staging.yaml")));
    let workloads: Vec<_> = n
        .iter()
        .filter(|x| x.starts_with("Deployment/") || x.starts_with("Job/"))
        .collect();
    assert_eq!(workloads, vec!["Deployment/staging-dashboard"]);
}

#[test]
fn invalid_environment_fails_naming_the_field() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\nmetadata: {{name: bad}}\nspec:\n  tier: CI\n  dashboard: {{decryption: Server}}\n  keys: {{provider: Kms}}\n"
    )
    .unwrap();
    let out = render(f.path().to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.dashboard.decryption"), "{err}");
    assert!(err.contains("spec.keys.kms.keyId"), "{err}");
}

#[test]
fn a_mirror_renders_its_sources_tables_and_needs_the_source() {
    let staging = parity_operator::dynamo::topology::Topology::from_yaml_str(
        &std::fs::read_to_string(format!(
            "{}/examples/topology.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("topology.yaml"),
    )
    .expect("staging topology");
    let names = |t: &parity_operator::dynamo::topology::Topology| {
        t.tables.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
    };
    // A committed topology (configMapRef) and a live Staging environment (from) give the same.
    for (example, field) in [
        ("examples/local.yaml", "spec.mirror.configMapRef"),
        ("examples/local-from-staging.yaml", "spec.mirror.from"),
    ] {
        // With the source: staging's tables, indexes and TTL, with the local override.
        let d = docs(&render(example));
        let cm = d
            .iter()
            .find(|x| x["kind"] == "ConfigMap" && x["metadata"]["name"] == "dev-topology")
            .expect("topology ConfigMap");
        let t = parity_operator::dynamo::topology::Topology::from_yaml_str(
            cm["data"]["topology.yaml"].as_str().expect("topology.yaml"),
        )
        .expect("topology");
        assert_eq!(names(&t), names(&staging), "{example}");
        let customers = t.table("customers").expect("customers");
        assert_eq!(
            customers.billing_mode,
            parity_operator::dynamo::topology::BillingMode::PayPerRequest
        );
        assert_eq!(customers.global_secondary_indexes[0].name, "byEmail");
        assert_eq!(
            t.table("orders").and_then(|o| o.ttl_attribute.as_deref()),
            Some("expiresAt")
        );
        // The aliases staging's code uses answer locally too.
        assert!(t.kms_key_aliases.contains(&"alias/orders".to_string()));

        // Without it, nothing is rendered and the error says what to do.
        let out = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["render", "-f", example])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run parity render");
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(field) && err.contains("--mirror-source"),
            "{example}: {err}"
        );
    }
}

#[test]
fn a_mirror_source_file_that_is_neither_is_an_error_naming_it() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "tables: [{{name: orders}}]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["render", "-f", "examples/local.yaml", "--mirror-source"])
        .arg(f.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run parity render");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&f.path().display().to_string())
            && err.contains("tables[0]: missing field `partitionKey`"),
        "{err}"
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let out = render("does/not/exist.yaml");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.yaml"));
}
