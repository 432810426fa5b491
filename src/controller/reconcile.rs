//! One reconcile of one ParityEnvironment: fetch (given), validate, build, apply, status.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, JobState, Observed};
use super::memory::AppliedVersion;
use super::ownership::{self, Claim};
use super::{Context, Error, FIELD_MANAGER, KEYRING_FINALIZER, LEGACY_RETAIN_FINALIZER};
use crate::api::{
    ConditionStatus, ConditionType, DeletionPolicy, KeyProvider, KeySource, KeyVersionState,
    KeyVersionStatus, KeysStatus, ParityEnvironment, ParityEnvironmentStatus, SecretsProvider,
    ValidatedSpec,
};
use crate::crypto::keyring::{KEYRING_SECRET_KEY, Keyring, VersionState};
use crate::resources::{self, Component, Object, names};

/// Periodic resync: catches anything a missed watch event would hide.
const RESYNC: Duration = Duration::from_secs(300);
const CONVERGING_RECHECK: Duration = Duration::from_secs(10);
const INFISICAL_RECHECK: Duration = Duration::from_secs(60);

/// How soon an environment waiting on its user is looked at again (the seed Secret, a
/// restored keyring or a removed stranger's Secret may not be watched).
const NEEDS_USER_RECHECK: Duration = Duration::from_secs(15);

pub async fn reconcile(env: Arc<ParityEnvironment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = match reconcile_inner(&env, &ctx).await {
        Err(Error::NeedsUser {
            reason,
            condition,
            message,
        }) => {
            let envs: Api<ParityEnvironment> =
                Api::namespaced(ctx.client.clone(), &env.namespace().unwrap_or_default());
            let conds = conditions::failed(reason, message, Some(condition), env.meta().generation);
            write_conditions(&env, &ctx, &envs, conds)
                .await
                .map(|()| Action::requeue(NEEDS_USER_RECHECK))
        }
        other => other,
    };
    let outcome = match &result {
        Ok(_) => {
            ctx.memory.succeeded(&ObjectRef::from_obj(env.as_ref()));
            "ok"
        }
        Err(_) => "error",
    };
    ctx.metrics.record(outcome, started);
    result
}

/// Reads what spec.mirror names (a ParityEnvironment or a topology ConfigMap) and evaluates
/// the mirror against it: an unusable source is the inner error.
async fn read_mirror_source(
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Result<super::mirror::Mirrored, crate::api::FieldError>, Error> {
    use super::mirror::{Source, evaluate};
    let ns = &valid.namespace;
    Ok(
        match valid
            .spec
            .mirror
            .as_ref()
            .map(|m| (&m.from, &m.config_map_ref))
        {
            Some((Some(from), _)) => {
                let src_ns = from.namespace.as_deref().unwrap_or(ns);
                let src = Api::<ParityEnvironment>::namespaced(ctx.client.clone(), src_ns)
                    .get_opt(&from.name)
                    .await?;
                evaluate(valid, Source::Environment(src.as_ref()))
            }
            Some((None, Some(r))) => {
                let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                    .get_opt(&r.name)
                    .await?;
                evaluate(valid, Source::ConfigMap(cm.as_ref()))
            }
            _ => evaluate(valid, Source::Environment(None)),
        },
    )
}

async fn reconcile_inner(env: &ParityEnvironment, ctx: &Context) -> Result<Action, Error> {
    let ns = env.namespace().unwrap_or_default();
    let name = env.name_any();
    let envs: Api<ParityEnvironment> = Api::namespaced(ctx.client.clone(), &ns);

    if env.meta().deletion_timestamp.is_some() {
        return finalize(env, ctx, &envs).await;
    }

    // validate (pure): a bad spec becomes conditions and one event, never a crash loop.
    let valid = match crate::api::validate(env) {
        Ok(v) => v,
        Err(errors) => {
            let conds = conditions::invalid(&errors, env.meta().generation);
            write_conditions(env, ctx, &envs, conds).await?;
            return Ok(Action::await_change());
        }
    };

    // The finalizer goes on before a keyring can exist, so no keyring is ever left to the
    // garbage collector's judgement.
    let profile = valid.profile;
    let plan = resources::plan(&valid, profile);
    ensure_finalizer(env, ctx, &envs, plan.kms).await?;

    if let Some(expires) = valid.expires_at()
        && expires.0 <= Timestamp::now()
    {
        publish(
            ctx,
            env,
            EventType::Normal,
            "Expired",
            "Deleting",
            format!("spec.ttl elapsed at {}", expires.0),
        )
        .await;
        envs.delete(&name, &DeleteParams::background()).await?;
        ctx.metrics.wrote("delete");
        return Ok(Action::await_change());
    }

    // mirror: read the source and resolve its topology before building; an unusable source
    // changes nothing (the last applied topology stays) and is reported.
    let mut valid = valid;
    let mirrored = match read_mirror_source(ctx, &valid).await? {
        Ok(m) => m,
        Err(e) => {
            let conds = conditions::failed(
                "MirrorUnavailable",
                format!("{}: {}", e.path, e.message),
                Some(ConditionType::InSync),
                env.meta().generation,
            );
            write_conditions(env, ctx, &envs, conds).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    valid.mirrored = mirrored.resolved.clone();

    // build (pure)
    let mut objects = resources::build_all(&valid, profile, &ctx.build);

    // keys: the keyring Secret is created once, never applied over.
    let keyring = if plan.kms {
        Some(ensure_keyring(env, ctx, &valid).await?)
    } else {
        None
    };

    // secrets: generated (or synced) before the workloads that read them, whose pod templates
    // carry the keyed hash of their data so that they roll when it changes.
    let endpoints = resources::endpoints(&valid, profile, &ctx.build);
    let secrets = super::secrets::reconcile(ctx, &valid, &endpoints).await?;
    super::connection::reconcile(ctx, &valid, &endpoints).await?;
    if let Some(hash) = &secrets.rollout_hash {
        for o in objects.iter_mut().filter(|o| {
            o.component()
                .is_some_and(|c| resources::READS_SECRETS.contains(&c))
        }) {
            resources::annotate_pod_template(o, crate::secrets::ROLLOUT_ANNOTATION, hash);
        }
    }

    // apply, in order, holding back what must wait for its dependencies.
    let dynamodb_available = deployment_available(ctx, &ns, &names::dynamodb(&name));
    let kms_available = deployment_available(ctx, &ns, &names::kms(&name));
    let dashboard_available = deployment_available(ctx, &ns, &names::dashboard(&name));
    let secrets_api_available = deployment_available(ctx, &ns, &names::secrets_api(&name));
    let bootstrap_name = objects
        .iter()
        .find(|o| o.component() == Some(Component::Bootstrap) && matches!(o, Object::Job(_)))
        .map(|o| o.name().to_string());
    let bootstrap = match &bootstrap_name {
        Some(job) => match job_state(ctx, &ns, job) {
            // The Job says only that it failed; its pod's last words say why (file:line).
            JobState::Failed(why) => JobState::Failed(
                super::pods::job_failure(ctx, &ns, job)
                    .await
                    .map_or(why, |line| format!("{line} (Job {job})")),
            ),
            other => other,
        },
        None => JobState::Succeeded,
    };
    let keys_ok = !plan.kms || kms_available;
    let dynamo_ok = !plan.dynamodb_pod || (dynamodb_available && bootstrap == JobState::Succeeded);

    let mut desired: HashSet<(&'static str, String)> = HashSet::new();
    for o in &objects {
        desired.insert((o.kind(), o.name().to_string()));
        if is_create_once(o) {
            // The keyring is made by ensure_keyring; other create-once Secrets (credentials)
            // get their random data here, once.
            let secret = if o.name() == names::kms_credentials(&name) {
                Some(resources::kms_credentials_secret_with(
                    &valid,
                    &random_hex(32),
                ))
            } else if o.name() == names::secrets_api_credentials(&name) {
                Some(resources::secrets_api_credentials_secret_with(
                    &valid,
                    &random_hex(32),
                ))
            } else {
                None
            };
            if let Some(secret) = secret {
                create_once(ctx, &valid, Object::Secret(secret)).await?;
            }
            continue;
        }
        let gated = match (o, o.component()) {
            // Encrypted seed fields go through the key service: wait for it too.
            (Object::Job(_), Some(Component::Bootstrap)) => {
                !dynamodb_available || !keys_ok || valid.spec.suspend
            }
            (Object::Deployment(_) | Object::Service(_), Some(Component::Dashboard)) => {
                !(keys_ok && dynamo_ok)
            }
            // It mounts `<env>-secrets`, which exists once the secrets are ready.
            (Object::Deployment(_), Some(Component::SecretsApi)) => !secrets.state.0,
            _ => false,
        };
        if gated {
            // Not yet. It stays in `desired`, so an existing one is not removed as an orphan.
            continue;
        }
        if let Err(e) = apply(ctx, env, o).await {
            // Say in status why the environment cannot converge (a quota, an admission
            // webhook, a full Service IP range), then let the error policy retry.
            if let Error::Kube(kube::Error::Api(s)) = &e {
                let msg = format!("{} {}: {}", o.kind(), o.name(), s.message);
                let conds = conditions::failed("ApplyFailed", msg, None, env.meta().generation);
                write_conditions(env, ctx, &envs, conds).await?;
            }
            return Err(e);
        }
    }
    remove_orphans(ctx, env, &ns, &desired).await?;

    // Why an unavailable component's pods are not up, when they say so.
    let (ns_ref, name_ref, suspended) = (ns.as_str(), name.as_str(), valid.spec.suspend);
    let diagnose = |needed: bool, available: bool, component: Component| async move {
        if needed && !available && !suspended {
            super::pods::diagnose(ctx, ns_ref, name_ref, component.as_str()).await
        } else {
            None
        }
    };
    let mut secrets_state = secrets.state;
    if plan.secrets_api && secrets_state.0 && !secrets_api_available && !suspended {
        secrets_state = match diagnose(true, false, Component::SecretsApi).await {
            Some(p) => (false, p.reason.into(), p.message),
            None => (
                false,
                "SecretsApiStarting".into(),
                "waiting for the secrets-api Deployment (the Infisical-compatible endpoint) to become available".into(),
            ),
        };
    }

    // drift: a mirror's declared tables against its source, then (--live-drift) the tables
    // the environment should have against DescribeTable at its endpoint, once it has them.
    let (mut in_sync, mut drift) = (mirrored.in_sync, mirrored.drift);
    let mut live_checked = None;
    if let Some(live) = &ctx.live
        && plan.components.dynamodb
        && !valid.spec.suspend
        && let Some(endpoint) = endpoints.dynamodb.as_deref()
    {
        let external = !plan.dynamodb_pod;
        if external || dynamo_ok {
            // Staging's own tables are compared as declared: the parity level's streams are
            // for in-cluster copies only.
            let expected = if external {
                resources::declared_topology(&valid.spec).unwrap_or_default()
            } else {
                resources::topology(&valid, profile, &ctx.build)
            };
            let target = super::live::Target {
                endpoint,
                region: resources::region(&valid),
                external,
                expected: &expected,
            };
            let result = super::live::check(live, &target).await;
            (in_sync, drift) = super::live::merge((in_sync, drift), endpoint, result);
            live_checked = Some(live.interval);
        }
    }

    let kms_problem = diagnose(plan.kms, kms_available, Component::Kms).await;
    let dynamodb_problem =
        diagnose(plan.dynamodb_pod, dynamodb_available, Component::DynamoDb).await;
    let dashboard_problem = diagnose(
        plan.dashboard && keys_ok && dynamo_ok,
        dashboard_available,
        Component::Dashboard,
    )
    .await;

    // status
    let observed = Observed {
        suspended: valid.spec.suspend,
        kms_needed: plan.kms,
        kms_available,
        external_kms_key: (valid.spec.keys.provider == KeyProvider::Kms && plan.components.keys)
            .then(|| {
                valid
                    .spec
                    .keys
                    .kms
                    .as_ref()
                    .map(|k| k.key_id.clone())
                    .unwrap_or_default()
            }),
        dynamodb_pod_needed: plan.dynamodb_pod,
        dynamodb_available,
        dynamodb_external: (plan.components.dynamodb && !plan.dynamodb_pod).then(|| {
            valid
                .spec
                .dynamodb
                .external
                .as_ref()
                .map(|e| e.endpoint.clone())
                .unwrap_or_default()
        }),
        bootstrap,
        dashboard_needed: plan.dashboard,
        dashboard_available,
        secrets: secrets_state,
        in_sync,
        kms_problem,
        dynamodb_problem,
        dashboard_problem,
    };
    let mut status = env.status.clone().unwrap_or_default();
    status.observed_generation = env.meta().generation;
    status.endpoints = endpoints;
    status.expires_at = valid.expires_at();
    status.keys = keyring.as_ref().map(keys_status);
    status.drift = drift;
    set_all(
        &mut status,
        conditions::compute(&observed, env.meta().generation),
    );
    // While converging, look again soon: watch events drive progress, but a missed one (or a
    // dependency the operator does not watch, like pods behind a Deployment) must not leave
    // an environment waiting for the five-minute resync.
    // A pod problem may clear by itself (an image loaded later), and pods are not watched.
    let converging = status
        .condition(ConditionType::Progressing)
        .is_some_and(|c| c.status == ConditionStatus::True)
        || status
            .condition(ConditionType::Degraded)
            .is_some_and(|c| c.status == ConditionStatus::True);
    write_status(env, ctx, &envs, status).await?;

    let mut next = if converging {
        CONVERGING_RECHECK
    } else {
        RESYNC
    };
    if let Some(interval) = live_checked {
        // Live tables are not watched: look again on the live-check interval.
        next = next.min(interval);
    }
    if valid.spec.secrets.provider == SecretsProvider::Infisical {
        // The Infisical operator rewrites `<env>-secrets` (unlabelled, so not watched) on its
        // own resync, a minute by default: look as often, to roll readers promptly.
        next = next.min(INFISICAL_RECHECK);
    }
    if let Some(expires) = valid.expires_at() {
        let left = expires.0.duration_since(Timestamp::now());
        if let Ok(left) = Duration::try_from(left) {
            next = next.min(left + Duration::from_secs(1));
        }
    }
    // Rotation is due at a moment nothing watches: look again then.
    if let (Some(k), Some(period)) = (&keyring, valid.rotation_period)
        && let Ok(period) = jiff::SignedDuration::try_from(period)
        && let Ok(due) = k.active_created().checked_add(period)
        && let Ok(left) = Duration::try_from(due.duration_since(Timestamp::now()))
    {
        next = next.min(left + Duration::from_secs(1));
    }
    Ok(Action::requeue(next))
}

fn set_all(status: &mut ParityEnvironmentStatus, conditions: Vec<crate::api::Condition>) {
    let now = Time(Timestamp::now());
    for c in conditions {
        status.set_condition(c, now.clone());
    }
}

fn deployment_available(ctx: &Context, ns: &str, name: &str) -> bool {
    ctx.stores.deployment(ns, name).is_some_and(|d| {
        let want = d.spec.replicas.unwrap_or(1);
        let have = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        want > 0 && have >= want
    })
}

fn job_state(ctx: &Context, ns: &str, name: &str) -> JobState {
    let Some(job) = ctx.stores.job(ns, name) else {
        return JobState::Absent;
    };
    let conds = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conds
        .iter()
        .any(|c| c.type_ == "Complete" && c.status == "True")
    {
        JobState::Succeeded
    } else if let Some(c) = conds
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
    {
        JobState::Failed(
            c.message
                .clone()
                .unwrap_or_else(|| "see the Job's pod logs".into()),
        )
    } else {
        JobState::Running
    }
}

fn is_create_once(o: &Object) -> bool {
    o.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(resources::ANNOTATION_CREATE_ONCE))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Creates `o` unless it exists; never updates it (its data is generated once). One that
/// exists must be this environment's (see [`claim_secret`]).
pub(super) async fn create_once(
    ctx: &Context,
    valid: &ValidatedSpec,
    o: Object,
) -> Result<(), Error> {
    let ns = &valid.namespace;
    let uid = valid.uid.as_deref().unwrap_or_default();
    if ctx
        .stores
        .get(&o, ns)
        .is_some_and(|c| c.owner_uids.iter().any(|u| u == uid))
    {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &o.api_resource());
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
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
        Err(kube::Error::Api(s)) if s.code == 409 => match api.get_metadata_opt(o.name()).await? {
            Some(existing) => claim_secret(ctx, valid, &existing.metadata).await,
            // Deleted in between: the next reconcile creates it.
            None => Ok(()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Lets the environment use an existing create-once Secret (other than the keyring) only if
/// it was made for it, or with the opt-in annotation, in which case it is taken over (our
/// labels and owner reference). Anything else is refused with SecretConflict and left as is.
pub(super) async fn claim_secret(
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
            reason: "SecretConflict",
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
        .await?;
    ctx.metrics.wrote("patch");
    tracing::info!(name = %name, namespace = %valid.namespace, "adopted existing Secret");
    Ok(())
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
        Err(kube::Error::Api(s)) if s.code == 422 && matches!(o, Object::Job(_)) => {
            api.delete(o.name(), &DeleteParams::foreground()).await?;
            ctx.metrics.wrote("delete");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
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
/// dashboard, a bootstrap Job of an older table spec). The keyring is never an orphan.
async fn remove_orphans(
    ctx: &Context,
    env: &ParityEnvironment,
    ns: &str,
    desired: &HashSet<(&'static str, String)>,
) -> Result<(), Error> {
    let Some(uid) = env.uid() else { return Ok(()) };
    for (kind, cached) in ctx.stores.owned_by(ns, &uid) {
        if desired.contains(&(kind, cached.name.clone())) {
            continue;
        }
        if cached
            .labels
            .get(resources::LABEL_COMPONENT)
            .map(String::as_str)
            == Some(Component::Keyring.as_str())
        {
            continue;
        }
        let Some(ar) = resources::owned_api_resource(kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        match api.delete(&cached.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        ctx.metrics.wrote("delete");
        tracing::info!(kind, name = %cached.name, namespace = ns, "deleted orphan");
    }
    Ok(())
}

/// Creates the keyring Secret once (generated, or derived from the seed Secret), adopts a
/// retained one, rotates it when the period has passed, and returns it. Never uses or
/// overwrites a keyring that is not this environment's, and never silently replaces one that
/// status says existed.
async fn ensure_keyring(
    env: &ParityEnvironment,
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Keyring, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let name = names::keyring(&valid.name);
    let shape = resources::keyring_secret(valid);
    let now = Timestamp::now();

    let Some(existing) = secrets.get_opt(&name).await? else {
        let replacing = lost_key(env)?;
        let keyring = new_keyring(ctx, valid, now).await?;
        let mut secret = shape;
        secret.data = Some(BTreeMap::from([(
            KEYRING_SECRET_KEY.to_string(),
            ByteString(keyring.to_json().to_vec()),
        )]));
        // A 409 (another replica won the race) fails this reconcile: the retry reads theirs.
        secrets
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &secret,
            )
            .await?;
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
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(serde_json::Value::Object(patch)),
            )
            .await?;
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
            let seed = super::seed_secret::read(ctx, &valid.namespace, seed_ref).await?;
            Keyring::seeded(&seed, now)
                .map_err(|e| Error::keyring(format!("spec.keys.local.seedSecretRef: {e}")))
        }
    }
}

fn keys_status(k: &Keyring) -> KeysStatus {
    KeysStatus {
        versions: k
            .status_versions()
            .into_iter()
            .map(|v| KeyVersionStatus {
                id: format!("{}/{}", k.key_id(), v.id),
                created: Time(v.created),
                state: match v.state {
                    VersionState::Active => KeyVersionState::Active,
                    VersionState::DecryptOnly => KeyVersionState::DecryptOnly,
                    VersionState::Destroyed => KeyVersionState::Destroyed,
                },
            })
            .take(crate::api::MAX_KEY_VERSIONS)
            .collect(),
    }
}

/// Records `conditions` (a failure that stops this reconcile) on top of the stored status.
async fn write_conditions(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
    conditions: Vec<crate::api::Condition>,
) -> Result<(), Error> {
    let mut status = env.status.clone().unwrap_or_default();
    status.observed_generation = env.meta().generation;
    set_all(&mut status, conditions);
    write_status(env, ctx, envs, status).await
}

/// Writes status only when it differs from what is stored, and publishes an event when the
/// Ready condition changes.
async fn write_status(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
    status: ParityEnvironmentStatus,
) -> Result<(), Error> {
    let old = env.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let patch = json!({"status": status});
    envs.patch_status(
        &env.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.metrics.wrote("status");

    let before = old
        .condition(ConditionType::Ready)
        .map(|c| (c.status, c.reason.clone()));
    if let Some(ready) = status.condition(ConditionType::Ready)
        && before != Some((ready.status, ready.reason.clone()))
    {
        let (kind, reason) = match ready.status {
            ConditionStatus::True => (EventType::Normal, "Ready".to_string()),
            _ if matches!(
                ready.reason.as_str(),
                "InvalidSpec" | "KeyringUnavailable" | "SecretConflict" | "MirrorUnavailable"
            ) || ready.reason.ends_with("Failed") =>
            {
                (EventType::Warning, ready.reason.clone())
            }
            _ => (EventType::Normal, ready.reason.clone()),
        };
        publish(ctx, env, kind, &reason, "Reconcile", ready.message.clone()).await;
    }
    Ok(())
}

pub(super) async fn publish(
    ctx: &Context,
    env: &ParityEnvironment,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_: kind,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    match ctx.recorder.publish(&event, &env.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote("event"),
        Err(e) => tracing::warn!(error = %e, "could not publish event"),
    }
}

/// Holds the environment with [`KEYRING_FINALIZER`] while a Local keyring is wanted or still
/// exists (whatever the provider says now), so its deletion goes through [`finalize`].
async fn ensure_finalizer(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
    keyring_wanted: bool,
) -> Result<(), Error> {
    let ns = env.namespace().unwrap_or_default();
    let keyring_exists = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&names::keyring(&env.name_any())).within(&ns))
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
    set_finalizers(env, ctx, envs, finalizers).await
}

/// Replaces the environment's finalizers, guarded by its resourceVersion.
async fn set_finalizers(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": env.resource_version()}});
    envs.patch(
        &env.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.metrics.wrote("patch");
    Ok(())
}

/// The keyring's fate on deletion: kept and marked for adoption (Retain) or deleted (Delete,
/// preconditioned on its uid so a newer keyring of the same name is never hit). A keyring that
/// is not this environment's is never touched.
async fn finalize(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
) -> Result<Action, Error> {
    let ours = |f: &String| f == KEYRING_FINALIZER || f == LEGACY_RETAIN_FINALIZER;
    if !env.finalizers().iter().any(ours) {
        return Ok(Action::await_change());
    }
    let ns = env.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = names::keyring(&env.name_any());
    if let Some(keyring) = secrets.get_metadata_opt(&name).await?
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
                    .await?;
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
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
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
    set_finalizers(env, ctx, envs, finalizers).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
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
                assert_eq!(reason, "KeyringUnavailable");
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
