//! AES-256-GCM behind one small API, so the implementation can be chosen at build time:
//! the RustCrypto `aes-gcm` crate by default, AWS-LC (`aws-lc-rs`, already in the AWS SDK's
//! tree) with the `aws-lc` feature. Both are the same algorithm: envelopes and vectors are
//! byte-identical either way (the vector test runs under both).

use super::envelope::{NONCE_LEN, TAG_LEN};

/// Appends the ciphertext and tag of `plaintext` to `out`.
pub(crate) fn seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.reserve(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = imp::seal_in_place(key, nonce, aad, &mut out[start..]);
    out.extend_from_slice(&tag);
}

/// Decrypts `ciphertext || tag`; `None` if authentication fails.
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_and_tag: &[u8],
) -> Option<Vec<u8>> {
    if ct_and_tag.len() < TAG_LEN {
        return None;
    }
    imp::open(key, nonce, aad, ct_and_tag)
}

#[cfg(not(feature = "aws-lc"))]
mod imp {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    use super::{NONCE_LEN, TAG_LEN};

    /// Encrypts `buf` in place; returns the tag.
    pub(super) fn seal_in_place(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        // Fails only above GCM's 64 GiB message limit, far beyond any caller's bound.
        Aes256Gcm::new(key.into())
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .unwrap_or_else(|_| unreachable!("plaintext within GCM limits"))
            .into()
    }

    pub(super) fn open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &[u8],
    ) -> Option<Vec<u8>> {
        let (ct, tag) = ct_and_tag.split_at(ct_and_tag.len() - TAG_LEN);
        let mut buf = ct.to_vec();
        match Aes256Gcm::new(key.into()).decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        ) {
            Ok(()) => Some(buf),
            Err(_) => {
                zeroize::Zeroize::zeroize(&mut buf);
                None
            }
        }
    }
}

#[cfg(feature = "aws-lc")]
mod imp {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    use super::{NONCE_LEN, TAG_LEN};

    fn key(k: &[u8; 32]) -> LessSafeKey {
        // A 32-byte key is always valid for AES-256-GCM.
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, k).unwrap_or_else(|_| unreachable!("32-byte key")),
        )
    }

    /// Encrypts `buf` in place; returns the tag.
    pub(super) fn seal_in_place(
        k: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = key(k)
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .unwrap_or_else(|_| unreachable!("plaintext within GCM limits"));
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub(super) fn open(
        k: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &[u8],
    ) -> Option<Vec<u8>> {
        let mut buf = ct_and_tag.to_vec();
        let n = key(k)
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut buf,
            )
            .ok()
            .map(|pt| pt.len());
        match n {
            Some(n) => {
                buf.truncate(n);
                Some(buf)
            }
            None => {
                zeroize::Zeroize::zeroize(&mut buf);
                None
            }
        }
    }
}
