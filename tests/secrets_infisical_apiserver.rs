//! On the real apiserver (testenv): the InfisicalSecret CRD fixture is accepted as a
//! structural schema, and the operator's InfisicalSecret applies with server-side apply and
//! reads back unchanged (no field pruned, defaults as built).

mod support;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use parity_operator::secrets::{
    InfisicalProject, InfisicalSecret, InfisicalSource, build_infisical_secret,
};
use support::kube_env::TestNamespace;
use support::wait::until;

const MANAGER: &str = "parity-secrets-test";

#[tokio::test]
async fn infisical_crd_fixture_and_object_apply_on_the_apiserver() {
    let ns = TestNamespace::new("secrets-infisical").await;
    let crd: CustomResourceDefinition = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/infisical-crd.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let name = crd.metadata.name.clone().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply the fixture CRD: {e}"));
    support::crd::wait_established(&ns.client, &name).await;

    let source = InfisicalSource {
        host_api: Some("http://infisical.example/api".into()),
        project: InfisicalProject::Slug("shop".into()),
        environment: "staging".into(),
        path: "/backend".into(),
        credentials_secret: "demo-infisical-auth".into(),
        resync_interval_seconds: Some(30),
    };
    let built = build_infisical_secret("demo", &ns.name, &source).unwrap();
    let api: Api<InfisicalSecret> = ns.api();
    // Discovery of a fresh CRD can lag its Established condition by a moment.
    until(
        "the InfisicalSecret to apply",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let built = built.clone();
            async move {
                api.patch(
                    "demo-secrets",
                    &PatchParams::apply(MANAGER),
                    &Patch::Apply(&built),
                )
                .await
                .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    let got = api.get("demo-secrets").await.unwrap();
    assert_eq!(
        got.spec, built.spec,
        "the apiserver pruned or changed a field"
    );
    assert_eq!(
        got.metadata.labels.unwrap()["parity.dev/environment"],
        "demo"
    );
}
