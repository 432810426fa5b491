//! The status step: conditions from what was observed, status written only when it changed,
//! an event when Ready changes, and when to look again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::observe::{self, Seen};
use crate::api::{
    Condition, ConditionStatus, ConditionType, Endpoints, FieldError, KeyProvider, KeyVersionState,
    KeyVersionStatus, KeysStatus, ParityEnvironment, ParityEnvironmentStatus, SecretsProvider,
    ValidatedSpec,
};
use crate::controller::conditions::{self, Observed};
use crate::controller::{Context, Error};
use crate::crypto::keyring::{Keyring, VersionState};
use crate::mirror::Mirrored;
use crate::resources::Plan;
use crate::verdict::{self, MIRROR_UNAVAILABLE, Verdict};

/// Periodic resync: catches anything a missed watch event would hide.
const RESYNC: Duration = Duration::from_secs(300);
const CONVERGING_RECHECK: Duration = Duration::from_secs(10);
const INFISICAL_RECHECK: Duration = Duration::from_secs(60);

/// The Warning event's reason for a field that still works but is on its way out.
pub const DEPRECATED_FIELD: &str = "DeprecatedField";

/// How soon an unusable mirror source is read again.
const MIRROR_RECHECK: Duration = Duration::from_secs(30);

/// What the earlier steps found, for status.
pub struct Outcome<'a> {
    pub valid: &'a ValidatedSpec,
    pub plan: &'a Plan,
    pub seen: Seen,
    /// SecretsReady as the secrets step found it.
    pub secrets: Verdict,
    pub mirrored: Mirrored,
    pub endpoints: Endpoints,
    pub keyring: Option<Keyring>,
}

/// A spec that failed validation: conditions and one event; nothing to do until it changes.
pub async fn invalid(
    env: &ParityEnvironment,
    ctx: &Context,
    errors: &[FieldError],
) -> Result<Action, Error> {
    let conds = conditions::invalid(errors, env.meta().generation);
    write_conditions(env, ctx, conds).await?;
    Ok(Action::await_change())
}

/// A mirror source that cannot be used: InSync says why; looked at again soon.
pub async fn mirror_unavailable(
    env: &ParityEnvironment,
    ctx: &Context,
    e: &FieldError,
) -> Result<Action, Error> {
    let why = format!("{}: {}", e.path, e.message);
    let conds = conditions::failed(
        MIRROR_UNAVAILABLE,
        why,
        Some(ConditionType::InSync),
        env.meta().generation,
    );
    write_conditions(env, ctx, conds).await?;
    Ok(Action::requeue(MIRROR_RECHECK))
}

/// Looks at what is not up and why, and at live drift; writes the environment's status and
/// says when to look again.
pub async fn report(
    env: &ParityEnvironment,
    ctx: &Context,
    o: Outcome<'_>,
) -> Result<Action, Error> {
    let Outcome {
        valid,
        plan,
        seen,
        mut secrets,
        mirrored,
        endpoints,
        keyring,
    } = o;
    let problems = observe::problems(ctx, valid, plan, &seen, secrets.ok).await;
    let declared = (mirrored.in_sync, mirrored.drift);
    let ((in_sync, drift), live_checked) =
        observe::live_drift(ctx, valid, plan, &seen, &endpoints, declared).await;
    let suspended = valid.spec.suspend;
    if plan.secrets_api && secrets.ok && !seen.secrets_api_available && !suspended {
        secrets = match &problems.secrets_api {
            Some(p) => p.verdict(),
            None => Verdict::not(
                "SecretsApiStarting",
                "waiting for the secrets-api Deployment (the Infisical-compatible endpoint) to become available",
            ),
        };
    }
    let observed = Observed {
        suspended,
        kms_needed: plan.kms,
        kms_available: seen.kms_available,
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
        dynamodb_available: seen.dynamodb_available,
        dynamodb_external: (plan.components.dynamodb && !plan.dynamodb_pod).then(|| {
            valid
                .spec
                .dynamodb
                .external
                .as_ref()
                .map(|e| e.endpoint.clone())
                .unwrap_or_default()
        }),
        bootstrap: seen.bootstrap,
        dashboard_needed: plan.dashboard,
        dashboard_available: seen.dashboard_available,
        secrets,
        in_sync,
        kms_problem: problems.kms,
        dynamodb_problem: problems.dynamodb,
        dashboard_problem: problems.dashboard,
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
    write_status(env, ctx, status).await?;

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
    let now = Timestamp::now();
    if let Some(expires) = valid.expires_at()
        && let Ok(left) = Duration::try_from(expires.0.duration_since(now))
    {
        next = next.min(left + Duration::from_secs(1));
    }
    // Rotation is due at a moment nothing watches: look again then.
    if let (Some(k), Some(period)) = (&keyring, valid.rotation_period)
        && let Some(left) = k.rotation_due_in(now, period)
    {
        next = next.min(left + Duration::from_secs(1));
    }
    Ok(Action::requeue(next))
}

/// status.keys: the keyring's versions, never its material.
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

fn set_all(status: &mut ParityEnvironmentStatus, conditions: Vec<Condition>) {
    let now = Time(Timestamp::now());
    for c in conditions {
        status.set_condition(c, now.clone());
    }
}

/// Records `conditions` (a failure that stops this reconcile) on top of the stored status.
pub async fn write_conditions(
    env: &ParityEnvironment,
    ctx: &Context,
    conditions: Vec<Condition>,
) -> Result<(), Error> {
    let mut status = env.status.clone().unwrap_or_default();
    status.observed_generation = env.meta().generation;
    set_all(&mut status, conditions);
    write_status(env, ctx, status).await
}

/// Writes status only when it differs from what is stored, and publishes an event when the
/// Ready condition changes.
async fn write_status(
    env: &ParityEnvironment,
    ctx: &Context,
    status: ParityEnvironmentStatus,
) -> Result<(), Error> {
    let old = env.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let envs: Api<ParityEnvironment> =
        Api::namespaced(ctx.client.clone(), &env.namespace().unwrap_or_default());
    let patch = json!({"status": status});
    envs.patch_status(
        &env.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Status)?;
    ctx.metrics.wrote("status");

    // Once per generation: a deprecated field still works, and its user is told what to use.
    if old.observed_generation != status.observed_generation {
        for d in env.spec.deprecations() {
            let note = format!("{}: {}", d.path, d.message);
            publish(
                ctx,
                env,
                EventType::Warning,
                DEPRECATED_FIELD,
                "Validate",
                note,
            )
            .await;
        }
    }

    let before = old
        .condition(ConditionType::Ready)
        .map(|c| (c.status, c.reason.clone()));
    if let Some(ready) = status.condition(ConditionType::Ready)
        && before != Some((ready.status, ready.reason.clone()))
    {
        let kind = match ready.status {
            ConditionStatus::True => EventType::Normal,
            _ => verdict::event_type(&ready.reason),
        };
        publish(
            ctx,
            env,
            kind,
            &ready.reason,
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    Ok(())
}

pub async fn publish(
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
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    match recorder.publish(&event, &env.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote("event"),
        Err(e) => tracing::warn!(error = %e, "could not publish event"),
    }
}
