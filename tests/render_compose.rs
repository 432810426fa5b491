//! `parity render --format compose` as a process: the Compose file is valid against the
//! Compose Specification's JSON schema (compose-go's, as docker compose uses it; fetched by
//! hack/compose-schema), has one profile per parity level, runs what the pods run, and
//! the keys and secrets land under the state directory (0600), never in the Compose file.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A level-3 Local environment with a table, a secrets schema and seeds: every service.
const MANIFEST: &str = r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {name: shop}
spec:
  tier: Local
  parityLevel: 3
  dynamodb:
    engine: Moto
    tables:
      - name: orders
        partitionKey: {name: pk, type: S}
        sortKey: {name: sk, type: S}
    seed: {configMapRef: {name: app-seeds}}
  keys:
    provider: Local
    local: {source: Generated}
  secrets:
    provider: Local
    schema: {name: app-secrets-schema, key: secrets.schema.json}
  dashboard: {enabled: true, decryption: Server}
"#;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("env.yaml"), MANIFEST).expect("manifest");
    std::fs::copy(
        Path::new(ROOT).join("examples/secrets.schema.json"),
        dir.path().join("secrets.schema.json"),
    )
    .expect("schema");
    dir
}

fn render(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["render", "-f", "env.yaml", "--format", "compose"])
        .args(["--image", "example.com/parity:test"])
        .args(extra)
        .current_dir(dir)
        .env_remove("PARITY_DEV_DIR")
        .output()
        .expect("run parity render")
}

fn compose(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).expect("stdout is one YAML document")
}

fn seeds() -> String {
    Path::new(ROOT)
        .join("examples/fixtures")
        .display()
        .to_string()
}

fn schema() -> PathBuf {
    let out = Command::new(Path::new(ROOT).join("hack/compose-schema"))
        .output()
        .expect("run hack/compose-schema");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Validates `doc` with Python's jsonschema (draft 7, the schema's dialect); returns the
/// errors, one per line.
fn schema_errors(doc: &Value) -> String {
    let python = support::moto::python_bin().join("python");
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), serde_json::to_vec(doc).expect("json")).expect("write");
    let out = Command::new(python)
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             s=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[2]))\n\
             v=jsonschema.Draft7Validator(s)\n\
             errs=[f\"{'/'.join(map(str,e.absolute_path))}: {e.message}\" for e in v.iter_errors(d)]\n\
             print('\\n'.join(errs)); sys.exit(1 if errs else 0)",
        ])
        .arg(schema())
        .arg(file.path())
        .output()
        .expect("run python");
    let errors = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() || !errors.trim().is_empty(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    errors
}

fn profiles(c: &Value, service: &str) -> Vec<String> {
    c["services"][service]["profiles"]
        .as_array()
        .unwrap_or_else(|| panic!("service {service} in {c}"))
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_compose_file_is_valid_and_has_a_profile_per_parity_level() {
    let dir = project();
    let seeds = seeds();
    let c = compose(&render(dir.path(), &["--seeds", &seeds]));
    let errors = schema_errors(&c);
    assert!(
        errors.trim().is_empty(),
        "not a valid Compose file:\n{errors}\n{c:#}"
    );

    let levels = |from: usize| (from..=3).map(|l| format!("level{l}")).collect::<Vec<_>>();
    assert_eq!(profiles(&c, "kms"), levels(0));
    assert_eq!(profiles(&c, "dynamodb"), levels(1));
    assert_eq!(profiles(&c, "bootstrap"), levels(1));
    assert_eq!(profiles(&c, "dashboard"), levels(2));
    assert_eq!(profiles(&c, "secrets-api"), levels(3));
    // Bootstrap is one-shot and the dashboard waits for it to finish.
    assert!(c["services"]["bootstrap"].get("restart").is_none(), "{c:#}");
    assert_eq!(
        c["services"]["dashboard"]["depends_on"]["bootstrap"]["condition"],
        "service_completed_successfully"
    );
    // Services reach each other by Compose's service names, never cluster DNS.
    let text = serde_json::to_string(&c).expect("json");
    assert!(!text.contains(".svc"), "a cluster URL is left: {text}");
    assert_eq!(
        c["services"]["dashboard"]["environment"]["PARITY_DASHBOARD_ALLOWED_HOSTS"],
        "dashboard"
    );
    let bootstrap: Vec<&str> = c["services"]["bootstrap"]["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        bootstrap
            .windows(2)
            .any(|w| w == ["--endpoint", "http://dynamodb:8000"]),
        "{bootstrap:?}"
    );
    // The host reaches each service on the port `parity dev` uses.
    assert_eq!(c["services"]["kms"]["ports"][0], "127.0.0.1:8880:8080");
}

#[test]
fn services_run_the_pods_arguments() {
    let dir = project();
    let seeds = seeds();
    let c = compose(&render(dir.path(), &["--seeds", &seeds]));
    let pods: Vec<Value> = {
        let out = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args([
                "render",
                "-f",
                "env.yaml",
                "--image",
                "example.com/parity:test",
            ])
            .current_dir(dir.path())
            .output()
            .expect("render yaml");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_yaml::Deserializer::from_slice(&out.stdout)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .collect()
    };
    let kms_pod = pods
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "shop-kms")
        .expect("kms Deployment");
    let container = &kms_pod["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["services"]["kms"]["command"], container["args"]);
    assert_eq!(c["services"]["kms"]["image"], "example.com/parity:test");
    // Mounted where the pod mounts them, from the state directory.
    let targets: Vec<&Value> = c["services"]["kms"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| &v["target"])
        .collect();
    for m in container["volumeMounts"].as_array().expect("mounts") {
        assert!(targets.contains(&&m["mountPath"]), "{m} not in {targets:?}");
    }
    assert_eq!(
        c["services"]["kms"]["volumes"][0]["source"],
        "./.parity/shop/keyring"
    );
}

#[test]
fn keys_and_secrets_are_written_once_and_stay_out_of_the_compose_file() {
    let dir = project();
    let seeds = seeds();
    let first = render(dir.path(), &["--seeds", &seeds]);
    let c = compose(&first);
    let state = dir.path().join(".parity/shop");
    let keyring = std::fs::read(state.join("keyring/keyring.json")).expect("keyring");
    let kms_secret = std::fs::read_to_string(state.join("kms-credentials/secret-access-key"))
        .expect("kms credentials");
    let admin = std::fs::read_to_string(state.join("secrets/ADMIN_PASSWORD")).expect("secret");
    for f in [
        "keyring/keyring.json",
        "kms-credentials/secret-access-key",
        "secrets/ADMIN_PASSWORD",
        "compose/bootstrap.env",
    ] {
        let mode = std::fs::metadata(state.join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
    }
    // The credentials reach the services through their env files only.
    let env_file = std::fs::read_to_string(state.join("compose/bootstrap.env")).expect("env file");
    assert!(
        env_file.contains(&format!(
            "PARITY_KMS_SECRET_ACCESS_KEY={}",
            kms_secret.trim()
        )),
        "bootstrap.env lacks the key service's secret key"
    );
    let printed = [
        String::from_utf8_lossy(&first.stdout).to_string(),
        String::from_utf8_lossy(&first.stderr).to_string(),
    ]
    .join("\n");
    let root: Value = serde_json::from_slice(&keyring).expect("keyring json");
    let material = root["versions"][0]["material"]
        .as_str()
        .or_else(|| root["root"].as_str())
        .map(str::to_string);
    for canary in [
        Some(kms_secret.trim().to_string()),
        Some(admin.trim().to_string()),
        material,
    ]
    .into_iter()
    .flatten()
    {
        assert!(canary.len() >= 16, "weak canary {canary:?}");
        assert!(!printed.contains(&canary), "a secret value was printed");
    }
    assert!(c["services"]["bootstrap"]["env_file"].is_array());

    // A second render keeps them: data encrypted under the first keyring stays readable.
    compose(&render(dir.path(), &["--seeds", &seeds]));
    assert_eq!(
        std::fs::read(state.join("keyring/keyring.json")).expect("keyring"),
        keyring
    );
    assert_eq!(
        std::fs::read_to_string(state.join("secrets/ADMIN_PASSWORD")).expect("secret"),
        admin
    );
}

#[test]
fn bad_input_names_the_flag_and_fails() {
    let dir = project();
    let out = render(dir.path(), &["--seeds", "no-such-dir"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--seeds no-such-dir: not a directory"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "printed a Compose file anyway");

    std::fs::remove_file(dir.path().join("secrets.schema.json")).expect("rm");
    let out = render(dir.path(), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.secrets.schema"), "{err}");
    assert!(err.contains("--secrets-schema"), "says the way out: {err}");
}
