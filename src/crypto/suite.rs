//! The one algorithm suite (0x0001): per-message key and commitment derived with
//! HKDF-SHA256 from the data key, then AES-256-GCM over the payload.
//!
//! `prk = HKDF-Extract(salt = nonce, ikm = data key)`;
//! `message key = HKDF-Expand(prk, "parity/v1/enc" || suite, 32)`;
//! `commitment = HKDF-Expand(prk, "parity/v1/commit" || suite, 32)`.
//! Deriving a fresh key per nonce keeps a cached data key far from GCM's per-key limits,
//! and the stored commitment means a ciphertext opens under exactly one data key (GCM
//! alone is not key-committing).

use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::envelope::{
    COMMITMENT_LEN, Envelope, NONCE_LEN, SUITE_AES256_GCM_HKDF_SHA256_COMMIT, TAG_LEN,
};
use super::key::{KEY_LEN, SecretKey};

const SUITE: u16 = SUITE_AES256_GCM_HKDF_SHA256_COMMIT;

/// Why a payload did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("key commitment does not match the data key (wrong key or tampered envelope)")]
    CommitmentMismatch,
    #[error("ciphertext authentication failed (tampered ciphertext or wrong encryption context)")]
    AuthenticationFailed,
}

fn info(label: &[u8]) -> Vec<u8> {
    let mut v = label.to_vec();
    v.extend_from_slice(&SUITE.to_be_bytes());
    v
}

/// The per-message AES key and the key commitment for `data_key` and `nonce`.
pub(crate) fn derive(
    data_key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
) -> (SecretKey, [u8; COMMITMENT_LEN]) {
    let hk = Hkdf::<Sha256>::new(Some(nonce), data_key.expose());
    let mut enc = [0u8; KEY_LEN];
    let mut commitment = [0u8; COMMITMENT_LEN];
    // Expand fails only for outputs above 255 * 32 bytes; ours are 32.
    hk.expand(&info(b"parity/v1/enc"), &mut enc)
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    hk.expand(&info(b"parity/v1/commit"), &mut commitment)
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    let key = SecretKey::from_bytes(enc);
    zeroize::Zeroize::zeroize(&mut enc);
    (key, commitment)
}

/// Encrypts `plaintext` into a complete envelope under an already wrapped data key.
pub(crate) fn seal(
    data_key: &SecretKey,
    nonce: [u8; NONCE_LEN],
    key_id: String,
    key_version: u32,
    wrapped_key: Vec<u8>,
    canonical_context: &[u8],
    plaintext: &[u8],
) -> Envelope {
    let (msg_key, commitment) = derive(data_key, &nonce);
    let mut env = Envelope {
        suite: SUITE,
        key_id,
        key_version,
        wrapped_key,
        nonce,
        commitment,
        ciphertext: Vec::with_capacity(plaintext.len() + TAG_LEN),
    };
    let aad = env.payload_aad(canonical_context);
    super::aead::seal(
        msg_key.expose(),
        &nonce,
        &aad,
        plaintext,
        &mut env.ciphertext,
    );
    env
}

/// Like [`seal`] but straight to the serialized envelope: the payload is encrypted into
/// the output buffer (no intermediate ciphertext copy), which matters for large payloads.
pub(crate) fn seal_to_bytes(
    data_key: &SecretKey,
    nonce: [u8; NONCE_LEN],
    key_id: &str,
    key_version: u32,
    wrapped_key: &[u8],
    canonical_context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, super::envelope::EnvelopeError> {
    let (msg_key, commitment) = derive(data_key, &nonce);
    let env = Envelope {
        suite: SUITE,
        key_id: key_id.to_owned(),
        key_version,
        wrapped_key: wrapped_key.to_vec(),
        nonce,
        commitment,
        ciphertext: Vec::new(),
    };
    let mut out = env.header_bytes(plaintext.len() + TAG_LEN)?;
    let aad = env.payload_aad(canonical_context);
    super::aead::seal(msg_key.expose(), &nonce, &aad, plaintext, &mut out);
    Ok(out)
}

/// Checks the commitment, then authenticates and decrypts the payload. The plaintext is
/// wiped when the caller drops it.
pub(crate) fn open(
    env: &Envelope,
    data_key: &SecretKey,
    canonical_context: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, OpenError> {
    let (msg_key, commitment) = derive(data_key, &env.nonce);
    if !bool::from(commitment.ct_eq(&env.commitment)) {
        return Err(OpenError::CommitmentMismatch);
    }
    let aad = env.payload_aad(canonical_context);
    super::aead::open(msg_key.expose(), &env.nonce, &aad, &env.ciphertext)
        .map(zeroize::Zeroizing::new)
        .ok_or(OpenError::AuthenticationFailed)
}

/// A random 96-bit nonce from the OS RNG.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    use rand::RngCore;
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_to_bytes_matches_seal() {
        let dk = SecretKey::from_bytes([7; 32]);
        let env = seal(&dk, [1; 12], "k".into(), 1, vec![9], b"ctx", b"hello");
        let direct = seal_to_bytes(&dk, [1; 12], "k", 1, &[9], b"ctx", b"hello").unwrap();
        assert_eq!(direct, env.to_bytes().unwrap());
    }

    #[test]
    fn open_rejects_other_key_by_commitment_and_other_context_by_tag() {
        let dk = SecretKey::from_bytes([7; 32]);
        let env = seal(&dk, [1; 12], "k".into(), 1, vec![9], b"ctx", b"hello");
        assert_eq!(*open(&env, &dk, b"ctx").unwrap(), b"hello");
        assert_eq!(
            open(&env, &SecretKey::from_bytes([8; 32]), b"ctx"),
            Err(OpenError::CommitmentMismatch)
        );
        assert_eq!(
            open(&env, &dk, b"other"),
            Err(OpenError::AuthenticationFailed)
        );
    }
}
