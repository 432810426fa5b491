//! The committed CRD, the chart's copy and the chart's RBAC rules are exactly what the
//! binary generates: no hand-kept second copy can drift.

use std::process::Command;

fn parity(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(args)
        .output()
        .expect("run parity");
    assert!(
        out.status.success(),
        "parity {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn assert_same(generated: &str, path: &str, fix: &str) {
    assert!(
        generated == committed(path),
        "{path} differs from the generated output: run `{fix}` and commit the result"
    );
}

#[test]
fn committed_crd_matches_generated() {
    let crd = parity(&["crd"]);
    assert_same(
        &crd,
        "crds/parity.dev_parityenvironments.yaml",
        "cargo run -- crd > crds/parity.dev_parityenvironments.yaml",
    );
    assert_same(
        &crd,
        "charts/parity-operator/crds/parity.dev_parityenvironments.yaml",
        "cargo run -- crd > charts/parity-operator/crds/parity.dev_parityenvironments.yaml",
    );
}

#[test]
fn chart_rbac_rules_match_generated() {
    assert_same(
        &parity(&["crd", "--rbac-rules"]),
        "charts/parity-operator/files/rbac-rules.yaml",
        "cargo run -- crd --rbac-rules > charts/parity-operator/files/rbac-rules.yaml",
    );
}
