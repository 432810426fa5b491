//! Pure: what the observed state of an environment's objects means, as conditions.
//! Ready is the CI gate; Progressing and Degraded tell "still converging" from "broken".

use super::pods::PodProblem;
use crate::api::{Condition, ConditionStatus, ConditionType, FieldError, describe};
use crate::verdict::{INVALID_SPEC, Reason, Verdict};

/// The state of the bootstrap Job, as far as conditions care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not created yet (waiting for DynamoDB) or not needed.
    Absent,
    Running,
    Succeeded,
    Failed(String),
}

/// What the controller observed this reconcile. Booleans say "needed" and "available".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub suspended: bool,
    /// The environment runs `parity kms` (keys.provider Local).
    pub kms_needed: bool,
    pub kms_available: bool,
    /// keys.provider Kms: the external key id, recorded instead of local material.
    pub external_kms_key: Option<String>,
    pub dynamodb_pod_needed: bool,
    pub dynamodb_available: bool,
    pub dynamodb_external: Option<String>,
    pub bootstrap: JobState,
    pub dashboard_needed: bool,
    pub dashboard_available: bool,
    pub secrets: Verdict,
    pub in_sync: Verdict,
    /// Why the pods of an unavailable component are not up (image, crash loop, scheduling).
    pub kms_problem: Option<PodProblem>,
    pub dynamodb_problem: Option<PodProblem>,
    pub dashboard_problem: Option<PodProblem>,
}

impl Observed {
    /// The first pod problem: the environment is Degraded, not merely starting.
    fn pod_problem(&self) -> Option<&PodProblem> {
        self.kms_problem
            .as_ref()
            .or(self.dynamodb_problem.as_ref())
            .or(self.dashboard_problem.as_ref())
    }
}

fn starting_or(problem: &Option<PodProblem>, reason: &'static str, message: &str) -> Verdict {
    match problem {
        Some(p) => p.verdict(),
        None => Verdict::not(reason, message),
    }
}

fn cond(
    t: ConditionType,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ok {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    Condition::new(t, status, reason, message, generation)
}

fn of(t: ConditionType, v: &Verdict, generation: Option<i64>) -> Condition {
    cond(t, v.ok, v.reason.as_str(), v.message.clone(), generation)
}

pub fn keys_ready(o: &Observed) -> Verdict {
    if let Some(key) = &o.external_kms_key {
        return Verdict::ok("ExternalKms", format!("keys are held by AWS KMS key {key}"));
    }
    if !o.kms_needed {
        return Verdict::ok("NotRequired", "no key service at this parity level");
    }
    if o.kms_available {
        Verdict::ok(
            "KeyServiceAvailable",
            "the keyring exists and the key service is available",
        )
    } else {
        starting_or(
            &o.kms_problem,
            "KeyServiceStarting",
            "waiting for the key service Deployment to become available",
        )
    }
}

pub fn dynamodb_ready(o: &Observed) -> Verdict {
    if let Some(endpoint) = &o.dynamodb_external {
        return Verdict::ok(
            "External",
            format!("using the external DynamoDB endpoint {endpoint}"),
        );
    }
    if !o.dynamodb_pod_needed {
        return Verdict::ok("NotRequired", "no DynamoDB at this parity level");
    }
    if !o.dynamodb_available {
        return starting_or(
            &o.dynamodb_problem,
            "DynamoDBStarting",
            "waiting for the DynamoDB Deployment to become available",
        );
    }
    match &o.bootstrap {
        JobState::Absent | JobState::Running => Verdict::not(
            "BootstrapRunning",
            "the bootstrap Job is creating tables and loading seeds",
        ),
        JobState::Succeeded => Verdict::ok(
            "TablesReady",
            "DynamoDB is available and the tables are bootstrapped",
        ),
        JobState::Failed(why) => Verdict::not(
            "BootstrapFailed",
            format!("the bootstrap Job failed: {why}"),
        ),
    }
}

pub fn dashboard_ready(o: &Observed, keys_ok: bool, dynamodb_ok: bool) -> Verdict {
    if !o.dashboard_needed {
        return Verdict::ok(
            "NotRequired",
            "the dashboard is not enabled at this parity level",
        );
    }
    if !(keys_ok && dynamodb_ok) {
        return Verdict::not(
            "WaitingForDependencies",
            "the dashboard starts after keys and DynamoDB are ready",
        );
    }
    if o.dashboard_available {
        Verdict::ok("DashboardAvailable", "the dashboard is available")
    } else {
        starting_or(
            &o.dashboard_problem,
            "DashboardStarting",
            "waiting for the dashboard Deployment to become available",
        )
    }
}

/// Every condition for a valid spec.
pub fn compute(o: &Observed, generation: Option<i64>) -> Vec<Condition> {
    let keys = keys_ready(o);
    let dynamo = dynamodb_ready(o);
    let dash = dashboard_ready(o, keys.ok, dynamo.ok);

    let parts = [
        (ConditionType::KeysReady, &keys),
        (ConditionType::DynamoDbReady, &dynamo),
        (ConditionType::DashboardReady, &dash),
        (ConditionType::SecretsReady, &o.secrets),
    ];
    let mut out: Vec<Condition> = parts.iter().map(|(t, v)| of(*t, v, generation)).collect();
    out.push(of(ConditionType::InSync, &o.in_sync, generation));

    // Drift from staging is reported (InSync) but does not make the environment unusable.
    let first_failure = parts.iter().find(|(_, v)| !v.ok);
    let degraded = matches!(o.bootstrap, JobState::Failed(_)) || o.pod_problem().is_some();
    let (ready, progressing) = if o.suspended {
        out.push(cond(
            ConditionType::Ready,
            false,
            "Suspended",
            "spec.suspend is true: workloads are scaled to zero; data and keys are kept".into(),
            generation,
        ));
        (
            false,
            cond(
                ConditionType::Progressing,
                false,
                "Suspended",
                "suspended".into(),
                generation,
            ),
        )
    } else if let Some((t, v)) = first_failure {
        let message = &v.message;
        out.push(cond(
            ConditionType::Ready,
            false,
            v.reason.as_str(),
            format!("{t}: {message}"),
            generation,
        ));
        let p = if degraded {
            cond(
                ConditionType::Progressing,
                false,
                "Failed",
                "a component failed; see Degraded".into(),
                generation,
            )
        } else {
            cond(
                ConditionType::Progressing,
                true,
                "Reconciling",
                format!("waiting: {message}"),
                generation,
            )
        };
        (false, p)
    } else {
        out.push(cond(
            ConditionType::Ready,
            true,
            "Ready",
            "every component is ready".into(),
            generation,
        ));
        (
            true,
            cond(
                ConditionType::Progressing,
                false,
                "Ready",
                "converged".into(),
                generation,
            ),
        )
    };
    let _ = ready;
    out.push(progressing);
    out.push(if let Some(p) = o.pod_problem() {
        cond(
            ConditionType::Degraded,
            true,
            p.reason,
            p.message.clone(),
            generation,
        )
    } else if degraded {
        of(
            ConditionType::Degraded,
            &Verdict {
                ok: true,
                ..dynamo.clone()
            },
            generation,
        )
    } else {
        cond(
            ConditionType::Degraded,
            false,
            "AsExpected",
            "no component has failed".into(),
            generation,
        )
    });
    out
}

/// Conditions for a spec that failed validation: never a crash loop, a clear reason instead.
pub fn invalid(errors: &[FieldError], generation: Option<i64>) -> Vec<Condition> {
    failed(INVALID_SPEC, describe(errors), None, generation)
}

/// Conditions for a failure that needs the user (a missing seed Secret, an unreadable
/// keyring): Degraded with the reason, and the failing component's condition if given.
pub fn failed(
    reason: Reason,
    message: String,
    component: Option<ConditionType>,
    generation: Option<i64>,
) -> Vec<Condition> {
    let reason = reason.as_str();
    let mut out = vec![
        cond(
            ConditionType::Ready,
            false,
            reason,
            message.clone(),
            generation,
        ),
        cond(
            ConditionType::Progressing,
            false,
            reason,
            "fix the cause to continue".into(),
            generation,
        ),
        cond(
            ConditionType::Degraded,
            true,
            reason,
            message.clone(),
            generation,
        ),
    ];
    if let Some(t) = component {
        out.push(cond(t, false, reason, message, generation));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_all() -> Observed {
        Observed {
            suspended: false,
            kms_needed: true,
            kms_available: true,
            external_kms_key: None,
            dynamodb_pod_needed: true,
            dynamodb_available: true,
            dynamodb_external: None,
            bootstrap: JobState::Succeeded,
            dashboard_needed: true,
            dashboard_available: true,
            secrets: Verdict::ok("Generated", "ok"),
            in_sync: Verdict::ok("NotMirrored", "ok"),
            kms_problem: None,
            dynamodb_problem: None,
            dashboard_problem: None,
        }
    }

    fn get(cs: &[Condition], t: ConditionType) -> &Condition {
        cs.iter()
            .find(|c| c.type_ == t.as_str())
            .expect("condition present")
    }

    #[test]
    fn everything_available_is_ready_and_not_progressing() {
        let cs = compute(&ready_all(), Some(3));
        assert_eq!(get(&cs, ConditionType::Ready).status, ConditionStatus::True);
        assert_eq!(
            get(&cs, ConditionType::Progressing).status,
            ConditionStatus::False
        );
        assert_eq!(
            get(&cs, ConditionType::Degraded).status,
            ConditionStatus::False
        );
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn a_starting_dynamodb_is_progressing_not_degraded_and_holds_the_dashboard() {
        let o = Observed {
            dynamodb_available: false,
            bootstrap: JobState::Absent,
            dashboard_available: false,
            ..ready_all()
        };
        let cs = compute(&o, None);
        let ready = get(&cs, ConditionType::Ready);
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "DynamoDBStarting");
        assert_eq!(
            get(&cs, ConditionType::Progressing).status,
            ConditionStatus::True
        );
        assert_eq!(
            get(&cs, ConditionType::Degraded).status,
            ConditionStatus::False
        );
        assert_eq!(
            get(&cs, ConditionType::DashboardReady).reason,
            "WaitingForDependencies"
        );
    }

    #[test]
    fn a_failed_bootstrap_is_degraded_with_the_reason() {
        let o = Observed {
            bootstrap: JobState::Failed("orders.jsonl line 3: missing key attribute id".into()),
            ..ready_all()
        };
        let cs = compute(&o, None);
        let degraded = get(&cs, ConditionType::Degraded);
        assert_eq!(degraded.status, ConditionStatus::True);
        assert_eq!(degraded.reason, "BootstrapFailed");
        assert!(degraded.message.contains("line 3"));
        assert_eq!(
            get(&cs, ConditionType::Progressing).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn a_pod_problem_names_the_component_and_degrades_instead_of_starting() {
        let o = Observed {
            kms_available: false,
            kms_problem: Some(PodProblem {
                reason: "ImagePullBackOff",
                pod: "dev-kms-x".into(),
                message: "container kms of pod dev-kms-x cannot get image p:missing".into(),
                crashed: None,
            }),
            ..ready_all()
        };
        let cs = compute(&o, None);
        let keys = get(&cs, ConditionType::KeysReady);
        assert_eq!(keys.reason, "ImagePullBackOff");
        assert!(keys.message.contains("p:missing"));
        let degraded = get(&cs, ConditionType::Degraded);
        assert_eq!(degraded.status, ConditionStatus::True);
        assert_eq!(degraded.reason, "ImagePullBackOff");
        assert_eq!(get(&cs, ConditionType::Ready).reason, "ImagePullBackOff");
    }

    #[test]
    fn drift_is_reported_but_does_not_block_ready() {
        let o = Observed {
            in_sync: Verdict::not("Drifted", "1 difference"),
            ..ready_all()
        };
        let cs = compute(&o, None);
        assert_eq!(
            get(&cs, ConditionType::InSync).status,
            ConditionStatus::False
        );
        assert_eq!(get(&cs, ConditionType::Ready).status, ConditionStatus::True);
    }

    #[test]
    fn suspended_is_not_ready_and_says_so() {
        let o = Observed {
            suspended: true,
            ..ready_all()
        };
        let cs = compute(&o, None);
        assert_eq!(get(&cs, ConditionType::Ready).reason, "Suspended");
    }

    #[test]
    fn invalid_spec_names_the_field() {
        let cs = invalid(
            &[FieldError::new("spec.ttl", "must be a duration")],
            Some(1),
        );
        let ready = get(&cs, ConditionType::Ready);
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(ready.message.contains("spec.ttl"));
        assert_eq!(
            get(&cs, ConditionType::Degraded).status,
            ConditionStatus::True
        );
    }
}
