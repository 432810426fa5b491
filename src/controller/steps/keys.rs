//! The keys step: the keyring Secret, created once (generated, or derived from the seed
//! Secret), adopted when retained, rotated when due, and never replaced behind the user's back.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch};
use kube::runtime::events::EventType;
use serde_json::json;

use super::status::publish;
use crate::api::{KeySource, ParityEnvironment, ValidatedSpec};
use crate::controller::ownership::{self, Claim};
use crate::controller::{Context, Error, create_params, merge_params, seed_secret};
use crate::crypto::keyring::{KEYRING_SECRET_KEY, Keyring};
use crate::resources::{self, names};

/// Creates the keyring Secret once (generated, or derived from the seed Secret), adopts a
/// retained one, rotates it when the period has passed, and returns it. Never uses or
/// overwrites a keyring that is not this environment's, and never silently replaces one that
/// status says existed.
pub async fn ensure(
    env: &ParityEnvironment,
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Keyring, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let name = names::keyring(&valid.name);
    let shape = resources::keyring_secret(valid);
    let now = Timestamp::now();

    let Some(existing) = secrets.get_opt(&name).await.map_err(Error::Keys)? else {
        let replacing = lost_key(env)?;
        let keyring = new_keyring(ctx, valid, now).await?;
        let mut secret = shape;
        secret.data = Some(BTreeMap::from([(
            KEYRING_SECRET_KEY.to_string(),
            ByteString(keyring.to_json().to_vec()),
        )]));
        // A 409 (another replica won the race) fails this reconcile: the retry reads theirs.
        secrets
            .create(&create_params(), &secret)
            .await
            .map_err(Error::Keys)?;
        ctx.metrics.wrote("create");
        let (kind, reason, note) = match replacing {
            Some(lost) => (
                EventType::Warning,
                "KeyringReplaced",
                format!(
                    "created Secret {name} with a new root key {} in place of lost key {lost}: envelopes under {lost} cannot be decrypted",
                    keyring.key_id()
                ),
            ),
            None => (
                EventType::Normal,
                "KeyringCreated",
                format!(
                    "created Secret {name} with key {} version {}",
                    keyring.key_id(),
                    keyring.active_version()
                ),
            ),
        };
        publish(ctx, env, kind, reason, "CreateKeyring", note).await;
        return Ok(keyring);
    };

    let uid = env.uid().unwrap_or_default();
    let adopting = match ownership::claim(&existing.metadata, &valid.name, &uid) {
        Claim::Ours => false,
        Claim::Retained => true,
        Claim::Foreign(_) if valid.adopt_existing_secrets => true,
        Claim::Foreign(why) => {
            return Err(Error::keyring(ownership::refusal(
                "the keyring",
                &name,
                &why,
            )));
        }
    };
    let bytes = existing
        .data
        .as_ref()
        .and_then(|d| d.get(KEYRING_SECRET_KEY))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let mut keyring = Keyring::from_json(&bytes).map_err(|e| {
        Error::keyring(format!(
            "Secret {name} key {KEYRING_SECRET_KEY} is not a usable keyring ({e}); it is left untouched: restore it from a backup"
        ))
    })?;

    // Our metadata: the uid annotation, no owner reference (keyrings made by earlier versions
    // had one), no retained marker once adopted.
    let mut patch = serde_json::Map::new();
    let annotations = existing.annotations();
    let stale =
        |k: &str| shape.metadata.annotations.as_ref().and_then(|a| a.get(k)) != annotations.get(k);
    if adopting
        || !existing.owner_references().is_empty()
        || stale(resources::ANNOTATION_ENVIRONMENT_UID)
        || stale(resources::ANNOTATION_DELETION_POLICY)
    {
        let mut wanted = json!(shape.metadata.annotations);
        wanted[resources::ANNOTATION_RETAINED] = serde_json::Value::Null;
        patch.insert(
            "metadata".into(),
            json!({"ownerReferences": null, "labels": shape.metadata.labels, "annotations": wanted}),
        );
    }
    if let Some(period) = valid.rotation_period
        && keyring.rotation_due(now, period)
    {
        let retain = u32::try_from(valid.spec.keys.rotation.retain_versions)
            .unwrap_or(1)
            .max(1);
        let version = keyring.rotate(now, retain);
        patch.insert(
            "data".into(),
            json!({KEYRING_SECRET_KEY: ByteString(keyring.to_json().to_vec())}),
        );
        publish(
            ctx,
            env,
            EventType::Normal,
            "KeyRotated",
            "RotateKey",
            format!("key {} rotated to version {version}", keyring.key_id()),
        )
        .await;
    }
    if !patch.is_empty() {
        // Optimistic concurrency: a concurrent rotation makes this fail and the reconcile retry.
        patch
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert("resourceVersion".into(), json!(existing.resource_version())));
        secrets
            .patch(
                &name,
                &merge_params(),
                &Patch::Merge(serde_json::Value::Object(patch)),
            )
            .await
            .map_err(Error::Keys)?;
        ctx.metrics.wrote("patch");
    }
    if adopting {
        publish(
            ctx,
            env,
            EventType::Normal,
            "KeyringAdopted",
            "AdoptKeyring",
            format!(
                "using the existing Secret {name} with key {}",
                keyring.key_id()
            ),
        )
        .await;
    }
    Ok(keyring)
}

/// The key id status says this environment's keyring held, when that keyring is gone: a new
/// root would silently orphan every envelope under the old one, so it needs the user's word
/// (`parity.dev/replace-lost-keyring=<that key id>`). Ok(Some) is that word given.
fn lost_key(env: &ParityEnvironment) -> Result<Option<String>, Error> {
    let Some(lost) = env
        .status
        .as_ref()
        .and_then(|s| s.keys.as_ref())
        .and_then(|k| k.versions.first())
        .and_then(|v| v.id.split('/').next())
        .filter(|id| !id.is_empty())
    else {
        return Ok(None);
    };
    let accepted = env
        .annotations()
        .get(resources::ANNOTATION_REPLACE_LOST_KEYRING)
        .is_some_and(|v| v == lost);
    if accepted {
        return Ok(Some(lost.to_string()));
    }
    Err(Error::keyring(format!(
        "Secret {} holding key {lost} (status.keys) is gone and is not regenerated: restore it from a backup, \
         or annotate the environment {}={lost} to start over with a new root key \
         (data encrypted under {lost} stays undecryptable)",
        names::keyring(&env.name_any()),
        resources::ANNOTATION_REPLACE_LOST_KEYRING
    )))
}

async fn new_keyring(
    ctx: &Context,
    valid: &ValidatedSpec,
    now: Timestamp,
) -> Result<Keyring, Error> {
    match valid.spec.keys.local.source {
        KeySource::Generated => Ok(Keyring::generate(now)),
        KeySource::Seeded => {
            let seed_ref = valid
                .spec
                .keys
                .local
                .seed_secret_ref
                .as_ref()
                .ok_or_else(|| {
                    Error::keyring("spec.keys.local.seedSecretRef is required for source Seeded")
                })?;
            let seed = seed_secret::read(ctx, &valid.namespace, seed_ref).await?;
            Keyring::seeded(&seed, now)
                .map_err(|e| Error::keyring(format!("spec.keys.local.seedSecretRef: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::api::{KeyVersionState, KeyVersionStatus, KeysStatus, ParityEnvironmentStatus};

    use super::*;

    fn env_with(keys: Option<&str>, annotation: Option<&str>) -> ParityEnvironment {
        let mut e: ParityEnvironment = serde_json::from_value(json!({
            "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
            "metadata": {"name": "dev", "namespace": "ns"}, "spec": {"tier": "Local"}
        }))
        .expect("environment");
        if let Some(a) = annotation {
            e.metadata.annotations = Some(BTreeMap::from([(
                resources::ANNOTATION_REPLACE_LOST_KEYRING.to_string(),
                a.to_string(),
            )]));
        }
        if let Some(id) = keys {
            e.status = Some(ParityEnvironmentStatus {
                keys: Some(KeysStatus {
                    versions: vec![KeyVersionStatus {
                        id: format!("{id}/1"),
                        created: Time(Timestamp::UNIX_EPOCH),
                        state: KeyVersionState::Active,
                    }],
                }),
                ..Default::default()
            });
        }
        e
    }

    #[test]
    fn a_lost_keyring_is_replaced_only_for_the_key_the_user_named() {
        // Never had one: a first keyring needs no word.
        assert!(matches!(lost_key(&env_with(None, None)), Ok(None)));
        // Had one: refused, naming the key and the annotation.
        match lost_key(&env_with(Some("k-1"), None)) {
            Err(Error::NeedsUser {
                reason, message, ..
            }) => {
                assert_eq!(reason.as_str(), "KeyringUnavailable");
                assert!(
                    message.contains("parity.dev/replace-lost-keyring=k-1"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // An opt-in for another key (an old annotation left behind) does not count.
        assert!(lost_key(&env_with(Some("k-1"), Some("k-0"))).is_err());
        assert!(matches!(
            lost_key(&env_with(Some("k-1"), Some("k-1"))),
            Ok(Some(k)) if k == "k-1"
        ));
    }
}
