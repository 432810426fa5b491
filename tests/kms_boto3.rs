//! Python boto3 (a second, independent client) against `parity kms`: tests/kms_boto3.py
//! run with the venv's python from hack/pyenv.

mod support;

use std::process::Command;

use parity_operator::crypto::Keyring;
use support::kms::{ACCESS_KEY_ID, ParityKms, SECRET_ACCESS_KEY};

#[test]
fn boto3_client_works_unmodified() {
    let kr = Keyring::seeded(b"boto3 test seed 0123456789", jiff::Timestamp::now()).unwrap();
    let kms = ParityKms::start(
        &kr.to_json(),
        &["--alias", "alias/app", "--allow-admin-operations"],
    );
    let python = support::moto::python_bin().join("python");
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kms_boto3.py"))
        .env("PARITY_KMS_ENDPOINT", &kms.endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "boto3 script failed ({}):\n{stdout}\n{stderr}\nparity kms output:\n{}",
        out.status,
        kms.output()
    );
}
