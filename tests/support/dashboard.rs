//! A `parity dashboard` process against moto (DynamoDB + Streams) and `parity kms`, with
//! tables and seeds (one encrypted field) made by a real `parity bootstrap`. Output is
//! captured for audit and canary checks; every process is stopped by its handle on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kms::{ACCESS_KEY_ID, ParityKms, SECRET_ACCESS_KEY};
use super::moto::Moto;

/// The plaintext of the encrypted `card` field of customer 42: must show only where
/// decryption is the feature (server mode responses), never in logs or metrics.
pub const CANARY: &str = "4111-1111-1111-1111-canary-d45b";
pub const KEY_ALIAS: &str = "alias/customers-pii";
/// Items seeded in `orders` (customers 0..=4, five orders each).
pub const ORDERS: usize = 25;
pub const XSS_VALUE: &str =
    "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
pub const XSS_NAME: &str = "note<b onmouseover=\"window.__xss=3\">";

pub const TOPOLOGY: &str = "tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: S }
    streamViewType: NEW_AND_OLD_IMAGES
  - name: customers
    partitionKey: { name: id, type: S }
    streamViewType: NEW_AND_OLD_IMAGES
";

/// moto + parity kms + tables and seeds, ready for dashboards.
pub struct Env {
    pub moto: Moto,
    pub kms: ParityKms,
    pub dir: tempfile::TempDir,
    pub topology: PathBuf,
    pub seeds: PathBuf,
}

fn parity() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parity"));
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("NO_COLOR", "1");
    cmd
}

impl Env {
    pub fn start() -> Env {
        let kr = parity_operator::crypto::Keyring::seeded(
            b"dashboard test seed 0123456789ab",
            jiff::Timestamp::now(),
        )
        .unwrap();
        let kms = ParityKms::start(&kr.to_json(), &["--alias", KEY_ALIAS]);
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let topology = dir.path().join("topology.yaml");
        std::fs::write(&topology, TOPOLOGY).unwrap();
        let seeds = dir.path().join("seeds");
        std::fs::create_dir(&seeds).unwrap();
        let mut orders = String::new();
        for c in 0..5 {
            for o in 0..5 {
                orders.push_str(&format!(
                    "{{\"pk\": \"CUSTOMER#{c}\", \"sk\": \"ORDER#{o:03}\", \"total\": {}, \"status\": \"open\"}}\n",
                    c * 100 + o
                ));
            }
        }
        std::fs::write(seeds.join("orders.jsonl"), orders).unwrap();
        let xss = serde_json::json!({"id": "xss", "email": XSS_VALUE, XSS_NAME: "x"});
        std::fs::write(
            seeds.join("customers.jsonl"),
            format!(
                "{{\"id\": \"42\", \"email\": \"c42@example.com\", \"card\": \"{CANARY}\"}}\n{xss}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            seeds.join("customers.fixture.yaml"),
            "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  attribute: \"{attribute}\"\n  id: \"{id}\"\n",
        )
        .unwrap();
        let out = parity()
            .arg("bootstrap")
            .args(["--endpoint", &moto.endpoint, "-f"])
            .arg(&topology)
            .arg("--seeds")
            .arg(&seeds)
            .args(["--kms-endpoint", &kms.endpoint, "--kms-key-id", KEY_ALIAS])
            .args(["--kms-access-key-id", ACCESS_KEY_ID])
            .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bootstrap failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Env {
            moto,
            kms,
            dir,
            topology,
            seeds,
        }
    }

    /// Base flags: this environment's topology and DynamoDB, `tier`, no decryption.
    pub fn args(&self, tier: &str) -> Vec<String> {
        vec![
            "--topology".into(),
            self.topology.display().to_string(),
            "--dynamodb-endpoint".into(),
            self.moto.endpoint.clone(),
            "--tier".into(),
            tier.into(),
        ]
    }

    /// Flags for a decrypting (Local tier) dashboard.
    pub fn server_args(&self) -> Vec<String> {
        let mut a = self.args("local");
        a.extend([
            "--decryption".into(),
            "server".into(),
            "--kms-endpoint".into(),
            self.kms.endpoint.clone(),
            "--seeds".into(),
            self.seeds.display().to_string(),
        ]);
        a
    }

    pub fn ddb(&self) -> aws_sdk_dynamodb::Client {
        parity_operator::dynamo::connect::client(
            &self.moto.endpoint,
            &parity_operator::dynamo::connect::AwsArgs::default(),
            3,
        )
    }
}

pub struct Dashboard {
    child: Child,
    pub url: String,
    pub addr: String,
    output: Arc<Mutex<String>>,
}

/// Runs `parity dashboard` to completion (for flags it must refuse).
pub fn run_to_exit(args: &[String]) -> (i32, String) {
    let out = parity()
        .arg("dashboard")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// The audit lines in a dashboard's output, parsed (JSON lines with `target` parity::audit).
pub fn audit_lines(output: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "parity::audit")
        .collect()
}

impl Dashboard {
    /// Starts the dashboard and waits until it listens (not until it is ready).
    /// Listens on a free loopback port unless `args` has `--listen`.
    pub fn spawn(args: &[String]) -> Dashboard {
        let mut cmd = parity();
        cmd.arg("dashboard");
        if !args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(args)
            .env(
                "RUST_LOG",
                "debug,aws=info,hyper=info,h2=info,tower=info,rustls=info",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parity dashboard");
        let output = super::process::capture(&mut child);
        let addr =
            super::process::wait_listening(&mut child, &output, "parity dashboard listening");
        Dashboard {
            child,
            url: format!("http://{addr}"),
            addr,
            output,
        }
    }

    /// Starts the dashboard with `RUST_LOG=off` (it logs no "listening" line then) on a free
    /// port, and waits for /readyz.
    pub async fn start_silent(args: &[String]) -> Dashboard {
        let addr = format!("127.0.0.1:{}", super::moto::free_port());
        let mut child = parity()
            .arg("dashboard")
            .args(["--listen", &addr])
            .args(args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parity dashboard");
        let output = super::process::capture(&mut child);
        let d = Dashboard {
            child,
            url: format!("http://{addr}"),
            addr,
            output,
        };
        let url = d.url.clone();
        super::wait::until(
            "the silent dashboard ready",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    match reqwest::get(format!("{url}/readyz")).await {
                        Ok(r) if r.status() == 200 => Ok(()),
                        Ok(r) => Err(r.status().to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
        d
    }

    /// Starts the dashboard and waits for /readyz.
    pub async fn start(args: &[String]) -> Dashboard {
        let d = Dashboard::spawn(args);
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", d.url)).await
                && r.status() == 200
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "dashboard not ready within 30s:\n{}",
                d.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.url)).await.unwrap()
    }

    /// GET with extra headers (Host, Origin, X-Forwarded-User ...).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = reqwest::Client::new().get(format!("{}{path}", self.url));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }

    pub async fn get_as(&self, path: &str, user: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .header("X-Forwarded-User", user)
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
