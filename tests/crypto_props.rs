//! Property tests: any plaintext and context round-trips; decryption with any other
//! context or any single flipped bit fails; parsing arbitrary bytes never panics.

use futures::executor::block_on;
use parity_operator::crypto::{
    CacheLimits, EncryptionContext, Encryptor, Envelope, Keyring, LocalKeyProvider,
};
use proptest::prelude::*;

fn encryptor() -> Encryptor<LocalKeyProvider> {
    let kr = Keyring::seeded(b"proptest seed, not a secret", jiff::Timestamp::UNIX_EPOCH).unwrap();
    Encryptor::new(LocalKeyProvider::new(kr))
}

fn context() -> impl Strategy<Value = EncryptionContext> {
    prop::collection::btree_map("[a-z\u{e9}]{1,8}", ".{0,12}", 0..6)
        .prop_map(|m| EncryptionContext::from_map(m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_any_plaintext_and_context(pt in prop::collection::vec(any::<u8>(), 0..4096), ctx in context()) {
        let enc = encryptor();
        let env = block_on(enc.encrypt(&pt, &ctx)).unwrap();
        let back = block_on(enc.decrypt(&env, &ctx)).unwrap();
        prop_assert_eq!(back.as_slice(), pt.as_slice());
    }

    #[test]
    fn other_context_or_any_bit_flip_fails(
        pt in prop::collection::vec(any::<u8>(), 1..256),
        ctx in context(),
        other in context(),
        bit in any::<prop::sample::Index>(),
    ) {
        let enc = encryptor();
        let env = block_on(enc.encrypt(&pt, &ctx)).unwrap();
        if other != ctx {
            prop_assert!(block_on(enc.decrypt(&env, &other)).is_err());
        }
        let mut b = env.clone();
        let i = bit.index(b.len() * 8);
        b[i / 8] ^= 1 << (i % 8);
        prop_assert!(block_on(enc.decrypt(&b, &ctx)).is_err(), "bit {} flipped still decrypts", i);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&bytes);
        let mut with_magic = b"PENV\x01\x00\x01".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Envelope::parse(&with_magic);
    }
}

#[test]
fn cache_reuses_data_key_within_limits_and_not_beyond() {
    let kr = Keyring::seeded(b"proptest seed, not a secret", jiff::Timestamp::UNIX_EPOCH).unwrap();
    let limits = CacheLimits {
        max_messages: 3,
        ..CacheLimits::default()
    };
    let enc = Encryptor::with_cache(LocalKeyProvider::new(kr), limits);
    let ctx: EncryptionContext = [("t", "1")].into_iter().collect();
    let envs: Vec<_> = (0..7)
        .map(|_| block_on(enc.encrypt(b"x", &ctx)).unwrap())
        .collect();
    // 3 messages per data key: 7 messages need 3 keys.
    assert_eq!(enc.provider_calls(), 3);
    let wrapped = |e: &Vec<u8>| Envelope::parse(e).unwrap().wrapped_key;
    assert_eq!(wrapped(&envs[0]), wrapped(&envs[2]));
    assert_ne!(wrapped(&envs[2]), wrapped(&envs[3]));
    for e in &envs {
        assert_eq!(*block_on(enc.decrypt(e, &ctx)).unwrap(), b"x");
    }
    // A different context never shares a cached key.
    let other: EncryptionContext = [("t", "2")].into_iter().collect();
    block_on(enc.encrypt(b"x", &other)).unwrap();
    assert_eq!(enc.provider_calls(), 3 + 7 + 1);
}
