//! The operator runs with only the RBAC its Helm chart grants: the chart is rendered with
//! `helm template`, server-side applied, and the operator process authenticates with a token
//! of the chart's ServiceAccount (not admin) while it reconciles, finalizes and deletes.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::cmd::run;
use support::kube_env::TestNamespace;
use support::operator::Operator;
use support::wait::until;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator");

#[tokio::test]
async fn the_operator_reconciles_with_only_the_charts_rbac() {
    let release_ns = TestNamespace::new("rbac-op").await;
    let work = TestNamespace::new("rbac-work").await;
    support::crd::install_crd(&work.client).await;
    let release = release_ns.name.clone();
    // No operator replicas from the chart here: the test runs the operator itself, as the
    // chart's ServiceAccount.
    let manifest = run(
        Command::new("helm").args([
            "template",
            &release,
            CHART,
            "--namespace",
            &release_ns.name,
            "--set",
            "replicaCount=0",
        ]),
        None,
    );
    run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-rbac-test",
            "-n",
            &release_ns.name,
            "-f",
            "-",
        ]),
        Some(&manifest),
    );
    let sa = format!("{release}-parity-operator");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("operator.kubeconfig");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv/sa-kubeconfig");
    run(
        Command::new(script).args([
            &release_ns.name,
            &sa,
            kubeconfig.to_str().expect("utf-8 path"),
        ]),
        None,
    );

    let op = Operator::start(&work.name, "rbac-op", Some(&kubeconfig));
    let envs: Api<ParityEnvironment> = work.api();
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": "dev"},
        "spec": {"tier": "Local", "parityLevel": 2,
                 "dynamodb": {"tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]},
                 "keys": {"deletionPolicy": "Retain"},
                 "dashboard": {"enabled": true, "decryption": "Server"}}
    }))
    .expect("env json");
    envs.create(&PostParams::default(), &env)
        .await
        .expect("create");
    until(
        "Ready under the chart's RBAC",
        Duration::from_secs(90),
        || async {
            let e = envs.get("dev").await.map_err(|e| e.to_string())?;
            let ready = e
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (format!("{:?}", c.status), c.reason.clone()));
            if ready.as_ref().is_some_and(|r| r.0 == "True") {
                Ok(())
            } else {
                Err(format!("{ready:?}"))
            }
        },
    )
    .await;

    // Finalizer, keyring owner-reference removal and deletion also work as the ServiceAccount.
    envs.delete("dev", &DeleteParams::background())
        .await
        .expect("delete");
    until(
        "the environment to be finalized",
        Duration::from_secs(60),
        || async {
            envs.get_opt("dev")
                .await
                .map_err(|e| e.to_string())?
                .map_or(Ok(()), |_| Err("exists".to_string()))
        },
    )
    .await;
    let keyring = work
        .api::<Secret>()
        .get("dev-keyring")
        .await
        .expect("retained keyring");
    assert!(keyring.owner_references().is_empty());

    let logs = op.logs();
    assert!(
        !logs.contains("forbidden"),
        "the operator hit a permission it lacks:\n{logs}"
    );

    let roles: Api<ClusterRole> = Api::all(work.client.clone());
    let _ = roles.delete(&sa, &DeleteParams::default()).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(work.client.clone());
    let _ = bindings.delete(&sa, &DeleteParams::default()).await;
}
