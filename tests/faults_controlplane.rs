//! The control plane restarted under a running operator (hack/testenv/restart): kube-apiserver
//! or etcd killed, down for a few seconds, started again with its own command line. The
//! operator's watches must recover: a spec change made as soon as the API answers again, and
//! a child deleted by hand, are reconciled within 35 s. The environment is converged before
//! the fault, so its next timed resync is 5 minutes away: only a live watch sees the change.
//!
//! The outage stays under the leader's renew deadline (10 s): a longer one makes the leader
//! step down and exit by design, and its pod restarts (the last test here).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::cmd::run;
use support::operator::Operator;
use support::penv::*;
use support::wait::until;

/// The bound of the issue: reconciled within 35 s after the component is back.
const RECOVERY: Duration = Duration::from_secs(35);

/// Until the operator has reconciled the environment's current generation (its conditions
/// carry it), within [`RECOVERY`]. Not Ready itself: that also waits on the bootstrap Job,
/// which kube-controller-manager, the scheduler and kwok run after their own reconnects.
async fn wait_reconciled(envs: &Api<ParityEnvironment>, what: &str) {
    until(what, RECOVERY, || async {
        let e = envs.get("dev").await.map_err(|e| e.to_string())?;
        let generation = e.metadata.generation;
        match condition(&e, "Ready") {
            Some((_, _, g)) if g == generation => Ok(()),
            other => Err(format!("{other:?} at generation {generation:?}")),
        }
    })
    .await;
}

/// Runs a script of hack/testenv and returns its report (stdout); fails the test if it fails.
fn testenv(script: &str, args: &[&str]) -> String {
    let path = format!("{}/hack/testenv/{script}", env!("CARGO_MANIFEST_DIR"));
    run(Command::new(path).args(args), None).trim().to_string()
}

fn restart(component: &str, down_for_secs: u32) -> String {
    testenv(
        "restart",
        &[
            component,
            "--kill",
            "--down-for",
            &down_for_secs.to_string(),
        ],
    )
}

/// Leaves a control plane whose own controllers act again (hack/testenv/settle): after
/// restarts, kube-controller-manager's informers may stay in reconnect backoff for a minute,
/// and the next test would wait on Deployments nobody rolls out.
async fn settle() {
    let report = tokio::task::spawn_blocking(|| testenv("settle", &[]))
        .await
        .expect("settle");
    eprintln!("{report}");
}

/// Renew deadline (10 s) minus the retry period (2 s): the last renewal may have been that
/// long before the outage began.
const STEP_DOWN_POSSIBLE: Duration = Duration::from_secs(8);

/// `child`: also delete a Deployment after the change and wait for it to come back.
async fn survives_a_restart_of(component: &str, down_for_secs: u32, prefix: &str, child: bool) {
    let (ns, mut op, envs) = setup(prefix).await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;

    let report = tokio::task::spawn_blocking({
        let component = component.to_string();
        move || restart(&component, down_for_secs)
    })
    .await
    .expect("restart");
    let back = Instant::now();
    eprintln!("{report}");
    let down = report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("down_ms="))
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis)
        .expect("down_ms in the restart report");
    // An outage close to the renew deadline may make the leader step down (by design: it
    // cannot prove it still holds the Lease); then it is restarted, as its pod would be.
    // Shorter outages must not cost the process.
    let mut restarted = false;
    if !op.is_running() {
        assert!(
            down >= STEP_DOWN_POSSIBLE,
            "the operator exited after a {down:?} outage of {component}:\n{}",
            op.logs()
        );
        assert!(op.logs().contains("stepping down"), "{}", op.logs());
        op = Operator::start(&ns.name, &op.identity.clone(), None);
        restarted = true;
    }

    add_table(&envs, "after-restart").await;
    wait_reconciled(
        &envs,
        &format!("the change reconciled within {RECOVERY:?} of {component} being back"),
    )
    .await;
    let reconciled = back.elapsed();

    // The children's watches too: a deleted Deployment comes back at once.
    let mut restored = None;
    if child {
        let deployments: Api<Deployment> = ns.api();
        let victim = names(&deployments)
            .await
            .into_iter()
            .next()
            .expect("a deployment");
        let old_uid = deployments.get(&victim).await.expect("get").metadata.uid;
        let deleted = Instant::now();
        deployments
            .delete(&victim, &DeleteParams::default())
            .await
            .expect("delete");
        until(&format!("{victim} restored"), RECOVERY, || async {
            match deployments
                .get_opt(&victim)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(d) if d.metadata.uid != old_uid => Ok(()),
                other => Err(format!("{:?}", other.map(|d| d.metadata.uid))),
            }
        })
        .await;
        restored = Some((victim, deleted.elapsed()));
    }
    eprintln!(
        "{component}: down {down:?}; change reconciled {reconciled:?} after it was back{}; deleted child restored: {restored:?}",
        if restarted {
            " (the leader had stepped down and was restarted)"
        } else {
            ""
        },
    );
    assert!(op.is_running(), "{}", op.logs());
    settle().await;
}

/// Adds table `name` to dev's spec as soon as the API takes writes again (the first
/// attempts may meet a 5xx).
async fn add_table(envs: &Api<ParityEnvironment>, name: &str) {
    let patch = json!({"spec": {"dynamodb": {"tables": [
        {"name": "orders", "partitionKey": {"name": "id", "type": "S"}},
        {"name": name, "partitionKey": {"name": "id", "type": "S"}}
    ]}}});
    until("the API to take the change", RECOVERY, || async {
        envs.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
}

#[tokio::test]
async fn watches_recover_after_kube_apiserver_restarts() {
    survives_a_restart_of("kube-apiserver", 2, "flt-api", false).await;
}

/// Open: run after the other tests of this file (a third control-plane restart in a row), a
/// Deployment deleted right after the apiserver came back was not restored within 35 s in 2
/// of 4 runs, and no reconcile ran after the deletion (the Deployment watch had relisted
/// after 410 Expired without errors after it). Alone it passes in ~1 s. Kept runnable with
/// `--ignored` until the cause is found.
#[tokio::test]
#[ignore = "open: a child deleted after an apiserver restart was not always restored in 35 s"]
async fn a_child_deleted_after_a_kube_apiserver_restart_is_restored() {
    survives_a_restart_of("kube-apiserver", 2, "flt-api-child", true).await;
}

#[tokio::test]
async fn watches_recover_after_etcd_restarts() {
    survives_a_restart_of("etcd", 3, "flt-etcd", true).await;
}

#[tokio::test]
async fn a_leader_cut_off_past_its_renew_deadline_steps_down_and_a_restart_reconciles() {
    let (ns, mut op, envs) = setup("flt-cut").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    wait_condition(&envs, "dev", "Ready", "True").await;

    // The apiserver gone for longer than the renew deadline (10 s): the leader cannot prove
    // it holds the Lease and must stop acting before anyone could take the Lease over.
    let cut = Instant::now();
    let restarting = tokio::task::spawn_blocking(|| restart("kube-apiserver", 14));
    let status = op.wait_exit(RECOVERY).await;
    let exited = cut.elapsed();
    assert!(!status.success(), "{status}");
    assert!(
        op.logs()
            .contains("stepping down: no renewal within the renew deadline"),
        "{}",
        op.logs()
    );
    eprintln!("the cut-off leader exited {exited:?} after the apiserver went away");
    // The last renewal was at most a retry period (2 s) before the cut; a renewal hung on
    // the dead connection is bounded by the deadline.
    assert!(
        exited <= Duration::from_secs(10) + Duration::from_secs(2),
        "stepped down only after {exited:?}"
    );
    // It left while the apiserver was still away (14 s), not when it came back.
    assert!(exited < Duration::from_secs(14), "{exited:?}");
    let report = restarting.await.expect("restart");
    eprintln!("{report}");

    // Restarted, as its pod would be: it takes its Lease back and reconciles a change.
    let op = Operator::start(&ns.name, &op.identity.clone(), None);
    let back = Instant::now();
    add_table(&envs, "after-cut").await;
    wait_reconciled(&envs, "the restarted operator to reconcile the change").await;
    eprintln!(
        "restarted operator reconciled the change {:?} after the apiserver was back",
        back.elapsed()
    );
    assert!(op.logs().contains("became leader"));
    settle().await;
}
