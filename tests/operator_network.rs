//! Per-environment ingress NetworkPolicies on the real apiserver: the operator creates one per
//! serving pod, admitting only its namespace's pods, owned and labelled like its other
//! objects and written by its one field manager; `spec.network.ingress: Any` removes them,
//! and `Namespace` brings them back.

mod support;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::penv::*;
use support::wait::until;

const POLICIES: [&str; 3] = [
    "dev-dashboard-ingress",
    "dev-dynamodb-ingress",
    "dev-kms-ingress",
];

async fn policy_names(api: &Api<NetworkPolicy>) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    v.sort();
    Ok(v)
}

async fn wait_policies(api: &Api<NetworkPolicy>, want: &[&str]) {
    until(&format!("NetworkPolicies {want:?}"), WAIT, || async {
        let got = policy_names(api).await?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
}

#[tokio::test]
async fn serving_pods_admit_their_namespace_only_until_the_spec_opts_out() {
    let (ns, _op, envs) = setup("op-net").await;
    let created = envs
        .create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    let uid = created.uid().expect("uid");
    let policies: Api<NetworkPolicy> = ns.api();
    wait_policies(&policies, &POLICIES).await;

    for (name, component, port) in [
        ("dev-kms-ingress", "kms", 8080),
        ("dev-dynamodb-ingress", "dynamodb", 8000),
        ("dev-dashboard-ingress", "dashboard", 8080),
    ] {
        let p = policies.get(name).await.expect("get policy");
        let owners = p.owner_references();
        assert!(
            owners.len() == 1 && owners[0].uid == uid && owners[0].controller == Some(true),
            "{name}: {owners:?}"
        );
        assert_eq!(
            p.labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("parity-operator"),
            "{name}"
        );
        let managers: Vec<String> = p
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(managers, ["parity-operator"], "{name}");
        // As the apiserver stored it: the component's pods, from pods of this namespace.
        let spec = serde_json::to_value(p.spec.expect("spec")).unwrap();
        assert_eq!(
            spec["podSelector"],
            json!({"matchLabels": {"parity.dev/environment": "dev", "parity.dev/component": component}}),
            "{name}"
        );
        assert_eq!(spec["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            spec["ingress"],
            json!([{"from": [{"podSelector": {}}], "ports": [{"port": port, "protocol": "TCP"}]}]),
            "{name}"
        );
    }

    // Opt out: the namespace-local policies go.
    let patch = |ingress: &str| -> Value { json!({"spec": {"network": {"ingress": ingress}}}) };
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(patch("Any")))
        .await
        .expect("patch Any");
    wait_policies(&policies, &[]).await;

    // And back.
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(patch("Namespace")),
    )
    .await
    .expect("patch Namespace");
    wait_policies(&policies, &POLICIES).await;
}
