//! The real node (hack/testenv/up --real-node): pods really run, Services answer from the host
//! through kube-proxy, NetworkPolicies are enforced. The e2e tests are `#[ignore]`d so the kwok
//! phase skips them; `make e2e` runs them with `--ignored` on the real node.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{ListParams, LogParams};

use super::kube_env::TestNamespace;
use super::operator::Operator;
use super::wait::until;

/// Pods start for real: images, probes, a bootstrap Job. Generous on a busy 2-core machine.
pub const E2E_WAIT: Duration = Duration::from_secs(360);

/// Panics with the fix unless the testenv has a real node (its env file says so).
pub fn require_real_node() {
    assert_eq!(
        std::env::var("PARITY_REAL_NODE").as_deref(),
        Ok("1"),
        "the e2e tests need the real node: `make e2e` (hack/testenv/up --real-node)"
    );
}

/// The operator as a process, running workloads from the locally built image, which the
/// node has (imported into containerd) and must never try to pull.
pub fn operator(ns: &TestNamespace, identity: &str, extra: &[&str]) -> Operator {
    let mut args = vec!["--image-pull-policy", "Never"];
    args.extend_from_slice(extra);
    Operator::start_with(&ns.name, identity, None, &args, &[])
}

/// `http://<clusterIP>:<port>` of a Service: kube-proxy routes it from the host.
pub async fn service_url(ns: &TestNamespace, name: &str) -> String {
    let svc = ns.api::<Service>().get(name).await.expect("service");
    let spec = svc.spec.expect("service spec");
    let ip = spec.cluster_ip.expect("cluster ip");
    let port = spec.ports.expect("ports")[0].port;
    format!("http://{ip}:{port}")
}

/// One key of a Secret, as text.
pub async fn secret_value(ns: &TestNamespace, name: &str, key: &str) -> String {
    let s = ns.api::<Secret>().get(name).await.expect("secret");
    let bytes = s
        .data
        .and_then(|mut d| d.remove(key))
        .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
    String::from_utf8(bytes.0).expect("utf-8 secret value")
}

/// The pods of an environment, by its label.
pub async fn pods(ns: &TestNamespace, env: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!("parity.dev/environment={env}")))
        .await
        .expect("list pods")
        .items
}

/// Every container's log of every pod in the namespace, each headed by pod/container.
pub async fn all_logs(ns: &TestNamespace) -> String {
    let api = ns.api::<Pod>();
    let mut out = String::new();
    for p in api.list(&ListParams::default()).await.expect("pods").items {
        let containers = p
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for c in containers {
            let params = LogParams {
                container: Some(c.clone()),
                ..Default::default()
            };
            let log = api.logs(&p.name_any(), &params).await.unwrap_or_default();
            out.push_str(&format!("--- {}/{c}\n{log}\n", p.name_any()));
        }
    }
    out
}

/// Waits until every pod of the environment's Deployments is Running with all containers
/// ready (Job pods excluded), and returns them.
pub async fn wait_pods_ready(ns: &TestNamespace, env: &str) -> Vec<Pod> {
    until(
        &format!("the pods of {env} to be Running and ready"),
        E2E_WAIT,
        || async {
            let pods = pods(ns, env).await;
            let serving: Vec<Pod> = pods
                .into_iter()
                .filter(|p| !p.labels().contains_key("job-name"))
                .collect();
            let not_ready: Vec<String> = serving
                .iter()
                .filter(|p| {
                    let s = p.status.as_ref();
                    s.and_then(|s| s.phase.as_deref()) != Some("Running")
                        || !s
                            .and_then(|s| s.container_statuses.as_ref())
                            .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
                .map(|p| p.name_any())
                .collect();
            if serving.is_empty() || !not_ready.is_empty() {
                Err(format!("not ready: {not_ready:?} of {}", serving.len()))
            } else {
                Ok(serving)
            }
        },
    )
    .await
}

/// The chart's release `parity` in a namespace: `helm uninstall` when dropped, pass or fail,
/// so no cluster-wide operator outlives the test.
pub struct HelmRelease(pub String);

impl Drop for HelmRelease {
    fn drop(&mut self) {
        let _ = std::process::Command::new("helm")
            .args(["uninstall", "parity", "-n", &self.0, "--wait"])
            .status();
    }
}

/// `helm install parity charts/parity-operator` in `ns` with the locally built image (never
/// pulled), live drift off, text logs and `extra` arguments; returns the release and what
/// helm printed (the NOTES).
pub fn helm_install(ns: &TestNamespace, extra: &[&str]) -> (HelmRelease, String) {
    let image = super::operator::image();
    let (repo, tag) = image.rsplit_once(':').expect("image with a tag");
    let release = HelmRelease(ns.name.clone());
    let (repo, tag) = (
        format!("image.repository={repo}"),
        format!("image.tag={tag}"),
    );
    let out = super::cmd::run(
        std::process::Command::new("helm")
            .args([
                "install",
                "parity",
                concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator"),
                "-n",
                &ns.name,
            ])
            .args([
                "--set",
                &repo,
                "--set",
                &tag,
                "--set",
                "image.pullPolicy=Never",
            ])
            .args([
                "--set",
                "liveDrift.enabled=false",
                "--set",
                "logFormat=text",
            ])
            .args(extra),
        None,
    );
    (release, out)
}
