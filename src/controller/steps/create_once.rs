//! Create-once Secrets (credentials, the application's secrets, the rollout key): created
//! unless they exist, never applied over, and used only when they are this environment's.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::api::{ConditionType, ValidatedSpec};
use crate::controller::ownership::{self, Claim};
use crate::controller::{Context, Error, create_params};
use crate::resources::{self, Component, Object, names};
use crate::verdict::SECRET_CONFLICT;

/// A fresh random secret: `bytes` bytes from the OS CSPRNG, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Creates `o` unless it exists; never updates it (its data is generated once). One that
/// exists must be this environment's (see [`claim_secret`]).
pub async fn create_once(ctx: &Context, valid: &ValidatedSpec, o: Object) -> Result<(), Error> {
    let ns = &valid.namespace;
    let uid = valid.uid.as_deref().unwrap_or_default();
    if ctx
        .stores
        .get(&o, ns)
        .is_some_and(|c| c.owner_uids.iter().any(|u| u == uid))
    {
        return Ok(());
    }
    let failed = || Error::apply(o.kind(), o.name());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &o.api_resource());
    let pp = create_params();
    match api.create(&pp, &o.to_dynamic()).await {
        Ok(_) => {
            ctx.metrics.wrote("create");
            tracing::info!(
                kind = o.kind(),
                name = o.name(),
                namespace = %ns,
                "created once"
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            match api.get_metadata_opt(o.name()).await.map_err(failed())? {
                Some(existing) => claim_secret(ctx, valid, &existing.metadata).await,
                // Deleted in between: the next reconcile creates it.
                None => Ok(()),
            }
        }
        Err(e) => Err(failed()(e)),
    }
}

/// Lets the environment use an existing create-once Secret (other than the keyring) only if
/// it was made for it, or with the opt-in annotation, in which case it is taken over (our
/// labels and owner reference). Anything else is refused with SecretConflict and left as is.
pub async fn claim_secret(
    ctx: &Context,
    valid: &ValidatedSpec,
    existing: &ObjectMeta,
) -> Result<(), Error> {
    let name = existing.name.clone().unwrap_or_default();
    let why = match ownership::claim(
        existing,
        &valid.name,
        valid.uid.as_deref().unwrap_or_default(),
    ) {
        Claim::Ours => return Ok(()),
        Claim::Retained => None,
        Claim::Foreign(why) => Some(why),
    };
    if let Some(why) = why
        && !valid.adopt_existing_secrets
    {
        let condition = if name == names::kms_credentials(&valid.name) {
            ConditionType::KeysReady
        } else {
            ConditionType::SecretsReady
        };
        return Err(Error::NeedsUser {
            reason: SECRET_CONFLICT,
            condition,
            message: ownership::refusal("the", &name, &why),
        });
    }
    let take_over = json!({"metadata": {
        "labels": resources::labels(valid, Component::Keyring),
        "ownerReferences": [resources::owner_reference(valid)],
        "resourceVersion": existing.resource_version,
    }});
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&take_over))
        .await
        .map_err(Error::apply("Secret", &name))?;
    ctx.metrics.wrote("patch");
    tracing::info!(name = %name, namespace = %valid.namespace, "adopted existing Secret");
    Ok(())
}
