//! Runs `parity operator` as a real process against the testenv, scoped to one namespace,
//! with its log captured to a file (searched by the canary tests) and killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::moto::free_port;

/// The workload image: a placeholder on kwok's fake nodes; the real node's e2e tests set
/// PARITY_E2E_IMAGE to the image hack/testenv built and loaded (`parity-operator:dev`).
pub fn image() -> String {
    std::env::var("PARITY_E2E_IMAGE").unwrap_or_else(|_| "parity-operator:test".into())
}

pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_port: u16,
    pub identity: String,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts the operator watching `namespace`, electing a leader on a Lease there.
    /// `kubeconfig` defaults to the admin KUBECONFIG of the testenv.
    pub fn start(
        namespace: &str,
        identity: &str,
        kubeconfig: Option<&std::path::Path>,
    ) -> Operator {
        Operator::start_with(namespace, identity, kubeconfig, &[], &[])
    }

    /// [`Operator::start`] with extra flags and environment variables.
    pub fn start_with(
        namespace: &str,
        identity: &str,
        kubeconfig: Option<&std::path::Path>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        Operator::spawn(namespace, namespace, identity, kubeconfig, args, envs)
    }

    /// Watching `watch_namespaces` (comma-separated) with its Lease in `lease_namespace`, as
    /// the chart runs it.
    pub fn start_scoped(
        watch_namespaces: &str,
        lease_namespace: &str,
        identity: &str,
        kubeconfig: Option<&std::path::Path>,
    ) -> Operator {
        Operator::spawn(
            watch_namespaces,
            lease_namespace,
            identity,
            kubeconfig,
            &[],
            &[],
        )
    }

    fn spawn(
        namespace: &str,
        lease_namespace: &str,
        identity: &str,
        kubeconfig: Option<&std::path::Path>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(format!("{identity}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let mut cmd = Command::new(super::dev::parity_bin());
        cmd.args([
            "operator",
            "--watch-namespaces",
            namespace,
            "--leader-elect",
            "--lease-namespace",
            lease_namespace,
            "--identity",
            identity,
            "--image",
            &image(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info,parity_operator=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let child = cmd.spawn().expect("start parity operator");
        Operator {
            child: Some(child),
            log,
            metrics_port: port,
            identity: identity.to_string(),
            _dir: dir,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let resp = reqwest::get(&url)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Sum of the `parity_operator_writes_total` counters (every write kind).
    pub async fn writes(&self) -> u64 {
        let (_, body) = self.get("/metrics").await.expect("metrics");
        body.lines()
            .filter(|l| l.starts_with("parity_operator_writes_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The value of one unlabelled gauge or counter on /metrics (`None`: not exported).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// `parity_operator_reconciles_total{outcome="ok"}`: reconciles that finished.
    pub async fn ok_reconciles(&self) -> u64 {
        let (_, body) = self.get("/metrics").await.expect("metrics");
        body.lines()
            .find_map(|l| {
                l.strip_prefix("parity_operator_reconciles_total{outcome=\"ok\"} ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0) as u64
    }

    /// `parity_operator_leader` from /metrics: Some(true) while it leads, None when it does
    /// not answer within a second (frozen, or gone).
    pub async fn leading(&self) -> Option<bool> {
        leading_at(self.metrics_port).await
    }

    /// Sends `sig` (STOP, CONT, TERM, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("a running operator").id();
        let ok = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Waits up to `timeout` for the process to end by itself; its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a running operator");
        super::wait::until("the operator to exit", timeout, || {
            let r = child.try_wait();
            async move {
                match r {
                    Ok(Some(status)) => Ok(status),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub async fn wait_ready(&self) {
        super::wait::until(
            "operator /readyz to answer 200",
            Duration::from_secs(60),
            || async {
                match self.get("/readyz").await {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}

/// The leader gauge of the operator serving /metrics on `port` (see [`Operator::leading`]);
/// a free function so a sampling task needs only the port.
pub async fn leading_at(port: u16) -> Option<bool> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let body = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = body
        .lines()
        .find(|l| l.starts_with("parity_operator_leader "))?
        .rsplit(' ')
        .next()?
        .parse::<f64>()
        .ok()?;
    Some(value == 1.0)
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- operator {} log -----\n{}",
                self.identity,
                self.logs()
            );
        }
        self.kill();
    }
}
