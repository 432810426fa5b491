//! A `parity dev` run started by a test: its own state directory and free ports, moto from
//! the test venv (PARITY_MOTO_SERVER), output captured; stopped by PID when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::moto::{free_port, python_bin};

pub fn repo(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: PARITY_BIN when set (a copy of this worktree's build, since
/// worktrees sharing one CARGO_TARGET_DIR overwrite each other's debug/parity), else cargo's.
pub fn parity_bin() -> PathBuf {
    std::env::var_os("PARITY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_parity")))
}

/// `parity dev` with the test's environment: no AWS settings of the user leak in.
pub fn parity_dev(dir: &Path) -> Command {
    let mut cmd = Command::new(parity_bin());
    cmd.arg("dev")
        .current_dir(dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("PARITY_KEY_SEED")
        .env("PARITY_MOTO_SERVER", python_bin().join("moto_server"))
        .env("NO_COLOR", "1");
    cmd
}

pub use parity_operator::dev::derive::Ports;

/// Free loopback ports for every service, so tests never collide on kind's defaults.
pub fn free_ports() -> Ports {
    Ports {
        kms: free_port(),
        dynamodb: free_port(),
        secrets: free_port(),
        dashboard: free_port(),
    }
}

/// The `parity dev` flags that fix those ports.
pub fn port_args(p: &Ports) -> Vec<String> {
    vec![
        format!("--kms-port={}", p.kms),
        format!("--dynamodb-port={}", p.dynamodb),
        format!("--secrets-port={}", p.secrets),
        format!("--dashboard-port={}", p.dashboard),
    ]
}

pub struct DevRun {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
    /// `.parity/<env>`
    pub env_dir: PathBuf,
}

impl DevRun {
    /// Starts `parity dev` in `dir` with `args` and waits for its "ready" line.
    pub fn start(dir: &Path, env: &str, args: &[String]) -> DevRun {
        let mut child = parity_dev(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parity dev");
        let output = super::process::capture(&mut child);
        let run = DevRun {
            child,
            output,
            env_dir: dir.join(".parity").join(env),
        };
        run.wait_for("ready in", Duration::from_secs(90));
        run
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.output().contains(text) {
            assert!(
                start.elapsed() < timeout,
                "parity dev did not say {text:?} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `.env` as name -> value (the single-quoted form parity dev writes for these).
    pub fn dotenv(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.env_dir.join(".env")).expect(".env");
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect()
    }

    /// The pids of the running children, from state.json.
    pub fn child_pids(&self) -> Vec<i32> {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.env_dir.join("state.json")).unwrap())
                .unwrap();
        state["components"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|c| c["pid"].as_i64())
            .map(|p| p as i32)
            .collect()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits for parity dev to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "parity dev did not exit within {timeout:?}:\n{}",
            self.output()
        );
    }
}

/// Whether `pid` is still a live process (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive.
pub fn wait_gone(pids: &[i32], timeout: Duration) {
    let start = Instant::now();
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "children still alive after {timeout:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for DevRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
