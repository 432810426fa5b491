//! Leader election under faults, with two `parity operator` processes on the real apiserver:
//! a leader frozen (SIGSTOP) past its lease, and a leader whose Lease is taken from it.
//! Each replica's leader state is its `parity_operator_leader` gauge, sampled every 100 ms
//! with the Lease, so "never two leaders" is checked on what the processes report.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::kube_env::TestNamespace;
use support::operator::{Operator, leading_at};
use support::penv::*;
use support::wait::until;

const LEASE: &str = "parity-operator-leader";
/// client-go's defaults, which the operator uses.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

async fn holder(leases: &Api<Lease>) -> Result<String, String> {
    let l = leases.get_opt(LEASE).await.map_err(|e| e.to_string())?;
    Ok(l.and_then(|l| l.spec?.holder_identity).unwrap_or_default())
}

async fn wait_holder(leases: &Api<Lease>, who: &str, timeout: Duration) {
    until(&format!("{who} to hold the Lease"), timeout, || async {
        match holder(leases).await? {
            h if h == who => Ok(()),
            h => Err(h),
        }
    })
    .await;
}

/// One look at both replicas and the Lease: gauges first, then the Lease, so a replica that
/// reports leading has written the Lease before the Lease is read.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    a: Option<bool>,
    b: Option<bool>,
    holder: String,
}

struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(a_port: u16, b_port: u16, leases: Api<Lease>) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let samples = samples.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let at = Instant::now();
                    let (a, b) = tokio::join!(leading_at(a_port), leading_at(b_port));
                    let holder = holder(&leases).await.unwrap_or_default();
                    samples.lock().unwrap().push(Sample { at, a, b, holder });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Sampler {
            samples,
            stop,
            task,
        }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("sampler");
        self.samples.lock().unwrap().clone()
    }
}

/// Both replicas up, `a` leading and `b` reporting itself a follower, one environment Ready.
type Replicas = (
    TestNamespace,
    Operator,
    Operator,
    Api<ParityEnvironment>,
    Api<Lease>,
);

async fn two_replicas(prefix: &str) -> Replicas {
    let (ns, a, envs) = setup(prefix).await;
    a.wait_ready().await;
    let leases: Api<Lease> = ns.api();
    wait_holder(&leases, &a.identity, WAIT).await;
    let b = Operator::start(&ns.name, &format!("{prefix}-b"), None);
    b.wait_ready().await;
    until(
        "the second replica to report itself a follower",
        WAIT,
        || async {
            match b.leading().await {
                Some(false) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;
    (ns, a, b, envs, leases)
}

/// A spec change only a leader's reconcile turns into Ready at the new generation.
async fn change_and_wait_reconciled(envs: &Api<ParityEnvironment>, table: &str) {
    let patch = json!({"spec": {"dynamodb": {"tables": [
        {"name": "orders", "partitionKey": {"name": "id", "type": "S"}},
        {"name": table, "partitionKey": {"name": "id", "type": "S"}}
    ]}}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    wait_condition(envs, "dev", "Ready", "True").await;
}

/// Log lines of a write (controller/steps/, controller/connection.rs).
fn writes_in(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            [
                "applied",
                "deleted orphan",
                "wrote connection Secret",
                "rolled app",
                "adopted",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect()
}

#[tokio::test]
async fn a_frozen_leader_is_replaced_within_lease_plus_renew_deadline_and_never_acts_again() {
    let (_ns, mut a, b, envs, leases) = two_replicas("flt-stop").await;
    let sampler = Sampler::start(a.metrics_port, b.metrics_port, leases.clone());
    until("a sample of a leading", WAIT, || async {
        match a.leading().await {
            Some(true) => Ok(()),
            other => Err(other),
        }
    })
    .await;

    let log_before_stop = a.logs().len();
    a.signal("STOP");
    let stopped = Instant::now();
    wait_holder(&leases, &b.identity, LEASE_DURATION + RENEW_DEADLINE + WAIT).await;
    let takeover = stopped.elapsed();
    eprintln!("takeover after SIGSTOP of the leader: {takeover:?}");
    assert!(
        takeover <= LEASE_DURATION + RENEW_DEADLINE,
        "the follower took {takeover:?}, more than lease + renew deadline"
    );
    // A lease duration must pass unchanged, by the follower's clock, before it takes over;
    // the leader's last renewal may have landed up to a retry period before the stop.
    assert!(
        takeover >= LEASE_DURATION - RETRY - Duration::from_secs(1),
        "the follower took over after {takeover:?}, before the lease could expire"
    );
    // The new leader reconciles a change made while the old one is still frozen.
    change_and_wait_reconciled(&envs, "while-frozen").await;

    let resumed = Instant::now();
    a.signal("CONT");
    let status = a.wait_exit(Duration::from_secs(30)).await;
    eprintln!(
        "the thawed leader exited {:?} after SIGCONT ({status})",
        resumed.elapsed()
    );
    assert!(
        !status.success(),
        "stepping down is an error exit: {status}"
    );
    let samples = sampler.finish().await;

    let after_stop = &a.logs()[log_before_stop..];
    assert!(
        after_stop.contains("stepping down: no renewal within the renew deadline"),
        "the thawed leader says why it stops:\n{after_stop}"
    );
    assert!(
        writes_in(after_stop).is_empty(),
        "the thawed leader wrote after losing the Lease:\n{after_stop}"
    );
    assert!(!samples.is_empty());
    for s in &samples {
        assert!(
            !(s.a == Some(true) && s.b == Some(true)),
            "two leaders at once: {s:?}"
        );
        if s.b == Some(true) {
            assert_eq!(s.holder, b.identity, "b leads without the Lease: {s:?}");
        }
        if s.at >= resumed {
            assert_ne!(s.a, Some(true), "the thawed leader reported leading: {s:?}");
        }
    }
    assert!(
        samples.iter().any(|s| s.a == Some(true)) && samples.iter().any(|s| s.b == Some(true)),
        "the samples saw each replica lead in turn"
    );
    assert_eq!(holder(&leases).await.expect("lease"), b.identity);
    assert_eq!(b.leading().await, Some(true));
}

#[tokio::test]
async fn a_lost_lease_ends_the_leader_and_the_new_leader_reconciles() {
    let (_ns, mut a, b, envs, leases) = two_replicas("flt-lost").await;

    // Someone else writes the Lease, as a replica that took it over would.
    let mut lease = leases.get(LEASE).await.expect("lease");
    let spec = lease.spec.as_mut().expect("spec");
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let lost_at = Instant::now();
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("take the Lease");

    let status = a.wait_exit(RENEW_DEADLINE + WAIT).await;
    eprintln!(
        "the leader exited {:?} after losing its Lease ({status})",
        lost_at.elapsed()
    );
    assert!(!status.success());
    assert!(
        a.logs()
            .contains("stepping down: another replica holds the Lease"),
        "{}",
        a.logs()
    );
    // The intruder never renews: b takes over a lease duration after it saw that write.
    wait_holder(&leases, &b.identity, LEASE_DURATION + RENEW_DEADLINE + WAIT).await;
    let takeover = lost_at.elapsed();
    eprintln!("the second replica took the abandoned Lease after {takeover:?}");
    assert!(takeover >= LEASE_DURATION - Duration::from_secs(1));
    until("the new leader to report leading", WAIT, || async {
        match b.leading().await {
            Some(true) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let writes_before = b.writes().await;
    change_and_wait_reconciled(&envs, "after-takeover").await;
    assert!(
        b.writes().await > writes_before,
        "the new leader wrote the change"
    );
}

#[tokio::test]
async fn a_leader_stopped_with_sigterm_hands_the_lease_over_at_once() {
    let (_ns, mut a, b, envs, leases) = two_replicas("flt-term").await;
    let stopped = Instant::now();
    a.signal("TERM");
    let status = a.wait_exit(WAIT).await;
    assert!(status.success(), "a graceful stop exits 0: {status}");
    assert!(a.logs().contains("released the Lease"), "{}", a.logs());
    wait_holder(&leases, &b.identity, WAIT).await;
    let handover = stopped.elapsed();
    eprintln!("handover after SIGTERM of the leader: {handover:?}");
    // Released, not expired: the standby takes it at its next retry, well before a lease
    // duration could have passed.
    assert!(
        handover < LEASE_DURATION - RETRY,
        "the handover took {handover:?}: the Lease was not released"
    );
    change_and_wait_reconciled(&envs, "after-handover").await;
}
