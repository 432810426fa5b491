//! Known-answer vectors for the envelope (tests/vectors/envelope.json): every positive
//! vector decrypts to its plaintext and every negative one fails with its recorded error,
//! and regenerating the file from its fixed inputs gives the same bytes (format drift shows
//! up as a diff). Regenerate on purpose with `PARITY_WRITE_VECTORS=1 cargo test --test crypto_vectors`.

use futures::executor::block_on;
use parity_operator::crypto::encryptor::seal_for_vectors;
use parity_operator::crypto::{
    CryptoError, EncryptionContext, Encryptor, Envelope, EnvelopeError, Keyring, LocalKeyProvider,
    OpenError, ProviderError, SecretKey, open_with_data_key,
};
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/envelope.json");
const SEED: &[u8] = b"parity known-answer vectors seed";
const OTHER_SEED: &[u8] = b"parity known-answer vectors other";

fn created() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn keyring(seed: &[u8]) -> Keyring {
    Keyring::seeded(seed, created()).unwrap()
}

/// A stable name for an error, recorded in the vectors.
fn kind(e: &CryptoError) -> String {
    match e {
        CryptoError::Envelope(e) => match e {
            EnvelopeError::Truncated { field, .. } => format!("Envelope.Truncated.{field}"),
            EnvelopeError::BadMagic => "Envelope.BadMagic".into(),
            EnvelopeError::UnsupportedVersion(_) => "Envelope.UnsupportedVersion".into(),
            EnvelopeError::UnknownSuite(_) => "Envelope.UnknownSuite".into(),
            EnvelopeError::FieldLength { field, .. } => format!("Envelope.FieldLength.{field}"),
            EnvelopeError::KeyIdNotUtf8 => "Envelope.KeyIdNotUtf8".into(),
            EnvelopeError::TrailingBytes(_) => "Envelope.TrailingBytes".into(),
        },
        CryptoError::Open(OpenError::CommitmentMismatch) => "Open.CommitmentMismatch".into(),
        CryptoError::Open(OpenError::AuthenticationFailed) => "Open.AuthenticationFailed".into(),
        CryptoError::Provider(p) => match p {
            ProviderError::NotFound(_) => "Provider.NotFound".into(),
            ProviderError::Disabled(_) => "Provider.Disabled".into(),
            ProviderError::InvalidCiphertext(_) => "Provider.InvalidCiphertext".into(),
            ProviderError::IncorrectKey(_) => "Provider.IncorrectKey".into(),
            other => format!("Provider.{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn ctx(v: &Value) -> EncryptionContext {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_value(v.clone()).unwrap();
    EncryptionContext::from_map(map).unwrap()
}

struct Case {
    name: &'static str,
    data_key: [u8; 32],
    wrap_nonce: [u8; 12],
    payload_nonce: [u8; 12],
    context: Value,
    plaintext: Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty plaintext, empty context",
            data_key: [0x11; 32],
            wrap_nonce: [0x01; 12],
            payload_nonce: [0x02; 12],
            context: json!({}),
            plaintext: vec![],
        },
        Case {
            name: "short text with a two-pair context",
            data_key: [0x22; 32],
            wrap_nonce: [0x03; 12],
            payload_nonce: [0x04; 12],
            context: json!({"tenant": "acme", "table": "orders"}),
            plaintext: b"hello, parity".to_vec(),
        },
        Case {
            name: "1000 bytes, unicode context",
            data_key: core::array::from_fn(|i| i as u8),
            wrap_nonce: core::array::from_fn(|i| 0xf0 + i as u8),
            payload_nonce: core::array::from_fn(|i| 0xa0 + i as u8),
            context: json!({"field": "ssn", "r\u{e9}gion": "\u{65e5}\u{672c}"}),
            plaintext: (0..1000u32).map(|i| (i * 7 % 251) as u8).collect(),
        },
    ]
}

/// Byte offsets of each envelope field, from the documented layout (docs/envelope.md).
fn fields(env: &[u8]) -> Vec<(&'static str, usize, usize)> {
    let id_len = u16::from_be_bytes([env[7], env[8]]) as usize;
    let w_off = 9 + id_len + 4;
    let w_len = u16::from_be_bytes([env[w_off], env[w_off + 1]]) as usize;
    let n_off = w_off + 2 + w_len;
    let ct_len_off = n_off + 12 + 32;
    let ct_off = ct_len_off + 4;
    let tag_off = env.len() - 16;
    vec![
        ("magic", 0, 4),
        ("version", 4, 5),
        ("suite", 5, 7),
        ("key_id_len", 7, 9),
        ("key_id", 9, 9 + id_len),
        ("key_version", 9 + id_len, w_off),
        ("wrapped_key_len", w_off, w_off + 2),
        ("wrapped_key", w_off + 2, n_off),
        ("nonce", n_off, n_off + 12),
        ("commitment", n_off + 12, ct_len_off),
        ("ciphertext_len", ct_len_off, ct_off),
        ("ciphertext", ct_off, tag_off),
        ("tag", tag_off, env.len()),
    ]
}

fn decrypt_error(provider: &LocalKeyProvider, env: &[u8], c: &EncryptionContext) -> String {
    let enc = Encryptor::new(provider.clone());
    match block_on(enc.decrypt(env, c)) {
        Ok(_) => "Ok".into(),
        Err(e) => kind(&e),
    }
}

fn generate() -> Value {
    let kr = keyring(SEED);
    let provider = LocalKeyProvider::new(kr.clone());
    let (version, kek) = kr.active_kek().unwrap();
    let mut positive = Vec::new();
    let mut negative = Vec::new();
    for c in cases() {
        let context = ctx(&c.context);
        let dk = SecretKey::from_bytes(c.data_key);
        let env = seal_for_vectors(
            &provider,
            &dk,
            c.wrap_nonce,
            c.payload_nonce,
            &context,
            &c.plaintext,
        )
        .unwrap();
        positive.push(json!({
            "name": c.name,
            "key_id": kr.key_id(),
            "key_version": version,
            "kek_hex": hex::encode(kek.expose()),
            "data_key_hex": hex::encode(c.data_key),
            "wrap_nonce_hex": hex::encode(c.wrap_nonce),
            "payload_nonce_hex": hex::encode(c.payload_nonce),
            "context": c.context,
            "canonical_context_hex": hex::encode(context.canonical().unwrap()),
            "plaintext_hex": hex::encode(&c.plaintext),
            "envelope_hex": hex::encode(&env),
        }));
        if c.plaintext.is_empty() {
            continue; // negatives come from the non-empty cases (they have every field)
        }
        let mut neg = |name: String, bytes: Vec<u8>, context: &Value, expect: String| {
            negative.push(json!({
                "name": name,
                "envelope_hex": hex::encode(bytes),
                "context": context,
                "expect": expect,
            }));
        };
        let mut wrong = c.context.clone();
        wrong
            .as_object_mut()
            .unwrap()
            .insert("extra".into(), json!("pair"));
        neg(
            format!("{}: wrong context", c.name),
            env.clone(),
            &wrong,
            decrypt_error(&provider, &env, &ctx(&wrong)),
        );
        for (field, start, end) in fields(&env) {
            if start == end {
                continue;
            }
            let mut b = env.clone();
            b[end - 1] ^= 0x01;
            let e = decrypt_error(&provider, &b, &context);
            neg(
                format!("{}: flipped bit in {field}", c.name),
                b,
                &c.context,
                e,
            );
        }
        for cut in [0, 3, 8, 20, env.len() / 2, env.len() - 17, env.len() - 1] {
            let b = env[..cut].to_vec();
            let e = decrypt_error(&provider, &b, &context);
            neg(
                format!("{}: truncated to {cut} bytes", c.name),
                b,
                &c.context,
                e,
            );
        }
        let mut b = env.clone();
        b[4] = 2;
        let e = decrypt_error(&provider, &b, &context);
        neg(
            format!("{}: unknown format version 2", c.name),
            b,
            &c.context,
            e,
        );
        let other = LocalKeyProvider::new(keyring(OTHER_SEED));
        let e = decrypt_error(&other, &env, &context);
        neg(
            format!("{}: other keyring (wrong key)", c.name),
            env.clone(),
            &c.context,
            format!("other-keyring:{e}"),
        );
        let e = match open_with_data_key(&env, &SecretKey::from_bytes([0x99; 32]), &context) {
            Ok(_) => "Ok".into(),
            Err(e) => kind(&e),
        };
        neg(
            format!("{}: wrong data key", c.name),
            env.clone(),
            &c.context,
            format!("data-key-99:{e}"),
        );
    }
    json!({
        "description": "parity envelope v1 known-answer vectors. Keyring: Keyring::seeded(seed, 2026-01-01T00:00:00Z). \
            Positive: envelope_hex decrypts to plaintext_hex under the keyring with context. Negative: decrypting \
            envelope_hex with context under the keyring fails with `expect` (prefix other-keyring: = under the keyring \
            seeded from other_seed; data-key-99: = with data key 0x99*32 directly).",
        "seed_hex": hex::encode(SEED),
        "other_seed_hex": hex::encode(OTHER_SEED),
        "keyring_json": serde_json::from_slice::<Value>(&kr.to_json()).unwrap(),
        "positive": positive,
        "negative": negative,
    })
}

fn stored() -> Value {
    let text = std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("read {PATH}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn regenerating_gives_the_stored_vectors() {
    let fresh = generate();
    if std::env::var_os("PARITY_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, serde_json::to_string_pretty(&fresh).unwrap() + "\n").unwrap();
    }
    assert_eq!(
        fresh,
        stored(),
        "vectors drifted: the envelope format or derivation changed"
    );
}

#[test]
fn positive_vectors_decrypt() {
    let v = stored();
    let kr = Keyring::from_json(v["keyring_json"].to_string().as_bytes()).unwrap();
    let provider = LocalKeyProvider::new(kr);
    let enc = Encryptor::new(provider);
    let positives = v["positive"].as_array().unwrap();
    assert_eq!(positives.len(), 3);
    for p in positives {
        let env = hex::decode(p["envelope_hex"].as_str().unwrap()).unwrap();
        let c = ctx(&p["context"]);
        let pt = block_on(enc.decrypt(&env, &c)).unwrap_or_else(|e| panic!("{}: {e}", p["name"]));
        assert_eq!(hex::encode(pt), p["plaintext_hex"], "{}", p["name"]);
        let dk = SecretKey::from_slice(&hex::decode(p["data_key_hex"].as_str().unwrap()).unwrap())
            .unwrap();
        assert_eq!(
            hex::encode(open_with_data_key(&env, &dk, &c).unwrap()),
            p["plaintext_hex"]
        );
        let parsed = Envelope::parse(&env).unwrap();
        assert_eq!(
            parsed.key_version,
            p["key_version"].as_u64().unwrap() as u32
        );
        assert_eq!(hex::encode(parsed.nonce), p["payload_nonce_hex"]);
    }
}

#[test]
fn negative_vectors_fail_with_their_error() {
    let v = stored();
    let provider = LocalKeyProvider::new(
        Keyring::from_json(v["keyring_json"].to_string().as_bytes()).unwrap(),
    );
    let other = LocalKeyProvider::new(keyring(
        &hex::decode(v["other_seed_hex"].as_str().unwrap()).unwrap(),
    ));
    let negatives = v["negative"].as_array().unwrap();
    assert!(negatives.len() >= 40, "{}", negatives.len());
    for n in negatives {
        let env = hex::decode(n["envelope_hex"].as_str().unwrap()).unwrap();
        let c = ctx(&n["context"]);
        let expect = n["expect"].as_str().unwrap();
        let got = if let Some(e) = expect.strip_prefix("other-keyring:") {
            (decrypt_error(&other, &env, &c), e)
        } else if let Some(e) = expect.strip_prefix("data-key-99:") {
            let r = open_with_data_key(&env, &SecretKey::from_bytes([0x99; 32]), &c);
            (r.map(|_| "Ok".to_string()).unwrap_or_else(|e| kind(&e)), e)
        } else {
            (decrypt_error(&provider, &env, &c), expect)
        };
        assert_ne!(got.1, "Ok", "{}: a negative vector must fail", n["name"]);
        assert_eq!(got.0, got.1, "{}", n["name"]);
    }
}
