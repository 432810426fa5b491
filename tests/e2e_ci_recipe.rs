//! End to end on the real node: the per-pull-request recipe (examples/ci/pr-environment.sh,
//! the phases examples/ci/github-actions.yaml runs) installs the chart with helm, brings
//! examples/ci.yaml up in namespace pr-<number>, exports variables that reach the environment
//! from the host, prints `parity status` when the environment does not become Ready, and
//! leaves no namespace behind. Run with `make e2e` (ignored on kwok's fake nodes).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use parity_operator::api::ParityEnvironment;
use support::e2e::require_real_node;
use support::kube_env::client;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ci/pr-environment.sh");
const RELEASE: &str = "e2e-ci-recipe";
const RELEASE_NS: &str = "e2e-ci-recipe-system";
const PREFIX: &str = "e2e-pr-";

/// The script with the settings a CI job gives it: the locally built image (imported into the
/// node, never pulled) and the parity binary these tests were built with.
fn phase(phase: &str, pr: &str, extra: &[(&str, &str)]) -> Output {
    let image = support::operator::image();
    let state = std::env::temp_dir().join("e2e-ci-recipe-state");
    let mut cmd = Command::new(SCRIPT);
    cmd.args([phase, pr])
        .env("PARITY", env!("CARGO_BIN_EXE_parity"))
        .env("PARITY_IMAGE", &image)
        .env("PARITY_IMAGE_PULL_POLICY", "Never")
        .env("PARITY_RELEASE", RELEASE)
        .env("PARITY_RELEASE_NAMESPACE", RELEASE_NS)
        .env(
            "PARITY_HELM_ARGS",
            "--set liveDrift.enabled=false --set logFormat=text",
        )
        .env("PARITY_NAMESPACE_PREFIX", PREFIX)
        .env("PARITY_STATE_DIR", &state)
        .env_remove("GITHUB_ENV")
        .env_remove("GITHUB_ACTIONS");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run pr-environment.sh")
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `down` for each pull request and `helm uninstall`, pass or fail.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pr in &self.0 {
            let _ = phase("down", pr, &[]);
        }
        let _ = Command::new("helm")
            .args(["uninstall", RELEASE, "-n", RELEASE_NS, "--wait"])
            .status();
        let _ = Command::new("kubectl")
            .args(["delete", "namespace", RELEASE_NS, "--wait=false"])
            .status();
    }
}

/// Reads GitHub's `$GITHUB_ENV` file: `NAME<<DELIMITER`, the value's lines, `DELIMITER`.
fn read_github_env(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let (name, delim) = head
            .split_once("<<")
            .unwrap_or_else(|| panic!("not NAME<<DELIMITER: {head:?} in\n{text}"));
        let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
        vars.insert(name.to_string(), value.join("\n"));
    }
    vars
}

async fn namespace_gone(name: &str) -> bool {
    let nss: Api<Namespace> = Api::all(client().await);
    nss.get_opt(name).await.expect("get namespace").is_none()
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_the_per_pull_request_recipe_brings_an_environment_up_exports_it_and_cleans_up() {
    require_real_node();
    let pr = format!("{}", std::process::id());
    let broken_pr = format!("{pr}-broken");
    let ns = format!("{PREFIX}{pr}");
    let _cleanup = Cleanup(vec![pr.clone(), broken_pr.clone()]);

    // up: helm install (no release yet), namespace, ConfigMaps, examples/ci.yaml, Ready.
    let t = std::time::Instant::now();
    let up = phase("up", &pr, &[("PARITY_WAIT", "360s")]);
    ok("up", &up);
    eprintln!("up took {:?}", t.elapsed());
    let envs: Api<ParityEnvironment> = Api::namespaced(client().await, &ns);
    let env = envs.get("ci").await.expect("environment ci");
    assert_eq!(
        env.spec.ttl.as_deref(),
        Some("2h"),
        "examples/ci.yaml's ttl"
    );
    assert!(
        env.status.as_ref().is_some_and(|s| s.expires_at.is_some()),
        "a ttl environment has status.expiresAt: {:?}",
        env.status
    );

    // env without $GITHUB_ENV: export lines a shell evaluates.
    let shell = ok("env (shell)", &phase("env", &pr, &[]));
    let eval = Command::new("bash")
        .args([
            "-c",
            "eval \"$1\"; printf '%s\\n' \"$AWS_ENDPOINT_URL_DYNAMODB\" \"$PARITY_KMS_KEY_ID\"",
            "-",
            &shell,
        ])
        .output()
        .expect("bash");
    let evaluated = ok("eval of the export lines", &eval);
    assert!(
        evaluated.starts_with("http://127.0.0.1:") && evaluated.contains("alias/"),
        "{evaluated}\nfrom\n{shell}"
    );

    // env with $GITHUB_ENV, as in the workflow: the variables reach the environment from the
    // host through the forwarded ports.
    let github_env = tempfile::NamedTempFile::new().expect("temp file");
    let path = github_env.path().to_str().expect("utf-8 path");
    let printed = ok(
        "env (GITHUB_ENV)",
        &phase("env", &pr, &[("GITHUB_ENV", path)]),
    );
    assert!(
        printed.is_empty(),
        "nothing on stdout with GITHUB_ENV: {printed}"
    );
    let vars = read_github_env(&std::fs::read_to_string(path).expect("GITHUB_ENV"));
    let var = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} not exported: {:?}", vars.keys()))
    };
    let dynamodb = var("AWS_ENDPOINT_URL_DYNAMODB");
    assert!(dynamodb.starts_with("http://127.0.0.1:"), "{dynamodb}");
    let ddb = parity_operator::dynamo::connect::client(
        &dynamodb,
        &parity_operator::dynamo::connect::AwsArgs::default(),
        3,
    );
    let tables = ddb
        .list_tables()
        .send()
        .await
        .expect("ListTables through the exported endpoint")
        .table_names
        .unwrap_or_default();
    for t in ["orders", "customers"] {
        assert!(
            tables.iter().any(|n| n == t),
            "table {t} of examples/topology.yaml missing: {tables:?}"
        );
    }
    let kms = support::kms::client(
        &var("AWS_ENDPOINT_URL_KMS"),
        &var("AWS_ACCESS_KEY_ID"),
        &var("AWS_SECRET_ACCESS_KEY"),
    );
    kms.describe_key()
        .key_id(var("PARITY_KMS_KEY_ID"))
        .send()
        .await
        .expect("DescribeKey with the exported credentials and key id");

    // status: parity status of the environment, as the workflow's failure step prints it.
    let status = ok("status", &phase("status", &pr, &[]));
    assert!(
        status.contains(&format!("ParityEnvironment {ns}/ci")) && status.contains("Ready=True"),
        "{status}"
    );

    // A run whose environment never becomes Ready (a topology that is not YAML): up fails and
    // prints why with parity status.
    let bad = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(bad.path(), "tables: [unclosed").expect("write");
    let bad_path = bad.path().to_str().expect("utf-8 path");
    let failed = phase(
        "up",
        &broken_pr,
        &[("PARITY_TOPOLOGY", bad_path), ("PARITY_WAIT", "45s")],
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "up succeeded with a broken topology: {err}"
    );
    assert!(
        err.contains("penv/ci is not Ready")
            && err.contains(&format!("ParityEnvironment {PREFIX}{broken_pr}/ci"))
            && !err.contains("Ready=True"),
        "no parity status on failure:\n{err}"
    );

    // down: the environments first (finalizers settle the keyring), then the namespace.
    for p in [&pr, &broken_pr] {
        ok("down", &phase("down", p, &[]));
        assert!(
            namespace_gone(&format!("{PREFIX}{p}")).await,
            "namespace {PREFIX}{p} still exists (Terminating?) after down"
        );
    }
    let state = std::env::temp_dir().join("e2e-ci-recipe-state");
    assert!(
        !Path::new(&state).join(format!("parity-{ns}")).exists(),
        "down left the port-forward state"
    );
    // A second down is harmless (a cleanup step after a failed up).
    ok("down again", &phase("down", &pr, &[]));
}

/// Both CI variants run every phase, the status only when something failed and the clean-up
/// whatever happened. (actionlint checks the GitHub workflow itself: make lint-ci.)
#[test]
fn both_ci_variants_run_every_phase_and_always_clean_up() {
    let read = |f: &str| -> serde_yaml::Value {
        let path = format!("{}/examples/ci/{f}", env!("CARGO_MANIFEST_DIR"));
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect(f)
    };
    let calls = |text: &str, phase: &str| text.contains(&format!("pr-environment.sh {phase} "));

    let gh = read("github-actions.yaml");
    let steps = gh["jobs"]["test"]["steps"].as_sequence().expect("steps");
    let step = |phase: &str| {
        steps
            .iter()
            .find(|s| s["run"].as_str().is_some_and(|r| calls(r, phase)))
            .unwrap_or_else(|| panic!("no step runs {phase}"))
    };
    let order: Vec<usize> = ["up", "env", "status", "down"]
        .iter()
        .map(|p| steps.iter().position(|s| s == step(p)).expect("position"))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "phase order {order:?}"
    );
    assert_eq!(step("status")["if"].as_str(), Some("failure()"));
    assert_eq!(step("down")["if"].as_str(), Some("always()"));
    assert!(
        steps.iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("helm/kind-action@"))
            && s["with"]["config"].as_str() == Some("kind-config.yaml")),
        "kind from kind-config.yaml"
    );

    let gl = read("gitlab-ci.yml");
    let job = &gl["parity-mr-environment"];
    let lines = |k: &str| -> String {
        job[k]
            .as_sequence()
            .unwrap_or_else(|| panic!("{k}"))
            .iter()
            .filter_map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(calls(&lines("before_script"), "up"));
    assert!(calls(&lines("script"), "env"));
    let after = lines("after_script");
    assert!(calls(&after, "status") && after.contains("CI_JOB_STATUS"));
    assert!(calls(&after, "down"));
}
