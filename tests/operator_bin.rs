//! The lean `parity-operator` executable the chart runs: it takes every flag of `parity
//! operator` (so the chart's args and users' extraArgs work with either), and it leaves the
//! workloads' code out (that is what makes it smaller, docs/performance.md).

use std::collections::BTreeSet;
use std::process::Command;

const PARITY: &str = env!("CARGO_BIN_EXE_parity");
const LEAN: &str = env!("CARGO_BIN_EXE_parity-operator");

fn long_flags(bin: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(bin).args(args).output().expect("run --help");
    assert!(out.status.success(), "{bin} {args:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| {
            w.trim_end_matches([',', '.'])
                .split('=')
                .next()
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

#[test]
fn takes_every_flag_of_parity_operator() {
    let full = long_flags(PARITY, &["operator", "--help"]);
    let lean = long_flags(LEAN, &["--help"]);
    assert!(full.contains("--concurrency") && full.contains("--watch-namespaces"));
    let missing: Vec<_> = full.difference(&lean).collect();
    assert!(missing.is_empty(), "parity-operator lacks {missing:?}");
    assert!(lean.contains("--worker-threads"));
}

#[test]
fn rejects_zero_worker_threads_naming_the_flag() {
    let out = Command::new(LEAN)
        .args(["--worker-threads", "0"])
        .output()
        .expect("run parity-operator");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--worker-threads"), "{err}");
}

/// Log lines only the workloads print: their code is not linked into the lean executable.
#[test]
fn leaves_the_workloads_out() {
    let parity = std::fs::read(PARITY).expect("read parity");
    let lean = std::fs::read(LEAN).expect("read parity-operator");
    let has = |bin: &[u8], s: &str| bin.windows(s.len()).any(|w| w == s.as_bytes());
    for marker in ["parity kms listening", "request rejected: signature"] {
        assert!(
            has(&parity, marker),
            "parity has no {marker:?}: pick another marker"
        );
        assert!(
            !has(&lean, marker),
            "parity-operator links the key service ({marker:?})"
        );
    }
    assert!(
        lean.len() < parity.len(),
        "parity-operator is {} bytes, parity {}",
        lean.len(),
        parity.len()
    );
}
