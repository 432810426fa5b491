//! The fuzz targets' bodies: one function per parser, each taking arbitrary bytes and
//! asserting only what must hold for every input (no panic, and the invariants noted).
//!
//! Shared by the afl binaries (fuzz/src/bin/*.rs) and by tests/fuzz_corpus.rs, which
//! replays the committed corpus through the same functions in `make test`, so the corpus
//! guards regressions without afl installed. Only `parity_operator` is used here, so the
//! file compiles in both crates.

use parity_operator::crypto::{
    EncryptionContext, Envelope, Keyring, SecretKey, open_with_data_key,
};

/// The names of the targets, as in fuzz/corpus/<name>/ and `cargo afl fuzz ... <name>`.
pub const TARGETS: &[&str] = &["envelope", "keyring", "sigv4", "fixture"];

/// Runs target `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "envelope" => envelope(data),
        "keyring" => keyring(data),
        "sigv4" => sigv4(data),
        "fixture" => fixture(data),
        _ => return false,
    }
    true
}

/// The envelope parser and, when it parses, decryption with a fixed data key.
pub fn envelope(data: &[u8]) {
    if let Ok(env) = Envelope::parse(data) {
        // A parsed envelope serializes back to the same bytes.
        assert_eq!(env.to_bytes().ok().as_deref(), Some(data));
        let _ = open_with_data_key(
            data,
            &SecretKey::from_bytes([7; 32]),
            &EncryptionContext::new(),
        );
    }
    // The KMS ciphertext blob shares the key hierarchy: its header parser too.
    let _ = parity_operator::crypto::blob::parse_header(data);
}

/// The keyring JSON parser (the `keyring.json` of a keyring Secret, read by the operator
/// and `parity kms`). What parses must serialize and parse back to the same keyring.
pub fn keyring(data: &[u8]) {
    if let Ok(kr) = Keyring::from_json(data) {
        let again = Keyring::from_json(&kr.to_json()).expect("a serialized keyring parses");
        assert!(again.same_material(&kr));
        assert_eq!(again.key_id(), kr.key_id());
        assert_eq!(again.active_version(), kr.active_version());
        let _ = kr.active_kek();
        let _ = kr.status_versions();
    }
}

/// SigV4 verification of a request whose Authorization header (and X-Amz-Date, after the
/// first newline) come from the input: the header parser and every check after it.
pub fn sigv4(data: &[u8]) {
    use parity_operator::kms::sigv4::{Credentials, verify};
    let (auth, date) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"20260101T000000Z"[..]),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("host", http::HeaderValue::from_static("127.0.0.1:8080"));
    if let Ok(v) = http::HeaderValue::from_bytes(auth) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(date) {
        headers.insert("x-amz-date", v);
    }
    let creds = Credentials::new("AKIDEXAMPLE".into(), "secret".into(), "us-east-1".into());
    let now: jiff::Timestamp = jiff::Timestamp::from_second(1_767_225_600).expect("2026-01-01");
    let _ = verify("POST", "/", None, &headers, b"{}", &creds, now);
}

/// The seed fixture parser: the input's first byte picks the file kind, the bytes up to the
/// first NUL are the sidecar `<table>.fixture.yaml`, the rest the data file.
pub fn fixture(data: &[u8]) {
    use parity_operator::dynamo::Topology;
    use parity_operator::dynamo::seed::FixtureSchema;
    use parity_operator::dynamo::seed::fixture::parse_file;
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let file = match kind % 3 {
        0 => "orders.json",
        1 => "orders.jsonl",
        _ => "orders.ndjson",
    };
    let (sidecar, text) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let schema: FixtureSchema = std::str::from_utf8(sidecar)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| serde_yaml::from_str(s).ok())
        .unwrap_or_default();
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let table = Topology::from_yaml_str(
        "tables:\n  - name: orders\n    partitionKey: { name: pk, type: S }\n    sortKey: { name: n, type: N }\n    globalSecondaryIndexes:\n      - name: byBlob\n        partitionKey: { name: blob, type: B }\n",
    )
    .expect("the fuzz topology parses")
    .tables
    .remove(0);
    let mut errors = Vec::new();
    let _ = parse_file(file, text, &table, &schema, &mut errors);
    for e in &errors {
        let _ = e.to_string();
    }
}
