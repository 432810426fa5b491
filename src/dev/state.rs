//! `.parity/<env>/state.json`: what each component of a `parity dev` run is doing, written
//! by the run whenever something changes and read by `parity dev status`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::files::{STATE, write_private};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Preparing (installing the emulator, waiting for a dependency).
    Starting,
    Running,
    /// Exited unexpectedly; starting again after a backoff.
    Restarting,
    /// Could not start; the message says why and how to fix it.
    Failed,
    /// A one-shot step that finished (bootstrap).
    Done,
    /// Served by something parity dev does not run (--dynamodb-endpoint).
    External,
    Stopped,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Restarting => "restarting",
            Phase::Failed => "failed",
            Phase::Done => "done",
            Phase::External => "external",
            Phase::Stopped => "stopped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentState {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub restarts: u32,
    /// Why it failed or what it waits for. Never a value of a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevState {
    pub environment: String,
    pub pid: u32,
    pub ready: bool,
    /// Component name -> state, in start order by name.
    pub components: BTreeMap<String, ComponentState>,
}

/// The state shared by the run's tasks, saved on every change.
#[derive(Clone)]
pub struct StateFile {
    inner: Arc<Mutex<DevState>>,
    path: std::path::PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path, environment: &str) -> StateFile {
        StateFile {
            inner: Arc::new(Mutex::new(DevState {
                environment: environment.to_string(),
                pid: std::process::id(),
                ..Default::default()
            })),
            path: dir.join(STATE),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut DevState)) {
        let snapshot = {
            let mut s = match self.inner.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            f(&mut s);
            s.clone()
        };
        // Status is advisory: a failed write must not stop the environment.
        if let Ok(json) = serde_json::to_vec_pretty(&snapshot) {
            let _ = write_private(&self.path, &json);
        }
    }

    pub fn set(&self, component: &str, f: impl FnOnce(&mut ComponentState)) {
        self.update(|s| {
            let c = s
                .components
                .entry(component.to_string())
                .or_insert(ComponentState {
                    phase: Phase::Starting,
                    url: None,
                    pid: None,
                    restarts: 0,
                    message: None,
                });
            f(c);
        });
    }

    pub fn get(&self) -> DevState {
        match self.inner.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// `parity dev status`: one line per component.
pub fn render_status(s: &DevState, running: bool) -> String {
    let mut out = format!(
        "environment {}: {}\n",
        s.environment,
        if !running {
            format!("not running (the last run, pid {}, has ended)", s.pid)
        } else if s.ready {
            format!("ready (pid {})", s.pid)
        } else {
            format!("starting (pid {})", s.pid)
        }
    );
    for (name, c) in &s.components {
        let phase = if running { c.phase } else { Phase::Stopped };
        out.push_str(&format!("  {name:<12} {:<10}", phase.as_str()));
        if let Some(u) = &c.url {
            out.push_str(&format!(" {u}"));
        }
        if c.restarts > 0 {
            out.push_str(&format!(" (restarts: {})", c.restarts));
        }
        if let Some(m) = &c.message {
            out.push_str(&format!("\n  {:<12} {m}", ""));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_and_rendered() {
        let tmp = tempfile::tempdir().unwrap();
        let st = StateFile::new(tmp.path(), "dev");
        st.set("kms", |c| {
            c.phase = Phase::Running;
            c.url = Some("http://127.0.0.1:8880".into());
        });
        st.set("dynamodb", |c| {
            c.phase = Phase::Failed;
            c.message = Some("port 8000 is in use".into());
        });
        let back: DevState =
            serde_json::from_slice(&std::fs::read(tmp.path().join(STATE)).unwrap()).unwrap();
        assert_eq!(back, st.get());
        let text = render_status(&back, true);
        assert!(
            text.contains("kms          running    http://127.0.0.1:8880"),
            "{text}"
        );
        assert!(text.contains("dynamodb     failed") && text.contains("port 8000 is in use"));
        assert!(render_status(&back, false).contains("not running"));
    }
}
