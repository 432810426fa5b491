//! Installs the ParityEnvironment CRD (the committed file, with kubectl) and waits until the
//! API server serves it.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::{Client, CustomResourceExt};
use parity_operator::api::ParityEnvironment;

use super::wait::until;

/// Applies the committed CRD file (the drift test keeps it equal to this build's) with
/// kubectl, as users and the chart install it: its YAML 1.1 reader is part of what is tested.
pub async fn install_crd(client: &Client) {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/parity.dev_parityenvironments.yaml"
    );
    let out = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts"])
        .args(["--field-manager", "parity-test-crd", "-f", file])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = ParityEnvironment::crd().metadata.name.expect("crd name");
    wait_established(client, &name).await;
}

/// Waits until the API server reports the CRD `name` Established.
pub async fn wait_established(client: &Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    until(
        &format!("CRD {name} Established"),
        Duration::from_secs(30),
        || async {
            let c = crds.get(name).await.map_err(|e| e.to_string())?;
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                Ok(())
            } else {
                Err("not established".to_string())
            }
        },
    )
    .await;
}
