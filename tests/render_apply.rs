//! The builders' objects, server-side applied to the real API server for a real
//! ParityEnvironment: every object is accepted, and every pod passes the restricted Pod
//! Security admission the test namespace enforces.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use parity_operator::api::{ParityEnvironment, validate};
use parity_operator::resources::{BuildContext, Component, LABEL_COMPONENT, Object, build_all};

use support::crd::install_crd;
use support::kube_env::TestNamespace;
use support::wait::until;

async fn apply_example(file: &str, prefix: &str) -> (TestNamespace, Vec<Object>) {
    let ns = TestNamespace::new(prefix).await;
    install_crd(&ns.client).await;
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut env = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == "ParityEnvironment" {
            env = Some(serde_json::from_value::<ParityEnvironment>(v).unwrap());
        }
    }
    let env = env.expect("a ParityEnvironment in the example");
    let penvs: Api<ParityEnvironment> = ns.api();
    let created = penvs
        .create(&PostParams::default(), &env)
        .await
        .expect("create environment");
    let valid = validate(&created).expect("valid");
    let objects = build_all(
        &valid,
        valid.profile,
        &BuildContext::new("example.invalid/parity:test"),
    );
    for obj in &objects {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ns.client.clone(), &ns.name, &obj.api_resource());
        api.patch(
            obj.name(),
            &PatchParams::apply("parity-operator").force(),
            &Patch::Apply(obj.to_dynamic()),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {}/{}: {e}", obj.kind(), obj.name()));
    }
    (ns, objects)
}

/// Every workload's pod gets created: the restricted Pod Security admission let it in.
async fn assert_pods_admitted(ns: &TestNamespace, objects: &[Object]) {
    let want: BTreeSet<&str> = objects
        .iter()
        .filter(|o| matches!(o, Object::Deployment(_) | Object::Job(_)))
        .filter_map(|o| o.component().map(Component::as_str))
        .collect();
    let pods: Api<Pod> = ns.api();
    until(
        &format!("pods of {want:?}"),
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let have: BTreeSet<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.labels.as_ref()?.get(LABEL_COMPONENT).cloned())
                .collect();
            if want.iter().all(|w| have.contains(*w)) {
                Ok(())
            } else {
                Err(format!("have {have:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn local_example_objects_are_accepted_and_pods_admitted() {
    let (ns, objects) = apply_example("examples/local.yaml", "render-local").await;
    // Engine Moto keeps data in memory: no claim.
    assert!(!objects.iter().any(|o| o.kind() == "PersistentVolumeClaim"));
    assert_pods_admitted(&ns, &objects).await;
}

#[tokio::test]
async fn ci_example_objects_are_accepted_and_pods_admitted() {
    let (ns, objects) = apply_example("examples/ci.yaml", "render-ci").await;
    assert!(objects.iter().any(|o| o.kind() == "NetworkPolicy"));
    assert_pods_admitted(&ns, &objects).await;
}

#[tokio::test]
async fn staging_example_objects_are_accepted_and_pods_admitted() {
    let (ns, objects) = apply_example("examples/staging.yaml", "render-staging").await;
    assert_pods_admitted(&ns, &objects).await;
}
