//! The operator runs with only the RBAC its Helm chart grants: the chart is rendered with
//! `helm template`, server-side applied, and the operator process authenticates with a token
//! of the chart's ServiceAccount (not admin) while it reconciles, finalizes and deletes.
//! Both modes: cluster-wide (a ClusterRole) and namespaced (`watchNamespaces`: a Role per
//! watched namespace, nothing cluster-wide). Leases only in the release namespace.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::cmd::run;
use support::kube_env::TestNamespace;
use support::operator::Operator;
use support::penv::{env, local_spec, wait_condition};
use support::wait::until;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator");

/// The chart applied as `release` into `release_ns` (no operator replicas: the test runs
/// the operator itself; no roles aggregated for users, which would outlive the test), and a
/// kubeconfig of its ServiceAccount.
struct Installed {
    sa: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

fn install_chart(release_ns: &str, sets: &[&str]) -> Installed {
    let mut args = vec![
        "template",
        release_ns,
        CHART,
        "--namespace",
        release_ns,
        "--set",
        "replicaCount=0",
        "--set",
        "rbac.aggregateToDefaultRoles=false",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let manifest = run(Command::new("helm").args(&args), None);
    run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-rbac-test",
            // Every object names its namespace (the release's, or a watched one's).
            "-f",
            "-",
        ]),
        Some(&manifest),
    );
    let sa = format!("{release_ns}-parity-operator");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("operator.kubeconfig");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv/sa-kubeconfig");
    run(
        Command::new(script).args([release_ns, &sa, kubeconfig.to_str().expect("utf-8 path")]),
        None,
    );
    Installed {
        sa,
        kubeconfig,
        _dir: dir,
    }
}

/// A client that authenticates as the chart's ServiceAccount.
async fn as_operator(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read the ServiceAccount's kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Ok(()) when the apiserver refuses `what` with 403, Err with what happened instead.
fn forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn a_secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"password": "not-the-operators"}
    }))
    .expect("secret")
}

async fn delete_cluster_rbac(client: &Client, name: &str) {
    let _ = Api::<ClusterRole>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn the_operator_reconciles_with_only_the_charts_rbac() {
    let release_ns = TestNamespace::new("rbac-op").await;
    let work = TestNamespace::new("rbac-work").await;
    support::crd::install_crd(&work.client).await;
    let chart = install_chart(&release_ns.name, &[]);

    let op = Operator::start_scoped(
        &work.name,
        &release_ns.name,
        "rbac-op",
        Some(&chart.kubeconfig),
    );
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
    wait_condition(&envs, "dev", "Ready", "True").await;

    // The Lease is taken in the release namespace, the only place the chart grants Leases.
    let lease = Api::<Lease>::namespaced(work.client.clone(), &release_ns.name)
        .get("parity-operator-leader")
        .await
        .expect("the Lease in the release namespace");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("rbac-op")
    );
    let sa = as_operator(&chart.kubeconfig).await;
    forbidden(
        "get a Lease outside the release namespace",
        Api::<Lease>::namespaced(sa.clone(), &work.name)
            .get_opt("parity-operator-leader")
            .await,
    );

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
    delete_cluster_rbac(&work.client, &chart.sa).await;
}

#[tokio::test]
async fn no_secret_reads_beyond_the_watched_namespaces() {
    let release_ns = TestNamespace::new("rbac-sec").await;
    let watched = TestNamespace::new("rbac-sec-in").await;
    let other = TestNamespace::new("rbac-sec-out").await;
    support::crd::install_crd(&watched.client).await;
    let chart = install_chart(
        &release_ns.name,
        &[&format!("watchNamespaces={{{}}}", watched.name)],
    );
    for ns in [&watched, &other] {
        ns.api::<Secret>()
            .create(&PostParams::default(), &a_secret("app-password"))
            .await
            .expect("a Secret of the user's");
    }
    assert!(
        Api::<ClusterRole>::all(watched.client.clone())
            .get_opt(&chart.sa)
            .await
            .expect("get")
            .is_none(),
        "namespaced mode grants nothing cluster-wide"
    );

    let sa = as_operator(&chart.kubeconfig).await;
    let outside: Api<Secret> = Api::namespaced(sa.clone(), &other.name);
    forbidden(
        "get a Secret outside the watched namespaces",
        outside.get("app-password").await,
    );
    forbidden(
        "list Secrets outside the watched namespaces",
        outside.list(&ListParams::default()).await,
    );
    forbidden(
        "list Secrets in every namespace",
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "overwrite a Secret outside the watched namespaces",
        outside
            .replace("app-password", &PostParams::default(), &{
                let mut s = a_secret("app-password");
                s.metadata.resource_version = other
                    .api::<Secret>()
                    .get("app-password")
                    .await
                    .expect("get")
                    .resource_version();
                s
            })
            .await,
    );
    // Inside a watched namespace RBAC cannot tell owned from not owned (it knows names and
    // verbs, not owners): the operator reads only metadata of Secrets it did not make there
    // (tests/operator_keyring.rs checks it never uses or overwrites them).
    Api::<Secret>::namespaced(sa, &watched.name)
        .get_metadata("app-password")
        .await
        .expect("metadata inside a watched namespace");
}

#[tokio::test]
async fn the_namespaced_mode_reconciles_watched_namespaces_only() {
    let release_ns = TestNamespace::new("rbac-ns").await;
    let watched = TestNamespace::new("rbac-ns-in").await;
    let watched_too = TestNamespace::new("rbac-ns-in2").await;
    let other = TestNamespace::new("rbac-ns-out").await;
    support::crd::install_crd(&watched.client).await;
    let list = format!("{},{}", watched.name, watched_too.name);
    let chart = install_chart(&release_ns.name, &[&format!("watchNamespaces={{{list}}}")]);
    let op = Operator::start_scoped(
        &list,
        &release_ns.name,
        "rbac-ns-op",
        Some(&chart.kubeconfig),
    );
    // The environment outside is created first: by the time the watched one is Ready, an
    // operator that watched both would have started on it.
    let outside: Api<ParityEnvironment> = other.api();
    outside
        .create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create outside");
    // Two watched namespaces: one controller each, both reconcile.
    for ns in [&watched, &watched_too] {
        let inside: Api<ParityEnvironment> = ns.api();
        inside
            .create(&PostParams::default(), &env("dev", local_spec()))
            .await
            .expect("create inside");
        wait_condition(&inside, "dev", "Ready", "True").await;
    }
    op.wait_ready().await;

    let untouched = outside.get("dev").await.expect("get");
    assert!(
        untouched.status.is_none() && untouched.finalizers().is_empty(),
        "the environment outside the watched namespaces was touched: {untouched:?}"
    );
    assert!(
        other
            .api::<Deployment>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let sa = as_operator(&chart.kubeconfig).await;
    forbidden(
        "read environments outside the watched namespaces",
        Api::<ParityEnvironment>::namespaced(sa.clone(), &other.name)
            .get("dev")
            .await,
    );
    forbidden(
        "create a Deployment outside the watched namespaces",
        Api::<Deployment>::namespaced(sa, &other.name)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "x"},
                    "spec": {"selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}},
                                          "spec": {"containers": [{"name": "c", "image": "i"}]}}}
                }))
                .expect("deployment"),
            )
            .await,
    );
    let logs = op.logs();
    assert!(
        !logs.contains("forbidden"),
        "the operator reached beyond its namespaces:\n{logs}"
    );
}
