//! One reconcile of one ParityEnvironment, as its steps (controller/steps/): validate, fetch
//! what it refers to, keys and secrets, build, apply, status. Deletion is finalization.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::steps::{apply, build, fetch, keys, lifecycle, observe, secrets, status};
use super::{Context, Error, conditions, connection};
use crate::api::ParityEnvironment;
use crate::resources;

/// How soon an environment waiting on its user is looked at again (the seed Secret, a
/// restored keyring or a removed stranger's Secret may not be watched).
const NEEDS_USER_RECHECK: Duration = Duration::from_secs(15);

pub async fn reconcile(env: Arc<ParityEnvironment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = match steps(&env, &ctx).await {
        Err(Error::NeedsUser {
            reason,
            condition,
            message,
        }) => {
            let conds = conditions::failed(reason, message, Some(condition), env.meta().generation);
            status::write_conditions(&env, &ctx, conds)
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

async fn steps(env: &ParityEnvironment, ctx: &Context) -> Result<Action, Error> {
    if env.meta().deletion_timestamp.is_some() {
        return lifecycle::finalize(env, ctx).await;
    }
    // validate (pure): a bad spec becomes conditions and one event, never a crash loop.
    let mut valid = match crate::api::validate(env) {
        Ok(v) => v,
        Err(errors) => return status::invalid(env, ctx, &errors).await,
    };
    let plan = resources::plan(&valid, valid.profile);
    // The finalizer goes on before a keyring can exist, so no keyring is ever left to the
    // garbage collector's judgement.
    lifecycle::ensure_finalizer(env, ctx, plan.kms).await?;
    if let Some(deleted) = lifecycle::expire(env, ctx, &valid).await? {
        return Ok(deleted);
    }

    // fetch: an unusable mirror source changes nothing (the last applied topology stays).
    let mirrored = match fetch::mirror(ctx, &valid).await? {
        Ok(m) => m,
        Err(e) => return status::mirror_unavailable(env, ctx, &e).await,
    };
    valid.mirrored = mirrored.resolved.clone();

    // keys and secrets: made before the workloads that mount them.
    let keyring = match plan.kms {
        true => Some(keys::ensure(env, ctx, &valid).await?),
        false => None,
    };
    let endpoints = resources::endpoints(&valid, valid.profile, &ctx.build);
    let secrets = secrets::reconcile(ctx, &valid, &endpoints).await?;
    connection::reconcile(ctx, &valid, &endpoints).await?;

    // build (pure), then apply what may go now.
    let desired = build::desired(&valid, &ctx.build, secrets.rollout_hash.as_deref());
    let seen = observe::workloads(ctx, &valid, &desired).await;
    apply::run(env, ctx, &valid, &plan, &desired, &seen, secrets.state.ok).await?;

    // status: what is not up and why, drift, conditions; when to look again.
    let outcome = status::Outcome {
        valid: &valid,
        plan: &plan,
        seen,
        secrets: secrets.state,
        mirrored,
        endpoints,
        keyring,
    };
    status::report(env, ctx, outcome).await
}
