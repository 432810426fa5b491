//! What the caches say about the environment's workloads (available Deployments, the
//! bootstrap Job), and, for what is not up, why: its pods' problems and, with
//! `--live-drift`, its live tables. Read only.

use crate::api::{DriftEntry, Endpoints, ValidatedSpec};
use crate::controller::conditions::JobState;
use crate::controller::pods::{self, PodProblem};
use crate::controller::{Context, live};
use crate::resources::{self, Component, Desired, Object, Plan, names};
use crate::verdict::Verdict;

/// The environment's workloads as the caches have them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub kms_available: bool,
    pub dynamodb_available: bool,
    pub dashboard_available: bool,
    pub secrets_api_available: bool,
    pub bootstrap: JobState,
}

impl Seen {
    /// Keys are ready, or not needed.
    pub fn keys_ok(&self, plan: &Plan) -> bool {
        !plan.kms || self.kms_available
    }

    /// DynamoDB is available and bootstrapped, or not run in the cluster.
    pub fn dynamo_ok(&self, plan: &Plan) -> bool {
        !plan.dynamodb_pod || (self.dynamodb_available && self.bootstrap == JobState::Succeeded)
    }
}

pub async fn workloads(ctx: &Context, valid: &ValidatedSpec, desired: &[Desired]) -> Seen {
    let (ns, name) = (valid.namespace.as_str(), valid.name.as_str());
    let bootstrap_name = desired.iter().find_map(|d| match d {
        Desired::Apply(o @ Object::Job(_)) if o.component() == Some(Component::Bootstrap) => {
            Some(o.name().to_string())
        }
        _ => None,
    });
    let bootstrap = match &bootstrap_name {
        Some(job) => match ctx.stores.job_state(ns, job) {
            // The Job says only that it failed; its pod's last words say why (file:line).
            JobState::Failed(why) => JobState::Failed(
                pods::job_failure(ctx, ns, job)
                    .await
                    .map_or(why, |line| format!("{line} (Job {job})")),
            ),
            other => other,
        },
        None => JobState::Succeeded,
    };
    Seen {
        kms_available: ctx.stores.deployment_available(ns, &names::kms(name)),
        dynamodb_available: ctx.stores.deployment_available(ns, &names::dynamodb(name)),
        dashboard_available: ctx.stores.deployment_available(ns, &names::dashboard(name)),
        secrets_api_available: ctx
            .stores
            .deployment_available(ns, &names::secrets_api(name)),
        bootstrap,
    }
}

/// Why the pods of each needed but unavailable component are not up, when they say so.
#[derive(Clone, Debug, Default)]
pub struct Problems {
    pub kms: Option<PodProblem>,
    pub dynamodb: Option<PodProblem>,
    pub dashboard: Option<PodProblem>,
    pub secrets_api: Option<PodProblem>,
}

/// The secrets API is looked at only once the secrets it serves are ready (`secrets_ok`).
pub async fn problems(
    ctx: &Context,
    valid: &ValidatedSpec,
    plan: &Plan,
    seen: &Seen,
    secrets_ok: bool,
) -> Problems {
    let (ns, name, suspended) = (
        valid.namespace.as_str(),
        valid.name.as_str(),
        valid.spec.suspend,
    );
    let diagnose = |needed: bool, available: bool, component: Component| async move {
        if needed && !available && !suspended {
            pods::diagnose(ctx, ns, name, component.as_str()).await
        } else {
            None
        }
    };
    Problems {
        secrets_api: diagnose(
            plan.secrets_api && secrets_ok,
            seen.secrets_api_available,
            Component::SecretsApi,
        )
        .await,
        kms: diagnose(plan.kms, seen.kms_available, Component::Kms).await,
        dynamodb: diagnose(
            plan.dynamodb_pod,
            seen.dynamodb_available,
            Component::DynamoDb,
        )
        .await,
        dashboard: diagnose(
            plan.dashboard && seen.keys_ok(plan) && seen.dynamo_ok(plan),
            seen.dashboard_available,
            Component::Dashboard,
        )
        .await,
    }
}

/// `--live-drift`: the tables the environment should have against DescribeTable at its
/// endpoint, once it has them, folded into the mirror's verdict. `Some(interval)` when it
/// looked (live tables are not watched: look again then).
pub async fn live_drift(
    ctx: &Context,
    valid: &ValidatedSpec,
    plan: &Plan,
    seen: &Seen,
    endpoints: &Endpoints,
    declared: (Verdict, Vec<DriftEntry>),
) -> ((Verdict, Vec<DriftEntry>), Option<std::time::Duration>) {
    let Some(live) = &ctx.live else {
        return (declared, None);
    };
    let Some(endpoint) = endpoints.dynamodb.as_deref() else {
        return (declared, None);
    };
    let external = !plan.dynamodb_pod;
    if !plan.components.dynamodb || valid.spec.suspend || !(external || seen.dynamo_ok(plan)) {
        return (declared, None);
    }
    // Staging's own tables are compared as declared: the parity level's streams are for
    // in-cluster copies only.
    let expected = if external {
        resources::declared_topology(&valid.spec).unwrap_or_default()
    } else {
        resources::topology(valid, valid.profile, &ctx.build)
    };
    let target = live::Target {
        endpoint,
        region: resources::region(valid),
        external,
        expected: &expected,
    };
    let result = live::check(live, &target).await;
    (live::merge(declared, endpoint, result), Some(live.interval))
}
