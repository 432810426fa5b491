//! The Helm chart rendered with `helm template` and server-side applied to the real API
//! server: every object is accepted, the operator's pod passes restricted Pod Security, and
//! the ClusterRole holds exactly the generated least-privilege rules.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams};

use support::cmd::run;
use support::kube_env::TestNamespace;
use support::wait::until;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator");

#[test]
fn chart_lints() {
    run(Command::new("helm").args(["lint", "--strict", CHART]), None);
}

#[test]
fn values_schema_rejects_unknown_values() {
    let out = Command::new("helm")
        .args(["template", "x", CHART, "--set", "replicaCont=2"])
        .output()
        .expect("run helm");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replicaCont"));
}

#[test]
fn operator_args_parse_with_parity_operator() {
    use clap::Parser;
    let manifest = run(
        Command::new("helm").args([
            "template",
            "x",
            CHART,
            "--set",
            "nodePorts=true",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ]),
        None,
    );
    let deployment = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment in the chart");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["parity".to_string()];
    for a in container["args"].as_array().unwrap() {
        argv.push(a.as_str().unwrap().to_string());
    }
    assert!(argv.contains(&"--leader-elect".to_string()));
    let cli = parity_operator::cli::Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("parity rejects the chart's args {argv:?}: {e}"));
    match cli.command {
        parity_operator::cli::Command::Operator(args) => {
            assert_eq!(args.watch_namespaces, ["team-a", "team-b"]);
        }
        _ => panic!("not the operator command: {argv:?}"),
    }
}

#[test]
fn values_schema_rejects_a_watched_namespace_that_is_not_a_name() {
    let out = Command::new("helm")
        .args(["template", "x", CHART, "--set", "watchNamespaces={Team_A}"])
        .output()
        .expect("run helm");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("watchNamespaces"));
}

#[tokio::test]
async fn chart_applies_and_operator_pods_are_admitted() {
    let ns = TestNamespace::new("chart").await;
    let release = ns.name.clone();
    let manifest = run(
        Command::new("helm").args([
            "template",
            &release,
            CHART,
            "--namespace",
            &ns.name,
            "--set",
            "replicaCount=2",
            "--set",
            "image.tag=test",
        ]),
        None,
    );
    assert!(manifest.contains("--leader-elect"));
    run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-chart-test",
            "-n",
            &ns.name,
            "-f",
            "-",
        ]),
        Some(&manifest),
    );

    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = roles
        .get(&format!("{release}-parity-operator"))
        .await
        .expect("ClusterRole");
    let rules = role.rules.unwrap_or_default();
    assert_eq!(rules, parity_operator::resources::rbac::operator_rules());

    let pods: Api<Pod> = ns.api();
    until(
        "2 operator pods admitted",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=parity-operator"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() == 2 {
                Ok(())
            } else {
                Err(list.items.len().to_string())
            }
        },
    )
    .await;

    // Cluster-scoped objects outlive the namespace: remove them.
    let name = format!("{release}-parity-operator");
    let _ = roles.delete(&name, &DeleteParams::default()).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(ns.client.clone());
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
}
