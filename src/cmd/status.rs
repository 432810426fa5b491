//! `parity status [NAME]`: an environment, its objects and their state as a tree, and why it
//! is not Ready (in the spirit of `crossplane beta trace`). Exits 1 when any shown environment
//! is not Ready, so scripts can use it as a gate; `--wait` waits for Ready instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

use crate::api::{ConditionStatus, ConditionType, ParityEnvironment};
use crate::resources::{LABEL_ENVIRONMENT, OwnedKind};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  parity status dev -n demo-local        the tree of one environment; exit 1 unless Ready
  parity status -n ci-1234               every environment of a namespace
  parity status ci -n ci-1234 --wait --timeout 10m
                                         wait for Ready, printing each change of state
  kubectl parity status dev              the same, as a kubectl plugin")]
pub struct StatusArgs {
    /// Environment name; all environments of the namespace when omitted.
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Wait until every shown environment is Ready, printing each change of state on stderr;
    /// exit 1 with the tree if --timeout passes first.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (90s, 5m, 1h).
    #[arg(long, default_value = "5m", value_parser = crate::duration::parse_duration)]
    pub timeout: Duration,
}

/// How often --wait looks again.
const WAIT_POLL: Duration = Duration::from_secs(2);

pub async fn run(args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    let client = Client::try_default().await?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let envs: Api<ParityEnvironment> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let list = match &args.name {
            Some(n) => vec![envs.get_opt(n).await?.ok_or_else(|| {
                anyhow::anyhow!("ParityEnvironment {n} not found in namespace {ns}")
            })?],
            None => envs.list(&ListParams::default()).await?.items,
        };
        if list.is_empty() {
            println!("no ParityEnvironments in namespace {ns}");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        let all_ready = list.iter().all(is_ready);
        let timed_out = started.elapsed() >= args.timeout;
        if !args.wait || all_ready || timed_out {
            for env in &list {
                let objects = owned_objects(&client, &ns, &env.name_any()).await?;
                print!("{}", render(env, &objects).0);
            }
            if args.wait && !all_ready {
                eprintln!(
                    "error: not Ready after {}s (--timeout)",
                    args.timeout.as_secs()
                );
            }
            return Ok(if all_ready {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            });
        }
        for env in &list {
            let line = progress_line(env);
            if shown.get(&env.name_any()) != Some(&line) {
                eprintln!("[{:>4}s] {line}", started.elapsed().as_secs());
                shown.insert(env.name_any(), line);
            }
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn is_ready(env: &ParityEnvironment) -> bool {
    env.status
        .as_ref()
        .and_then(|s| s.condition(ConditionType::Ready))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// Pure: one line of where an environment stands, for --wait's progress.
pub fn progress_line(env: &ParityEnvironment) -> String {
    let ready = env
        .status
        .as_ref()
        .and_then(|s| s.condition(ConditionType::Ready));
    match ready {
        Some(c) => format!("{}: {} ({})", env.name_any(), c.reason, c.message),
        None => format!("{}: not reconciled yet", env.name_any()),
    }
}

async fn owned_objects(client: &Client, ns: &str, env: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    for kind in OwnedKind::ALL {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let mut items = api
            .list(&ListParams::default().labels(&format!("{LABEL_ENVIRONMENT}={env}")))
            .await?
            .items;
        for o in &mut items {
            o.types = Some(kube::core::TypeMeta {
                api_version: ar.api_version.clone(),
                kind: kind.kind().into(),
            });
        }
        out.extend(items);
    }
    Ok(out)
}

/// A one-line state of an owned object, from its status (never from Secret data).
fn summary(o: &DynamicObject) -> String {
    let kind = o
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default();
    let s = &o.data["status"];
    match kind {
        "Deployment" => {
            let want = o.data["spec"]["replicas"].as_i64().unwrap_or(1);
            let have = s["availableReplicas"].as_i64().unwrap_or(0);
            format!("{have}/{want} available")
        }
        "Job" => {
            let conds = s["conditions"].as_array().cloned().unwrap_or_default();
            let done = |t: &str| {
                conds
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            if done("Complete") {
                "Complete".into()
            } else if done("Failed") {
                "Failed".into()
            } else {
                "Running".into()
            }
        }
        "PersistentVolumeClaim" => s["phase"].as_str().unwrap_or("Pending").to_string(),
        "Service" => o.data["spec"]["clusterIP"]
            .as_str()
            .map(|ip| format!("clusterIP {ip}"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Pure: the tree for one environment and whether it is Ready.
pub fn render(env: &ParityEnvironment, objects: &[DynamicObject]) -> (String, bool) {
    let mut out = String::new();
    let status = env.status.clone().unwrap_or_default();
    let ready = status.condition(ConditionType::Ready);
    let is_ready = is_ready(env);
    let _ = writeln!(
        out,
        "ParityEnvironment {}/{}  tier={} level={}  Ready={} ({})",
        env.namespace().unwrap_or_default(),
        env.name_any(),
        env.spec.tier.as_str(),
        env.spec.parity_level,
        ready
            .map(|c| format!("{:?}", c.status))
            .unwrap_or_else(|| "Unknown".into()),
        ready
            .map(|c| c.reason.as_str())
            .unwrap_or("not reconciled yet"),
    );
    let _ = writeln!(out, "├─ Conditions");
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "│  ├─ {:<15} {:<6} {:<24} {}",
            c.type_,
            format!("{:?}", c.status),
            c.reason,
            c.message
        );
    }
    if !status.drift.is_empty() {
        let _ = writeln!(out, "├─ Drift (expected -> actual)");
        for d in &status.drift {
            let _ = writeln!(
                out,
                "│  ├─ {}: {} -> {}",
                d.path,
                d.expected.as_deref().unwrap_or("-"),
                d.actual.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(out, "├─ Objects");
    let mut rows: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            let kind = o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
            (format!("{kind}/{}", o.name_any()), summary(o))
        })
        .collect();
    rows.sort();
    for (name, state) in &rows {
        let _ = writeln!(out, "│  ├─ {name:<40} {state}");
    }
    if !is_ready {
        let why = status
            .conditions
            .iter()
            .filter(|c| {
                c.status == ConditionStatus::False
                    && c.type_ != "Ready"
                    && c.type_ != "Progressing"
                    && c.type_ != "InSync"
            })
            .map(|c| format!("{}: {}", c.type_, c.message))
            .collect::<Vec<_>>();
        let reason = if why.is_empty() {
            ready
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "the operator has not reconciled it yet".into())
        } else {
            why.join("; ")
        };
        let _ = writeln!(out, "└─ Not Ready because: {reason}");
    } else {
        let _ = writeln!(out, "└─ Ready");
    }
    (out, is_ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Condition, ParityEnvironmentStatus};

    fn env(status: Option<ParityEnvironmentStatus>) -> ParityEnvironment {
        let mut e: ParityEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
            "metadata": {"name": "dev", "namespace": "team"},
            "spec": {"tier": "Local", "parityLevel": 1}
        }))
        .expect("env");
        e.status = status;
        e
    }

    #[test]
    fn a_waiting_environment_says_which_component_blocks_it() {
        let mut st = ParityEnvironmentStatus::default();
        st.conditions.push(Condition::new(
            ConditionType::Ready,
            ConditionStatus::False,
            "DynamoDBStarting",
            "x",
            Some(1),
        ));
        st.conditions.push(Condition::new(
            ConditionType::DynamoDbReady,
            ConditionStatus::False,
            "DynamoDBStarting",
            "waiting for the DynamoDB Deployment",
            Some(1),
        ));
        let deploy: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dev-dynamodb"},
            "spec": {"replicas": 1}, "status": {}
        }))
        .expect("deploy");
        let (text, ready) = render(&env(Some(st)), &[deploy]);
        assert!(!ready);
        assert!(text.contains("Deployment/dev-dynamodb"), "{text}");
        assert!(text.contains("0/1 available"), "{text}");
        assert!(
            text.contains("Not Ready because: DynamoDBReady: waiting for the DynamoDB Deployment"),
            "{text}"
        );
    }

    #[test]
    fn wait_progress_names_the_reason_and_message() {
        assert_eq!(progress_line(&env(None)), "dev: not reconciled yet");
        let mut st = ParityEnvironmentStatus::default();
        st.conditions.push(Condition::new(
            ConditionType::Ready,
            ConditionStatus::False,
            "KeyServiceStarting",
            "waiting for the key service",
            Some(1),
        ));
        let e = env(Some(st));
        assert!(!is_ready(&e));
        assert_eq!(
            progress_line(&e),
            "dev: KeyServiceStarting (waiting for the key service)"
        );
    }

    #[test]
    fn drift_is_listed_with_both_sides() {
        let status = ParityEnvironmentStatus {
            drift: vec![crate::api::DriftEntry::new(
                "tables[orders].ttlAttribute",
                "expiresAt",
                "(none)",
            )],
            ..Default::default()
        };
        let (out, _) = render(&env(Some(status)), &[]);
        assert!(
            out.contains("├─ Drift (expected -> actual)")
                && out.contains("tables[orders].ttlAttribute: expiresAt -> (none)"),
            "{out}"
        );
        let (out, _) = render(&env(None), &[]);
        assert!(!out.contains("Drift"), "{out}");
    }

    #[test]
    fn an_unreconciled_environment_is_not_ready() {
        let (text, ready) = render(&env(None), &[]);
        assert!(!ready);
        assert!(text.contains("not reconciled yet"), "{text}");
    }
}
