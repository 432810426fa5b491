//! The apply step: every desired object in order, server-side applied under the one field
//! manager or created once, holding back what must wait for its dependencies; then what the
//! environment owns but no longer wants is removed.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::create_once::{create_once, random_hex};
use super::observe::Seen;
use super::status;
use crate::api::{ParityEnvironment, ValidatedSpec};
use crate::controller::conditions;
use crate::controller::memory::AppliedVersion;
use crate::controller::{Context, Error, FIELD_MANAGER};
use crate::resources::{self, Component, CreateOnce, Desired, Object, OwnedKind, Plan};
use crate::verdict::APPLY_FAILED;

/// Applies `desired`; `secrets_ready` is SecretsReady (the secrets API mounts them).
pub async fn run(
    env: &ParityEnvironment,
    ctx: &Context,
    valid: &ValidatedSpec,
    plan: &Plan,
    desired: &[Desired],
    seen: &Seen,
    secrets_ready: bool,
) -> Result<(), Error> {
    let keys_ok = seen.keys_ok(plan);
    let dynamo_ok = seen.dynamo_ok(plan);
    let mut wanted: HashSet<(OwnedKind, String)> = HashSet::new();
    for d in desired {
        let o = match d {
            Desired::Apply(o) => o,
            // Made by the keys step, before anything that mounts it.
            Desired::CreateOnce(CreateOnce::Keyring(s)) => {
                wanted.insert((OwnedKind::Secret, s.name_any()));
                continue;
            }
            Desired::CreateOnce(CreateOnce::Credentials { shape, fill }) => {
                wanted.insert((OwnedKind::Secret, shape.name_any()));
                let secret = fill(valid, &random_hex(32));
                create_once(ctx, valid, Object::Secret(secret)).await?;
                continue;
            }
        };
        wanted.insert((o.owned_kind(), o.name().to_string()));
        let gated = match (o, o.component()) {
            // Encrypted seed fields go through the key service: wait for it too.
            (Object::Job(_), Some(Component::Bootstrap)) => {
                !seen.dynamodb_available || !keys_ok || valid.spec.suspend
            }
            (Object::Deployment(_) | Object::Service(_), Some(Component::Dashboard)) => {
                !(keys_ok && dynamo_ok)
            }
            // It mounts `<env>-secrets`, which exists once the secrets are ready.
            (Object::Deployment(_), Some(Component::SecretsApi)) => !secrets_ready,
            _ => false,
        };
        if gated {
            // Not yet. It stays wanted, so an existing one is not removed as an orphan.
            continue;
        }
        if let Err(e) = apply(ctx, env, o).await {
            // Say in status why the environment cannot converge (a quota, an admission
            // webhook, a full Service IP range), then let the error policy retry.
            if let Error::Apply {
                source: kube::Error::Api(s),
                ..
            } = &e
            {
                let msg = format!("{} {}: {}", o.kind(), o.name(), s.message);
                let conds = conditions::failed(APPLY_FAILED, msg, None, env.meta().generation);
                status::write_conditions(env, ctx, conds).await?;
            }
            return Err(e);
        }
    }
    remove_orphans(ctx, env, &valid.namespace, &wanted).await
}

fn hash_of(value: &serde_json::Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

/// Server-side apply under the one field manager, skipped when the cached object is the
/// version our last apply of the same desired state produced: a no-op resync writes nothing.
async fn apply(ctx: &Context, env: &ParityEnvironment, o: &Object) -> Result<(), Error> {
    let ns = env.namespace().unwrap_or_default();
    let env_ref = ObjectRef::from_obj(env);
    let value = o.to_value();
    let desired = hash_of(&value);
    let key = (o.kind(), o.name().to_string());
    let live_rv = ctx.stores.get(o, &ns).and_then(|c| c.resource_version);
    let unchanged = |rv: &String| {
        ctx.memory.applied(&env_ref, &key)
            == Some(AppliedVersion {
                desired,
                resource_version: rv.clone(),
            })
    };
    if live_rv.as_ref().is_some_and(unchanged) {
        return Ok(());
    }
    let failed = || Error::apply(o.kind(), o.name());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &o.api_resource());
    let result = api
        .patch(
            o.name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await;
    let applied = match result {
        Ok(a) => a,
        // A Job's pod template is immutable; a changed one means a new Job name, so this is
        // only hit when someone edited the Job by hand: replace it.
        Err(kube::Error::Api(s)) if s.is_invalid() && matches!(o, Object::Job(_)) => {
            api.delete(o.name(), &DeleteParams::foreground())
                .await
                .map_err(failed())?;
            ctx.metrics.wrote("delete");
            return Ok(());
        }
        Err(e) => return Err(failed()(e)),
    };
    ctx.metrics.wrote("apply");
    if live_rv.as_deref() != applied.metadata.resource_version.as_deref() {
        tracing::info!(kind = o.kind(), name = o.name(), namespace = %ns, "applied");
    }
    if let Some(resource_version) = applied.metadata.resource_version {
        ctx.memory.record_applied(
            &env_ref,
            key,
            AppliedVersion {
                desired,
                resource_version,
            },
        );
    }
    Ok(())
}

/// Deletes objects this environment owns that its spec no longer asks for (a disabled
/// dashboard, a bootstrap Job of an older table spec). Kept Secrets
/// ([`resources::kept_secrets`]) are never orphans.
async fn remove_orphans(
    ctx: &Context,
    env: &ParityEnvironment,
    ns: &str,
    wanted: &HashSet<(OwnedKind, String)>,
) -> Result<(), Error> {
    let Some(uid) = env.uid() else { return Ok(()) };
    let kept = resources::kept_secrets(&env.name_any());
    for (kind, cached) in ctx.stores.owned_by(ns, &uid) {
        if wanted.contains(&(kind, cached.name.clone())) {
            continue;
        }
        if kind == OwnedKind::Secret && kept.contains(&cached.name) {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &kind.api_resource());
        match api.delete(&cached.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(Error::apply(kind.kind(), &cached.name)(e)),
        }
        ctx.metrics.wrote("delete");
        tracing::info!(kind = kind.kind(), name = %cached.name, namespace = ns, "deleted orphan");
    }
    Ok(())
}
