//! One reconcile of one ParityEnvironment: fetch (given), validate, build, apply, status.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, JobState, Observed};
use super::{Context, Error, FIELD_MANAGER, RETAIN_FINALIZER};
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

pub async fn reconcile(env: Arc<ParityEnvironment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&env, &ctx).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(_) => "error",
    };
    ctx.metrics.record(outcome, started);
    result
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

    ensure_finalizer(env, ctx, &envs, &valid).await?;

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
    let source = match &valid.spec.mirror {
        Some(m) => {
            let src_ns = m.from.namespace.as_deref().unwrap_or(&ns);
            Api::<ParityEnvironment>::namespaced(ctx.client.clone(), src_ns)
                .get_opt(&m.from.name)
                .await?
        }
        None => None,
    };
    let mirrored = match super::mirror::evaluate(&valid, source.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            let conds = conditions::failed(
                "MirrorUnavailable",
                format!("{}: {}", e.field, e.reason),
                Some(ConditionType::InSync),
                env.meta().generation,
            );
            write_conditions(env, ctx, &envs, conds).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    valid.mirrored = mirrored.resolved.clone();

    // build (pure)
    let profile = valid.profile;
    let plan = resources::plan(&valid, profile);
    let mut objects = resources::build_all(&valid, profile, &ctx.build);

    // keys: the keyring Secret is created once, never applied over.
    let keyring = if plan.kms {
        match ensure_keyring(env, ctx, &valid).await {
            Ok(k) => Some(k),
            // The user must act (create the seed Secret, repair the keyring): say so in
            // status and an event, and look again later (the seed Secret is not watched).
            Err(Error::Keyring(msg)) => {
                let conds = conditions::failed(
                    "KeyringUnavailable",
                    msg,
                    Some(ConditionType::KeysReady),
                    env.meta().generation,
                );
                write_conditions(env, ctx, &envs, conds).await?;
                return Ok(Action::requeue(Duration::from_secs(15)));
            }
            Err(e) => return Err(e),
        }
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
        Some(job) => job_state(ctx, &ns, job),
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
                create_once(ctx, &ns, Object::Secret(secret)).await?;
            }
            continue;
        }
        let gated = match (o, o.component()) {
            (Object::Job(_), Some(Component::Bootstrap)) => {
                !dynamodb_available || valid.spec.suspend
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
        if let Err(e) = apply(ctx, &ns, o).await {
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

    let mut secrets_state = secrets.state;
    if plan.secrets_api && secrets_state.0 && !secrets_api_available && !valid.spec.suspend {
        secrets_state = (
            false,
            "SecretsApiStarting".into(),
            "waiting for the secrets-api Deployment (the Infisical-compatible endpoint) to become available".into(),
        );
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
    let converging = status
        .condition(ConditionType::Progressing)
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

/// Creates `o` unless it exists; never updates it (its data is generated once).
pub(super) async fn create_once(ctx: &Context, ns: &str, o: Object) -> Result<(), Error> {
    if ctx.stores.get(&o, ns).is_some() {
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
                namespace = ns,
                "created once"
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn hash_of(value: &serde_json::Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

/// Server-side apply under the one field manager, skipped when the cached object is the
/// version our last apply of the same desired state produced: a no-op resync writes nothing.
async fn apply(ctx: &Context, ns: &str, o: &Object) -> Result<(), Error> {
    let value = o.to_value();
    let hash = hash_of(&value);
    let key = (o.kind(), ns.to_string(), o.name().to_string());
    let live_rv = ctx.stores.get(o, ns).and_then(|c| c.resource_version);
    let unchanged = |rv: &String| {
        ctx.applied
            .lock()
            .map(|m| m.get(&key) == Some(&(hash, rv.clone())))
            .unwrap_or(false)
    };
    if live_rv.as_ref().is_some_and(unchanged) {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &o.api_resource());
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
        tracing::info!(kind = o.kind(), name = o.name(), namespace = ns, "applied");
    }
    if let (Some(rv), Ok(mut m)) = (applied.metadata.resource_version, ctx.applied.lock()) {
        m.insert(key, (hash, rv));
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
/// retained one, rotates it when the period has passed, and returns it.
async fn ensure_keyring(
    env: &ParityEnvironment,
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Keyring, Error> {
    let ns = &valid.namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = names::keyring(&valid.name);
    let shape = resources::keyring_secret(valid);
    let existing = secrets.get_opt(&name).await?;
    let now = Timestamp::now();

    let Some(existing) = existing else {
        let keyring = new_keyring(ctx, valid, now).await?;
        let mut secret = shape;
        secret.data = Some(BTreeMap::from([(
            KEYRING_SECRET_KEY.to_string(),
            ByteString(keyring.to_json().to_vec()),
        )]));
        match secrets
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &secret,
            )
            .await
        {
            Ok(_) => {
                ctx.metrics.wrote("create");
                publish(
                    ctx,
                    env,
                    EventType::Normal,
                    "KeyringCreated",
                    "CreateKeyring",
                    format!(
                        "created Secret {name} with key {} version {}",
                        keyring.key_id(),
                        keyring.active_version()
                    ),
                )
                .await;
            }
            // Another reconcile (or replica) won the race: theirs is the keyring.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(keyring);
    };

    let bytes = existing
        .data
        .as_ref()
        .and_then(|d| d.get(KEYRING_SECRET_KEY))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let mut keyring = Keyring::from_json(&bytes)
        .map_err(|e| Error::Keyring(format!("Secret {name} key {KEYRING_SECRET_KEY}: {e}")))?;

    // Adopt a keyring retained from an earlier environment of the same name.
    let uid = env.uid().unwrap_or_default();
    let owned = existing.owner_references().iter().any(|r| r.uid == uid);
    let mut patch = serde_json::Map::new();
    if !owned {
        patch.insert("metadata".into(), json!({"ownerReferences": shape.metadata.owner_references, "annotations": shape.metadata.annotations}));
    }
    if let Some(period) = valid.rotation_period {
        let active_created = keyring
            .status_versions()
            .iter()
            .find(|v| v.state == VersionState::Active)
            .map(|v| v.created);
        let due = active_created.is_some_and(|c| {
            Duration::try_from(now.duration_since(c)).is_ok_and(|age| age >= period)
        });
        if due {
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
    }
    if !patch.is_empty() {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        // Optimistic concurrency: a concurrent rotation makes this fail and the reconcile retry.
        patch
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert("resourceVersion".into(), json!(existing.resource_version())));
        secrets
            .patch(
                &name,
                &params,
                &Patch::Merge(serde_json::Value::Object(patch)),
            )
            .await?;
        ctx.metrics.wrote("patch");
    }
    Ok(keyring)
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
                    Error::Keyring(
                        "spec.keys.local.seedSecretRef is required for source Seeded".into(),
                    )
                })?;
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
            let secret = secrets.get_opt(&seed_ref.name).await?.ok_or_else(|| {
                Error::Keyring(format!(
                    "spec.keys.local.seedSecretRef: Secret {} not found in namespace {}",
                    seed_ref.name, valid.namespace
                ))
            })?;
            let seed = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&seed_ref.key))
                .ok_or_else(|| {
                    Error::Keyring(format!(
                        "spec.keys.local.seedSecretRef: Secret {} has no key {}",
                        seed_ref.name, seed_ref.key
                    ))
                })?;
            Keyring::seeded(&seed.0, now)
                .map_err(|e| Error::Keyring(format!("spec.keys.local.seedSecretRef: {e}")))
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
            _ if matches!(ready.reason.as_str(), "InvalidSpec" | "KeyringUnavailable")
                || ready.reason.ends_with("Failed") =>
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

/// Retain keeps the keyring across deletion: a finalizer holds the environment until the
/// keyring's owner reference is removed, so garbage collection leaves it alone.
async fn ensure_finalizer(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
    valid: &ValidatedSpec,
) -> Result<(), Error> {
    let retain = valid.spec.keys.deletion_policy == DeletionPolicy::Retain
        && valid.spec.keys.provider == KeyProvider::Local;
    let has = env.finalizers().iter().any(|f| f == RETAIN_FINALIZER);
    if retain == has {
        return Ok(());
    }
    let mut finalizers: Vec<String> = env
        .finalizers()
        .iter()
        .filter(|f| *f != RETAIN_FINALIZER)
        .cloned()
        .collect();
    if retain {
        finalizers.push(RETAIN_FINALIZER.into());
    }
    set_finalizers(env, ctx, envs, finalizers).await?;
    Ok(())
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

async fn finalize(
    env: &ParityEnvironment,
    ctx: &Context,
    envs: &Api<ParityEnvironment>,
) -> Result<Action, Error> {
    if !env.finalizers().iter().any(|f| f == RETAIN_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = env.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = names::keyring(&env.name_any());
    if secrets.get_opt(&name).await?.is_some() {
        let patch = json!({"metadata": {"ownerReferences": null}});
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        ctx.metrics.wrote("patch");
        publish(ctx, env, EventType::Normal, "KeyringRetained", "Finalize", format!("kept Secret {name} (deletionPolicy Retain); a new environment of the same name adopts it")).await;
    }
    let finalizers: Vec<String> = env
        .finalizers()
        .iter()
        .filter(|f| *f != RETAIN_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(env, ctx, envs, finalizers).await?;
    Ok(Action::await_change())
}
