//! End to end on the real node: the chart installed with `helm install` runs the operator as
//! two pods from the locally built image. They pass their probes, reconcile with only the
//! chart's ServiceAccount and RBAC, and hand the Lease over when the leader's pod goes.
//! Run with `make e2e` (ignored on kwok's fake nodes).

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::e2e::*;
use support::kube_env::TestNamespace;
use support::wait::until;

async fn ready_operator_pods(ns: &TestNamespace) -> Vec<String> {
    until("two operator pods Running and ready", E2E_WAIT, || async {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels("app.kubernetes.io/name=parity-operator"))
            .await
            .map_err(|e| vec![e.to_string()])?;
        let ready: Vec<String> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| cs.iter().all(|c| c.ready))
            })
            .map(|p| p.name_any())
            .collect();
        if ready.len() == 2 {
            Ok(ready)
        } else {
            Err(ready)
        }
    })
    .await
}

async fn holder(ns: &TestNamespace) -> String {
    until("a leader in the Lease", E2E_WAIT, || async {
        let lease = ns
            .api::<Lease>()
            .get_opt("parity-operator-leader")
            .await
            .map_err(|e| e.to_string())?;
        lease
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "no holder".to_string())
    })
    .await
}

async fn create_and_wait_ready(work: &TestNamespace, name: &str) {
    let envs = work.api::<ParityEnvironment>();
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": name},
        "spec": {"tier": "Local", "parityLevel": 0, "keys": {"deletionPolicy": "Delete"}}
    }))
    .expect("environment");
    envs.create(&PostParams::default(), &env)
        .await
        .expect("create");
    until(
        &format!("{name} Ready, reconciled by the chart's operator"),
        E2E_WAIT,
        || async {
            let e = envs.get(name).await.map_err(|e| e.to_string())?;
            let ready = e.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| (format!("{:?}", c.status), c.message.clone()))
            });
            match ready {
                Some((s, _)) if s == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_the_chart_runs_two_operator_pods_that_reconcile_and_hand_over_the_lease() {
    require_real_node();
    let release = TestNamespace::new("e2e-chart").await;
    let work = TestNamespace::new("e2e-chart-work").await;
    let (_uninstall, _) = helm_install(&release, &["--set", "replicaCount=2"]);
    let pods = ready_operator_pods(&release).await;
    let leader = holder(&release).await;
    assert!(
        pods.contains(&leader),
        "the Lease holder {leader} is not one of {pods:?}"
    );

    create_and_wait_ready(&work, "first").await;

    // The leader's pod goes; the other replica takes the Lease and reconciles.
    release
        .api::<Pod>()
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader pod");
    let next = until("another pod to take the Lease", E2E_WAIT, || async {
        let h = holder(&release).await;
        if h != leader { Ok(h) } else { Err(h) }
    })
    .await;
    // The standby, or the Deployment's replacement pod if it was quicker: not the deleted one.
    let now = ready_operator_pods(&release).await;
    assert!(
        now.contains(&next),
        "the new leader {next} is not a running operator pod: {now:?}"
    );
    create_and_wait_ready(&work, "second").await;

    // Both reconciled with the chart's ServiceAccount only: nothing was forbidden.
    let logs = all_logs(&release).await;
    assert!(
        !logs.contains("forbidden"),
        "the operator hit a permission it lacks:\n{logs}"
    );
}
