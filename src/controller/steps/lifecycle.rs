//! The environment's own lifecycle: the keyring finalizer, ttl expiry, and what deletion
//! does with the keyring.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;

use super::status::publish;
use crate::api::{DeletionPolicy, ParityEnvironment, ValidatedSpec};
use crate::controller::ownership::{self, Claim};
use crate::controller::{Context, Error, KEYRING_FINALIZER, LEGACY_RETAIN_FINALIZER};
use crate::resources::{self, OwnedKind, names};

fn api(ctx: &Context, env: &ParityEnvironment) -> Api<ParityEnvironment> {
    Api::namespaced(ctx.client.clone(), &env.namespace().unwrap_or_default())
}

/// Holds the environment with [`KEYRING_FINALIZER`] while a Local keyring is wanted or still
/// exists (whatever the provider says now), so its deletion goes through [`finalize`].
pub async fn ensure_finalizer(
    env: &ParityEnvironment,
    ctx: &Context,
    keyring_wanted: bool,
) -> Result<(), Error> {
    let ns = env.namespace().unwrap_or_default();
    let keyring_exists = ctx
        .stores
        .cache(OwnedKind::Secret)
        .get(&ns, &names::keyring(&env.name_any()))
        .is_some();
    let want = keyring_wanted || keyring_exists;
    let has = env.finalizers().iter().any(|f| f == KEYRING_FINALIZER);
    let legacy = env
        .finalizers()
        .iter()
        .any(|f| f == LEGACY_RETAIN_FINALIZER);
    if want == has && !legacy {
        return Ok(());
    }
    let mut finalizers: Vec<String> = env
        .finalizers()
        .iter()
        .filter(|f| *f != KEYRING_FINALIZER && *f != LEGACY_RETAIN_FINALIZER)
        .cloned()
        .collect();
    if want {
        finalizers.push(KEYRING_FINALIZER.into());
    }
    set_finalizers(env, ctx, finalizers).await
}

/// Replaces the environment's finalizers, guarded by its resourceVersion.
async fn set_finalizers(
    env: &ParityEnvironment,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": env.resource_version()}});
    api(ctx, env)
        .patch(
            &env.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::Lifecycle)?;
    ctx.metrics.wrote("patch");
    Ok(())
}

/// Deletes the environment once spec.ttl has elapsed; `Some` when it did.
pub async fn expire(
    env: &ParityEnvironment,
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Option<Action>, Error> {
    let Some(expires) = valid.expires_at() else {
        return Ok(None);
    };
    if expires.0 > Timestamp::now() {
        return Ok(None);
    }
    publish(
        ctx,
        env,
        EventType::Normal,
        "Expired",
        "Deleting",
        format!("spec.ttl elapsed at {}", expires.0),
    )
    .await;
    api(ctx, env)
        .delete(&env.name_any(), &DeleteParams::background())
        .await
        .map_err(Error::Lifecycle)?;
    ctx.metrics.wrote("delete");
    Ok(Some(Action::await_change()))
}

/// The keyring's fate on deletion: kept and marked for adoption (Retain) or deleted (Delete,
/// preconditioned on its uid so a newer keyring of the same name is never hit). A keyring that
/// is not this environment's is never touched.
pub async fn finalize(env: &ParityEnvironment, ctx: &Context) -> Result<Action, Error> {
    let ours = |f: &String| f == KEYRING_FINALIZER || f == LEGACY_RETAIN_FINALIZER;
    if !env.finalizers().iter().any(ours) {
        return Ok(Action::await_change());
    }
    let ns = env.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = names::keyring(&env.name_any());
    let existing = secrets
        .get_metadata_opt(&name)
        .await
        .map_err(Error::Lifecycle)?;
    if let Some(keyring) = existing
        && ownership::claim(
            &keyring.metadata,
            &env.name_any(),
            &env.uid().unwrap_or_default(),
        ) == Claim::Ours
    {
        match env.spec.keys.deletion_policy {
            DeletionPolicy::Retain => {
                let patch = json!({"metadata": {
                    "ownerReferences": null,
                    "annotations": {resources::ANNOTATION_RETAINED: "true"},
                    "resourceVersion": keyring.resource_version(),
                }});
                secrets
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Lifecycle)?;
                ctx.metrics.wrote("patch");
                publish(ctx, env, EventType::Normal, "KeyringRetained", "Finalize", format!("kept Secret {name} (deletionPolicy Retain); a new environment of the same name adopts it")).await;
            }
            DeletionPolicy::Delete => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: keyring.uid(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match secrets.delete(&name, &dp).await {
                    Ok(_) => {
                        ctx.metrics.wrote("delete");
                        publish(
                            ctx,
                            env,
                            EventType::Normal,
                            "KeyringDeleted",
                            "Finalize",
                            format!("deleted Secret {name} (deletionPolicy Delete)"),
                        )
                        .await;
                    }
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => return Err(Error::Lifecycle(e)),
                }
            }
        }
    }
    let finalizers: Vec<String> = env
        .finalizers()
        .iter()
        .filter(|f| !ours(f))
        .cloned()
        .collect();
    set_finalizers(env, ctx, finalizers).await?;
    Ok(Action::await_change())
}
