//! The DynamoDB emulator of process mode: the open-source moto server (PyPI
//! `moto[server]`), installed on first use into a venv under the user's cache, keyed by the
//! requirement and the Python version, so later runs start it at once. `PARITY_MOTO_SERVER`
//! names an existing `moto_server` instead (tests, offline machines).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";
pub const MOTO_OVERRIDE_ENV: &str = "PARITY_MOTO_SERVER";

/// Why the emulator is not available, and what the user can do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub reason: String,
    pub fix: String,
}

/// `$XDG_CACHE_HOME/parity-operator` or `~/.cache/parity-operator`.
pub fn cache_dir(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    match (xdg_cache_home.filter(|s| !s.is_empty()), home) {
        (Some(x), _) => Some(Path::new(x).join("parity-operator")),
        (None, Some(h)) => Some(Path::new(h).join(".cache/parity-operator")),
        (None, None) => None,
    }
}

/// The venv for this requirement and Python version.
pub fn venv_dir(cache: &Path, python_version: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(python_version.trim().as_bytes());
    h.update(b"\n");
    h.update(MOTO_REQUIREMENT.as_bytes());
    cache.join(format!("dev-venv-{}", &hex::encode(h.finalize())[..12]))
}

/// The `moto_server` to run: the override, the managed venv's (installed now if needed,
/// each line of pip's output passed to `progress`).
pub async fn moto_server(progress: impl Fn(&str)) -> Result<PathBuf, Unavailable> {
    if let Ok(p) = std::env::var(MOTO_OVERRIDE_ENV) {
        let path = PathBuf::from(&p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Unavailable {
                reason: format!("{MOTO_OVERRIDE_ENV}={p} is not a file"),
                fix: format!("point {MOTO_OVERRIDE_ENV} at a moto_server executable, or unset it"),
            })
        };
    }
    let no_python = |e: String| {
        Unavailable {
        reason: format!("python3 is not available ({e})"),
        fix: "install Python 3.11+ with venv (e.g. apt install python3-venv), or run your own DynamoDB-compatible endpoint and pass --dynamodb-endpoint URL".to_string(),
    }
    };
    let version = Command::new("python3")
        .arg("--version")
        .output()
        .await
        .map_err(|e| no_python(e.to_string()))?;
    if !version.status.success() {
        return Err(no_python(format!(
            "python3 --version exited with {}",
            version.status
        )));
    }
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let cache = cache_dir(
        std::env::var("XDG_CACHE_HOME").ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    )
    .ok_or_else(|| Unavailable {
        reason: "neither XDG_CACHE_HOME nor HOME is set".into(),
        fix: format!("set HOME, or {MOTO_OVERRIDE_ENV}"),
    })?;
    let venv = venv_dir(&cache, &version);
    let bin = venv.join("bin/moto_server");
    if venv.join(".complete").is_file() && bin.is_file() {
        return Ok(bin);
    }
    progress(&format!(
        "installing {MOTO_REQUIREMENT} into {} (first run only; needs PyPI)",
        venv.display()
    ));
    let install_failed = |what: String| Unavailable {
        reason: format!("installing {MOTO_REQUIREMENT} failed: {what}"),
        fix: format!(
            "check network access to PyPI and that python3-venv is installed, then run parity dev again (or set {MOTO_OVERRIDE_ENV}, or pass --dynamodb-endpoint URL)"
        ),
    };
    let _ = std::fs::remove_dir_all(&venv);
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent).map_err(|e| install_failed(e.to_string()))?;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| install_failed(e.to_string()))?;
    if !status.status.success() {
        return Err(install_failed(format!(
            "python3 -m venv: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    let mut child = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            MOTO_REQUIREMENT,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| install_failed(e.to_string()))?;
    let mut last_err = String::new();
    if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
        let mut out = BufReader::new(out).lines();
        let mut err = BufReader::new(err).lines();
        let (mut out_done, mut err_done) = (false, false);
        while !(out_done && err_done) {
            tokio::select! {
                l = out.next_line(), if !out_done => match l {
                    Ok(Some(l)) => if l.starts_with("Collecting") || l.starts_with("Successfully") || l.starts_with("Installing") {
                        progress(&format!("  pip: {l}"));
                    },
                    _ => out_done = true,
                },
                l = err.next_line(), if !err_done => match l {
                    Ok(Some(l)) => last_err = l,
                    _ => err_done = true,
                },
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| install_failed(e.to_string()))?;
    if !status.success() || !bin.is_file() {
        return Err(install_failed(format!(
            "pip install exited with {status}: {last_err}"
        )));
    }
    std::fs::write(venv.join(".complete"), MOTO_REQUIREMENT)
        .map_err(|e| install_failed(e.to_string()))?;
    progress(&format!("installed {MOTO_REQUIREMENT}"));
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_under_the_user_cache_keyed_by_python_and_requirement() {
        assert_eq!(
            cache_dir(Some("/x"), Some("/home/u")),
            Some(PathBuf::from("/x/parity-operator"))
        );
        assert_eq!(
            cache_dir(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.cache/parity-operator"))
        );
        assert_eq!(cache_dir(None, None), None);
        let a = venv_dir(Path::new("/c"), "Python 3.11.2\n");
        let b = venv_dir(Path::new("/c"), "Python 3.12.0");
        assert_ne!(a, b);
        assert_eq!(a, venv_dir(Path::new("/c"), "Python 3.11.2"));
        assert!(a.to_string_lossy().starts_with("/c/dev-venv-"));
    }
}
