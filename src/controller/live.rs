//! Live drift (`--live-drift`): the tables an environment should have, compared with what
//! DescribeTable says at its DynamoDB endpoint. In the cluster the operator reaches every
//! DynamoDB Local Service; for Staging it reads the real account with its own credentials
//! (read-only calls). Unreachable endpoints are reported, never fatal.

use std::time::Duration;

use crate::api::{DriftEntry, MAX_DRIFT_ENTRIES};
use crate::dynamo::connect::AwsArgs;
use crate::dynamo::drift::{Drift, TRUNCATED_PATH, diff};
use crate::dynamo::live::live_topology;
use crate::dynamo::topology::Topology;

use crate::verdict::{Reason, Verdict};

/// Settings from the operator's flags.
#[derive(Clone, Debug)]
pub struct LiveCheck {
    /// Credentials and region for external (Staging) endpoints; DynamoDB Local accepts any.
    pub aws: AwsArgs,
    /// How often a converged environment is looked at again (live tables are not watched).
    pub interval: Duration,
}

/// Where and what to compare.
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub region: String,
    /// External endpoints are signed with the operator's credentials.
    pub external: bool,
    pub expected: &'a Topology,
}

/// Every call is bounded: a slow or unreachable endpoint costs at most this per reconcile.
const BUDGET: Duration = Duration::from_secs(5);

/// The live differences, or why the tables could not be read.
pub async fn check(live: &LiveCheck, target: &Target<'_>) -> Result<Vec<Drift>, String> {
    let mut aws = if target.external {
        live.aws.clone()
    } else {
        AwsArgs::default()
    };
    aws.region = target.region.clone();
    let read = live_topology(target.endpoint, &aws, target.expected, false);
    match tokio::time::timeout(BUDGET, read).await {
        Err(_) => Err(format!("no answer within {}s", BUDGET.as_secs())),
        // The SDK's error chain names the operation and the cause; never a credential.
        Ok(Err(e)) => Err(format!("{e:#}")),
        Ok(Ok(actual)) => Ok(diff(target.expected, &actual)),
    }
}

/// Folds the live result into InSync and status.drift (pure). Declared drift (a mirror's)
/// comes first; live entries have paths prefixed `live.`.
pub fn merge(
    declared: (Verdict, Vec<DriftEntry>),
    endpoint: &str,
    live: Result<Vec<Drift>, String>,
) -> (Verdict, Vec<DriftEntry>) {
    let (
        Verdict {
            ok,
            reason,
            message,
        },
        mut drift,
    ) = declared;
    match live {
        Err(why) => {
            let mut why = why;
            why.truncate(300);
            let message = format!("{message}; live tables at {endpoint} not checked: {why}");
            (
                Verdict {
                    ok,
                    reason,
                    message,
                },
                drift,
            )
        }
        Ok(live) if live.is_empty() => {
            let (reason, message) = if reason.as_str() == "NotMirrored" {
                (
                    Reason("LiveInSync"),
                    format!("the live tables at {endpoint} match the declared ones"),
                )
            } else {
                (
                    reason,
                    format!("{message}; the live tables at {endpoint} match"),
                )
            };
            (
                Verdict {
                    ok,
                    reason,
                    message,
                },
                drift,
            )
        }
        Ok(live) => {
            let count = live.iter().filter(|d| d.path != TRUNCATED_PATH).count();
            let first = &live[0];
            let summary = format!(
                "{count} difference(s) between the declared tables and the live ones at {endpoint}; first: {}: expected {}, actual {}",
                first.path, first.expected, first.actual
            );
            let room = MAX_DRIFT_ENTRIES.saturating_sub(drift.len());
            drift.extend(
                live.iter()
                    .take(room)
                    .map(|d| DriftEntry::new(&format!("live.{}", d.path), &d.expected, &d.actual)),
            );
            let (reason, message) = if ok {
                (Reason("LiveDrift"), summary)
            } else {
                (reason, format!("{message}; {summary}"))
            };
            (Verdict::not(reason.0, message), drift)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ok: bool, reason: &'static str) -> (Verdict, Vec<DriftEntry>) {
        let v = if ok {
            Verdict::ok(reason, "m")
        } else {
            Verdict::not(reason, "m")
        };
        (v, Vec::new())
    }

    fn drift(path: &str) -> Drift {
        Drift {
            path: path.into(),
            expected: "present".into(),
            actual: "(absent)".into(),
        }
    }

    #[test]
    fn live_drift_turns_in_sync_false_and_is_listed_after_declared_drift() {
        let (v, d) = merge(
            state(true, "NotMirrored"),
            "http://x",
            Ok(vec![drift("tables[a]")]),
        );
        assert!(!v.ok);
        assert_eq!(v.reason.as_str(), "LiveDrift");
        let msg = &v.message;
        assert!(
            msg.contains("1 difference(s)") && msg.contains("tables[a]"),
            "{msg}"
        );
        assert_eq!(
            d,
            [DriftEntry::new("live.tables[a]", "present", "(absent)")]
        );

        let declared = (
            Verdict::not("Drifted", "m"),
            vec![DriftEntry::new("tables[b]", "x", "y")],
        );
        let (v, d) = merge(declared, "http://x", Ok(vec![drift("tables[a]")]));
        assert!(!v.ok);
        assert_eq!(v.reason.as_str(), "Drifted");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].path, "tables[b]");
    }

    #[test]
    fn a_match_or_an_unreachable_endpoint_keeps_the_declared_verdict() {
        let (v, _) = merge(state(true, "NotMirrored"), "http://x", Ok(vec![]));
        assert!(v.ok);
        assert_eq!(v.reason.as_str(), "LiveInSync");
        assert!(v.message.contains("match"));
        let (v, _) = merge(state(true, "Mirrored"), "http://x", Ok(vec![]));
        assert!(v.ok && v.reason.as_str() == "Mirrored");
        assert!(v.message.contains("live tables at http://x match"));
        let unreachable = Err("connection refused".into());
        let (v, _) = merge(state(true, "Mirrored"), "http://x", unreachable);
        assert!(v.ok && v.reason.as_str() == "Mirrored");
        let msg = &v.message;
        assert!(msg.contains("not checked: connection refused"), "{msg}");
    }

    #[test]
    fn status_drift_stays_bounded() {
        let many: Vec<Drift> = (0..200).map(|i| drift(&format!("tables[t{i}]"))).collect();
        let (_, d) = merge(state(true, "NotMirrored"), "http://x", Ok(many));
        assert_eq!(d.len(), MAX_DRIFT_ENTRIES);
    }
}
