//! End to end on the real node, where things go wrong: zero knowledge proven with real packets
//! (NetworkPolicies enforced), and failures that explain themselves in the conditions and in
//! `parity status` (an image the node cannot get, a crash loop, an unbound claim, a bad
//! fixture). Run with `make e2e` (ignored on kwok's fake nodes).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{ObjectMeta, PostParams};
use parity_operator::api::ParityEnvironment;
use serde_json::{Value, json};
use support::e2e::*;
use support::kube_env::TestNamespace;
use support::wait::until;

async fn create_env(ns: &TestNamespace, name: &str, spec: Value) {
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("environment");
    ns.api::<ParityEnvironment>()
        .create(&PostParams::default(), &env)
        .await
        .expect("create environment");
}

/// Waits until condition `t` of environment `name` has `reason`, and returns its message.
async fn wait_reason(ns: &TestNamespace, name: &str, t: &str, reason: &str) -> String {
    let envs = ns.api::<ParityEnvironment>();
    until(&format!("{name} {t} reason {reason}"), E2E_WAIT, || async {
        let e = envs.get(name).await.map_err(|e| e.to_string())?;
        let c = e
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == t)
            .map(|c| (c.reason.clone(), c.message.clone()));
        match c {
            Some((r, m)) if r == reason => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// A one-shot pod running `parity probe URL` from the parity image, with `labels`: exit 0
/// when the connection opens. A Job's pod, so no ReplicaSet adopts it for matching labels.
async fn probe_from(ns: &TestNamespace, job: &str, labels: Value, url: &str) -> bool {
    let spec = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "probe", "image": support::operator::image(),
                    "imagePullPolicy": "Never",
                    // Tried for 20 s: the policy enforcer learns a new pod's address a
                    // moment after it starts, and a "no" must hold for every attempt.
                    "args": ["probe", url, "--timeout-seconds", "3", "--retry-for-seconds", "20"],
                    "securityContext": {"allowPrivilegeEscalation": false,
                                        "readOnlyRootFilesystem": true,
                                        "capabilities": {"drop": ["ALL"]}}
                }]
            }
        }}
    });
    let jobs = ns.api::<Job>();
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(spec).expect("job"),
    )
    .await
    .expect("create probe job");
    until(&format!("probe job {job} to finish"), E2E_WAIT, || async {
        let j = jobs.get(job).await.map_err(|e| e.to_string())?;
        let s = j.status.unwrap_or_default();
        match (s.succeeded.unwrap_or(0), s.failed.unwrap_or(0)) {
            (1.., _) => Ok(true),
            (_, 1..) => Ok(false),
            _ => Err("running".to_string()),
        }
    })
    .await
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_the_ci_dashboard_has_no_route_to_the_key_service_while_apps_and_local_do() {
    require_real_node();
    let ns = TestNamespace::new("e2e-zk").await;
    support::crd::install_crd(&ns.client).await;
    let _op = operator(&ns, "e2e-zk-op", &[]);
    let tables =
        json!({"tables": [{"name": "items", "partitionKey": {"name": "id", "type": "S"}}]});
    for (name, tier, decryption) in [("ci", "CI", "Disabled"), ("local", "Local", "Server")] {
        create_env(
            &ns,
            name,
            json!({"tier": tier, "parityLevel": 2, "topology": tables,
                   "dynamodb": {"engine": "Moto"}, "keys": {"deletionPolicy": "Delete"},
                   "dashboard": {"enabled": true, "decryption": decryption}}),
        )
        .await;
    }
    for name in ["ci", "local"] {
        wait_reason(&ns, name, "Ready", "Ready").await;
    }

    // Real packets: a pod with the CI dashboard's identity cannot open a connection to the
    // key service; an app pod of the namespace can; Local's dashboard may (it decrypts).
    let kms = |env: &str| format!("http://{env}-kms:8080/healthz");
    let dashboard =
        |env: &str| json!({"parity.dev/environment": env, "parity.dev/component": "dashboard"});
    assert!(
        !probe_from(&ns, "ci-dashboard-to-kms", dashboard("ci"), &kms("ci")).await,
        "the CI dashboard reached the key service"
    );
    assert!(
        probe_from(&ns, "app-to-ci-kms", json!({"app": "shop"}), &kms("ci")).await,
        "an app pod could not reach the CI key service"
    );
    assert!(
        probe_from(
            &ns,
            "local-dashboard-to-kms",
            dashboard("local"),
            &kms("local")
        )
        .await,
        "the Local dashboard could not reach its key service"
    );
    // The CI dashboard still reaches its own DynamoDB (its egress policy allows only that).
    assert!(
        probe_from(
            &ns,
            "ci-dashboard-to-ddb",
            dashboard("ci"),
            "http://ci-dynamodb:8000"
        )
        .await,
        "the CI dashboard lost its DynamoDB"
    );
}

fn parity_status(ns: &TestNamespace, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["status", name, "-n", &ns.name])
        .output()
        .expect("parity status");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_failing_pods_and_fixtures_explain_themselves() {
    require_real_node();
    let ns = TestNamespace::new("e2e-fail").await;
    support::crd::install_crd(&ns.client).await;
    let _op = operator(&ns, "e2e-fail-op", &[]);
    let tables =
        json!({"tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]});
    let level1 = |dynamodb: Value| {
        json!({"tier": "CI", "parityLevel": 1, "topology": tables, "dynamodb": dynamodb,
               "keys": {"deletionPolicy": "Delete"}})
    };
    let bad = ConfigMap {
        metadata: ObjectMeta {
            name: Some("bad-seeds".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "orders.jsonl".to_string(),
            "{\"id\": \"1\"}\n{\"id\": \"2\"}\n{\"id\": 3}\n".to_string(),
        )])),
        ..Default::default()
    };
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &bad)
        .await
        .expect("configmap");

    // An image the node does not have (and may not pull).
    create_env(
        &ns,
        "noimage",
        level1(json!({"engine": "Moto", "image": "docker.io/motoserver/moto:no-such-tag"})),
    )
    .await;
    // A container that cannot run: the parity image has no moto_server.
    create_env(
        &ns,
        "crash",
        level1(json!({"engine": "Moto", "image": support::operator::image()})),
    )
    .await;
    // A claim no volume can bind: a StorageClass that does not exist.
    create_env(
        &ns,
        "nopvc",
        level1(json!({"persistence": {"mode": "Volume", "storageClassName": "no-such-class"}})),
    )
    .await;
    // A fixture whose third line has a number where the key must be a string.
    create_env(
        &ns,
        "badseed",
        level1(json!({"engine": "Moto", "seed": {"configMapRef": {"name": "bad-seeds"}}})),
    )
    .await;

    let msg = wait_reason(&ns, "noimage", "DynamoDBReady", "ErrImageNeverPull").await;
    assert!(msg.contains("moto:no-such-tag"), "{msg}");
    assert!(parity_status(&ns, "noimage").contains("ErrImageNeverPull"));

    let msg = wait_reason(&ns, "crash", "DynamoDBReady", "CrashLoopBackOff").await;
    assert!(msg.contains("last exit code"), "{msg}");
    let status = parity_status(&ns, "crash");
    assert!(status.contains("CrashLoopBackOff"), "{status}");

    let msg = wait_reason(&ns, "nopvc", "DynamoDBReady", "Unschedulable").await;
    assert!(
        msg.contains("no-such-class"),
        "the claim's event is named: {msg}"
    );
    assert!(parity_status(&ns, "nopvc").contains("Unschedulable"));

    let msg = wait_reason(&ns, "badseed", "Degraded", "BootstrapFailed").await;
    assert!(msg.contains("orders.jsonl:3"), "file:line named: {msg}");
    // Failed at once by the pod failure policy, not after six retries.
    let jobs = ns
        .api::<Job>()
        .list(&Default::default())
        .await
        .expect("jobs");
    let job = jobs
        .items
        .iter()
        .find(|j| {
            j.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("badseed-bootstrap-"))
        })
        .expect("bootstrap job");
    assert_eq!(
        job.status.as_ref().and_then(|s| s.failed),
        Some(1),
        "{job:?}"
    );
    assert!(parity_status(&ns, "badseed").contains("orders.jsonl:3"));
}

/// Host pids of container `name` of `pod`: containers are processes of this host, found by
/// the container's id in their cgroup path.
fn host_pids(pod: &k8s_openapi::api::core::v1::Pod, name: &str) -> Vec<i32> {
    let id = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.container_id.clone())
        .unwrap_or_else(|| panic!("no id for container {name}"));
    let id = id.rsplit("://").next().unwrap_or(&id).to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).ok()?;
            cgroup.contains(&id).then_some(pid)
        })
        .collect()
}

fn signal(pids: &[i32], sig: &str) {
    for pid in pids {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }
}

/// The restart count of every container of the environment's `component` pods.
async fn restarts(ns: &TestNamespace, component: &str) -> Vec<i32> {
    pods(ns, "dev")
        .await
        .iter()
        .filter(|p| p.labels().get("parity.dev/component").map(String::as_str) == Some(component))
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .collect()
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_a_stopped_emulator_or_key_service_is_named_and_nothing_is_lost_on_resume() {
    require_real_node();
    let ns = TestNamespace::new("e2e-stop").await;
    support::crd::install_crd(&ns.client).await;
    let _op = operator(&ns, "e2e-stop-op", &[]);
    let tables =
        json!({"tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]});
    create_env(
        &ns,
        "dev",
        json!({"tier": "CI", "parityLevel": 1, "topology": tables, "dynamodb": {"engine": "Moto"},
               "keys": {"deletionPolicy": "Delete"}}),
    )
    .await;
    wait_reason(&ns, "dev", "Ready", "Ready").await;
    let ddb = parity_operator::dynamo::connect::client(
        &service_url(&ns, "dev-dynamodb").await,
        &Default::default(),
        3,
    );
    let put = ddb.put_item().table_name("orders").item(
        "id",
        aws_sdk_dynamodb::types::AttributeValue::S("written-before".into()),
    );
    put.send().await.expect("put");

    for (component, condition) in [("dynamodb", "DynamoDBReady"), ("kms", "KeysReady")] {
        let pod = pods(&ns, "dev")
            .await
            .into_iter()
            .find(|p| p.labels().get("parity.dev/component").map(String::as_str) == Some(component))
            .unwrap_or_else(|| panic!("a {component} pod"));
        let pids = host_pids(&pod, component);
        assert!(!pids.is_empty(), "no host process of {component}");
        let before = restarts(&ns, component).await;

        signal(&pids, "-STOP");
        let stopped = std::time::Instant::now();
        let msg = wait_reason(&ns, "dev", condition, "Unresponsive").await;
        let noticed = stopped.elapsed();
        assert!(
            msg.contains(&pod.name_any()) && msg.contains("readiness probe"),
            "{msg}"
        );
        let status = parity_status(&ns, "dev");
        assert!(status.contains("Unresponsive"), "{status}");
        signal(&pids, "-CONT");
        wait_reason(&ns, "dev", "Ready", "Ready").await;
        eprintln!(
            "{component} stopped: condition {condition}=Unresponsive after {:.1}s, Ready again {:.1}s after the stop",
            noticed.as_secs_f64(),
            stopped.elapsed().as_secs_f64()
        );
        // Not restarted (liveness is more patient than readiness): its memory is intact.
        assert_eq!(
            restarts(&ns, component).await,
            before,
            "{component} restarted"
        );
    }
    let item = ddb
        .get_item()
        .table_name("orders")
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("written-before".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(
        item.item.is_some(),
        "the item written before the stop is gone"
    );
}
