//! The operator as a process against the real testenv: every tier to Ready, updates,
//! no-op resyncs, child drift repair, deletion and Retain, TTL, suspend, crash and restart,
//! leader election, invalid specs, and key material never leaving the keyring Secret.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use support::kube_env::TestNamespace;
use support::operator::Operator;
use support::wait::until;

use support::penv::*;

#[tokio::test]
async fn local_environment_becomes_ready_with_every_object_owned() {
    let (ns, op, envs) = setup("op-local").await;
    let created = envs
        .create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    let uid = created.uid().expect("uid");
    let ready = wait_condition(&envs, "dev", "Ready", "True").await;

    let status = ready.status.clone().expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.endpoints.kms.as_deref(),
        Some(format!("http://dev-kms.{}.svc:8080", ns.name).as_str())
    );
    assert_eq!(status.keys.as_ref().map(|k| k.versions.len()), Some(1));

    assert_eq!(
        names(&ns.api::<Deployment>()).await,
        ["dev-dashboard", "dev-dynamodb", "dev-kms"]
    );
    assert_eq!(
        names(&ns.api::<Service>()).await,
        ["dev-dashboard", "dev-dynamodb", "dev-kms"]
    );
    let jobs = names(&ns.api::<Job>()).await;
    assert_eq!(jobs.len(), 1, "one bootstrap job: {jobs:?}");
    assert!(
        names(&ns.api::<Secret>())
            .await
            .contains(&"dev-keyring".to_string())
    );
    assert!(
        names(&ns.api::<ConfigMap>())
            .await
            .contains(&"dev-topology".to_string())
    );

    for d in ns
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        let owners = d.owner_references();
        assert!(
            owners
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true)),
            "{} not owned",
            d.name_any()
        );
    }

    // `kubectl wait` is a usable CI gate.
    let out = std::process::Command::new("kubectl")
        .args([
            "wait",
            "--for=condition=Ready",
            "penv/dev",
            "-n",
            &ns.name,
            "--timeout=30s",
        ])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(op.logs().contains("became leader"));

    // `parity status` shows the tree and exits 0 for a Ready environment.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["status", "dev", "-n", &ns.name])
        .output()
        .expect("run parity status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parity status: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "Ready=True",
        "Deployment/dev-kms",
        "1/1 available",
        "Job/dev-bootstrap-",
        "Complete",
        "└─ Ready",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[tokio::test]
async fn staging_environment_uses_external_services_and_holds_no_local_keys() {
    let (ns, _op, envs) = setup("op-staging").await;
    let spec = json!({
        "tier": "Staging", "parityLevel": 1,
        "dynamodb": {"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1"},
                     "tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]},
        "keys": {"provider": "Kms", "kms": {"keyId": "alias/app-staging", "region": "eu-west-1"}}
    });
    envs.create(&PostParams::default(), &env("stage", spec))
        .await
        .expect("create");
    let ready = wait_condition(&envs, "stage", "Ready", "True").await;
    assert_eq!(
        condition(&ready, "KeysReady").map(|c| c.1),
        Some("ExternalKms".into())
    );
    assert_eq!(
        condition(&ready, "DynamoDBReady").map(|c| c.1),
        Some("External".into())
    );
    assert!(names(&ns.api::<Deployment>()).await.is_empty());
    // spec.dynamodb.tables still works, and its user is told where the tables belong now.
    let deprecated = wait_warning(&ns, "DeprecatedField").await;
    let note = deprecated.note.unwrap_or_default();
    assert!(
        note.contains("spec.dynamodb.tables") && note.contains("spec.topology.tables"),
        "{note}"
    );
    assert!(
        !names(&ns.api::<Secret>())
            .await
            .contains(&"stage-keyring".to_string())
    );
    assert!(
        names(&ns.api::<ConfigMap>())
            .await
            .contains(&"stage-topology".to_string())
    );
}

#[tokio::test]
async fn spec_changes_update_objects_remove_orphans_and_advance_observed_generation() {
    let (ns, _op, envs) = setup("op-update").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let old_jobs = names(&ns.api::<Job>()).await;

    let patch = json!({"spec": {"parityLevel": 1, "dynamodb": {"tables": [
        {"name": "orders", "partitionKey": {"name": "id", "type": "S"}},
        {"name": "customers", "partitionKey": {"name": "id", "type": "S"}}
    ]}}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let e = wait_condition(&envs, "dev", "Ready", "True").await;
    assert_eq!(
        e.status.as_ref().and_then(|s| s.observed_generation),
        Some(2)
    );

    let deployments = ns.api::<Deployment>();
    until(
        "the dashboard (not part of level 1) to be removed",
        WAIT,
        || async {
            let n = names(&deployments).await;
            if n == ["dev-dynamodb", "dev-kms"] {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;
    let jobs = ns.api::<Job>();
    until(
        "the old bootstrap Job to be replaced by one for the new tables",
        WAIT,
        || async {
            let n = names(&jobs).await;
            if n.len() == 1 && n != old_jobs {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;
    let topology = ns
        .api::<ConfigMap>()
        .get("dev-topology")
        .await
        .expect("topology");
    let text = topology
        .data
        .unwrap_or_default()
        .values()
        .cloned()
        .collect::<String>();
    assert!(
        text.contains("customers"),
        "topology lacks the new table: {text}"
    );
}

#[tokio::test]
async fn a_no_op_resync_writes_nothing() {
    let (ns, op, envs) = setup("op-noop").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;

    async fn add<K>(ns: &TestNamespace, prefix: &str, m: &mut BTreeMap<String, String>)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        for o in ns
            .api::<K>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
        {
            m.insert(
                format!("{prefix}/{}", o.name_any()),
                o.resource_version().unwrap_or_default(),
            );
        }
    }
    async fn versions(ns: &TestNamespace) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        add::<Deployment>(ns, "deploy", &mut m).await;
        add::<Service>(ns, "svc", &mut m).await;
        add::<ConfigMap>(ns, "cm", &mut m).await;
        add::<Secret>(ns, "secret", &mut m).await;
        add::<Job>(ns, "job", &mut m).await;
        m
    }
    // A reconcile forced by an annotation (it changes the object, not its generation) must
    // write nothing. Trailing watch events of the start-up (Deployment status) may still be
    // reconciled with real writes, so poke until one reconcile ran with nothing else moving:
    // a regression that writes on every resync never gets there.
    let mut seen = Vec::new();
    for poke in 0..10 {
        let before = versions(&ns).await;
        let writes_before = op.writes().await;
        let status_before = envs.get("dev").await.expect("get").status;
        let reconciles = op.ok_reconciles().await;
        let patch =
            json!({"metadata": {"annotations": {"test.parity.dev/poke": poke.to_string()}}});
        envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("poke");
        until("the operator to reconcile the poke", WAIT, || async {
            match op.ok_reconciles().await {
                n if n > reconciles => Ok(()),
                n => Err(n),
            }
        })
        .await;
        let after = (
            versions(&ns).await,
            op.writes().await,
            envs.get("dev").await.expect("get").status,
        );
        if after == (before.clone(), writes_before, status_before.clone()) {
            return;
        }
        seen.push((writes_before, after.1));
    }
    panic!("every resync wrote (writes before/after each poke: {seen:?})");
}

#[tokio::test]
async fn hand_edited_or_deleted_children_are_restored_at_once() {
    let (ns, _op, envs) = setup("op-drift").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;

    let services = ns.api::<Service>();
    services
        .delete("dev-kms", &DeleteParams::default())
        .await
        .expect("delete service");
    let cms = ns.api::<ConfigMap>();
    let original = cms.get("dev-topology").await.expect("cm").data;
    cms.patch(
        "dev-topology",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dev-topology"},
            "data": {"topology.yaml": "edited by hand"}
        })),
    )
    .await
    .expect("edit configmap");

    until(
        "the kms Service to be re-created",
        Duration::from_secs(15),
        || async {
            services
                .get_opt("dev-kms")
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .ok_or("missing".to_string())
        },
    )
    .await;
    until(
        "the topology ConfigMap to be restored",
        Duration::from_secs(15),
        || async {
            let now = cms
                .get("dev-topology")
                .await
                .map_err(|e| e.to_string())?
                .data;
            if now == original {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn deletion_collects_children_and_retain_keeps_the_keyring_for_the_next_environment() {
    let (ns, _op, envs) = setup("op-delete").await;
    let mut spec = local_spec();
    spec["keys"] = json!({"deletionPolicy": "Retain"});
    envs.create(&PostParams::default(), &env("dev", spec.clone()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let secrets = ns.api::<Secret>();
    let keyring_before = secrets.get("dev-keyring").await.expect("keyring").data;

    envs.delete("dev", &DeleteParams::background())
        .await
        .expect("delete");
    until("the environment to be gone", WAIT, || async {
        envs.get_opt("dev")
            .await
            .map_err(|e| e.to_string())?
            .map_or(Ok(()), |_| Err("exists".to_string()))
    })
    .await;
    let deployments = ns.api::<Deployment>();
    until("garbage collection of the Deployments", WAIT, || async {
        let n = names(&deployments).await;
        if n.is_empty() { Ok(()) } else { Err(n) }
    })
    .await;
    let kept = secrets.get("dev-keyring").await.expect("keyring retained");
    assert!(
        kept.owner_references().is_empty(),
        "retained keyring has owners"
    );
    assert_eq!(
        kept.annotations()
            .get("parity.dev/retained")
            .map(String::as_str),
        Some("true")
    );

    // A new environment of the same name adopts the same keys.
    let recreated = envs
        .create(&PostParams::default(), &env("dev", spec))
        .await
        .expect("re-create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let adopted = secrets.get("dev-keyring").await.expect("keyring");
    assert_eq!(
        adopted.data, keyring_before,
        "the re-created environment must find the same keys"
    );
    assert!(
        adopted.owner_references().is_empty(),
        "never garbage collected"
    );
    assert_eq!(
        adopted.annotations().get("parity.dev/environment-uid"),
        recreated.uid().as_ref()
    );
    assert!(!adopted.annotations().contains_key("parity.dev/retained"));
    wait_event(&ns, "KeyringAdopted").await;

    // With deletionPolicy Delete the finalizer deletes the keyring with the environment.
    let patch = json!({"spec": {"keys": {"deletionPolicy": "Delete"}}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let e = envs.get("dev").await.expect("get");
    assert_eq!(
        e.finalizers(),
        ["parity.dev/keyring"],
        "held while the keyring exists, whatever the policy"
    );
    envs.delete("dev", &DeleteParams::background())
        .await
        .expect("delete");
    until("the finalizer to delete the keyring", WAIT, || async {
        secrets
            .get_opt("dev-keyring")
            .await
            .map_err(|e| e.to_string())?
            .map_or(Ok(()), |_| Err("exists".to_string()))
    })
    .await;
    wait_event(&ns, "KeyringDeleted").await;
}

#[tokio::test]
async fn a_ci_environment_expires_after_its_ttl() {
    let (ns, _op, envs) = setup("op-ttl").await;
    let secrets = ns.api::<Secret>();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "seed", "labels": {"parity.dev/seed": "true"}}, "stringData": {"seed": "a-ci-seed-of-enough-length"}
            }))
            .expect("secret"),
        )
        .await
        .expect("seed secret");
    let spec = json!({
        "tier": "CI", "parityLevel": 1, "ttl": "15s",
        "dynamodb": {"tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]},
        "keys": {"local": {"source": "Seeded", "seedSecretRef": {"name": "seed", "key": "seed"}}}
    });
    envs.create(&PostParams::default(), &env("ci", spec))
        .await
        .expect("create");
    let e = wait_condition(&envs, "ci", "Ready", "True").await;
    assert!(
        e.status
            .as_ref()
            .and_then(|s| s.expires_at.clone())
            .is_some(),
        "status.expiresAt is set"
    );
    until(
        "the expired environment to be deleted",
        Duration::from_secs(60),
        || async {
            envs.get_opt("ci")
                .await
                .map_err(|e| e.to_string())?
                .map_or(Ok(()), |_| Err("still exists".to_string()))
        },
    )
    .await;
}

#[tokio::test]
async fn seeded_keys_are_identical_in_two_namespaces() {
    let mut keyrings = Vec::new();
    for prefix in ["op-seed-a", "op-seed-b"] {
        let (ns, _op, envs) = setup(prefix).await;
        ns.api::<Secret>()
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "seed", "labels": {"parity.dev/seed": "true"}}, "stringData": {"seed": "the-same-ci-seed-in-both"}
                }))
                .expect("secret"),
            )
            .await
            .expect("seed secret");
        let spec = json!({"tier": "CI", "parityLevel": 0,
            "keys": {"local": {"source": "Seeded", "seedSecretRef": {"name": "seed", "key": "seed"}}}});
        envs.create(&PostParams::default(), &env("ci", spec))
            .await
            .expect("create");
        wait_condition(&envs, "ci", "KeysReady", "True").await;
        let s = ns.api::<Secret>().get("ci-keyring").await.expect("keyring");
        let bytes = s
            .data
            .and_then(|d| d.get("keyring.json").cloned())
            .expect("keyring.json")
            .0;
        keyrings.push(
            parity_operator::crypto::keyring::Keyring::from_json(&bytes).expect("parse keyring"),
        );
    }
    assert!(
        keyrings[0].same_material(&keyrings[1]),
        "same seed must give the same key material"
    );
    assert_eq!(keyrings[0].key_id(), keyrings[1].key_id());
}

#[tokio::test]
async fn suspend_scales_to_zero_and_keeps_keys_then_resumes() {
    let (ns, _op, envs) = setup("op-suspend").await;
    // DynamoDB Local on a volume: its claim holds the tables' data.
    let mut spec = local_spec();
    spec["dynamodb"]["engine"] = json!("DynamoDBLocal");
    spec["dynamodb"]["persistence"] = json!({"mode": "Volume"});
    envs.create(&PostParams::default(), &env("dev", spec))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let pvcs = ns.api::<PersistentVolumeClaim>();
    let claim_uid = |pvc: PersistentVolumeClaim| pvc.metadata.uid;
    let claim = claim_uid(
        pvcs.get("dev-dynamodb-data")
            .await
            .expect("the volume claim"),
    );
    let keyring = ns
        .api::<Secret>()
        .get("dev-keyring")
        .await
        .expect("keyring")
        .data;

    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .expect("suspend");
    let e = wait_condition(&envs, "dev", "Ready", "False").await;
    assert_eq!(
        condition(&e, "Ready").map(|c| c.1),
        Some("Suspended".into())
    );
    for d in ns
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        assert_eq!(
            d.spec.replicas,
            Some(0),
            "{} still has replicas",
            d.name_any()
        );
    }
    assert_eq!(
        ns.api::<Secret>()
            .get("dev-keyring")
            .await
            .expect("keyring")
            .data,
        keyring
    );
    assert_eq!(
        claim_uid(
            pvcs.get("dev-dynamodb-data")
                .await
                .expect("the claim stays while suspended")
        ),
        claim
    );

    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .expect("resume");
    wait_condition(&envs, "dev", "Ready", "True").await;
    assert_eq!(
        claim_uid(
            pvcs.get("dev-dynamodb-data")
                .await
                .expect("the same claim after resume")
        ),
        claim
    );
}

/// Removes every CEL rule whose message contains `message` from a CRD; returns how many.
fn drop_rules(v: &mut Value, message: &str) -> usize {
    let mut n = 0;
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get_mut("x-kubernetes-validations") {
                let before = rules.len();
                rules.retain(|r| !r["message"].as_str().is_some_and(|t| t.contains(message)));
                n += before - rules.len();
            }
            for child in m.values_mut() {
                n += drop_rules(child, message);
            }
        }
        Value::Array(items) => {
            for child in items {
                n += drop_rules(child, message);
            }
        }
        _ => {}
    }
    n
}

#[tokio::test]
async fn an_invalid_spec_becomes_a_condition_and_a_warning_event() {
    let (ns, _op, envs) = setup("op-invalid").await;
    // Admission refuses a ttl of 0s; an environment stored before that rule existed (the
    // rule came with an upgrade) reaches the operator, whose validation refuses it too. The
    // CRD is served without the rule while the object is created, then restored.
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let name = "parityenvironments.parity.dev";
    let mut crd = serde_json::to_value(crds.get(name).await.expect("crd")).expect("json");
    let dropped = drop_rules(&mut crd, "spec.ttl must be longer than 0s");
    assert!(dropped > 0, "the CRD has no ttl rule to drop");
    crds.replace(
        name,
        &PostParams::default(),
        &serde_json::from_value(crd).expect("crd"),
    )
    .await
    .expect("replace crd");
    let spec = json!({"tier": "CI", "parityLevel": 0, "ttl": "0s"});
    until(
        "the API server to serve the CRD without the rule",
        WAIT,
        || async {
            envs.create(&PostParams::default(), &env("ci", spec.clone()))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    support::crd::install_crd(&ns.client).await;
    let e = wait_condition(&envs, "ci", "Degraded", "True").await;
    assert_eq!(
        condition(&e, "Ready").map(|c| c.1),
        Some("InvalidSpec".into())
    );
    assert!(
        ready_message(&e).contains("spec.ttl"),
        "{}",
        ready_message(&e)
    );
    wait_warning(&ns, "InvalidSpec").await;
    assert!(
        names(&ns.api::<Deployment>()).await.is_empty(),
        "nothing is built from an invalid spec"
    );

    // Fixing the spec recovers.
    envs.patch(
        "ci",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"ttl": "1h"}})),
    )
    .await
    .expect("fix");
    wait_condition(&envs, "ci", "Ready", "True").await;
}

#[tokio::test]
async fn a_seed_secret_is_used_only_once_its_owner_opts_in() {
    let (ns, _op, envs) = setup("op-seedless").await;
    let spec = json!({"tier": "CI", "parityLevel": 0,
        "keys": {"local": {"source": "Seeded", "seedSecretRef": {"name": "seed", "key": "seed"}}}});
    envs.create(&PostParams::default(), &env("ci", spec))
        .await
        .expect("create");
    let e = wait_condition(&envs, "ci", "KeysReady", "False").await;
    assert_eq!(
        condition(&e, "KeysReady").map(|c| c.1),
        Some("KeyringUnavailable".into())
    );
    let missing = ready_message(&e);
    assert!(
        missing.contains("spec.keys.local.seedSecretRef") && missing.contains("parity.dev/seed"),
        "{missing}"
    );
    wait_warning(&ns, "KeyringUnavailable").await;

    // A Secret whose owner did not opt in is not read, and status does not tell it apart
    // from a missing one (no existence hint for whoever may only create environments).
    let secrets = ns.api::<Secret>();
    let canary = "seed-canary-value-0123456789";
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "seed"}, "stringData": {"seed": canary}
            }))
            .expect("secret"),
        )
        .await
        .expect("seed secret");
    // A spec edit makes the operator look again; the condition then carries its generation.
    envs.patch(
        "ci",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"keys": {"rotation": {"retainVersions": 4}}}})),
    )
    .await
    .expect("edit");
    let e = wait_condition(&envs, "ci", "KeysReady", "False").await;
    assert_eq!(ready_message(&e), missing);
    assert!(
        ns.api::<Secret>()
            .get_opt("ci-keyring")
            .await
            .expect("get")
            .is_none(),
        "no keyring from an unlabelled seed"
    );

    secrets
        .patch(
            "seed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"parity.dev/seed": "true"}}})),
        )
        .await
        .expect("label");
    wait_condition(&envs, "ci", "Ready", "True").await;
    let all = serde_json::to_string(&envs.get("ci").await.expect("get")).expect("json");
    assert!(!all.contains(canary));
}

async fn wait_tracked(op: &Operator, want: f64) {
    let what = format!("parity_operator_tracked_environments {want}");
    until(&what, WAIT, || async {
        match op.metric("parity_operator_tracked_environments").await {
            Some(v) if v == want => Ok(()),
            other => Err(other),
        }
    })
    .await
}

#[tokio::test]
async fn deleted_environments_leave_nothing_behind_in_the_operators_memory() {
    let (_ns, op, envs) = setup("op-forget").await;
    for i in 0..3 {
        envs.create(
            &PostParams::default(),
            &env(&format!("env{i}"), local_spec()),
        )
        .await
        .expect("create");
    }
    for i in 0..3 {
        wait_condition(&envs, &format!("env{i}"), "Ready", "True").await;
    }
    wait_tracked(&op, 3.0).await;
    for i in 0..3 {
        envs.delete(&format!("env{i}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    until("the environments to be gone", WAIT, || async {
        match names(&envs).await.len() {
            0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    wait_tracked(&op, 0.0).await;
}

#[tokio::test]
async fn a_killed_operator_restarts_and_converges_without_duplicates() {
    let (ns, mut op, envs) = setup("op-crash").await;
    for i in 0..4 {
        envs.create(
            &PostParams::default(),
            &env(&format!("env{i}"), local_spec()),
        )
        .await
        .expect("create");
    }
    // Kill it while it is still reconciling: some keyrings made, not every environment Ready.
    let secrets = ns.api::<Secret>();
    let made: Vec<Secret> = until("a first keyring", WAIT, || async {
        let list = secrets
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let keyrings: Vec<Secret> = list
            .items
            .into_iter()
            .filter(|s| s.name_any().ends_with("-keyring"))
            .collect();
        if keyrings.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(keyrings)
        }
    })
    .await;
    op.kill();
    let op2 = Operator::start(&ns.name, "op-crash-b", None);
    for i in 0..4 {
        wait_condition(&envs, &format!("env{i}"), "Ready", "True").await;
    }
    assert_eq!(
        names(&ns.api::<Deployment>()).await.len(),
        12,
        "3 deployments per environment"
    );
    assert_eq!(
        names(&ns.api::<Job>()).await.len(),
        4,
        "one bootstrap job per environment"
    );
    let keyrings: Vec<String> = names(&ns.api::<Secret>())
        .await
        .into_iter()
        .filter(|n| n.ends_with("-keyring"))
        .collect();
    assert_eq!(keyrings.len(), 4);
    // A keyring made before the crash is the one in use after it: never made again.
    for before in made {
        let after = secrets.get(&before.name_any()).await.expect("keyring");
        assert_eq!(
            after.metadata.uid,
            before.metadata.uid,
            "{}",
            before.name_any()
        );
        assert_eq!(after.data, before.data, "{}", before.name_any());
    }
    assert!(op2.logs().contains("became leader"));
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() {
    let (ns, mut a, envs) = setup("op-leader").await;
    a.wait_ready().await;
    let leases: Api<Lease> = ns.api();
    let holder = until("a leader lease", WAIT, || async {
        let l = leases
            .get_opt("parity-operator-leader")
            .await
            .map_err(|e| e.to_string())?;
        l.and_then(|l| l.spec?.holder_identity)
            .ok_or("no holder".to_string())
    })
    .await;
    assert_eq!(holder, a.identity);
    let b = Operator::start(&ns.name, "op-leader-b", None);
    b.wait_ready().await;
    // Two renewals by the first replica while the second runs: the second still follows.
    let renew_time = || async {
        leases
            .get("parity-operator-leader")
            .await
            .ok()
            .and_then(|l| l.spec?.renew_time)
    };
    let mut last = renew_time().await;
    for _ in 0..2 {
        last = until("the leader to renew its lease", WAIT, || async {
            match renew_time().await {
                t if t != last => Ok(t),
                t => Err(t),
            }
        })
        .await;
    }
    assert_eq!(
        b.leading().await,
        Some(false),
        "the second replica must not lead while the first renews"
    );
    assert!(!b.logs().contains("became leader"));

    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    assert!(!b.logs().contains("applied"), "only the leader writes");

    a.kill();
    until(
        "the second replica to take over after the lease expires",
        Duration::from_secs(45),
        || async {
            let l = leases
                .get("parity-operator-leader")
                .await
                .map_err(|e| e.to_string())?;
            let h = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
            if h == b.identity { Ok(()) } else { Err(h) }
        },
    )
    .await;
}

#[tokio::test]
async fn key_material_never_appears_in_logs_events_status_or_metrics() {
    let (ns, op, envs) = setup("op-canary").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    let secret = ns
        .api::<Secret>()
        .get("dev-keyring")
        .await
        .expect("keyring");
    let json: Value = serde_json::from_slice(
        &secret
            .data
            .and_then(|d| d.get("keyring.json").cloned())
            .expect("data")
            .0,
    )
    .expect("json");

    // The root and every version's material, as stored (base64) and as hex.
    let mut canaries: Vec<String> = Vec::new();
    let b64 = std::iter::once(&json["root"]).chain(
        json["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| &v["material"]),
    );
    for m in b64.filter_map(Value::as_str) {
        canaries.push(m.to_string());
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(m)
            .expect("base64 material");
        canaries.push(hex::encode(&raw));
    }
    assert!(
        !canaries.is_empty(),
        "the keyring holds material to search for"
    );

    let env_json = serde_json::to_string(&envs.get("dev").await.expect("get")).expect("json");
    let events = serde_json::to_string(
        &ns.api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    let (_, metrics) = op.get("/metrics").await.expect("metrics");
    let logs = op.logs();
    for c in &canaries {
        for (what, text) in [
            ("status", &env_json),
            ("events", &events),
            ("metrics", &metrics),
            ("logs", &logs),
        ] {
            assert!(!text.contains(c.as_str()), "key material found in {what}");
        }
    }
}

fn example_schema() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/secrets.schema.json"
    ))
    .expect("schema");
    serde_json::from_str(&text).expect("schema json")
}

/// Creates or replaces the ConfigMap `name` holding `schema` under `key`.
async fn put_schema(ns: &TestNamespace, name: &str, key: &str, schema: &Value) {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {key: schema.to_string()}
    });
    ns.api::<ConfigMap>()
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("schema configmap");
}

#[tokio::test]
async fn local_secrets_are_generated_once_from_the_schema_and_never_leak() {
    let (ns, op, envs) = setup("op-secrets").await;
    put_schema(
        &ns,
        "app-secrets-schema",
        "secrets.schema.json",
        &example_schema(),
    )
    .await;
    let mut spec = local_spec();
    spec["secrets"] = json!({"provider": "Local", "schema": {"name": "app-secrets-schema", "key": "secrets.schema.json"}});
    envs.create(&PostParams::default(), &env("dev", spec))
        .await
        .expect("create");
    let e = wait_condition(&envs, "dev", "SecretsReady", "True").await;
    wait_condition(&envs, "dev", "Ready", "True").await;

    let secrets = ns.api::<Secret>();
    let first = secrets
        .get("dev-secrets")
        .await
        .expect("dev-secrets")
        .data
        .expect("data");
    assert!(
        first.contains_key("SESSION_SIGNING_KEY"),
        "keys: {:?}",
        first.keys().collect::<Vec<_>>()
    );

    // A spec change re-reconciles; generated values are kept (created once).
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"parityLevel": 1}})),
    )
    .await
    .expect("patch");
    wait_condition(&envs, "dev", "Ready", "True").await;
    assert_eq!(
        secrets
            .get("dev-secrets")
            .await
            .expect("secret")
            .data
            .expect("data")
            .get("SESSION_SIGNING_KEY"),
        first.get("SESSION_SIGNING_KEY")
    );

    // Canary: no generated value appears in status, events or the operator's log.
    let status = serde_json::to_string(&e.status).expect("json");
    let events = serde_json::to_string(
        &ns.api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    let logs = op.logs();
    for (k, v) in &first {
        let value = String::from_utf8_lossy(&v.0).to_string();
        // Endpoint URLs and short fixed settings are not secret: they are built from the
        // status's own endpoints or declared in the schema.
        if value.len() < 12 || value.starts_with("http://") || value.starts_with("https://") {
            continue;
        }
        for (what, text) in [("status", &status), ("events", &events), ("logs", &logs)] {
            assert!(!text.contains(&value), "secret {k} leaked into {what}");
        }
    }
}

#[tokio::test]
async fn staging_secrets_come_from_an_infisical_secret() {
    let (ns, _op, envs) = setup("op-infisical").await;
    let crd = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/infisical-crd.yaml"
    ))
    .expect("fixture");
    let out = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(crd.as_bytes())?;
            c.wait()
        })
        .expect("kubectl apply fixture CRD");
    assert!(out.success());
    put_schema(&ns, "schema", "s.json", &example_schema()).await;
    let spec = json!({
        "tier": "Staging", "parityLevel": 0,
        "keys": {"provider": "Kms", "kms": {"keyId": "alias/app", "region": "eu-west-1"}},
        "secrets": {"provider": "Infisical", "schema": {"name": "schema", "key": "s.json"},
                    "infisical": {"projectSlug": "app", "envSlug": "staging", "secretsPath": "/"}}
    });
    envs.create(&PostParams::default(), &env("stage", spec))
        .await
        .expect("create");
    let e = wait_condition(&envs, "stage", "SecretsReady", "False").await;
    assert_eq!(
        condition(&e, "SecretsReady").map(|c| c.1),
        Some("WaitingForSync".into())
    );
    let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "secrets.infisical.com",
        "v1alpha1",
        "InfisicalSecret",
    ));
    let objs: Api<kube::core::DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let obj = objs
        .get("stage-secrets")
        .await
        .expect("InfisicalSecret stage-secrets");
    assert!(
        obj.owner_references()
            .iter()
            .any(|o| o.kind == "ParityEnvironment")
    );
}

#[tokio::test]
async fn an_object_the_api_server_refuses_is_reported_and_retried() {
    let (ns, _op, envs) = setup("op-quota").await;
    // A quota of zero Services: applying the kms Service is refused by admission.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = ns.api();
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "no-services"}, "spec": {"hard": {"services": "0"}}
            }))
            .expect("quota"),
        )
        .await
        .expect("create quota");
    envs.create(
        &PostParams::default(),
        &env("dev", json!({"tier": "Local", "parityLevel": 0})),
    )
    .await
    .expect("create");
    let e = wait_condition(&envs, "dev", "Degraded", "True").await;
    assert_eq!(
        condition(&e, "Degraded").map(|c| c.1),
        Some("ApplyFailed".into())
    );
    assert!(
        ready_message(&e).contains("Service dev-kms"),
        "{}",
        ready_message(&e)
    );
    wait_warning(&ns, "ApplyFailed").await;

    quotas
        .delete("no-services", &DeleteParams::default())
        .await
        .expect("delete quota");
    wait_condition(&envs, "dev", "Ready", "True").await;
}

fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

/// Waits until Deployment `name`'s pod template carries a secrets hash `accept` takes.
async fn wait_hash(
    deployments: &Api<Deployment>,
    name: &str,
    accept: impl Fn(&str) -> bool,
) -> String {
    until(&format!("{name}'s secrets hash"), WAIT, || async {
        let d = deployments.get(name).await.map_err(|e| e.to_string())?;
        match template_annotation(&d, "parity.dev/secrets-hash") {
            Some(h) if accept(&h) => Ok(h),
            other => Err(format!("hash {other:?}")),
        }
    })
    .await
}

fn app_deployment(name: &str, labels: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "app", "image": "example.com/app:1",
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}}]
                }
            }
        }
    }))
    .expect("deployment")
}

#[tokio::test]
async fn level_3_serves_secrets_over_infisical_api_and_readers_roll_when_they_change() {
    const HASH: &str = "parity.dev/secrets-hash";
    let (ns, _op, envs) = setup("op-roll").await;
    let mut schema = example_schema();
    put_schema(&ns, "schema", "s.json", &schema).await;
    let deployments = ns.api::<Deployment>();
    // An app that opted in to rolling, and one that did not.
    for (name, labels) in [
        ("app", json!({"parity.dev/secrets-from": "dev"})),
        ("other", json!({})),
    ] {
        deployments
            .create(&PostParams::default(), &app_deployment(name, labels))
            .await
            .expect("app deployment");
    }
    let mut spec = local_spec();
    spec["parityLevel"] = json!(3);
    spec["secrets"] = json!({"provider": "Local", "schema": {"name": "schema", "key": "s.json"},
        "infisical": {"projectSlug": "shop", "envSlug": "dev", "secretsPath": "/"}});
    envs.create(&PostParams::default(), &env("dev", spec))
        .await
        .expect("create");
    let e = wait_condition(&envs, "dev", "Ready", "True").await;

    // The Infisical-compatible endpoint runs, is published, and has its own credentials.
    let endpoints = &e.status.as_ref().expect("status").endpoints;
    assert_eq!(
        endpoints.secrets.as_deref(),
        Some(format!("http://dev-secrets-api.{}.svc:8095", ns.name).as_str())
    );
    let api = deployments
        .get("dev-secrets-api")
        .await
        .expect("secrets-api");
    assert_eq!(
        api.owner_references().first().map(|o| o.name.as_str()),
        Some("dev")
    );
    let creds = ns
        .api::<Secret>()
        .get("dev-secrets-api-credentials")
        .await
        .expect("credentials")
        .data
        .expect("data");
    assert_eq!(creds["client-id"].0, b"parity-dev");
    assert_eq!(creds["client-secret"].0.len(), 64);

    // Its pod template and the opted-in app's carry the same keyed hash; the other app none.
    let first = template_annotation(&api, HASH).expect("secrets-api hash");
    assert!(
        first.starts_with("hmac-sha256:") && first.len() == "hmac-sha256:".len() + 64,
        "{first}"
    );
    wait_hash(&deployments, "app", |h| h == first).await;
    let other = deployments.get("other").await.expect("other");
    assert_eq!(template_annotation(&other, HASH), None);

    // A schema change (a new secret) reaches the Secret and rolls both readers at once: the
    // ConfigMap is watched, not waited for at the next resync.
    schema["properties"]["EXTRA_TOKEN"] = json!({
        "type": "string", "minLength": 32, "maxLength": 32,
        "x-parity-generate": {"kind": "alphanumeric", "length": 32}
    });
    put_schema(&ns, "schema", "s.json", &schema).await;
    let second = wait_hash(&deployments, "dev-secrets-api", |h| h != first).await;
    let data = ns
        .api::<Secret>()
        .get("dev-secrets")
        .await
        .expect("dev-secrets")
        .data
        .expect("data");
    assert_eq!(data["EXTRA_TOKEN"].0.len(), 32);
    wait_hash(&deployments, "app", |h| h == second).await;
    // The app's other fields are untouched, and the operator owns only that annotation.
    let app = deployments.get("app").await.expect("app");
    assert_eq!(
        app.spec
            .template
            .spec
            .as_ref()
            .map(|p| p.containers[0].image.clone()),
        Some(Some("example.com/app:1".to_string()))
    );
    let ours = app
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("parity-operator"))
        .and_then(|m| m.fields_v1.as_ref())
        .map(|f| f.0.to_string())
        .expect("parity-operator field entry");
    assert!(
        ours.contains(HASH) && !ours.contains("containers"),
        "{ours}"
    );
    assert_eq!(
        deployments
            .get("other")
            .await
            .expect("other")
            .resource_version(),
        other.resource_version()
    );

    // Rotation by hand: delete a value; the operator generates a new one and readers roll.
    let old_password = data["ADMIN_PASSWORD"].0.clone();
    ns.api::<Secret>()
        .patch(
            "dev-secrets",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"ADMIN_PASSWORD": null}})),
        )
        .await
        .expect("delete a secret value");
    let third = wait_hash(&deployments, "dev-secrets-api", |h| h != second).await;
    let rotated = ns
        .api::<Secret>()
        .get("dev-secrets")
        .await
        .expect("dev-secrets")
        .data
        .expect("data");
    assert_ne!(rotated["ADMIN_PASSWORD"].0, old_password);
    assert_eq!(rotated["EXTRA_TOKEN"].0, data["EXTRA_TOKEN"].0);
    wait_hash(&deployments, "app", |h| h == third).await;
}

fn staging_with_topology(gsi_key: &str) -> Value {
    json!({
        "tier": "Staging", "parityLevel": 1,
        "keys": {"provider": "Kms", "kms": {"keyId": "alias/app", "region": "eu-west-1"}},
        "dynamodb": {"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1"}},
        "topology": {
            "tables": [{
                "name": "orders", "partitionKey": {"name": "pk", "type": "S"},
                "billingMode": "PROVISIONED",
                "provisionedThroughput": {"readCapacityUnits": 50, "writeCapacityUnits": 20},
                "globalSecondaryIndexes": [{
                    "name": "byCustomer", "partitionKey": {"name": gsi_key, "type": "S"},
                    "provisionedThroughput": {"readCapacityUnits": 5, "writeCapacityUnits": 5}
                }],
                "ttlAttribute": "expiresAt"
            }],
            "kmsKeyAliases": ["alias/orders"]
        }
    })
}

#[tokio::test]
async fn mirrors_copy_staging_tables_and_in_sync_flips_on_drift() {
    let (ns, _op, envs) = setup("op-mirror").await;
    envs.create(
        &PostParams::default(),
        &env("staging", staging_with_topology("customerId")),
    )
    .await
    .expect("staging");
    // `copy` declares no tables: it runs staging's, with its overrides.
    let copy = json!({
        "tier": "Local", "parityLevel": 1,
        "mirror": {"from": {"name": "staging"},
                   "overrides": {"billingMode": "PAY_PER_REQUEST", "tableNamePrefix": "dev-"}}
    });
    // `pinned` declares its own copy of today's staging and is told when staging moves on.
    let pinned = json!({
        "tier": "CI", "parityLevel": 1,
        "mirror": {"from": {"name": "staging"}},
        "topology": staging_with_topology("customerId")["topology"].clone()
    });
    for (name, spec) in [("copy", copy), ("pinned", pinned)] {
        envs.create(&PostParams::default(), &env(name, spec))
            .await
            .expect("mirror");
    }
    let e = wait_condition(&envs, "copy", "InSync", "True").await;
    assert_eq!(
        condition(&e, "InSync").map(|c| c.1),
        Some("Mirrored".into())
    );
    wait_condition(&envs, "copy", "Ready", "True").await;
    let e = wait_condition(&envs, "pinned", "InSync", "True").await;
    assert_eq!(condition(&e, "InSync").map(|c| c.1), Some("InSync".into()));

    // The copy's ConfigMap (what its bootstrap Job creates) holds staging's tables, resolved.
    let topology_of = |name: &'static str| {
        let cms = ns.api::<ConfigMap>();
        async move {
            let cm = cms
                .get(&format!("{name}-topology"))
                .await
                .expect("topology cm");
            let text = cm.data.expect("data")["topology.yaml"].clone();
            parity_operator::dynamo::topology::Topology::from_yaml_str(&text).expect("topology")
        }
    };
    let t = topology_of("copy").await;
    assert_eq!(t.tables.len(), 1);
    let orders = &t.tables[0];
    assert_eq!(orders.name, "dev-orders");
    assert_eq!(orders.provisioned_throughput, None);
    assert_eq!(orders.ttl_attribute.as_deref(), Some("expiresAt"));
    assert_eq!(
        orders.global_secondary_indexes[0].partition_key.name,
        "customerId"
    );
    assert!(t.kms_key_aliases.contains(&"alias/orders".to_string()));

    // Staging changes its index: the copy follows, the pinned one reports exactly that.
    envs.patch(
        "staging",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": staging_with_topology("accountId")})),
    )
    .await
    .expect("patch staging");
    let e = wait_condition(&envs, "pinned", "InSync", "False").await;
    let status = e.status.expect("status");
    assert_eq!(status.drift.len(), 1, "{:?}", status.drift);
    assert_eq!(
        status.drift[0].path,
        "tables[orders].globalSecondaryIndexes[byCustomer].partitionKey"
    );
    assert_eq!(status.drift[0].expected.as_deref(), Some("accountId (S)"));
    assert_eq!(status.drift[0].actual.as_deref(), Some("customerId (S)"));
    // Drift is reported, not fatal: the pinned environment stays Ready.
    assert_eq!(
        condition(&envs.get("pinned").await.expect("get"), "Ready").map(|c| c.0),
        Some("True".into())
    );
    until("the copy follows staging", WAIT, || async {
        let t = topology_of("copy").await;
        let key = t.tables[0].global_secondary_indexes[0]
            .partition_key
            .name
            .clone();
        if key == "accountId" { Ok(()) } else { Err(key) }
    })
    .await;

    // Deleting the source makes mirroring impossible: said in status, nothing removed.
    envs.delete("staging", &DeleteParams::default())
        .await
        .expect("delete staging");
    let e = wait_condition(&envs, "copy", "InSync", "False").await;
    let (_, reason, _) = condition(&e, "InSync").expect("InSync");
    assert_eq!(reason, "MirrorUnavailable");
    assert!(
        ready_message(&e).contains("spec.mirror.from"),
        "{}",
        ready_message(&e)
    );
    assert_eq!(topology_of("copy").await.tables[0].name, "dev-orders");
}
