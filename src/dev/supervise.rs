//! Child processes of `parity dev`: started with their output in `.parity/<env>/logs/`,
//! restarted with backoff when they crash (one line per restart), stopped with SIGTERM then
//! SIGKILL. Orphans are prevented from both sides: a clean stop signals each child, and on
//! Linux every child asks the kernel for SIGTERM when its parent dies
//! (`prctl(PR_SET_PDEATHSIG)` between fork and exec), which also covers a SIGKILLed parent.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::derive::EnvSource;
use super::state::{Phase, StateFile};

/// A program to run as a child.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvSource)>,
    pub log: PathBuf,
    /// Where it listens once started (readiness is the port accepting connections).
    pub port: Option<u16>,
}

/// After this many starts in a row that ended within [`STABLE`], a service is given up on.
const MAX_QUICK_FAILURES: u32 = 5;
/// A run at least this long resets the backoff.
const STABLE: Duration = Duration::from_secs(30);

/// The delay before restart `n` (1-based): 0.5 s doubling, at most 30 s.
pub fn backoff(n: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << n.saturating_sub(1).min(16));
    Duration::from_millis(ms.min(30_000))
}

/// Makes the child die with its parent (Linux), and puts it in its own process group so a
/// Ctrl-C in the terminal reaches `parity dev`, which stops the children in order.
pub fn harden(cmd: &mut Command, own_group: bool) {
    if own_group {
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died between fork and prctl: do not start at all.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
    }
}

/// The environment of a child: values as given, files read now (credentials).
pub fn resolve_env(
    env: &[(String, EnvSource)],
) -> anyhow::Result<Vec<(String, zeroize::Zeroizing<String>)>> {
    env.iter()
        .map(|(k, v)| {
            let value = match v {
                EnvSource::Value(s) => s.clone(),
                EnvSource::File(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("{k}: read {}", p.display()))?
                    .trim_end_matches('\n')
                    .to_string(),
            };
            Ok((k.clone(), zeroize::Zeroizing::new(value)))
        })
        .collect()
}

pub fn spawn(p: &Program) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .with_context(|| format!("open {}", p.log.display()))?;
    let mut cmd = Command::new(&p.path);
    cmd.args(&p.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env("NO_COLOR", "1");
    for (k, v) in resolve_env(&p.env)? {
        cmd.env(k, v.as_str());
    }
    harden(&mut cmd, true);
    cmd.spawn()
        .with_context(|| format!("start {} ({})", p.name, p.path.display()))
}

/// SIGTERM, then SIGKILL after `grace`.
pub async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Whether an HTTP server answers on `port` (any status: moto has no health route). A
/// port merely accepting connections is not enough: it may be another program's.
async fn http_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// Waits until the child answers HTTP on `port`, exits, or `timeout` passes.
async fn wait_port(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "exited with {status} before serving on port {port}"
            ));
        }
        if http_answers(port).await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "not serving HTTP on port {port} after {}s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a log, for messages about a crash (children never log secret values).
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

/// Runs a service until shutdown: restarts it with backoff when it exits, gives up after
/// [`MAX_QUICK_FAILURES`] quick failures in a row. `ready` gets the first start's outcome;
/// `restarted` is told each time it is up again after a restart (DynamoDB's tables are then
/// re-created by a new bootstrap).
pub async fn supervise(
    p: Program,
    state: StateFile,
    mut shutdown: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
    restarted: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    ready_timeout: Duration,
) {
    let mut ready = Some(ready);
    let mut restarts = 0u32;
    let mut quick = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut child = match spawn(&p) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{e:#}");
                state.set(&p.name, |c| {
                    c.phase = Phase::Failed;
                    c.message = Some(msg.clone());
                });
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(msg));
                }
                return;
            }
        };
        let started = Instant::now();
        state.set(&p.name, |c| {
            c.phase = Phase::Starting;
            c.pid = child.id();
        });
        let up = match p.port {
            Some(port) => tokio::select! {
                r = wait_port(&mut child, port, ready_timeout) => r,
                _ = shutdown.changed() => Err("stopped".into()),
            },
            None => Ok(()),
        };
        if up.is_ok() {
            state.set(&p.name, |c| {
                c.phase = Phase::Running;
                c.message = None;
            });
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            } else if let Some(tx) = &restarted {
                let _ = tx.send(());
            }
        }
        let status: Option<ExitStatus> = if *shutdown.borrow() {
            None
        } else if up.is_err() && child.try_wait().ok().flatten().is_none() {
            // Started but never listened: treat it as a failed start.
            stop(&mut child, Duration::from_secs(2)).await;
            child.try_wait().ok().flatten()
        } else {
            tokio::select! {
                s = child.wait() => s.ok(),
                _ = shutdown.changed() => None,
            }
        };
        if *shutdown.borrow() {
            stop(&mut child, Duration::from_secs(5)).await;
            state.set(&p.name, |c| {
                c.phase = Phase::Stopped;
                c.pid = None;
            });
            return;
        }
        restarts += 1;
        quick = if started.elapsed() < STABLE {
            quick + 1
        } else {
            1
        };
        let what = match (&up, status) {
            (Err(e), _) => e.clone(),
            (Ok(()), Some(s)) => format!("exited with {s}"),
            (Ok(()), None) => "exited".to_string(),
        };
        if quick >= MAX_QUICK_FAILURES {
            let msg = format!(
                "{what}; gave up after {quick} failed starts in a row. Last lines of {}:\n    {}",
                p.log.display(),
                log_tail(&p.log, 5)
            );
            eprintln!("parity dev: {}: {msg}", p.name);
            state.set(&p.name, |c| {
                c.phase = Phase::Failed;
                c.pid = None;
                c.restarts = restarts;
                c.message = Some(msg.clone());
            });
            if let Some(r) = ready.take() {
                let _ = r.send(Err(msg));
            }
            return;
        }
        let delay = backoff(quick);
        eprintln!(
            "parity dev: {} {what}; restart {restarts} in {:.1}s (log: {})",
            p.name,
            delay.as_secs_f64(),
            p.log.display()
        );
        state.set(&p.name, |c| {
            c.phase = Phase::Restarting;
            c.pid = None;
            c.restarts = restarts;
            c.message = Some(what.clone());
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
    state.set(&p.name, |c| c.phase = Phase::Stopped);
}

/// Runs a one-shot child (bootstrap) to completion, retrying failures `attempts` times.
pub async fn run_once(
    p: &Program,
    state: &StateFile,
    attempts: u32,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=attempts {
        if *shutdown.borrow() {
            return Err("stopped".into());
        }
        state.set(&p.name, |c| {
            c.phase = Phase::Starting;
            c.restarts = attempt - 1;
        });
        let mut child = spawn(p).map_err(|e| format!("{e:#}"))?;
        state.set(&p.name, |c| c.pid = child.id());
        let status = tokio::select! {
            s = child.wait() => s.map_err(|e| e.to_string())?,
            _ = shutdown.changed() => {
                stop(&mut child, Duration::from_secs(5)).await;
                return Err("stopped".into());
            }
        };
        if status.success() {
            state.set(&p.name, |c| {
                c.phase = Phase::Done;
                c.pid = None;
                c.message = None;
            });
            return Ok(());
        }
        last = format!(
            "exited with {status}; last lines of {}:\n    {}",
            p.log.display(),
            log_tail(&p.log, 5)
        );
        if attempt < attempts {
            let delay = backoff(attempt);
            eprintln!(
                "parity dev: {} exited with {status}; retry {attempt} in {:.1}s",
                p.name,
                delay.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
    }
    state.set(&p.name, |c| {
        c.phase = Phase::Failed;
        c.pid = None;
        c.message = Some(last.clone());
    });
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(10), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }
}
