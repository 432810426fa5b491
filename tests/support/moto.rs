//! A moto server (DynamoDB, DynamoDB Streams, KMS emulator from PyPI `moto[server]`)
//! started per test on a free loopback port and stopped (by PID) when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub port: u16,
}

/// The venv bin directory with moto_server: `PARITY_PYTHON_BIN` (set by `make integration`),
/// else whatever `hack/pyenv` prints (creating the venv on first use).
pub fn python_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PARITY_PYTHON_BIN") {
        return PathBuf::from(dir);
    }
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/pyenv"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run hack/pyenv");
    assert!(out.status.success(), "hack/pyenv failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

impl Moto {
    /// Starts moto_server on 127.0.0.1 and waits until it answers HTTP.
    pub fn start() -> Moto {
        let port = free_port();
        let bin = python_bin().join("moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not listen on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
