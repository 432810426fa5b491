//! Proves the testenv is a real control plane: scheduling + kwok, garbage collection
//! (kube-controller-manager), CEL validation, server-side apply and Leases.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use support::kube_env::TestNamespace;
use support::wait::until;

const WAIT: Duration = Duration::from_secs(60);

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test object json")
}

#[tokio::test]
async fn deployment_pod_becomes_ready_on_a_fake_node() {
    let ns = TestNamespace::new("smoke-deploy").await;
    let deploy: Deployment = from_json(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "web", "image": "example.invalid/web:1",
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    }));
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");

    let pods = ns.api::<Pod>();
    let node = until("a Ready pod of deployment web", WAIT, || async {
        let list = pods
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let summary: Vec<String> = list
            .items
            .iter()
            .map(|p| format!("{:?}", p.status.as_ref().and_then(|s| s.phase.clone())))
            .collect();
        list.items
            .iter()
            .find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .and_then(|p| p.spec.as_ref()?.node_name.clone())
            .ok_or(format!("pods (phase): {summary:?}"))
    })
    .await;
    assert!(node.starts_with("kwok-node-"), "scheduled on {node}");

    let deployments = ns.api::<Deployment>();
    until(
        "deployment web to report 1 available replica",
        WAIT,
        || async {
            let d = deployments.get("web").await.map_err(|e| e.to_string())?;
            let available = d.status.as_ref().and_then(|s| s.available_replicas);
            (available == Some(1))
                .then_some(())
                .ok_or(format!("available={available:?}"))
        },
    )
    .await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let ns = TestNamespace::new("smoke-gc").await;
    let cms = ns.api::<ConfigMap>();
    let owner = cms
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "owner"}})),
        )
        .await
        .expect("create owner");
    let uid = owner.metadata.uid.clone().expect("owner uid");
    cms.create(
        &PostParams::default(),
        &from_json(
            json!({"metadata": {"name": "dependent", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ]}}),
        ),
    )
    .await
    .expect("create dependent");

    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    until(
        "the garbage collector to delete configmap dependent",
        WAIT,
        || async {
            match cms.get_opt("dependent").await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("dependent still exists".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_cel_rule_rejects_an_invalid_object_with_its_message() {
    let client = support::kube_env::client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.parity.dev"},
        "spec": {
            "group": "smoke.parity.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"replicas": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {"rule": "self.replicas <= 5", "message": "spec.replicas must be at most 5"}
                        ]
                    }}
                }}
            }]
        }
    }));
    crds.patch(
        "widgets.smoke.parity.dev",
        &PatchParams::apply("smoke-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    until(
        "CRD widgets.smoke.parity.dev to be Established",
        WAIT,
        || async {
            let c = crds
                .get("widgets.smoke.parity.dev")
                .await
                .map_err(|e| e.to_string())?;
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established
                .then_some(())
                .ok_or("not established".to_string())
        },
    )
    .await;

    let ns = TestNamespace::new("smoke-cel").await;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("smoke.parity.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &ar);
    let widget = |name: &str, replicas: i64| -> DynamicObject {
        from_json(json!({
            "apiVersion": "smoke.parity.dev/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"replicas": replicas}
        }))
    };
    // The CRD's schema is served a moment after Established on a busy apiserver: retry the
    // valid create until it is accepted, then the invalid one must fail with the rule's message.
    until("a valid Widget to be accepted", WAIT, || async {
        widgets
            .create(&PostParams::default(), &widget("ok", 3))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let err = widgets
        .create(&PostParams::default(), &widget("too-many", 9))
        .await
        .expect_err("replicas 9 must be rejected by the CEL rule");
    let msg = err.to_string();
    assert!(
        msg.contains("spec.replicas must be at most 5"),
        "unexpected error: {msg}"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers_and_detects_conflicts() {
    let ns = TestNamespace::new("smoke-ssa").await;
    let cms = ns.api::<ConfigMap>();
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "a"}});
    let applied = cms
        .patch(
            "cfg",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(&desired),
        )
        .await
        .expect("apply as manager-a");
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["manager-a".to_string()]);

    // Re-applying the same intent is a no-op: the resourceVersion does not move.
    let again = cms
        .patch(
            "cfg",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(&desired),
        )
        .await
        .expect("re-apply");
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );

    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "b"}});
    let err = cms
        .patch(
            "cfg",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("a second manager changing k must conflict");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 409, "expected a conflict, got {s:?}"),
        e => panic!("expected an API conflict, got {e}"),
    }
}

#[tokio::test]
async fn a_lease_is_taken_once_and_a_stale_update_is_refused() {
    let ns = TestNamespace::new("smoke-lease").await;
    let leases = ns.api::<Lease>();
    let taken = leases
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})),
        )
        .await
        .expect("take lease");
    // A second candidate cannot create the same Lease...
    let err = leases
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "b"}})),
        )
        .await
        .expect_err("second create must fail");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );

    // ...and an update based on a stale resourceVersion is refused (optimistic concurrency).
    let mut renewed = taken.clone();
    renewed.spec.get_or_insert_default().lease_duration_seconds = Some(20);
    leases
        .replace("leader", &PostParams::default(), &renewed)
        .await
        .expect("renew");
    let mut stale = taken;
    stale.spec.get_or_insert_default().holder_identity = Some("b".into());
    let err = leases
        .replace("leader", &PostParams::default(), &stale)
        .await
        .expect_err("stale update must be refused");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    let holder = leases
        .get("leader")
        .await
        .expect("get lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("a"));
}
