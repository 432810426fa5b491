//! deploy/install.yaml server-side applied to the real API server: every object is accepted,
//! and the operator's pod is admitted in parity-system (restricted Pod Security). Everything
//! it created is removed afterwards (the CRD only if it was not there before).

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use serde_json::Value;

use support::cmd::run;
use support::wait::until;

const INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/install.yaml");
const NAMESPACE: &str = "parity-system";

fn documents() -> Vec<Value> {
    let text = std::fs::read_to_string(INSTALL).expect("read deploy/install.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("a YAML document"))
        .filter(|d| !d.is_null())
        .collect()
}

/// `kind/name` as kubectl prints it with `-o name` (lower-case kind and its API group).
fn kubectl_name(d: &Value) -> String {
    let kind = d["kind"].as_str().expect("kind").to_lowercase();
    let group = d["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| format!(".{g}"))
        .unwrap_or_default();
    format!(
        "{kind}{group}/{}",
        d["metadata"]["name"].as_str().expect("name")
    )
}

/// Deletes what the test applied, pass or fail: the namespace and the cluster-wide RBAC, and
/// the CRD when the test created it (other tests install their own).
struct Cleanup {
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "--ignore-not-found",
                "--wait=true",
                "--timeout=60s",
            ])
            .args(&self.names)
            .stdout(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn install_yaml_applies_and_the_operator_pod_is_admitted() {
    let client = support::kube_env::client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_existed = crds
        .get_opt("parityenvironments.parity.dev")
        .await
        .expect("read CRDs")
        .is_some();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces.get_opt(NAMESPACE).await.expect("read").is_none(),
        "namespace {NAMESPACE} exists already: delete it first"
    );

    let docs = documents();
    let cleanup = Cleanup {
        names: docs
            .iter()
            .filter(|d| d["metadata"].get("namespace").is_none())
            .filter(|d| !crd_existed || d["kind"] != "CustomResourceDefinition")
            .map(kubectl_name)
            .collect(),
    };
    let applied = run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-install-yaml-test",
            "-f",
            INSTALL,
        ]),
        None,
    );
    // One line per object: every document was accepted.
    assert_eq!(applied.lines().count(), docs.len(), "{applied}");
    let live = run(
        Command::new("kubectl").args(["get", "-f", INSTALL, "-o", "name"]),
        None,
    );
    let want: Vec<String> = docs.iter().map(kubectl_name).collect();
    assert_eq!(live.lines().collect::<Vec<_>>(), want);

    // status.replicas counts the pods the ReplicaSet created: Pod Security rejects none.
    run(
        Command::new("kubectl").args([
            "wait",
            "-n",
            NAMESPACE,
            "deployment/parity-operator",
            "--for=jsonpath={.status.replicas}=1",
            "--timeout=60s",
        ]),
        None,
    );
    drop(cleanup);
    until("parity-system deleted", Duration::from_secs(60), || async {
        match namespaces.get_opt(NAMESPACE).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
