//! Installs the ParityEnvironment CRD from this build (server-side apply) and waits until the
//! API server serves it.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use parity_operator::api::ParityEnvironment;

use super::wait::until;

pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ParityEnvironment::crd();
    let name = crd.metadata.name.clone().expect("crd name");
    crds.patch(
        &name,
        &PatchParams::apply("parity-test-crd").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
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
