//! Why a component's pods are not up: the pod's own reason (an image the node cannot pull, a
//! crash loop with its last log line, an unschedulable pod and its claim's events), so that
//! conditions and `parity status` say more than "Starting". Reading is I/O; judging is pure.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use super::Context;
use crate::resources::{LABEL_COMPONENT, LABEL_ENVIRONMENT};

/// What is wrong with a component's pods, for its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    pub reason: &'static str,
    /// The pod it was found in.
    pub pod: String,
    pub message: String,
    /// A container that exited or crash-loops: its last log line is worth fetching.
    pub crashed: Option<(String, String)>,
}

impl PodProblem {
    /// The component's verdict: not available, for this reason.
    pub fn verdict(&self) -> crate::verdict::Verdict {
        crate::verdict::Verdict::not(self.reason, self.message.clone())
    }
}

/// Waiting reasons that mean the image will not be there without a change.
const IMAGE_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
];

/// How long a running container may stay unready before that is a problem rather than a
/// start: the slowest start (DynamoDB Local's JVM) with room to spare.
const STARTUP_GRACE: SignedDuration = SignedDuration::from_secs(45);

/// The first problem among `pods` at `now` (pure): image, crash loop, config error,
/// unschedulable, a running server that stopped answering.
pub fn problem_of(pods: &[Pod], now: Timestamp) -> Option<PodProblem> {
    pods.iter().find_map(|p| pod_problem(p, now))
}

fn pod_problem(pod: &Pod, now: Timestamp) -> Option<PodProblem> {
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        if let Some(p) = container_problem(&name, c).or_else(|| unresponsive(&name, c, now)) {
            return Some(p);
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })?;
    Some(PodProblem {
        reason: "Unschedulable",
        pod: name.clone(),
        message: format!(
            "pod {name} cannot be scheduled: {}",
            unschedulable
                .message
                .as_deref()
                .unwrap_or("no reason given")
        ),
        crashed: None,
    })
}

fn container_problem(pod: &str, c: &ContainerStatus) -> Option<PodProblem> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let detail = waiting.message.as_deref().unwrap_or_default();
    if let Some(r) = IMAGE_REASONS.iter().find(|r| **r == reason) {
        return Some(PodProblem {
            reason: r,
            pod: pod.to_string(),
            message: format!(
                "container {} of pod {pod} cannot get image {}: {reason} {detail}",
                c.name, c.image
            )
            .trim_end()
            .to_string(),
            crashed: None,
        });
    }
    if reason == "CrashLoopBackOff" {
        let terminated = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let said = terminated
            .and_then(|t| t.message.as_deref())
            .and_then(last_line);
        let mut message = format!("container {} of pod {pod} is crash-looping", c.name);
        if let Some(t) = terminated {
            message.push_str(&format!(", last exit code {}", t.exit_code));
        }
        if let Some(line) = &said {
            message.push_str(&format!(": {line}"));
        }
        return Some(PodProblem {
            reason: "CrashLoopBackOff",
            pod: pod.to_string(),
            message,
            // No termination message: the log has the last words.
            crashed: said.is_none().then(|| (pod.to_string(), c.name.clone())),
        });
    }
    if reason.starts_with("CreateContainer") || reason == "RunContainerError" {
        return Some(PodProblem {
            reason: "ContainerFailed",
            pod: pod.to_string(),
            message: format!("container {} of pod {pod}: {reason} {detail}", c.name)
                .trim_end()
                .to_string(),
            crashed: None,
        });
    }
    None
}

/// A container that has run past its start-up grace and fails its readiness probe: stopped,
/// hung or overloaded. Not restarted yet (liveness waits longer), so its data is still there.
fn unresponsive(pod: &str, c: &ContainerStatus, now: Timestamp) -> Option<PodProblem> {
    let started = c.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
    let running_for = now.duration_since(started);
    if c.ready || running_for < STARTUP_GRACE {
        return None;
    }
    Some(PodProblem {
        reason: "Unresponsive",
        pod: pod.to_string(),
        message: format!(
            "container {} of pod {pod} has run for {}s but does not answer its readiness probe",
            c.name,
            running_for.as_secs()
        ),
        crashed: None,
    })
}

/// The last words of a log or termination message: from the last `error:` line (the `parity`
/// binary's error and the problems it lists under it) to the end, else the last line; on one
/// line, at most 400 characters.
pub fn last_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("error:"))
        .unwrap_or(lines.len().checked_sub(1)?);
    Some(lines[from..].join(" ").chars().take(400).collect())
}

/// Reads the pods of one component of an environment and says what is wrong, if anything.
/// With a crash loop the container's last log line is added; with an unschedulable pod, the
/// latest Warning event of the claim named in the scheduler's message.
pub async fn diagnose(ctx: &Context, ns: &str, env: &str, component: &str) -> Option<PodProblem> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("{LABEL_ENVIRONMENT}={env},{LABEL_COMPONENT}={component}");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    let mut problem = problem_of(&list.items, Timestamp::now())?;
    if let Some((pod, container)) = problem.crashed.clone() {
        let params = LogParams {
            container: Some(container),
            previous: true,
            tail_lines: Some(20),
            ..Default::default()
        };
        if let Ok(log) = pods.logs(&pod, &params).await
            && let Some(line) = last_line(&log)
        {
            problem.message = format!("{}: {line}", problem.message);
        }
    }
    if problem.reason == "Unresponsive"
        && let Some(said) = latest_warning(ctx, ns, "Pod", &problem.pod, Some("Unhealthy")).await
    {
        // The kubelet's words: "Readiness probe failed: Get ...: context deadline exceeded".
        problem.message = format!("{}: {said}", problem.message);
    }
    if problem.reason == "Unschedulable" && problem.message.contains("PersistentVolumeClaim") {
        let claim = crate::resources::names::dynamodb_data(env);
        if let Some(said) = latest_warning(ctx, ns, "PersistentVolumeClaim", &claim, None).await {
            problem.message = format!("{}; claim {claim}: {said}", problem.message);
        }
    }
    Some(problem)
}

/// The message of the latest Warning event about `kind/name` (with `reason`, if given).
async fn latest_warning(
    ctx: &Context,
    ns: &str,
    kind: &str,
    name: &str,
    reason: Option<&str>,
) -> Option<String> {
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), ns);
    let fields = format!("involvedObject.kind={kind},involvedObject.name={name}");
    let list = events
        .list(&ListParams::default().fields(&fields))
        .await
        .ok()?;
    list.items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| reason.is_none_or(|r| e.reason.as_deref() == Some(r)))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.message)
}

/// The last words of a failed bootstrap Job's pod (its termination message holds the tail of
/// its log): the fixture's file:line:reason.
pub async fn job_failure(ctx: &Context, ns: &str, job: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?;
    list.items.iter().find_map(|p| {
        p.status
            .as_ref()?
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.as_deref())
            .and_then(last_line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "dev-kms-1"}, "status": status
        }))
        .expect("pod")
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!({"containerStatuses": [{
            "name": "kms", "image": "parity-operator:missing", "imageID": "", "ready": false,
            "restartCount": 3,
            "state": {"waiting": {"reason": reason, "message": message}},
            "lastState": {"terminated": {"exitCode": 1, "message": "starting\nerror: --keyring: no such file\n"}}
        }]})
    }

    #[test]
    fn an_image_the_node_cannot_get_is_named_with_the_image() {
        let p = problem_of(
            &[pod(waiting(
                "ErrImageNeverPull",
                "not present with pull policy Never",
            ))],
            now(),
        )
        .expect("problem");
        assert_eq!(p.reason, "ErrImageNeverPull");
        assert!(
            p.message.contains("parity-operator:missing"),
            "{}",
            p.message
        );
        assert!(p.message.contains("dev-kms-1"), "{}", p.message);
    }

    #[test]
    fn a_crash_loop_carries_the_exit_code_and_the_last_error_line() {
        let p = problem_of(&[pod(waiting("CrashLoopBackOff", "back-off 10s"))], now())
            .expect("problem");
        assert_eq!(p.reason, "CrashLoopBackOff");
        assert!(
            p.message
                .ends_with("last exit code 1: error: --keyring: no such file"),
            "{}",
            p.message
        );
    }

    #[test]
    fn an_unschedulable_pod_says_why_and_a_healthy_one_says_nothing() {
        let p = problem_of(&[pod(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        }]}))], now())
        .expect("problem");
        assert_eq!(p.reason, "Unschedulable");
        assert!(
            p.message
                .contains("unbound immediate PersistentVolumeClaims")
        );
        let running = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "kms", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}}
            }]}),
        );
        assert_eq!(problem_of(&[running], now()), None);
    }

    fn now() -> Timestamp {
        "2026-12-02T10:00:00Z".parse().expect("time")
    }

    fn running(ready: bool, started: &str) -> Pod {
        pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "dynamodb", "image": "moto", "imageID": "", "ready": ready, "restartCount": 0,
                "state": {"running": {"startedAt": started}}
            }]}),
        )
    }

    #[test]
    fn a_server_that_stopped_answering_is_unresponsive_but_a_starting_one_is_not() {
        let p = problem_of(&[running(false, "2026-12-02T09:55:00Z")], now()).expect("problem");
        assert_eq!((p.reason, p.pod.as_str()), ("Unresponsive", "dev-kms-1"));
        assert_eq!(
            p.message,
            "container dynamodb of pod dev-kms-1 has run for 300s but does not answer its readiness probe"
        );
        assert_eq!(
            problem_of(&[running(false, "2026-12-02T09:59:40Z")], now()),
            None
        );
        assert_eq!(
            problem_of(&[running(true, "2026-12-02T09:00:00Z")], now()),
            None
        );
    }

    #[test]
    fn the_last_words_start_at_the_error_line() {
        assert_eq!(
            last_line("reading\nerror: fixtures rejected: 1 problem\n  orders.jsonl:3: bad JSON\n")
                .as_deref(),
            Some("error: fixtures rejected: 1 problem orders.jsonl:3: bad JSON")
        );
        assert_eq!(last_line("a\nb\n\n").as_deref(), Some("b"));
        assert_eq!(last_line(""), None);
    }
}
