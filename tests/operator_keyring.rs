//! Keyring safety on the real control plane: no deletion path loses a keyring (a foreground
//! deletion while the operator is stopped included), a keyring deleted by hand is not silently
//! replaced, and Secrets the operator did not make are never used or overwritten.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::operator::Operator;
use support::penv::*;
use support::wait::until;

fn spec(policy: &str) -> serde_json::Value {
    let mut s = local_spec();
    s["keys"] = json!({"deletionPolicy": policy});
    s
}

async fn gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(what, WAIT, || async {
        api.get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .map_or(Ok(()), |_| Err("still there".to_string()))
    })
    .await;
}

fn ready_reason_and_message(e: &ParityEnvironment, t: &str) -> (String, String) {
    e.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_foreground_deletion_while_the_operator_is_stopped_keeps_every_keyring() {
    let (ns, mut op, envs) = setup("key-fg").await;
    for (name, policy) in [("keep", "Retain"), ("drop", "Delete")] {
        envs.create(&PostParams::default(), &env(name, spec(policy)))
            .await
            .expect("create");
    }
    wait_condition(&envs, "keep", "Ready", "True").await;
    wait_condition(&envs, "drop", "Ready", "True").await;
    let secrets = ns.api::<Secret>();
    let kept_data = secrets.get("keep-keyring").await.expect("keyring").data;

    op.kill();
    for name in ["keep", "drop"] {
        envs.delete(name, &DeleteParams::foreground())
            .await
            .expect("delete");
    }
    // The garbage collector removes every dependent that blocks a foreground deletion...
    let deployments = ns.api::<Deployment>();
    until(
        "the garbage collector to delete the Deployments",
        WAIT,
        || async {
            let left = names(&deployments).await;
            if left.is_empty() { Ok(()) } else { Err(left) }
        },
    )
    .await;
    // ...but no keyring is among them, and the environments wait for the operator.
    for name in ["keep-keyring", "drop-keyring"] {
        assert!(
            secrets.get_opt(name).await.expect("get").is_some(),
            "{name} was deleted with the operator stopped"
        );
    }
    assert_eq!(names(&envs).await, ["drop", "keep"]);

    // Back up, the operator applies each policy and lets the environments go.
    let _op = Operator::start(&ns.name, "key-fg-b", None);
    gone(&envs, "keep", "the Retain environment to be finalized").await;
    gone(&envs, "drop", "the Delete environment to be finalized").await;
    gone(
        &secrets,
        "drop-keyring",
        "deletionPolicy Delete to delete the keyring",
    )
    .await;
    let kept = secrets.get("keep-keyring").await.expect("retained keyring");
    assert_eq!(kept.data, kept_data, "the retained keys are unchanged");
    assert_eq!(
        kept.annotations()
            .get("parity.dev/retained")
            .map(String::as_str),
        Some("true")
    );
    wait_event(&ns, "KeyringRetained").await;
}

#[tokio::test]
async fn a_keyring_deleted_by_hand_is_not_regenerated_without_the_users_word() {
    let (ns, _op, envs) = setup("key-lost").await;
    envs.create(&PostParams::default(), &env("dev", spec("Retain")))
        .await
        .expect("create");
    let ready = wait_condition(&envs, "dev", "Ready", "True").await;
    let lost_version = ready.status.expect("status").keys.expect("keys").versions[0]
        .id
        .clone();
    let lost = lost_version.split('/').next().expect("key id").to_string();
    let secrets = ns.api::<Secret>();
    secrets
        .delete("dev-keyring", &DeleteParams::default())
        .await
        .expect("delete keyring");

    let e = wait_condition(&envs, "dev", "KeysReady", "False").await;
    let (reason, message) = ready_reason_and_message(&e, "KeysReady");
    assert_eq!(reason, "KeyringUnavailable");
    assert!(message.contains(&lost), "names the lost key: {message}");
    assert!(
        message.contains(&format!("parity.dev/replace-lost-keyring={lost}")),
        "names the way out: {message}"
    );
    assert_eq!(
        ready_reason_and_message(&e, "Degraded").0,
        "KeyringUnavailable"
    );
    wait_warning(&ns, "KeyringUnavailable").await;
    assert!(
        secrets.get_opt("dev-keyring").await.expect("get").is_none(),
        "a new root was generated without the user's word"
    );

    // The user accepts a new root for exactly that key.
    let patch = json!({"metadata": {"annotations": {"parity.dev/replace-lost-keyring": lost}}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    let e = until("a new keyring in status", WAIT, || async {
        let e = envs.get("dev").await.map_err(|e| e.to_string())?;
        let id = e
            .status
            .as_ref()
            .and_then(|s| s.keys.as_ref())
            .map(|k| k.versions[0].id.clone())
            .unwrap_or_default();
        if !id.starts_with(&lost) && condition(&e, "Ready").is_some_and(|c| c.0 == "True") {
            Ok(e)
        } else {
            Err(format!("keys {id}; Ready {:?}", condition(&e, "Ready")))
        }
    })
    .await;
    assert!(secrets.get_opt("dev-keyring").await.expect("get").is_some());
    let replaced = wait_warning(&ns, "KeyringReplaced").await;
    assert!(
        replaced.note.as_deref().unwrap_or_default().contains(&lost),
        "{replaced:?}"
    );
    assert_eq!(e.finalizers(), ["parity.dev/keyring"]);
}

#[tokio::test]
async fn secrets_parity_operator_did_not_make_are_never_used_or_overwritten() {
    let (ns, _op, envs) = setup("key-foreign").await;
    let secrets = ns.api::<Secret>();
    let foreign = |name: &str, data: &[(&str, &str)]| -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    };
    let keyring = foreign(
        "dev-keyring",
        &[("keyring.json", "{\"someone\": \"else\"}")],
    );
    let credentials = foreign(
        "dev-kms-credentials",
        &[
            ("access-key-id", "theirs"),
            ("secret-access-key", "their-secret"),
        ],
    );
    for s in [&keyring, &credentials] {
        secrets
            .create(&PostParams::default(), s)
            .await
            .expect("foreign secret");
    }
    envs.create(&PostParams::default(), &env("dev", spec("Delete")))
        .await
        .expect("create");

    // The stranger's keyring: refused, named, untouched.
    let e = wait_condition(&envs, "dev", "KeysReady", "False").await;
    let (reason, message) = ready_reason_and_message(&e, "KeysReady");
    assert_eq!(reason, "KeyringUnavailable");
    assert!(message.contains("not made by parity-operator"), "{message}");
    assert!(
        message.contains("parity.dev/adopt-existing-secrets=true"),
        "{message}"
    );
    wait_warning(&ns, "KeyringUnavailable").await;
    let after = secrets.get("dev-keyring").await.expect("keyring");
    assert_eq!(after.data, keyring.data, "the foreign keyring was written");
    assert!(after.owner_references().is_empty() && after.labels().is_empty());

    // Its owner removes it: the environment makes its own, and hits the next stranger.
    secrets
        .delete("dev-keyring", &DeleteParams::default())
        .await
        .expect("delete");
    until("SecretConflict on the kms credentials", WAIT, || async {
        let e = envs.get("dev").await.map_err(|e| e.to_string())?;
        match ready_reason_and_message(&e, "KeysReady") {
            (r, m) if r == "SecretConflict" && m.contains("dev-kms-credentials") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_warning(&ns, "SecretConflict").await;
    assert_eq!(
        secrets.get("dev-kms-credentials").await.expect("get").data,
        credentials.data
    );

    // With the explicit opt-in the environment takes it over as it is.
    let patch = json!({"metadata": {"annotations": {"parity.dev/adopt-existing-secrets": "true"}}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    let ready = wait_condition(&envs, "dev", "Ready", "True").await;
    let taken = secrets.get("dev-kms-credentials").await.expect("get");
    assert_eq!(taken.data, credentials.data, "adopted, not rewritten");
    assert_eq!(
        taken.owner_references().first().map(|o| o.uid.as_str()),
        ready.uid().as_deref()
    );
    let managed = secrets
        .list(&ListParams::default().labels("parity.dev/environment=dev"))
        .await
        .expect("list");
    assert!(
        managed
            .items
            .iter()
            .any(|s| s.name_any() == "dev-kms-credentials")
    );
}
