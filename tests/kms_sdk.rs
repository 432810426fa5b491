//! The Rust aws-sdk-kms client, unmodified but for the endpoint, against `parity kms` run
//! as a real process.

mod support;

use std::time::Duration;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use parity_operator::crypto::{Keyring, VersionState, blob};
use support::kms::{ParityKms, client};

fn seeded() -> Keyring {
    Keyring::seeded(b"kms sdk test seed 0123456789", jiff::Timestamp::now()).unwrap()
}

fn start(extra: &[&str]) -> (ParityKms, String) {
    let kr = seeded();
    let kms = ParityKms::start(&kr.to_json(), extra);
    (kms, kr.key_id().to_owned())
}

fn code<E: ProvideErrorMetadata>(r: Result<impl std::fmt::Debug, E>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_owned(),
    }
}

#[tokio::test]
async fn encrypt_decrypt_and_data_keys_with_context() {
    let (kms, key_id) = start(&["--alias", "alias/app"]);
    let c = kms.client();
    let enc = c
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new("top secret"))
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(
        enc.key_id().unwrap(),
        format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}")
    );
    let blob_bytes = enc.ciphertext_blob().unwrap().clone();
    let dec = c
        .decrypt()
        .ciphertext_blob(blob_bytes.clone())
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"top secret");
    assert_eq!(dec.key_id(), enc.key_id());

    let wrong = c
        .decrypt()
        .ciphertext_blob(blob_bytes.clone())
        .encryption_context("tenant", "other")
        .send()
        .await;
    assert_eq!(code(wrong), "InvalidCiphertextException");
    let mut tampered = blob_bytes.clone().into_inner();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let r = c
        .decrypt()
        .ciphertext_blob(Blob::new(tampered))
        .encryption_context("tenant", "acme")
        .send()
        .await;
    assert_eq!(code(r), "InvalidCiphertextException");

    let dk = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("t", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 32);
    let back = c
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .encryption_context("t", "1")
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext(), dk.plaintext());
    let nop = c
        .generate_data_key_without_plaintext()
        .key_id("alias/app")
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    let back = c
        .decrypt()
        .ciphertext_blob(nop.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref().len(), 64);
    let r = c.generate_data_key().key_id(&key_id).send().await;
    assert_eq!(
        code(r),
        "ValidationException",
        "neither KeySpec nor NumberOfBytes"
    );
}

#[tokio::test]
async fn metadata_aliases_rotation_and_reencrypt() {
    let (kms, key_id) = start(&[
        "--allow-admin-operations",
        "--alias",
        "alias/app",
        "--rotation-period-days",
        "90",
        "--retain-versions",
        "1",
    ]);
    let c = kms.client();
    let d = c.describe_key().key_id("alias/app").send().await.unwrap();
    let meta = d.key_metadata().unwrap();
    assert_eq!(meta.key_id(), key_id);
    assert!(meta.enabled());
    let keys = c.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1);
    assert_eq!(keys.keys()[0].key_id(), Some(key_id.as_str()));
    let aliases = c.list_aliases().send().await.unwrap();
    assert_eq!(aliases.aliases()[0].alias_name(), Some("alias/app"));
    assert_eq!(aliases.aliases()[0].target_key_id(), Some(key_id.as_str()));
    let st = c
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert!(st.key_rotation_enabled());
    assert_eq!(st.rotation_period_in_days(), Some(90));

    let old = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let old_blob = old.ciphertext_blob().unwrap().clone();
    assert_eq!(
        blob::parse_header(old_blob.as_ref()).unwrap().kek_version,
        1
    );
    c.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let rot = c.list_key_rotations().key_id(&key_id).send().await.unwrap();
    assert_eq!(rot.rotations().len(), 1);
    // The rotation is persisted to the keyring file before it is used.
    let on_disk = Keyring::from_json(&std::fs::read(&kms.keyring_path).unwrap()).unwrap();
    assert_eq!(on_disk.active_version(), 2);

    // Old data keys still decrypt; ReEncrypt moves them to the new version.
    let back = c
        .decrypt()
        .ciphertext_blob(old_blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext(), old.plaintext());
    let re = c
        .re_encrypt()
        .ciphertext_blob(old_blob.clone())
        .destination_key_id("alias/app")
        .send()
        .await
        .unwrap();
    let new_blob = re.ciphertext_blob().unwrap().clone();
    assert_eq!(
        blob::parse_header(new_blob.as_ref()).unwrap().kek_version,
        2
    );
    let back = c.decrypt().ciphertext_blob(new_blob).send().await.unwrap();
    assert_eq!(back.plaintext(), old.plaintext());

    // retain 1: a second rotation destroys version 1, so the oldest blob no longer opens.
    c.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let r = c.decrypt().ciphertext_blob(old_blob).send().await;
    assert_eq!(code(r), "InvalidCiphertextException");
}

#[tokio::test]
async fn unknown_disabled_and_incorrect_keys_give_kms_errors() {
    let (kms, key_id) = start(&["--allow-admin-operations"]);
    let c = kms.client();
    let r = c.describe_key().key_id("alias/nope").send().await;
    assert_eq!(code(r), "NotFoundException");
    let r = c
        .generate_data_key()
        .key_id("11111111-2222-4333-8444-555555555555")
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await;
    assert_eq!(code(r), "NotFoundException");
    let ct = c
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    let r = c
        .decrypt()
        .ciphertext_blob(ct.clone())
        .key_id("arn:aws:kms:us-east-1:000000000000:key/11111111-2222-4333-8444-555555555555")
        .send()
        .await;
    assert_eq!(code(r), "NotFoundException", "KeyId that does not exist");

    c.disable_key().key_id(&key_id).send().await.unwrap();
    let d = c.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(!d.key_metadata().unwrap().enabled());
    let r = c
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await;
    assert_eq!(code(r), "DisabledException");
    let r = c.decrypt().ciphertext_blob(ct.clone()).send().await;
    assert_eq!(code(r), "DisabledException");
    c.enable_key().key_id(&key_id).send().await.unwrap();
    c.decrypt().ciphertext_blob(ct).send().await.unwrap();
}

#[tokio::test]
async fn requests_must_be_signed_with_the_configured_key() {
    let (kms, key_id) = start(&[]);
    let wrong_secret = client(&kms.endpoint, support::kms::ACCESS_KEY_ID, "not-the-secret");
    let r = wrong_secret.describe_key().key_id(&key_id).send().await;
    assert_eq!(code(r), "InvalidSignatureException");
    let wrong_akid = client(
        &kms.endpoint,
        "someone-else",
        support::kms::SECRET_ACCESS_KEY,
    );
    let r = wrong_akid.list_keys().send().await;
    assert_eq!(code(r), "UnrecognizedClientException");

    // The raw wire shape: HTTP 400 with a KMS error body.
    let resp = reqwest::Client::new()
        .post(&kms.endpoint)
        .header("x-amz-target", "TrentService.ListKeys")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    assert!(body["message"].as_str().unwrap().contains("not signed"));
    let health = reqwest::get(format!("{}/healthz", kms.endpoint))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn keyring_file_changes_are_picked_up() {
    let (kms, key_id) = start(&["--reload-seconds", "1"]);
    let c = kms.client();
    let mut kr = Keyring::from_json(&std::fs::read(&kms.keyring_path).unwrap()).unwrap();
    kr.rotate(jiff::Timestamp::now(), 5);
    std::fs::write(&kms.keyring_path, &*kr.to_json()).unwrap();
    let got = support::wait::until(
        "parity kms to load version 2",
        Duration::from_secs(10),
        || {
            let c = c.clone();
            let key_id = key_id.clone();
            async move {
                let r = c
                    .list_key_rotations()
                    .key_id(&key_id)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                if r.rotations().len() == 1 {
                    Ok(r)
                } else {
                    Err(format!("{} rotations", r.rotations().len()))
                }
            }
        },
    )
    .await;
    assert_eq!(got.rotations().len(), 1);
    let dk = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(
        blob::parse_header(dk.ciphertext_blob().unwrap().as_ref())
            .unwrap()
            .kek_version,
        2
    );
    assert_eq!(kr.status_versions()[0].state, VersionState::DecryptOnly);
}

#[test]
fn bad_start_up_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["kms", "--listen", "127.0.0.1:0", "--access-key-id", "a"])
            .args(args)
            .env("PARITY_KMS_SECRET_ACCESS_KEY", "s")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bad = dir.path().join("keyring.json");
    std::fs::write(
        &bad,
        br#"{"format": 1, "keyId": "k", "source": "Seeded", "root": "c2hvcnQ=", "versions": []}"#,
    )
    .unwrap();
    let err = run(&["--keyring".as_ref(), bad.as_os_str()]);
    assert!(
        err.contains("keyring.json") && err.contains("root") && err.contains("32 bytes"),
        "{err}"
    );

    let good = dir.path().join("good.json");
    std::fs::write(&good, &*seeded().to_json()).unwrap();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "# app aliases\nalias/app\nnot-an-alias\n").unwrap();
    let err = run(&[
        "--keyring".as_ref(),
        good.as_os_str(),
        "--aliases-file".as_ref(),
        aliases.as_os_str(),
    ]);
    assert!(
        err.contains("aliases line 3") && err.contains("must start with \"alias/\""),
        "{err}"
    );
}

#[tokio::test]
async fn data_key_cache_bounds_kms_calls() {
    use parity_operator::crypto::{CacheLimits, EncryptionContext, Encryptor, KmsKeyProvider};
    let (kms, key_id) = start(&[]);
    let provider = KmsKeyProvider::new(kms.client(), key_id);
    let enc = Encryptor::with_cache(
        provider.clone(),
        CacheLimits {
            max_messages: 5,
            max_bytes: 1 << 20,
            ..CacheLimits::default()
        },
    );
    let ctx: EncryptionContext = [("tenant", "acme")].into_iter().collect();
    let mut envs = Vec::new();
    for _ in 0..12 {
        envs.push(enc.encrypt(&[1u8; 1000], &ctx).await.unwrap());
    }
    assert_eq!(provider.calls(), 3, "12 messages at 5 per data key");
    // A 1 MiB message cannot share a key capped at 1 MiB of data with earlier messages.
    enc.encrypt(&vec![0u8; 1 << 20], &ctx).await.unwrap();
    assert_eq!(provider.calls(), 4);
    for e in &envs {
        enc.decrypt(e, &ctx).await.unwrap();
    }
    assert_eq!(provider.calls(), 4 + 12, "each decrypt unwraps through KMS");
}

#[tokio::test]
async fn a_keyring_file_that_stays_gone_is_reported_while_the_key_keeps_serving() {
    let (kms, key_id) = start(&["--reload-seconds", "1"]);
    std::fs::remove_file(&kms.keyring_path).unwrap();
    let said = support::wait::until(
        "parity kms to report the missing keyring file",
        Duration::from_secs(15),
        || async {
            let out = kms.output();
            if out.contains("keyring file is gone") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    )
    .await;
    assert!(said.contains(&key_id), "the report names the key: {said}");
    assert!(said.contains("ERROR"), "reported as an error: {said}");
    // Still serving from memory (apps keep working while the Secret is restored).
    let dk = kms
        .client()
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert!(dk.ciphertext_blob().is_some());
}

#[tokio::test]
async fn generate_random_returns_the_bytes_asked_for_within_awss_bounds() {
    let (kms, _) = start(&[]);
    let c = kms.client();
    let a = c
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let b = c
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let (a, b) = (a.plaintext().unwrap(), b.plaintext().unwrap());
    assert_eq!(a.as_ref().len(), 32);
    assert_ne!(a.as_ref(), b.as_ref(), "two draws were equal");
    assert_eq!(
        c.generate_random()
            .number_of_bytes(1024)
            .send()
            .await
            .unwrap()
            .plaintext()
            .unwrap()
            .as_ref()
            .len(),
        1024
    );
    for n in [0, 1025] {
        let r = c.generate_random().number_of_bytes(n).send().await;
        assert_eq!(code(r), "ValidationException", "{n}");
    }
}

/// A request signed by hand (SigV4 with the test credentials) at `when`, covering `signed`.
fn signed_request(
    endpoint: &str,
    when: jiff::Timestamp,
    signed: &[&'static str],
) -> reqwest::RequestBuilder {
    Signing {
        when,
        signed: signed.to_vec(),
        ..Signing::new("ListKeys", "{}")
    }
    .request(endpoint)
}

/// What a hand-signed request says: the scope's day and region default to the request's day
/// and the server's region, so a test changes only what it is about.
struct Signing {
    when: jiff::Timestamp,
    scope_day: Option<String>,
    region: &'static str,
    signed: Vec<&'static str>,
    target: String,
    body: String,
}

impl Signing {
    fn new(operation: &str, body: &str) -> Signing {
        Signing {
            when: jiff::Timestamp::now(),
            scope_day: None,
            region: support::kms::REGION,
            signed: vec!["content-type", "host", "x-amz-date", "x-amz-target"],
            target: format!("TrentService.{operation}"),
            body: body.to_string(),
        }
    }

    fn request(&self, endpoint: &str) -> reqwest::RequestBuilder {
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let mac = |key: &[u8], data: &str| {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        let host = endpoint.trim_start_matches("http://").to_string();
        let amz_date = self.when.strftime("%Y%m%dT%H%M%SZ").to_string();
        let day = self
            .scope_day
            .clone()
            .unwrap_or_else(|| amz_date[..8].to_string());
        let values = |h: &str| match h {
            "content-type" => "application/x-amz-json-1.1".to_string(),
            "host" => host.clone(),
            "x-amz-date" => amz_date.clone(),
            "x-amz-target" => self.target.clone(),
            other => panic!("{other}"),
        };
        let canonical_headers: String = self
            .signed
            .iter()
            .map(|h| format!("{h}:{}\n", values(h)))
            .collect();
        let canonical = format!(
            "POST\n/\n\n{canonical_headers}\n{}\n{}",
            self.signed.join(";"),
            hex::encode(Sha256::digest(&self.body))
        );
        let scope = format!("{day}/{}/kms/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical))
        );
        let key = [self.region, "kms", "aws4_request"].iter().fold(
            mac(
                format!("AWS4{}", support::kms::SECRET_ACCESS_KEY).as_bytes(),
                &day,
            ),
            |k, part| mac(&k, part),
        );
        let signature = hex::encode(mac(&key, &to_sign));
        reqwest::Client::new()
            .post(endpoint)
            .header("content-type", values("content-type"))
            .header("x-amz-date", amz_date.clone())
            .header("x-amz-target", values("x-amz-target"))
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
                    support::kms::ACCESS_KEY_ID,
                    self.signed.join(";")
                ),
            )
            .body(self.body.clone())
    }
}

async fn error_of(r: reqwest::RequestBuilder) -> (u16, String, String) {
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        v["__type"].as_str().unwrap_or("").to_string(),
        v["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn signatures_expire_after_five_minutes_and_must_cover_the_operation() {
    let (kms, _) = start(&[]);
    let all = ["content-type", "host", "x-amz-date", "x-amz-target"];
    let now = jiff::Timestamp::now();
    // A correct hand-made signature is accepted: the checks below fail for their reason only.
    let ok = signed_request(&kms.endpoint, now, &all)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Six minutes old: AWS's window is five.
    let old = now - jiff::SignedDuration::from_secs(6 * 60);
    let (status, code, message) = error_of(signed_request(&kms.endpoint, old, &all)).await;
    assert_eq!((status, code.as_str()), (400, "InvalidSignatureException"));
    assert!(message.starts_with("Signature expired"), "{message}");
    // The operation header not signed: it could be swapped on the way.
    let unsigned_target = ["content-type", "host", "x-amz-date"];
    let (status, code, message) =
        error_of(signed_request(&kms.endpoint, now, &unsigned_target)).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "IncompleteSignatureException")
    );
    assert!(message.contains("x-amz-target"), "{message}");
}

#[tokio::test]
async fn the_operation_label_takes_only_known_values_whatever_the_requests_say() {
    let (kms, _) = start(&[]);
    for i in 0..20 {
        reqwest::Client::new()
            .post(&kms.endpoint)
            .header("x-amz-target", format!("TrentService.Made{i}Up"))
            .body("{}")
            .send()
            .await
            .unwrap();
    }
    let metrics = kms.metrics().await;
    assert!(
        !metrics.contains("MadeUp") && !metrics.contains("Made1"),
        "{metrics}"
    );
    assert!(metrics.contains("operation=\"unsupported\""), "{metrics}");
}

#[tokio::test]
async fn the_credential_scope_must_name_this_region_and_the_requests_day() {
    let (kms, _) = start(&[]);
    // Each request is signed correctly for what it claims; only the claim is wrong.
    let (status, code, message) = error_of(
        Signing {
            region: "eu-west-1",
            ..Signing::new("ListKeys", "{}")
        }
        .request(&kms.endpoint),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "InvalidSignatureException"));
    assert!(
        message.contains("region") && message.contains(support::kms::REGION),
        "{message}"
    );

    let now = jiff::Timestamp::now();
    let yesterday = (now - jiff::SignedDuration::from_hours(24))
        .strftime("%Y%m%d")
        .to_string();
    let (status, code, message) = error_of(
        Signing {
            when: now,
            scope_day: Some(yesterday),
            ..Signing::new("ListKeys", "{}")
        }
        .request(&kms.endpoint),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "InvalidSignatureException"));
    assert!(message.contains("Date in Credential scope"), "{message}");

    // The same request with a truthful scope goes through.
    let ok = Signing::new("ListKeys", "{}")
        .request(&kms.endpoint)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Hostile values over real HTTP: each gets a 400 with an AWS-style JSON error (never a
/// dropped connection, which is what a panic in the handler gives), and the server goes on
/// serving.
#[tokio::test]
async fn hostile_values_get_aws_errors_and_the_server_keeps_serving() {
    let (kms, key_id) = start(&["--alias", "alias/app"]);
    let c = kms.client();
    let blob = c
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let huge = "18446744073709551615";
    let giant_id = "k".repeat(200_000);
    let cases: Vec<(&str, String, &str)> = vec![
        // Paging markers: beyond usize, past the end, negative, not a number.
        (
            "ListKeys",
            format!(r#"{{"Marker": "{huge}"}}"#),
            "InvalidMarkerException",
        ),
        (
            "ListKeys",
            format!(r#"{{"Marker": "{huge}", "Limit": 1000}}"#),
            "InvalidMarkerException",
        ),
        (
            "ListKeys",
            r#"{"Marker": "99999999999999999999999999"}"#.into(),
            "InvalidMarkerException",
        ),
        (
            "ListKeys",
            r#"{"Marker": "2"}"#.into(),
            "InvalidMarkerException",
        ),
        (
            "ListKeys",
            r#"{"Marker": "-1"}"#.into(),
            "InvalidMarkerException",
        ),
        (
            "ListKeys",
            r#"{"Marker": "abc"}"#.into(),
            "InvalidMarkerException",
        ),
        (
            "ListAliases",
            format!(r#"{{"Marker": "{huge}", "Limit": 1}}"#),
            "InvalidMarkerException",
        ),
        (
            "ListKeyRotations",
            format!(r#"{{"KeyId": "{key_id}", "Marker": "{huge}"}}"#),
            "InvalidMarkerException",
        ),
        // Limits and sizes at the ends of i64, and past them.
        (
            "ListKeys",
            r#"{"Limit": 9223372036854775807}"#.into(),
            "ValidationException",
        ),
        (
            "ListKeys",
            r#"{"Limit": -9223372036854775808}"#.into(),
            "ValidationException",
        ),
        (
            "ListKeys",
            r#"{"Limit": 18446744073709551616}"#.into(),
            "SerializationException",
        ),
        (
            "ListKeys",
            r#"{"Limit": 1e400}"#.into(),
            "SerializationException",
        ),
        (
            "ListKeys",
            r#"{"Limit": "10"}"#.into(),
            "SerializationException",
        ),
        (
            "GenerateDataKey",
            format!(r#"{{"KeyId": "{key_id}", "NumberOfBytes": 9223372036854775807}}"#),
            "ValidationException",
        ),
        (
            "GenerateDataKey",
            format!(r#"{{"KeyId": "{key_id}", "NumberOfBytes": -9223372036854775808}}"#),
            "ValidationException",
        ),
        (
            "GenerateDataKey",
            format!(r#"{{"KeyId": "{key_id}", "KeySpec": "AES_{huge}"}}"#),
            "ValidationException",
        ),
        (
            "GenerateRandom",
            r#"{"NumberOfBytes": 9223372036854775807}"#.into(),
            "ValidationException",
        ),
        (
            "GenerateRandom",
            r#"{"NumberOfBytes": -1}"#.into(),
            "ValidationException",
        ),
        // Ciphertext blobs: truncated at every part of the header, too long, not base64.
        (
            "Decrypt",
            format!(r#"{{"CiphertextBlob": "{}"}}"#, b64(b"PKMS")),
            "InvalidCiphertextException",
        ),
        (
            "Decrypt",
            format!(r#"{{"CiphertextBlob": "{}"}}"#, b64(b"PKMS\x01\xff")),
            "InvalidCiphertextException",
        ),
        (
            "Decrypt",
            format!(
                r#"{{"CiphertextBlob": "{}"}}"#,
                b64(&blob[..blob.len() - 1])
            ),
            "InvalidCiphertextException",
        ),
        (
            "Decrypt",
            format!(r#"{{"CiphertextBlob": "{}"}}"#, b64(&blob[..20])),
            "InvalidCiphertextException",
        ),
        (
            "Decrypt",
            format!(r#"{{"CiphertextBlob": "{}"}}"#, b64(&[0xff; 100_000])),
            "ValidationException",
        ),
        (
            "Decrypt",
            r#"{"CiphertextBlob": ""}"#.into(),
            "ValidationException",
        ),
        (
            "Decrypt",
            r#"{"CiphertextBlob": "!!not base64!!"}"#.into(),
            "SerializationException",
        ),
        // Ids: giant, and ARNs with nothing in them.
        (
            "DescribeKey",
            format!(r#"{{"KeyId": "{giant_id}"}}"#),
            "ValidationException",
        ),
        (
            "Encrypt",
            format!(r#"{{"KeyId": "{giant_id}", "Plaintext": "eA=="}}"#),
            "ValidationException",
        ),
        (
            "DescribeKey",
            r#"{"KeyId": "arn:aws:kms:"}"#.into(),
            "NotFoundException",
        ),
        (
            "DescribeKey",
            r#"{"KeyId": "alias/"}"#.into(),
            "NotFoundException",
        ),
        // Bodies that are not requests at all.
        ("ListKeys", "[".repeat(100_000), "SerializationException"),
        ("Encrypt", "\u{0}\u{1}".into(), "SerializationException"),
    ];
    for (op, body, want) in &cases {
        let shown = &body[..body.len().min(80)];
        let resp = Signing::new(op, body)
            .request(&kms.endpoint)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{op} {shown}: no response (connection dropped?): {e}"));
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{op} {shown}: not a JSON error: {e}"));
        assert_eq!(status, 400, "{op} {shown}: {v}");
        assert_eq!(v["__type"], *want, "{op} {shown}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{op} {shown}: no message");
        assert!(
            message.len() < 1000,
            "{op} {shown}: the message echoes the input"
        );
    }
    // Still serving, and correctly.
    let page = c.list_keys().limit(1).send().await.unwrap();
    assert_eq!(page.keys().len(), 1);
    let back = c
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"x");
    assert!(!kms.output().contains("panicked"), "{}", kms.output());
}

#[tokio::test]
async fn admin_operations_are_off_unless_allowed() {
    let (kms, key_id) = start(&[]);
    let c = kms.client();
    let before = std::fs::read(&kms.keyring_path).unwrap();
    let denied = |r: Result<(), aws_sdk_kms::Error>| match r {
        Ok(()) => panic!("an admin operation was served without --allow-admin-operations"),
        Err(e) => (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    };
    let results = [
        denied(
            c.disable_key()
                .key_id(&key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(Into::into),
        ),
        denied(
            c.enable_key()
                .key_id(&key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(Into::into),
        ),
        denied(
            c.rotate_key_on_demand()
                .key_id(&key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(Into::into),
        ),
    ];
    for (code, message) in results {
        assert_eq!(code, "AccessDeniedException", "{message}");
        assert!(message.contains("--allow-admin-operations"), "{message}");
    }
    // Nothing changed: the key is enabled, serves, and the keyring file is as it was.
    let d = c.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(d.key_metadata().unwrap().enabled());
    c.encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(std::fs::read(&kms.keyring_path).unwrap(), before);
}

#[tokio::test]
async fn a_rotation_that_cannot_be_written_is_refused_and_nothing_changes() {
    let (kms, key_id) = start(&["--allow-admin-operations"]);
    let c = kms.client();
    let dk = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let before = std::fs::read(&kms.keyring_path).unwrap();
    // A read-only Secret mount makes writing the rotated keyring fail. Tests may run as
    // root, which ignores file modes, so make the write fail for everyone: the temporary
    // file the rotation writes first cannot be created where a directory stands.
    std::fs::create_dir(kms.keyring_path.with_extension("tmp-rotate")).unwrap();
    let r = c.rotate_key_on_demand().key_id(&key_id).send().await;
    let err = r.expect_err("a rotation was served that could not be persisted");
    assert_eq!(err.code(), Some("UnsupportedOperationException"));
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("spec.keys.rotation"),
        "{err:?}"
    );
    // Not rotated in memory either: new data keys stay under version 1, old ones open.
    assert_eq!(std::fs::read(&kms.keyring_path).unwrap(), before);
    let rot = c.list_key_rotations().key_id(&key_id).send().await.unwrap();
    assert!(rot.rotations().is_empty());
    let again = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(
        blob::parse_header(again.ciphertext_blob().unwrap().as_ref())
            .unwrap()
            .kek_version,
        1
    );
    let back = c
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext(), dk.plaintext());
}

#[tokio::test]
async fn a_key_hint_naming_another_served_key_is_incorrect_key() {
    let other_dir = tempfile::tempdir().unwrap();
    let other = Keyring::seeded(b"kms sdk test other seed 012345", jiff::Timestamp::now()).unwrap();
    let other_path = other_dir.path().join("other.json");
    std::fs::write(&other_path, &*other.to_json()).unwrap();
    let (kms, key_id) = start(&["--keyring", other_path.to_str().unwrap()]);
    assert_ne!(key_id, other.key_id());
    let c = kms.client();
    let ct = c
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    // Both keys exist here; the blob belongs to the first, the request names the second.
    let r = c
        .decrypt()
        .ciphertext_blob(ct.clone())
        .key_id(other.key_id())
        .send()
        .await;
    assert_eq!(code(r), "IncorrectKeyException");
    let back = c
        .decrypt()
        .ciphertext_blob(ct)
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"x");
}

#[tokio::test]
async fn a_bad_keyring_file_keeps_the_loaded_keyring() {
    let (kms, key_id) = start(&["--reload-seconds", "1"]);
    let c = kms.client();
    let dk = c
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    std::fs::write(&kms.keyring_path, b"{\"this is\": not a keyring").unwrap();
    let said = support::wait::until(
        "parity kms to notice the unreadable keyring file",
        Duration::from_secs(15),
        || async {
            let out = kms.output();
            if out.contains("keyring file unreadable; keeping the loaded keyring") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    )
    .await;
    assert!(said.contains("WARN"), "{said}");
    // The key loaded before still decrypts and encrypts, at the same version.
    let back = c
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext(), dk.plaintext());
    let d = c.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(d.key_metadata().unwrap().enabled());
    c.encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("still here"))
        .send()
        .await
        .unwrap();
}
