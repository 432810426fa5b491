//! `parity dev` (process mode) end to end with real processes: the environment of
//! examples/local.yaml (mirroring examples/topology.yaml) and of examples/ci.yaml run as
//! children of `parity`; unmodified clients (boto3 KMS and DynamoDB, the Infisical SDK,
//! headless Chromium on the dashboard) connect using only the written `.env`. Also: the
//! fallback when DynamoDB cannot start, no orphans after SIGTERM or SIGKILL of the parent,
//! restarts reuse keys and secrets, one run per environment, the app after `--`, and a
//! canary: no generated secret value in parity dev's output or logs.
//! Needs the test venv (hack/pyenv, PARITY_PYTHON_BIN) and, for the browser part,
//! `make browser-deps`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use parity_operator::crypto::{Encryptor, KmsKeyProvider};
use parity_operator::dynamo::seed::EncryptionContext;
use serde_json::Value;
use support::dev::{DevRun, Ports, free_ports, parity_dev, port_args, repo, wait_gone};
use support::moto::python_bin;

/// The encrypted `card` of customer 42 in the test's seed fixtures.
const CANARY: &str = "4111-1111-1111-1111-canary-dev-9c3f";

/// Seed fixtures for staging's `customers` table: one item with an encrypted field.
fn seeds(dir: &Path) -> String {
    let seeds = dir.join("fixtures");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(
        seeds.join("customers.jsonl"),
        format!(
            "{{\"id\": \"42\", \"email\": \"c42@example.com\", \"card\": \"{CANARY}\"}}\n{{\"id\": \"7\", \"email\": \"c7@example.com\"}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        seeds.join("customers.fixture.yaml"),
        "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  attribute: \"{attribute}\"\n  id: \"{id}\"\n",
    )
    .unwrap();
    seeds.display().to_string()
}

fn local_args(dir: &Path, ports: &Ports) -> Vec<String> {
    let mut a = vec![
        "-f".to_string(),
        repo("examples/local.yaml"),
        "--mirror-source".to_string(),
        repo("examples/topology.yaml"),
        "--seeds".to_string(),
        seeds(dir),
    ];
    a.extend(port_args(ports));
    a
}

/// Runs tests/dev_client.py with only the `.env`.
fn client(run: &DevRun, infisical: Option<(&str, &str, &str)>) -> Value {
    let mut cmd = Command::new(python_bin().join("python"));
    cmd.arg(repo("tests/dev_client.py"))
        .arg(run.env_dir.join(".env"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default());
    if let Some((p, e, path)) = infisical {
        cmd.args([p, e, path]);
    }
    let out = cmd.output().expect("run tests/dev_client.py");
    assert!(
        out.status.success(),
        "dev_client.py failed:\n{}\nparity dev:\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.output()
    );
    serde_json::from_slice(&out.stdout).expect("client JSON")
}

/// Every generated secret value (the canary: none may appear in output or logs).
fn secret_values(run: &DevRun) -> Vec<String> {
    let mut values = Vec::new();
    for d in ["secrets", "kms-credentials", "secrets-api-credentials"] {
        for f in std::fs::read_dir(run.env_dir.join(d)).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if name.contains("id") || name == "AWS_REGION" || name.ends_with("_ENDPOINT") {
                continue; // ids, fixed values and URLs are not secrets
            }
            values.push(std::fs::read_to_string(f.path()).unwrap());
        }
    }
    assert!(values.len() >= 5, "{values:?}");
    values
}

fn logs(run: &DevRun) -> String {
    let mut all = String::new();
    for f in std::fs::read_dir(run.env_dir.join("logs")).unwrap() {
        all.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap_or_default());
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn local_example_runs_as_processes_and_unmodified_clients_connect_with_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let run = DevRun::start(dir.path(), "dev", &local_args(dir.path(), &ports));
    let out = run.output();
    assert!(out.contains("process mode"), "{out}");

    // The .env: private, with every variable an app's SDKs read.
    let meta = std::fs::metadata(run.env_dir.join(".env")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let env = run.dotenv();
    assert_eq!(
        env["AWS_ENDPOINT_URL_DYNAMODB"],
        format!("http://127.0.0.1:{}", ports.dynamodb)
    );
    assert_eq!(
        env["AWS_ENDPOINT_URL_KMS"],
        format!("http://127.0.0.1:{}", ports.kms)
    );
    assert_eq!(env["PARITY_KMS_KEY_ID"], "alias/parity/dev");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "parity-dev");
    for k in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "INFISICAL_SITE_URL",
        "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID",
        "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
        "SESSION_SIGNING_KEY",
        "WEBHOOK_SECRET",
        "ADMIN_PASSWORD",
    ] {
        assert!(env.contains_key(k), "{k} missing from .env");
    }
    // The schema's endpointUrl secrets point at process mode's endpoints.
    assert_eq!(env["KMS_ENDPOINT"], env["AWS_ENDPOINT_URL_KMS"]);

    // boto3 (KMS, DynamoDB) and the Infisical SDK, configured by the .env alone.
    let c = client(&run, Some(("shop-backend", "dev", "/")));
    assert_eq!(c["kms"]["roundTrip"], true, "{c}");
    let t = &c["tables"];
    assert_eq!(t["orders"]["gsi"], serde_json::json!(["byStatus"]), "{c}");
    assert_eq!(t["orders"]["lsi"], serde_json::json!(["byTotal"]), "{c}");
    assert_eq!(t["orders"]["ttl"], "expiresAt", "{c}");
    assert_eq!(t["orders"]["stream"], "NEW_AND_OLD_IMAGES", "{c}");
    assert_eq!(t["customers"]["gsi"], serde_json::json!(["byEmail"]), "{c}");
    assert_eq!(t["customers"]["items"], 2, "{c}");
    let infisical = c["infisical"].as_object().expect("infisical result");
    assert!(infisical.len() >= 7, "{c}");
    assert!(infisical.values().all(|v| v == true), "{c}");

    // The seeded card decrypts through the kms process, as the app would decrypt it.
    let card = base64::engine::general_purpose::STANDARD
        .decode(c["card"].as_str().expect("card"))
        .unwrap();
    let app = Encryptor::new(KmsKeyProvider::new(
        KmsKeyProvider::client_for(
            &env["AWS_ENDPOINT_URL_KMS"],
            &env["AWS_REGION"],
            &env["AWS_ACCESS_KEY_ID"],
            &env["AWS_SECRET_ACCESS_KEY"],
        ),
        env["PARITY_KMS_KEY_ID"].clone(),
    ));
    let ctx: EncryptionContext = [("table", "customers"), ("attribute", "card"), ("id", "42")]
        .into_iter()
        .collect();
    assert_eq!(*app.decrypt(&card, &ctx).await.unwrap(), CANARY.as_bytes());

    // Headless Chromium shows the decrypted seeded item (Local decrypts on the server).
    let mut b = support::browser::Browser::start(&env["PARITY_DASHBOARD_URL"]);
    let page = b.cmd("open /tables/customers");
    assert_eq!(page["card"]["kind"], "decrypted", "{page}");
    assert_eq!(page["card"]["text"], CANARY, "{page}");
    drop(b);

    // One run per environment.
    let second = parity_dev(dir.path())
        .args(local_args(dir.path(), &free_ports()))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already running environment dev"), "{err}");

    // status reads the state file.
    let status = parity_dev(dir.path())
        .args(["status", "--env", "dev"])
        .output()
        .unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status_text}");
    for line in ["kms", "dynamodb", "bootstrap", "secrets-api", "dashboard"] {
        assert!(status_text.contains(line), "{status_text}");
    }
    assert!(
        status_text.contains("done") && status_text.contains("running"),
        "{status_text}"
    );

    // Canary: no generated secret value (nor the decrypted card) in output or logs.
    let values = secret_values(&run);
    let out = run.output() + &logs(&run) + &status_text;
    for v in &values {
        assert!(
            !out.contains(v.as_str()),
            "a secret value leaked into the output"
        );
    }
    assert!(
        !out.contains(CANARY),
        "the decrypted card leaked into the output"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_example_runs_with_seeded_keys_and_a_dashboard_that_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let mut args = vec![
        "-f".to_string(),
        repo("examples/ci.yaml"),
        "--mirror-source".to_string(),
        repo("examples/topology.yaml"),
        "--seeds".to_string(),
        seeds(dir.path()),
    ];
    args.extend(port_args(&ports));
    let run = DevRun::start(dir.path(), "ci", &args);
    let env = run.dotenv();
    assert!(
        !env.contains_key("INFISICAL_SITE_URL"),
        "level 2 has no secrets-api"
    );
    let c = client(&run, None);
    assert_eq!(c["kms"]["roundTrip"], true, "{c}");
    assert_eq!(c["tables"]["customers"]["items"], 2, "{c}");
    // Keys derived from the seed the manifest carries: the key id is the seed's.
    let kr = parity_operator::crypto::Keyring::seeded(
        b"parity-ci-example-seed-not-for-production",
        jiff::Timestamp::now(),
    )
    .unwrap();
    assert!(
        c["kms"]["keyArn"].as_str().unwrap().ends_with(kr.key_id()),
        "{c}"
    );
    // Zero knowledge outside Local: the seeded card is shown encrypted.
    let page = reqwest::get(format!(
        "{}/api/tables/customers/items",
        env["PARITY_DASHBOARD_URL"]
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(!page.contains(CANARY), "{page}");
    assert!(page.contains("encrypted"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_dynamodb_cannot_start_keys_and_secrets_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    // The emulator's fixed port is taken.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", ports.dynamodb)).unwrap();
    let run = DevRun::start(dir.path(), "dev", &local_args(dir.path(), &ports));
    let out = run.output();
    assert!(out.contains("DynamoDB is not running"), "{out}");
    assert!(
        out.contains(&format!(
            "port {} (--dynamodb-port) is in use",
            ports.dynamodb
        )),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    // Keys and secrets answer.
    let env = run.dotenv();
    let kms = KmsKeyProvider::client_for(
        &env["AWS_ENDPOINT_URL_KMS"],
        &env["AWS_REGION"],
        &env["AWS_ACCESS_KEY_ID"],
        &env["AWS_SECRET_ACCESS_KEY"],
    );
    let key = kms
        .describe_key()
        .key_id("alias/parity/dev")
        .send()
        .await
        .unwrap();
    assert!(key.key_metadata.is_some());
    let status = reqwest::get(format!("{}/api/status", env["INFISICAL_SITE_URL"]))
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    // The dashboard says so too, on every page (this one needs no DynamoDB call: the test's
    // listener on the emulator's port accepts connections but never answers).
    let page = reqwest::get(format!(
        "{}/tables/not-a-table",
        env["PARITY_DASHBOARD_URL"]
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(page.contains("DynamoDB is not running"), "{page}");
    // And so does status.
    let st = parity_dev(dir.path())
        .args(["status", "--env", "dev"])
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("dynamodb     failed"), "{st}");
    assert!(st.contains("kms          running"), "{st}");
}

#[test]
fn sigterm_and_sigkill_leave_no_orphans_and_a_restart_reuses_keys_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let args = local_args(dir.path(), &ports);
    let mut run = DevRun::start(dir.path(), "dev", &args);
    let keyring = std::fs::read(run.env_dir.join("keyring/keyring.json")).unwrap();
    let secrets = std::fs::read(run.env_dir.join("secrets/WEBHOOK_SECRET")).unwrap();
    let pids = run.child_pids();
    assert!(pids.len() >= 4, "{pids:?}");
    run.signal("TERM");
    assert_eq!(run.wait_exit(Duration::from_secs(20)), Some(0));
    wait_gone(&pids, Duration::from_secs(5));
    assert!(!run.env_dir.join("dev.lock").exists());
    drop(run);

    // A restart reuses the keys and the secrets.
    let mut run = DevRun::start(dir.path(), "dev", &args);
    assert_eq!(
        std::fs::read(run.env_dir.join("keyring/keyring.json")).unwrap(),
        keyring
    );
    assert_eq!(
        std::fs::read(run.env_dir.join("secrets/WEBHOOK_SECRET")).unwrap(),
        secrets
    );
    let pids = run.child_pids();
    // SIGKILL: parity dev cannot clean up; the children exit on their own (PDEATHSIG).
    run.signal("KILL");
    run.wait_exit(Duration::from_secs(5));
    wait_gone(&pids, Duration::from_secs(10));
    drop(run);

    // The stale lock is taken over; --reset --yes wipes the keys.
    let run = DevRun::start(
        dir.path(),
        "dev",
        &[args.clone(), vec!["--reset".into(), "--yes".into()]].concat(),
    );
    assert_ne!(
        std::fs::read(run.env_dir.join("keyring/keyring.json")).unwrap(),
        keyring
    );
}

#[test]
fn the_app_after_double_dash_gets_the_variables_and_its_exit_code_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let mut args = local_args(dir.path(), &ports);
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        "test -n \"$AWS_ENDPOINT_URL_KMS\" && test -n \"$WEBHOOK_SECRET\" && exit 7".into(),
    ]);
    let out = parity_dev(dir.path()).args(&args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{text}");
    assert!(text.contains("the app exited with code 7"), "{text}");
    assert!(!dir.path().join(".parity/dev/dev.lock").exists());
}

#[test]
fn staging_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = parity_dev(dir.path())
        .args(["-f", &repo("examples/staging.yaml")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tier Staging cannot run in process mode"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_child_restarts_with_backoff_and_dynamodb_gets_its_tables_back() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let run = DevRun::start(dir.path(), "dev", &local_args(dir.path(), &ports));
    let state = |name: &str| -> Value {
        let s: Value =
            serde_json::from_slice(&std::fs::read(run.env_dir.join("state.json")).unwrap())
                .unwrap();
        s["components"][name].clone()
    };
    for (name, port) in [("kms", ports.kms), ("dynamodb", ports.dynamodb)] {
        let pid = state(name)["pid"].as_i64().expect("pid") as i32;
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        run.wait_for(
            &format!("parity dev: {name} exited"),
            Duration::from_secs(10),
        );
        support::wait::until(
            &format!("{name} running again"),
            Duration::from_secs(30),
            || async {
                let c = state(name);
                (c["phase"] == "running"
                    && c["restarts"] == 1
                    && c["pid"].as_i64() != Some(pid as i64))
                .then_some(())
                .ok_or_else(|| c.to_string())
            },
        )
        .await;
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
    assert!(
        run.output().contains("restart 1 in 0.5s"),
        "{}",
        run.output()
    );
    // The emulator keeps tables in memory: bootstrap ran again and the seeds are back.
    run.wait_for(
        "bootstrapping tables and seeds again",
        Duration::from_secs(5),
    );
    support::wait::until("seeds back", Duration::from_secs(30), || async {
        let c = client(&run, None);
        (c["tables"]["customers"]["items"] == 2)
            .then_some(())
            .ok_or_else(|| c.to_string())
    })
    .await;
}
