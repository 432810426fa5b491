//! A `parity kms` process on a free loopback port over a keyring written to a temp dir,
//! with its stdout/stderr captured (canary tests search them) and killed (by PID) on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub const ACCESS_KEY_ID: &str = "parity-local";
pub const SECRET_ACCESS_KEY: &str = "parity-local-secret";
pub const REGION: &str = "us-east-1";

pub struct ParityKms {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    pub keyring_path: PathBuf,
    output: Arc<Mutex<String>>,
}

impl ParityKms {
    /// Starts `parity kms` over `keyring_json` with `extra` flags; waits until it listens.
    pub fn start(keyring_json: &[u8], extra: &[&str]) -> ParityKms {
        let dir = tempfile::tempdir().unwrap();
        let keyring_path = dir.path().join("keyring.json");
        std::fs::write(&keyring_path, keyring_json).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_parity"))
            .arg("kms")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--keyring")
            .arg(&keyring_path)
            .args(["--access-key-id", ACCESS_KEY_ID])
            .args(extra)
            .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parity kms");
        let output = super::process::capture(&mut child);
        let addr = super::process::wait_listening(&mut child, &output, "parity kms listening");
        let endpoint = format!("http://{addr}");
        ParityKms {
            child,
            endpoint,
            dir,
            keyring_path,
            output,
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The server's /metrics text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.endpoint))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub fn client(&self) -> aws_sdk_kms::Client {
        client(&self.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }
}

/// An aws-sdk-kms client for `endpoint` with static credentials and no retries (so an
/// error surfaces at once).
pub fn client(endpoint: &str, akid: &str, secret: &str) -> aws_sdk_kms::Client {
    let creds = aws_credential_types::Credentials::new(akid, secret, None, None, "test");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

impl Drop for ParityKms {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
