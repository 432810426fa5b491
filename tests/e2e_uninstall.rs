//! End to end on the real node: docs/uninstall.md, run as written. Its marked code blocks are
//! executed with bash against an operator installed from the chart: the documented order
//! leaves no namespace Terminating and only the retained keyring behind (which the documented
//! commands list and remove), and an operator removed first is recovered by reinstalling it.
//! Run with `make e2e` (ignored on kwok's fake nodes).

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::cmd::run;
use support::e2e::{E2E_WAIT, require_real_node};
use support::kube_env::{TestNamespace, client};
use support::wait::until;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/uninstall.md");
const CRD: &str = "parityenvironments.parity.dev";
const MANAGED: &str = "app.kubernetes.io/managed-by=parity-operator";

/// The fenced block after `<!-- uninstall:NAME -->`, without its indentation.
fn block(name: &str) -> String {
    let doc = std::fs::read_to_string(DOC).expect("docs/uninstall.md");
    let marker = format!("<!-- uninstall:{name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("{marker} not in docs/uninstall.md"))
        .1;
    let mut lines = after.lines().map(str::trim).skip_while(|l| l.is_empty());
    assert_eq!(
        lines.next(),
        Some("```sh"),
        "{marker} is not followed by a sh block"
    );
    let body: Vec<&str> = lines.take_while(|l| *l != "```").collect();
    assert!(!body.is_empty(), "{marker}: empty block");
    body.join("\n") + "\n"
}

/// The image of this build for a `helm install` line: the documented command is otherwise
/// run unchanged.
fn with_test_image(script: &str) -> String {
    let image = support::operator::image();
    let (repo, tag) = image.rsplit_once(':').expect("image with a tag");
    script
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("helm install") {
                format!(
                    "{l} --set image.repository={repo} --set image.tag={tag} --set image.pullPolicy=Never --set liveDrift.enabled=false --set logFormat=text"
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs a documented block with bash from the repository root, strict mode on.
fn bash(script: &str) -> String {
    run(
        Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\n{script}")])
            .current_dir(ROOT),
        None,
    )
}

/// The operator as the README installs it (release parity in parity-system), once an earlier
/// test's parity-system has finished deleting.
async fn install() {
    wait_gone("parity-system").await;
    bash(&with_test_image(
        "helm install parity charts/parity-operator --namespace parity-system --create-namespace --wait",
    ));
}

/// Whatever a failed test left: the release and its namespace.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        // Usually already gone (the documented steps ran): quiet, not an error.
        let _ = Command::new("helm")
            .args(["uninstall", "parity", "-n", "parity-system", "--wait"])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("kubectl")
            .args(["delete", "namespace", "parity-system", "--ignore-not-found"])
            .args(["--wait=true", "--timeout=120s"])
            .status();
    }
}

async fn create_env(ns: &TestNamespace, name: &str, policy: &str) {
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": name},
        "spec": {"tier": "Local", "parityLevel": 0, "keys": {"deletionPolicy": policy}}
    }))
    .expect("environment");
    let envs = ns.api::<ParityEnvironment>();
    envs.create(&PostParams::default(), &env)
        .await
        .expect("create environment");
    until(
        &format!("{name} Ready with its keyring"),
        E2E_WAIT,
        || async {
            let e = envs.get(name).await.map_err(|e| e.to_string())?;
            let ready = e.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && format!("{:?}", c.status) == "True")
            });
            let keyring = ns
                .api::<Secret>()
                .get_opt(&format!("{name}-keyring"))
                .await
                .map_err(|e| e.to_string())?;
            if ready
                && keyring.is_some()
                && e.finalizers().iter().any(|f| f == "parity.dev/keyring")
            {
                Ok(())
            } else {
                Err(format!("ready={ready} keyring={}", keyring.is_some()))
            }
        },
    )
    .await;
}

/// Names of the objects labelled managed-by parity-operator left in a namespace.
async fn managed_objects(ns: &TestNamespace) -> Vec<String> {
    let lp = ListParams::default().labels(MANAGED);
    let mut out = Vec::new();
    macro_rules! kind {
        ($t:ty, $k:expr) => {
            for o in ns.api::<$t>().list(&lp).await.expect("list").items {
                out.push(format!("{}/{}", $k, o.name_any()));
            }
        };
    }
    kind!(Secret, "Secret");
    kind!(ConfigMap, "ConfigMap");
    kind!(Deployment, "Deployment");
    kind!(Service, "Service");
    out.sort();
    out
}

async fn wait_gone(name: &str) {
    let nss: Api<Namespace> = Api::all(client().await);
    until(
        &format!("namespace {name} deleted, not stuck Terminating"),
        E2E_WAIT,
        || async {
            match nss.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(n) => Err(format!("{:?}", n.status)),
            }
        },
    )
    .await;
}

fn delete_namespace(name: &str) {
    run(
        Command::new("kubectl").args(["delete", "namespace", name, "--wait=false"]),
        None,
    );
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_an_operator_removed_first_is_recovered_by_reinstalling_it() {
    require_real_node();
    let _cleanup = Uninstall;
    let ns = TestNamespace::new("e2e-uninstall-stuck").await;
    install().await;
    create_env(&ns, "dev", "Retain").await;

    // The wrong order: the operator goes first, then the namespace is deleted.
    run(
        Command::new("helm").args(["uninstall", "parity", "-n", "parity-system", "--wait"]),
        None,
    );
    delete_namespace(&ns.name);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let nss: Api<Namespace> = Api::all(ns.client.clone());
    let stuck = nss.get(&ns.name).await.expect("namespace");
    assert!(
        stuck.metadata.deletion_timestamp.is_some(),
        "namespace not Terminating"
    );
    let env = ns.api::<ParityEnvironment>().get("dev").await.expect("env");
    assert!(
        env.finalizers().iter().any(|f| f == "parity.dev/keyring"),
        "the environment should be held by its finalizer: {:?}",
        env.finalizers()
    );

    // The documented way out.
    bash(&with_test_image(&block("recover")));
    wait_gone(&ns.name).await;
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_the_documented_uninstall_leaves_only_the_retained_keyring() {
    require_real_node();
    let _cleanup = Uninstall;
    let keep = TestNamespace::new("e2e-uninstall-keep").await;
    let gone = TestNamespace::new("e2e-uninstall-drop").await;
    install().await;
    create_env(&keep, "dev", "Retain").await;
    create_env(&gone, "tmp", "Delete").await;

    bash(&block("steps"));

    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt(CRD).await.expect("get crd").is_none(),
        "CRD left"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    assert!(
        nss.get_opt("parity-system").await.expect("ns").is_none(),
        "parity-system left"
    );
    let operators: Api<Deployment> = Api::all(client.clone());
    let left = operators
        .list(&ListParams::default().labels("app.kubernetes.io/name=parity-operator"))
        .await
        .expect("deployments");
    assert!(left.items.is_empty(), "operator Deployment left");

    // Owned objects go by garbage collection, which runs on after `kubectl delete` returns.
    until("only the retained keyring left", E2E_WAIT, || async {
        let k = managed_objects(&keep).await;
        let g = managed_objects(&gone).await;
        if k == ["Secret/dev-keyring"] && g.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {k:?}, {}: {g:?}", keep.name, gone.name))
        }
    })
    .await;
    let keyring = keep
        .api::<Secret>()
        .get("dev-keyring")
        .await
        .expect("keyring");
    let ann = keyring.annotations();
    assert_eq!(
        ann.get("parity.dev/retained").map(String::as_str),
        Some("true")
    );
    assert!(keyring.owner_references().is_empty());
    assert_eq!(
        keyring
            .labels()
            .get("parity.dev/environment")
            .map(String::as_str),
        Some("dev")
    );

    // The documented listing shows exactly it; the documented removal removes it.
    let listed = bash(&block("list-retained"));
    assert_eq!(listed, format!("{} dev-keyring\n", keep.name));
    bash(&block("remove-retained"));
    assert!(
        keep.api::<Secret>()
            .get_opt("dev-keyring")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(bash(&block("list-retained")), "");

    // No namespace stuck: both delete cleanly with no operator left.
    for ns in [&keep, &gone] {
        delete_namespace(&ns.name);
    }
    for ns in [&keep, &gone] {
        wait_gone(&ns.name).await;
    }
    let terminating: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .filter(|n| format!("{:?}", n.status).contains("parity.dev"))
        .map(|n| n.name_any())
        .collect();
    assert!(
        terminating.is_empty(),
        "namespaces stuck on a parity finalizer: {terminating:?}"
    );
    // The CRD is back for any test that runs later against this control plane.
    support::crd::install_crd(&client).await;
}
