//! The pod-template annotation that makes workloads roll when their secrets change.
//!
//! A plain checksum of the data would let anyone who can read the Deployment brute-force
//! low-entropy values (a 6-digit PIN, a short password) offline. HMAC-SHA256 under a
//! per-environment key changes whenever the data changes and reveals nothing without the key.

use std::collections::BTreeMap;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Pod-template annotation the operator sets to [`rollout_hash`].
pub const ROLLOUT_ANNOTATION: &str = "parity.dev/secrets-hash";

const KEY_INFO: &[u8] = b"parity-operator/secrets/rollout-hash/v1";

/// Keyed hash of a Secret's data, as `hmac-sha256:<64 hex>`. `key` must be secret and at
/// least 32 random bytes (see [`derive_rollout_key`] / [`new_rollout_key`]). The encoding is
/// length-prefixed per key and value, so no two different maps hash the same input.
pub fn rollout_hash(key: &[u8], data: &BTreeMap<String, Vec<u8>>) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"parity-secrets-v1");
    mac.update(&(data.len() as u64).to_be_bytes());
    for (k, v) in data {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.len() as u64).to_be_bytes());
        mac.update(v);
    }
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// A per-environment rollout key derived from the environment's root key material (for
/// example the keyring Secret's root key), so no extra Secret is needed. Distinct
/// environments get unrelated keys even from the same root.
pub fn derive_rollout_key(root_key: &[u8], environment: &str) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(environment.as_bytes()), root_key);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(KEY_INFO, out.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    out
}

/// A fresh random rollout key, for tiers without local root key material (keep it in a
/// Secret the workloads cannot read).
pub fn new_rollout_key() -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(out.as_mut());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn changes_with_any_value_key_or_rollout_key() {
        let key = [7u8; 32];
        let base = rollout_hash(&key, &data(&[("A", "1"), ("B", "2")]));
        assert_eq!(base, rollout_hash(&key, &data(&[("B", "2"), ("A", "1")])));
        assert_ne!(base, rollout_hash(&key, &data(&[("A", "1"), ("B", "3")])));
        assert_ne!(base, rollout_hash(&key, &data(&[("A", "1"), ("C", "2")])));
        assert_ne!(base, rollout_hash(&key, &data(&[("A", "1")])));
        assert_ne!(
            base,
            rollout_hash(&[8u8; 32], &data(&[("A", "1"), ("B", "2")]))
        );
        assert!(base.starts_with("hmac-sha256:"));
        assert_eq!(base.len(), "hmac-sha256:".len() + 64);
    }

    #[test]
    fn length_prefixing_separates_key_and_value_boundaries() {
        let key = [1u8; 32];
        assert_ne!(
            rollout_hash(&key, &data(&[("AB", "C")])),
            rollout_hash(&key, &data(&[("A", "BC")]))
        );
    }

    #[test]
    fn is_not_a_plain_checksum_of_the_data() {
        use sha2::Digest;
        // Someone reading the annotation must not be able to confirm a guess of a
        // low-entropy value without the key: the annotation differs from unkeyed digests.
        let d = data(&[("PIN", "1234")]);
        let h = rollout_hash(&[3u8; 32], &d);
        let plain = hex::encode(Sha256::digest(b"1234"));
        assert!(!h.contains(&plain));
        let unkeyed = rollout_hash(&[], &d);
        assert_ne!(h, unkeyed);
    }

    #[test]
    fn derived_keys_are_per_environment_and_stable() {
        let root = [9u8; 32];
        assert_eq!(
            *derive_rollout_key(&root, "a"),
            *derive_rollout_key(&root, "a")
        );
        assert_ne!(
            *derive_rollout_key(&root, "a"),
            *derive_rollout_key(&root, "b")
        );
        assert_ne!(*new_rollout_key(), *new_rollout_key());
    }
}
