//! Helpers for the DynamoDB tests: a moto server on a chosen port (to start one *after* a
//! process that waits for it), running the `parity` binary, and an SDK client.
//! Included with `#[path = "support/dynamo_env.rs"] mod dynamo_env;` next to `mod support;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use parity_operator::dynamo::connect::{AwsArgs, client};

/// moto_server on a given loopback port, stopped (by PID) when dropped.
pub struct MotoAt {
    child: Child,
    pub endpoint: String,
}

impl MotoAt {
    pub fn start(port: u16) -> MotoAt {
        let bin = crate::support::moto::python_bin().join("moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not listen on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        MotoAt {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for MotoAt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parity binary with a clean AWS environment (static test credentials) and no colours.
pub fn parity_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parity"));
    cmd.args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn parity(args: &[&str]) -> Run {
    parity_cmd(args).output().expect("run parity").into()
}

pub fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

pub fn ddb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    client(endpoint, &AwsArgs::default(), 3)
}
