//! Canary: run `parity kms` over a known keyring at debug log level, exercise every
//! operation (successes and failures), then search its stdout/stderr and /metrics for the
//! key material, returned data keys and a plaintext canary, in hex and base64.

mod support;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parity_operator::crypto::Keyring;
use support::kms::{ParityKms, client};

const CANARY: &str = "CANARY-7f3a9c-plaintext-never-logged";

fn forms(bytes: &[u8]) -> Vec<String> {
    vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        STANDARD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}

#[tokio::test]
async fn no_key_bytes_or_plaintext_in_logs_or_metrics() {
    let mut kr = Keyring::seeded(b"canary seed for parity kms 42", jiff::Timestamp::now()).unwrap();
    kr.rotate(jiff::Timestamp::now(), 3);
    let json = kr.to_json();
    let key_id = kr.key_id().to_owned();
    // Every secret in the keyring file: root and version material (base64 in the JSON).
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut secrets: Vec<Vec<u8>> =
        vec![STANDARD.decode(parsed["root"].as_str().unwrap()).unwrap()];
    for v in parsed["versions"].as_array().unwrap() {
        secrets.push(STANDARD.decode(v["material"].as_str().unwrap()).unwrap());
    }
    assert_eq!(secrets.len(), 3);
    for v in 1..=2 {
        assert_eq!(kr.kek(v).unwrap().expose().to_vec(), secrets[v as usize]);
    }

    let kms = ParityKms::start(
        &json,
        &["--alias", "alias/canary", "--allow-admin-operations"],
    );
    let c = kms.client();
    let ct = c
        .encrypt()
        .key_id("alias/canary")
        .plaintext(Blob::new(CANARY))
        .encryption_context("canary", CANARY)
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    let pt = c
        .decrypt()
        .ciphertext_blob(ct.clone())
        .encryption_context("canary", CANARY)
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext().unwrap().as_ref(), CANARY.as_bytes());
    let _ = c
        .decrypt()
        .ciphertext_blob(ct.clone())
        .send()
        .await
        .unwrap_err();
    let dk = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    secrets.push(dk.plaintext().unwrap().as_ref().to_vec());
    c.re_encrypt()
        .ciphertext_blob(ct)
        .source_encryption_context("canary", CANARY)
        .destination_key_id(&key_id)
        .send()
        .await
        .unwrap();
    c.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let _ = c
        .describe_key()
        .key_id("alias/missing")
        .send()
        .await
        .unwrap_err();
    let _ = client(&kms.endpoint, "parity-local", "wrong")
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(CANARY))
        .send()
        .await
        .unwrap_err();
    // The rotated keyring (written to the file) has a third version: include it.
    let rotated = Keyring::from_json(&std::fs::read(&kms.keyring_path).unwrap()).unwrap();
    secrets.push(rotated.kek(3).unwrap().expose().to_vec());

    let metrics = kms.metrics().await;
    assert!(
        metrics.contains("parity_kms_requests_total{operation=\"Encrypt\",outcome=\"ok\"}"),
        "{metrics}"
    );
    let output = kms.output();
    assert!(
        output.contains("request failed"),
        "debug logs were captured:\n{output}"
    );

    for (what, text) in [("logs", &output), ("metrics", &metrics)] {
        for s in &secrets {
            for f in forms(s) {
                assert!(!text.contains(&f), "key bytes ({f}) found in {what}");
            }
        }
        for f in [
            CANARY.to_owned(),
            STANDARD.encode(CANARY),
            hex::encode(CANARY),
        ] {
            assert!(!text.contains(&f), "plaintext canary ({f}) found in {what}");
        }
    }
}
