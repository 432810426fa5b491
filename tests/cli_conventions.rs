//! The CLI's conventions on the real API server: `kubectl parity ...` as a kubectl plugin,
//! `parity status --wait` (progress on stderr, exit 0 at Ready, exit 1 with the tree at the
//! timeout), and shell completions that the shell accepts.

mod support;

use std::process::{Command, Output};

use kube::api::PostParams;
use serde_json::json;
use support::penv::*;

fn parity() -> &'static str {
    env!("CARGO_BIN_EXE_parity")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `kubectl ARGS` with a `kubectl-parity` link to the binary under test first on PATH.
fn kubectl(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(parity(), dir.path().join("kubectl-parity")).expect("link");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("kubectl")
        .args(args)
        .env("PATH", path)
        .output()
        .expect("kubectl (source the testenv's env file)")
}

#[tokio::test]
async fn kubectl_parity_status_waits_for_ready_and_times_out_with_the_reason() {
    let (ns, _op, envs) = setup("cli-wait").await;
    envs.create(&PostParams::default(), &env("dev", local_spec()))
        .await
        .expect("create");
    let out = kubectl(&[
        "parity",
        "status",
        "dev",
        "-n",
        &ns.name,
        "--wait",
        "--timeout",
        "3m",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("└─ Ready"), "{stdout}");
    assert!(stderr.contains("dev: "), "progress on stderr: {stderr}");

    // A Seeded environment whose seed Secret does not exist cannot become Ready.
    let spec = json!({"tier": "CI", "parityLevel": 0,
        "keys": {"local": {"source": "Seeded", "seedSecretRef": {"name": "seed", "key": "seed"}}}});
    envs.create(&PostParams::default(), &env("stuck", spec))
        .await
        .expect("create");
    let out = kubectl(&[
        "parity",
        "status",
        "stuck",
        "-n",
        &ns.name,
        "--wait",
        "--timeout",
        "5s",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("not Ready after 5s"), "{stderr}");
    assert!(stdout.contains("Not Ready because:"), "{stdout}");

    // Errors speak as the plugin was called.
    let out = kubectl(&["parity", "status", "--no-such-flag"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("Usage: kubectl parity status"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn shell_completions_are_scripts_the_shell_accepts() {
    let out = Command::new(parity())
        .args(["completion", "bash"])
        .output()
        .expect("parity completion");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    for sub in ["status", "render", "dev", "env", "kms"] {
        assert!(script.contains(sub), "{sub} missing");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("parity.bash");
    std::fs::write(&file, &script).expect("write");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(check.status.success(), "{:?}", text(&check));
    let bad = Command::new(parity())
        .args(["completion", "tcsh"])
        .output()
        .expect("parity completion");
    assert!(!bad.status.success());
    assert!(text(&bad).1.contains("tcsh"), "{:?}", text(&bad));
}
