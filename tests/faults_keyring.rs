//! A keyring Secret damaged under a running environment: edited to invalid JSON, or replaced
//! by a Secret parity-operator did not make. Each gives KeysReady=False and Degraded with the
//! reason KeyringUnavailable naming the keyring, a Warning event, and the Secret stays exactly
//! as the user left it, through later reconciles too. (Deleted by hand:
//! tests/operator_keyring.rs, `a_keyring_deleted_by_hand_is_not_regenerated_...`.)

mod support;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::penv::*;
use support::wait::until;

const GARBAGE: &str = "{\"format\": 1, \"keyId\": \"half-edited";

fn reason_and_message(e: &ParityEnvironment, t: &str) -> (String, String) {
    e.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// KeysReady=False and Degraded, both KeyringUnavailable, at the current generation; the
/// KeysReady message.
async fn wait_keyring_unavailable(envs: &Api<ParityEnvironment>) -> String {
    let e = wait_condition(envs, "dev", "KeysReady", "False").await;
    let (reason, message) = reason_and_message(&e, "KeysReady");
    assert_eq!(reason, "KeyringUnavailable", "{message}");
    assert_eq!(reason_and_message(&e, "Degraded").0, "KeyringUnavailable");
    assert!(
        message.contains("dev-keyring"),
        "names the keyring: {message}"
    );
    message
}

/// A spec change, so one more reconcile runs to completion over the damaged keyring.
async fn reconcile_again(envs: &Api<ParityEnvironment>) {
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"dynamodb": {"tables": [
            {"name": "orders", "partitionKey": {"name": "id", "type": "S"}},
            {"name": "later", "partitionKey": {"name": "id", "type": "S"}}
        ]}}})),
    )
    .await
    .expect("patch");
    wait_keyring_unavailable(envs).await;
}

async fn ready_env(
    prefix: &str,
) -> (
    support::kube_env::TestNamespace,
    support::operator::Operator,
    Api<ParityEnvironment>,
) {
    let (ns, op, envs) = setup(prefix).await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    (ns, op, envs)
}

#[tokio::test]
async fn a_keyring_edited_to_invalid_json_is_reported_and_left_as_the_user_left_it() {
    let (ns, _op, envs) = ready_env("flt-kr-json").await;
    let secrets: Api<Secret> = ns.api();
    let edited = secrets
        .patch(
            "dev-keyring",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"keyring.json": ByteString(GARBAGE.into())}})),
        )
        .await
        .expect("edit the keyring");

    let message = wait_keyring_unavailable(&envs).await;
    assert!(message.contains("not a usable keyring"), "{message}");
    assert!(
        message.contains("restore it"),
        "says the way out: {message}"
    );
    assert!(
        !message.contains("half-edited"),
        "the message echoes the Secret's bytes: {message}"
    );
    let event = wait_warning(&ns, "KeyringUnavailable").await;
    assert!(
        !event.note.unwrap_or_default().contains("half-edited"),
        "the event echoes the Secret's bytes"
    );

    reconcile_again(&envs).await;
    let now = secrets.get("dev-keyring").await.expect("keyring");
    assert_eq!(now.data, edited.data, "the edited keyring was overwritten");
    assert_eq!(now.resource_version(), edited.resource_version());
}

#[tokio::test]
async fn a_keyring_replaced_by_a_foreign_secret_is_refused_and_left_untouched() {
    let (ns, _op, envs) = ready_env("flt-kr-foreign").await;
    let secrets: Api<Secret> = ns.api();
    secrets
        .delete("dev-keyring", &DeleteParams::default())
        .await
        .expect("delete");
    // Until the operator notices, it may report the deletion; the stranger arrives at once.
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("dev-keyring".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "keyring.json".to_string(),
            ByteString(b"{\"someone\": \"else\"}".to_vec()),
        )])),
        ..Default::default()
    };
    let created = until("the foreign Secret created", WAIT, || async {
        secrets
            .create(&PostParams::default(), &foreign)
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    let message = until("the stranger named in KeysReady", WAIT, || async {
        let e = envs.get("dev").await.map_err(|e| e.to_string())?;
        match reason_and_message(&e, "KeysReady") {
            (r, m) if r == "KeyringUnavailable" && m.contains("not made by parity-operator") => {
                Ok(m)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(message.contains("dev-keyring"), "{message}");
    wait_warning(&ns, "KeyringUnavailable").await;

    reconcile_again(&envs).await;
    let now = secrets.get("dev-keyring").await.expect("keyring");
    assert_eq!(now.uid(), created.uid(), "the foreign Secret was replaced");
    assert_eq!(now.data, foreign.data, "the foreign Secret was written");
    assert!(now.owner_references().is_empty() && now.labels().is_empty());
}
