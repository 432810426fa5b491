//! The wrapped-key blob: what `LocalKeyProvider` stores as an envelope's wrapped data key
//! and what `parity kms` returns as a `CiphertextBlob`. One format, so a data key wrapped
//! by either opens with the other given the same keyring.
//!
//! ```text
//! "PKMS" | u8 version=1 | u8 key_id_len | key_id | u32 kek_version | nonce[12] | ct || tag[16]
//! ```
//! The wrapping key is `HKDF-SHA256(salt = nonce, ikm = KEK version, "parity/v1/wrap")`,
//! fresh per blob; the AAD is every header byte before the ciphertext, then the canonical
//! encryption context, so a blob opens only under its key, version and context.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use super::envelope::{NONCE_LEN, TAG_LEN};
use super::key::{KEY_LEN, SecretBytes, SecretKey};

pub const BLOB_MAGIC: [u8; 4] = *b"PKMS";
pub const BLOB_VERSION: u8 = 1;
pub const MAX_BLOB_KEY_ID_LEN: usize = 64;
/// KMS Encrypt accepts at most 4096 bytes of plaintext.
pub const MAX_BLOB_PLAINTEXT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("ciphertext blob is malformed: {0}")]
    Malformed(&'static str),
    #[error("ciphertext blob failed authentication (wrong key, version or encryption context)")]
    AuthenticationFailed,
    #[error("plaintext of {0} bytes exceeds {MAX_BLOB_PLAINTEXT}")]
    TooLarge(usize),
}

/// The clear header of a blob: which key and version opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: String,
    pub kek_version: u32,
    header_len: usize,
}

pub fn parse_header(blob: &[u8]) -> Result<BlobHeader, BlobError> {
    let fixed = BLOB_MAGIC.len() + 2;
    if blob.len() < fixed {
        return Err(BlobError::Malformed("shorter than its header"));
    }
    if blob[..4] != BLOB_MAGIC {
        return Err(BlobError::Malformed("bad magic bytes"));
    }
    if blob[4] != BLOB_VERSION {
        return Err(BlobError::Malformed("unknown blob version"));
    }
    let id_len = blob[5] as usize;
    if id_len == 0 || id_len > MAX_BLOB_KEY_ID_LEN {
        return Err(BlobError::Malformed("key id length out of range"));
    }
    let header_len = fixed + id_len + 4 + NONCE_LEN;
    if blob.len() < header_len + TAG_LEN {
        return Err(BlobError::Malformed("truncated"));
    }
    if blob.len() > header_len + MAX_BLOB_PLAINTEXT + TAG_LEN {
        return Err(BlobError::Malformed("longer than any blob"));
    }
    let key_id = std::str::from_utf8(&blob[fixed..fixed + id_len])
        .map_err(|_| BlobError::Malformed("key id is not UTF-8"))?
        .to_owned();
    let mut v = [0u8; 4];
    v.copy_from_slice(&blob[fixed + id_len..fixed + id_len + 4]);
    Ok(BlobHeader {
        key_id,
        kek_version: u32::from_be_bytes(v),
        header_len,
    })
}

fn wrapping_key(kek: &SecretKey, nonce: &[u8]) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(Some(nonce), kek.expose());
    let mut k = [0u8; KEY_LEN];
    hk.expand(b"parity/v1/wrap", &mut k)
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    let key = SecretKey::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    key
}

/// Wraps `plaintext` (a data key, or KMS Encrypt input) under one KEK version.
pub fn seal(
    kek: &SecretKey,
    key_id: &str,
    kek_version: u32,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    canonical_context: &[u8],
) -> Result<Vec<u8>, BlobError> {
    if plaintext.len() > MAX_BLOB_PLAINTEXT {
        return Err(BlobError::TooLarge(plaintext.len()));
    }
    if key_id.is_empty() || key_id.len() > MAX_BLOB_KEY_ID_LEN {
        return Err(BlobError::Malformed("key id length out of range"));
    }
    let mut out = Vec::with_capacity(6 + key_id.len() + 4 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&BLOB_MAGIC);
    out.push(BLOB_VERSION);
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&kek_version.to_be_bytes());
    out.extend_from_slice(&nonce);
    let mut aad = out.clone();
    aad.extend_from_slice(canonical_context);
    let header_len = out.len();
    out.extend_from_slice(plaintext);
    let cipher = Aes256Gcm::new(wrapping_key(kek, &nonce).expose().into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut out[header_len..])
        .map_err(|_| BlobError::TooLarge(plaintext.len()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Unwraps a blob whose header was parsed with [`parse_header`], under that header's KEK.
pub fn open(
    kek: &SecretKey,
    header: &BlobHeader,
    blob: &[u8],
    canonical_context: &[u8],
) -> Result<SecretBytes, BlobError> {
    let hl = header.header_len;
    if blob.len() < hl + TAG_LEN {
        return Err(BlobError::Malformed("truncated"));
    }
    let nonce = &blob[hl - NONCE_LEN..hl];
    let mut aad = blob[..hl].to_vec();
    aad.extend_from_slice(canonical_context);
    let (ct, tag) = blob[hl..].split_at(blob.len() - hl - TAG_LEN);
    let mut buf = ct.to_vec();
    let cipher = Aes256Gcm::new(wrapping_key(kek, nonce).expose().into());
    if cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .is_err()
    {
        zeroize::Zeroize::zeroize(&mut buf);
        return Err(BlobError::AuthenticationFailed);
    }
    Ok(SecretBytes::new(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_every_truncation_is_an_error() {
        let kek = SecretKey::from_bytes([3; 32]);
        let blob = seal(&kek, "key-1", 4, [5; 12], &[9; 32], b"ctx").unwrap();
        let h = parse_header(&blob).unwrap();
        assert_eq!((h.key_id.as_str(), h.kek_version), ("key-1", 4));
        assert_eq!(open(&kek, &h, &blob, b"ctx").unwrap().expose(), &[9; 32]);
        assert_eq!(
            open(&kek, &h, &blob, b"other").unwrap_err(),
            BlobError::AuthenticationFailed
        );
        for cut in 0..blob.len() {
            let r = parse_header(&blob[..cut]).and_then(|h| open(&kek, &h, &blob[..cut], b"ctx"));
            assert!(r.is_err(), "cut {cut}");
        }
    }
}
