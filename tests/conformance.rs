//! One set of envelope cases against three key sources that must agree:
//! `LocalKeyProvider` directly; `KmsKeyProvider` -> `parity kms` (a real process);
//! `KmsKeyProvider` -> moto server's KMS (an independent implementation).
//!
//! Where moto departs from AWS's documented behaviour the case says so and the assertion
//! follows AWS for the providers we ship; moto is then checked only where it is faithful.
//! Differences found in moto 5.2.5: Encrypt/GenerateDataKey/Decrypt succeed on a disabled
//! key (AWS: DisabledException); RotateKeyOnDemand records a rotation but keeps the key
//! material (AWS: new backing key); Decrypt with a KeyId other than the blob's answers
//! AccessDeniedException (AWS: IncorrectKeyException); SigV4 signatures are not checked.

mod support;

use parity_operator::crypto::{
    CryptoError, EncryptionContext, Encryptor, Envelope, KeyProvider, Keyring, KmsKeyProvider,
    LocalKeyProvider, ProviderError, blob,
};
use support::kms::{ACCESS_KEY_ID, ParityKms, REGION, SECRET_ACCESS_KEY, client};
use support::moto::Moto;

const UNKNOWN_KEY: &str = "11111111-2222-4333-8444-555555555555";

/// What differs per backend: how to rotate, disable, and look inside a wrapped key.
trait Backend {
    type P: KeyProvider;
    fn name(&self) -> &'static str;
    fn provider(&self) -> Self::P;
    /// A provider configured for a key id the backend does not hold (None: a local keyring
    /// has no key ids to ask for).
    fn unknown(&self) -> Option<Self::P>;
    async fn rotate(&self);
    async fn set_enabled(&self, on: bool);
    /// The KEK version inside a wrapped key, where the backend lets us see it.
    fn wrapped_version(&self, wrapped: &[u8]) -> Option<u32>;
    /// Whether disabling the key makes data-key requests fail (AWS: DisabledException).
    fn enforces_disabled(&self) -> bool {
        true
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::from_pairs(pairs.iter().copied()).unwrap()
}

async fn run_cases<B: Backend>(b: &B) {
    let name = b.name();
    let enc = Encryptor::new(b.provider());
    let c = ctx(&[("tenant", "acme"), ("table", "orders")]);

    // Round trip with context.
    let env = enc.encrypt(b"card 4111", &c).await.unwrap();
    assert_eq!(
        *enc.decrypt(&env, &c).await.unwrap(),
        b"card 4111",
        "{name}: round trip"
    );

    // Wrong context fails (at the key service: the data key is bound to the context).
    let err = enc
        .decrypt(&env, &ctx(&[("tenant", "evil")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::Provider(ProviderError::InvalidCiphertext(_))
        ),
        "{name}: wrong context gave {err:?}"
    );

    // Tampered ciphertext fails.
    let mut t = env.clone();
    let last = t.len() - 1;
    t[last] ^= 0x80;
    let err = enc.decrypt(&t, &c).await.unwrap_err();
    assert!(
        matches!(err, CryptoError::Open(_)),
        "{name}: tampered gave {err:?}"
    );

    // Data keys decrypt after a rotation; ReEncrypt moves them to the new version.
    let before = Envelope::parse(&env).unwrap();
    b.rotate().await;
    assert_eq!(
        *enc.decrypt(&env, &c).await.unwrap(),
        b"card 4111",
        "{name}: after rotation"
    );
    let rewrapped = enc.rewrap(&env, &c).await.unwrap();
    assert_eq!(
        *enc.decrypt(&rewrapped, &c).await.unwrap(),
        b"card 4111",
        "{name}: rewrapped"
    );
    let after = Envelope::parse(&rewrapped).unwrap();
    assert_eq!(
        after.ciphertext, before.ciphertext,
        "{name}: rewrap keeps the payload"
    );
    assert_ne!(
        after.wrapped_key, before.wrapped_key,
        "{name}: rewrap changes the wrapping"
    );
    if let (Some(v1), Some(v2)) = (
        b.wrapped_version(&before.wrapped_key),
        b.wrapped_version(&after.wrapped_key),
    ) {
        assert_eq!(v2, v1 + 1, "{name}: ReEncrypt targets the new version");
    }
    let fresh = enc.encrypt(b"new", &c).await.unwrap();
    assert_eq!(*enc.decrypt(&fresh, &c).await.unwrap(), b"new");

    // Unknown key fails with NotFound: asking for new data keys under it, and unwrapping an
    // envelope that names it.
    if let Some(p) = b.unknown() {
        let err = Encryptor::new(p).encrypt(b"x", &c).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::Provider(ProviderError::NotFound(_))),
            "{name}: unknown key gave {err:?}"
        );
    }
    let mut e = Envelope::parse(&env).unwrap();
    e.key_id = format!("arn:aws:kms:{REGION}:000000000000:key/{UNKNOWN_KEY}");
    e.key_version = 0;
    let err = enc.decrypt(&e.to_bytes().unwrap(), &c).await.unwrap_err();
    assert!(
        matches!(err, CryptoError::Provider(ProviderError::NotFound(_))),
        "{name}: envelope naming an unknown key gave {err:?}"
    );

    // Disabled key fails with Disabled, for new data keys and for unwrapping.
    if b.enforces_disabled() {
        b.set_enabled(false).await;
        let err = enc.encrypt(b"x", &c).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::Provider(ProviderError::Disabled(_))),
            "{name}: disabled key (encrypt) gave {err:?}"
        );
        let err = enc.decrypt(&env, &c).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::Provider(ProviderError::Disabled(_))),
            "{name}: disabled key (decrypt) gave {err:?}"
        );
        b.set_enabled(true).await;
        assert_eq!(*enc.decrypt(&env, &c).await.unwrap(), b"card 4111");
    }
}

struct Local(LocalKeyProvider);

impl Backend for Local {
    type P = LocalKeyProvider;
    fn name(&self) -> &'static str {
        "local"
    }
    fn provider(&self) -> LocalKeyProvider {
        self.0.clone()
    }
    fn unknown(&self) -> Option<LocalKeyProvider> {
        None
    }
    async fn rotate(&self) {
        self.0.keyring_mut().rotate(jiff::Timestamp::now(), 3);
    }
    async fn set_enabled(&self, on: bool) {
        self.0.set_enabled(on);
    }
    fn wrapped_version(&self, wrapped: &[u8]) -> Option<u32> {
        blob::parse_header(wrapped).ok().map(|h| h.kek_version)
    }
}

struct Kms {
    client: aws_sdk_kms::Client,
    key_id: String,
    name: &'static str,
    parity: bool,
}

impl Backend for Kms {
    type P = KmsKeyProvider;
    fn name(&self) -> &'static str {
        self.name
    }
    fn provider(&self) -> KmsKeyProvider {
        KmsKeyProvider::new(self.client.clone(), &self.key_id)
    }
    fn unknown(&self) -> Option<KmsKeyProvider> {
        Some(KmsKeyProvider::new(self.client.clone(), UNKNOWN_KEY))
    }
    async fn rotate(&self) {
        self.client
            .rotate_key_on_demand()
            .key_id(&self.key_id)
            .send()
            .await
            .unwrap();
    }
    async fn set_enabled(&self, on: bool) {
        if on {
            self.client
                .enable_key()
                .key_id(&self.key_id)
                .send()
                .await
                .unwrap();
        } else {
            self.client
                .disable_key()
                .key_id(&self.key_id)
                .send()
                .await
                .unwrap();
        }
    }
    fn wrapped_version(&self, wrapped: &[u8]) -> Option<u32> {
        // moto's blobs are its own format and its RotateKeyOnDemand only records a rotation
        // (AWS creates new backing key material); the version is visible only in ours.
        self.parity
            .then(|| blob::parse_header(wrapped).ok().map(|h| h.kek_version))
            .flatten()
    }
    fn enforces_disabled(&self) -> bool {
        // moto 5.2.5 lets Encrypt/GenerateDataKey/Decrypt use a disabled key; AWS documents
        // DisabledException for all of them. parity kms follows AWS.
        self.parity
    }
}

#[tokio::test]
async fn local_provider() {
    let kr = Keyring::seeded(b"conformance seed 0123456789", jiff::Timestamp::now()).unwrap();
    run_cases(&Local(LocalKeyProvider::new(kr))).await;
}

#[tokio::test]
async fn kms_provider_against_parity_kms() {
    let kr = Keyring::seeded(b"conformance seed 0123456789", jiff::Timestamp::now()).unwrap();
    let kms = ParityKms::start(
        &kr.to_json(),
        &["--alias", "alias/conformance", "--allow-admin-operations"],
    );
    let b = Kms {
        client: kms.client(),
        key_id: "alias/conformance".into(),
        name: "parity kms",
        parity: true,
    };
    run_cases(&b).await;

    // Same keyring, same blob format: an envelope made through parity kms opens with the
    // LocalKeyProvider and the other way round.
    let c = ctx(&[("k", "v")]);
    let via_kms = Encryptor::new(b.provider())
        .encrypt(b"interop", &c)
        .await
        .unwrap();
    let local = Encryptor::new(LocalKeyProvider::new(
        Keyring::from_json(&std::fs::read(&kms.keyring_path).unwrap()).unwrap(),
    ));
    assert_eq!(*local.decrypt(&via_kms, &c).await.unwrap(), b"interop");
    let via_local = local.encrypt(b"back", &c).await.unwrap();
    let env = Envelope::parse(&via_local).unwrap();
    let dk = b
        .provider()
        .decrypt_data_key(&env.key_id, 0, &env.wrapped_key, &c)
        .await
        .unwrap();
    assert_eq!(
        *parity_operator::crypto::open_with_data_key(&via_local, &dk, &c).unwrap(),
        b"back"
    );
}

#[tokio::test]
async fn kms_provider_against_moto() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    // moto accepts any credentials (it does not verify SigV4).
    let client = client(&moto.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
    let key = client.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    run_cases(&Kms {
        client,
        key_id,
        name: "moto",
        parity: false,
    })
    .await;
}
