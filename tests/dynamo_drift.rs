//! `parity capture` and `parity diff` as processes against moto server: a captured topology
//! rebuilt elsewhere has no drift, and a changed GSI is reported exactly.

// support/wait.rs (shared) trips unused_assignments; not used here.
#[path = "support/dynamo_env.rs"]
mod dynamo_env;
#[allow(unused_assignments)]
mod support;

use dynamo_env::{parity, repo};
use support::moto::Moto;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn capture_then_bootstrap_elsewhere_then_diff_reports_no_drift() {
    let staging = Moto::start();
    let local = Moto::start();
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &staging.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");

    // Onboarding: capture the "staging" account...
    let cap = parity(&["capture", "--endpoint", &staging.endpoint]);
    assert_eq!(cap.code, 0, "{cap:?}");
    assert!(cap.stdout.starts_with("# Captured from "), "{cap:?}");
    assert!(cap.stdout.contains("ttlAttribute: expiresAt"), "{cap:?}");
    assert!(
        cap.stdout.contains("streamViewType: NEW_AND_OLD_IMAGES"),
        "{cap:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let captured = write(&dir, "staging.yaml", &cap.stdout);

    // ...rebuild it in an empty endpoint...
    let run = parity(&["bootstrap", "--endpoint", &local.endpoint, "-f", &captured]);
    assert_eq!(run.code, 0, "{run:?}");

    // ...and both the live tables and a second capture match it.
    let run = parity(&[
        "diff",
        "-f",
        &captured,
        "--against-endpoint",
        &local.endpoint,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "no differences (2 table(s) compared)\n");

    let cap2 = parity(&["capture", "--endpoint", &local.endpoint]);
    assert_eq!(cap2.code, 0, "{cap2:?}");
    let recaptured = write(&dir, "local.yaml", &cap2.stdout);
    let run = parity(&[
        "diff",
        "-f",
        &recaptured,
        "--against",
        &captured,
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc, serde_json::json!({"equal": true, "drifts": []}));

    // --tables limits the capture.
    let cap3 = parity(&[
        "capture",
        "--endpoint",
        &local.endpoint,
        "--tables",
        "orders",
    ]);
    assert_eq!(cap3.code, 0, "{cap3:?}");
    assert!(cap3.stdout.contains("name: orders") && !cap3.stdout.contains("name: customers"));
    let missing = parity(&["capture", "--endpoint", &local.endpoint, "--tables", "nope"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("error: table nope does not exist on the endpoint"),
        "{missing:?}"
    );
}

#[test]
fn a_changed_gsi_is_reported_exactly_and_fails_the_gate() {
    let moto = Moto::start();
    let topology = repo("examples/topology.yaml");
    let run = parity(&["bootstrap", "--endpoint", &moto.endpoint, "-f", &topology]);
    assert_eq!(run.code, 0, "{run:?}");

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&topology).unwrap();
    let changed_text = text.replace(
        "projection: { type: INCLUDE, nonKeyAttributes: [total] }",
        "projection: { type: INCLUDE, nonKeyAttributes: [total, currency] }",
    );
    assert_ne!(text, changed_text);
    let changed = write(&dir, "local.yaml", &changed_text);

    let expected_drift = serde_json::json!({
        "equal": false,
        "drifts": [{
            "path": "tables[orders].globalSecondaryIndexes[byStatus].projection.nonKeyAttributes",
            "expected": "[currency, total]",
            "actual": "[total]",
        }]
    });
    // File against the live endpoint...
    let run = parity(&[
        "diff",
        "-f",
        &changed,
        "--against-endpoint",
        &moto.endpoint,
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc, expected_drift);

    // ...and file against file (local.yaml checked against the staging reference).
    let run = parity(&["diff", "-f", &topology, "--against", &changed]);
    assert_eq!(run.code, 1, "{run:?}");
    let path = "tables[orders].globalSecondaryIndexes[byStatus].projection.nonKeyAttributes";
    assert_eq!(
        run.stdout,
        format!(
            "{:w$}  EXPECTED           ACTUAL\n{path}  [currency, total]  [total]\n1 difference(s)\n",
            "PATH",
            w = path.len()
        )
    );
}

#[test]
fn diff_applies_mirroring_overrides_to_the_reference_and_exits_2_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let staging = repo("examples/topology.yaml");
    let text = std::fs::read_to_string(&staging).unwrap();
    let t = parity_operator::dynamo::topology::Topology::from_yaml_str(&text).unwrap();
    let local = parity_operator::dynamo::resolve(
        &t,
        &parity_operator::dynamo::Overrides {
            billing_mode: Some(parity_operator::dynamo::topology::BillingMode::PayPerRequest),
            provisioned_throughput: None,
            table_name_prefix: Some("dev-".into()),
        },
    );
    let local = write(&dir, "local.yaml", &local.to_yaml());

    let run = parity(&["diff", "-f", &local, "--against", &staging]);
    assert_eq!(run.code, 1, "{run:?}");
    // Without the overrides every table differs by name.
    for line in [
        ("tables[orders]", "present   (absent)"),
        ("tables[dev-orders]", "(absent)  present"),
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(line.0) && l.ends_with(line.1)),
            "{run:?}"
        );
    }

    let run = parity(&[
        "diff",
        "-f",
        &local,
        "--against",
        &staging,
        "--table-prefix",
        "dev-",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    assert_eq!(run.code, 0, "{run:?}");

    // A ParityEnvironment document is read through its spec.topology.
    let env = format!(
        "apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\nmetadata:\n  name: staging\nspec:\n  tier: Staging\n  topology:\n{}",
        text.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let env = write(&dir, "staging-env.yaml", &env);
    let run = parity(&["diff", "-f", &staging, "--against", &env]);
    assert_eq!(run.code, 0, "{run:?}");

    let bad = write(&dir, "bad.yaml", "tables:\n  - name: x\n");
    let run = parity(&["diff", "-f", &bad, "--against", &staging]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("tables[0]: missing field `partitionKey`"),
        "{run:?}"
    );
    let run = parity(&["diff", "-f", "/nonexistent.yaml", "--against", &staging]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test]
async fn capture_records_kms_aliases_and_secret_names_so_the_capture_is_complete() {
    let moto = Moto::start();
    let kms = parity_operator::crypto::KmsKeyProvider::client_for(
        &moto.endpoint,
        "us-east-1",
        "test",
        "test",
    );
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    for alias in ["alias/orders", "alias/customers-pii"] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .unwrap();
    }
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let cap = parity(&[
        "capture",
        "--endpoint",
        &moto.endpoint,
        "--kms-endpoint",
        &moto.endpoint,
        "--secret-names",
        "STRIPE_API_KEY,SENDGRID_API_KEY",
    ]);
    assert_eq!(cap.code, 0, "{cap:?}");
    assert!(!cap.stdout.contains("alias/aws/"), "{cap:?}");
    let dir = tempfile::tempdir().unwrap();
    let captured = write(&dir, "captured.yaml", &cap.stdout);
    // The whole example (tables, aliases, secret names) comes back.
    let run = parity(&[
        "diff",
        "-f",
        &captured,
        "--against",
        &repo("examples/topology.yaml"),
    ]);
    assert_eq!(run.code, 0, "{run:?}\n{}", cap.stdout);
}
