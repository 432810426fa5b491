//! End to end on the real node: what a new user does. `helm install` the chart (the locally
//! built image), read the NOTES it prints, and run exactly the commands of its "Create an
//! environment" block from the repository's root in a fresh namespace. On a fresh cluster
//! that must reach Ready, with the seed rows in DynamoDB (what the dashboard shows).
//! Run with `make e2e` (ignored on kwok's fake nodes).

mod support;

use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use kube::api::DeleteParams;
use parity_operator::api::ParityEnvironment;
use support::cmd::run;
use support::e2e::*;
use support::kube_env::TestNamespace;
use support::wait::until;

/// The indented command lines of the NOTES paragraph starting with `heading`, up to the
/// blank line that ends them.
fn commands_after(notes: &str, heading: &str) -> Vec<String> {
    let mut lines = notes
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip_while(|l| !l.starts_with("  "));
    let mut out = Vec::new();
    for l in lines.by_ref() {
        if l.trim().is_empty() || !l.starts_with("  ") {
            break;
        }
        out.push(l.trim().to_string());
    }
    out
}

#[test]
fn the_create_an_environment_block_is_found_and_ends_at_the_blank_line() {
    let notes = "intro\n  kubectl apply -f x\n\nCreate an environment and wait,\nwrapped text:\n  kubectl a\n  kubectl b\n\nConnect:\n  kubectl c\n";
    assert_eq!(
        commands_after(notes, "Create an environment"),
        ["kubectl a", "kubectl b"]
    );
}

/// A kubeconfig like the testenv's whose current context defaults to `namespace`: the NOTES
/// commands name no namespace, as a user's would not.
fn kubeconfig_in(namespace: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG (source .testenv/env)");
    let path = dir.join("kubeconfig");
    std::fs::copy(&admin, &path).expect("copy kubeconfig");
    run(
        Command::new("kubectl").args([
            "config",
            "set-context",
            "--current",
            &format!("--namespace={namespace}"),
            "--kubeconfig",
            path.to_str().expect("utf-8 path"),
        ]),
        None,
    );
    path
}

async fn scan(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>, String> {
    let out = ddb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("scan {table}: {e:?}"))?;
    Ok(out.items.unwrap_or_default())
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_the_notes_steps_reach_ready_with_seeded_rows_on_a_fresh_cluster() {
    require_real_node();
    let release = TestNamespace::new("e2e-notes").await;
    let (_uninstall, installed) = helm_install(&release, &["--wait", "--timeout", "300s"]);
    // Created after the release: dropped (deleted) first, while the operator still runs.
    let work = TestNamespace::new("e2e-notes-work").await;
    let notes = installed
        .split_once("NOTES:")
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| panic!("helm install printed no NOTES:\n{installed}"));
    let steps = commands_after(&notes, "Create an environment");
    assert!(
        steps.len() >= 5 && steps.iter().all(|s| s.starts_with("kubectl ")),
        "the NOTES' steps: {steps:?}\n{notes}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_in(&work.name, dir.path());
    for step in &steps {
        let out = Command::new("bash")
            .args(["-c", step])
            .env("KUBECONFIG", &kubeconfig)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run bash");
        if !out.status.success() {
            let status = Command::new(env!("CARGO_BIN_EXE_parity"))
                .args(["status", "dev", "-n", &work.name])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!(
                "NOTES step `{step}` failed: {}{}\nparity status:\n{status}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                all_logs(&release).await
            );
        }
    }

    let envs = work.api::<ParityEnvironment>();
    let dev = envs.get("dev").await.expect("penv dev");
    let ready = dev
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| format!("{:?}", c.status));
    assert_eq!(ready.as_deref(), Some("True"), "{:?}", dev.status);

    // The seeded rows, as the dashboard reads them: the fixtures in examples/fixtures/.
    let ddb = parity_operator::dynamo::connect::client(
        &service_url(&work, "dev-dynamodb").await,
        &parity_operator::dynamo::connect::AwsArgs::default(),
        3,
    );
    let (orders, customers) = until("the seed rows", E2E_WAIT, || async {
        let orders = scan(&ddb, "orders").await?;
        let customers = scan(&ddb, "customers").await?;
        if orders.len() == 3 && customers.len() == 2 {
            Ok((orders, customers))
        } else {
            Err(format!(
                "{} orders, {} customers",
                orders.len(),
                customers.len()
            ))
        }
    })
    .await;
    assert!(
        orders
            .iter()
            .all(|o| o.contains_key("pk") && o.contains_key("sk")),
        "{orders:?}"
    );
    // `name` is stored encrypted (customers.fixture.yaml): never the plaintext.
    assert!(
        customers
            .iter()
            .all(|c| matches!(c.get("name"), Some(AttributeValue::B(_)))),
        "{customers:?}"
    );

    // Deleted while the operator runs, so the keyring finalizer is released and the
    // namespace can go.
    envs.delete("dev", &DeleteParams::default())
        .await
        .expect("delete dev");
    until("dev deleted", Duration::from_secs(120), || async {
        match envs.get_opt("dev").await {
            Ok(None) => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|e| e.map(|e| e.metadata.finalizers))
            )),
        }
    })
    .await;
}
