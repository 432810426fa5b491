//! The versioned binary envelope: its layout, a total parser and the serializer.
//! docs/envelope.md is the byte-level reference; the constants here are the bounds.
//!
//! Parsing never panics and never allocates more than the input: every length is checked
//! against both its bound and the bytes actually present before it is used.

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"PENV";
/// The only format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// AES-256-GCM, HKDF-SHA256 per-message key and 32-byte key commitment.
pub const SUITE_AES256_GCM_HKDF_SHA256_COMMIT: u16 = 0x0001;
pub const NONCE_LEN: usize = 12;
pub const COMMITMENT_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
/// Key ids are KMS key ARNs or keyring ids; AWS caps ARNs at 2048 characters.
pub const MAX_KEY_ID_LEN: usize = 2048;
/// AWS KMS ciphertext blobs are at most 6144 bytes.
pub const MAX_WRAPPED_KEY_LEN: usize = 6144;
/// Largest plaintext one envelope carries (bigger payloads are split by the caller).
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024 * 1024;
/// magic + version + suite.
pub const PREFIX_LEN: usize = 7;

/// Why bytes are not a well-formed envelope. Names the field that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope truncated in {field}: needs {needed} more bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("not a parity envelope (bad magic bytes)")]
    BadMagic,
    #[error("unsupported envelope format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown algorithm suite id 0x{0:04x}")]
    UnknownSuite(u16),
    #[error("envelope field {field} has length {len}, allowed {min}..={max}")]
    FieldLength {
        field: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("envelope key id is not UTF-8")]
    KeyIdNotUtf8,
    #[error("{0} unexpected bytes after the envelope")]
    TrailingBytes(usize),
}

/// A parsed envelope. Borrowing would be cheaper, but owned fields keep the API simple and
/// the copy is dwarfed by the AEAD.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub suite: u16,
    pub key_id: String,
    pub key_version: u32,
    pub wrapped_key: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
    pub commitment: [u8; COMMITMENT_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    // Sizes only: the wrapped key and ciphertext are harmless but noisy, and this keeps
    // log lines short.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("suite", &self.suite)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.rest.len() < n {
            return Err(EnvelopeError::Truncated {
                field,
                needed: n,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EnvelopeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

fn check_len(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), EnvelopeError> {
    if len < min || len > max {
        return Err(EnvelopeError::FieldLength {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

impl Envelope {
    /// Parses one envelope occupying all of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut r = Reader { rest: bytes };
        if r.take("magic", MAGIC.len())? != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let version = r.array::<1>("version")?[0];
        if version != FORMAT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let suite = r.u16("suite")?;
        if suite != SUITE_AES256_GCM_HKDF_SHA256_COMMIT {
            return Err(EnvelopeError::UnknownSuite(suite));
        }
        let key_id_len = r.u16("key_id_len")? as usize;
        check_len("key_id", key_id_len, 1, MAX_KEY_ID_LEN)?;
        let key_id = std::str::from_utf8(r.take("key_id", key_id_len)?)
            .map_err(|_| EnvelopeError::KeyIdNotUtf8)?
            .to_owned();
        let key_version = r.u32("key_version")?;
        let wrapped_len = r.u16("wrapped_key_len")? as usize;
        check_len("wrapped_key", wrapped_len, 1, MAX_WRAPPED_KEY_LEN)?;
        let wrapped_key = r.take("wrapped_key", wrapped_len)?.to_vec();
        let nonce = r.array::<NONCE_LEN>("nonce")?;
        let commitment = r.array::<COMMITMENT_LEN>("commitment")?;
        let ct_len = r.u32("ciphertext_len")? as usize;
        check_len("ciphertext", ct_len, TAG_LEN, MAX_PLAINTEXT_LEN + TAG_LEN)?;
        let ciphertext = r.take("ciphertext", ct_len)?.to_vec();
        if !r.rest.is_empty() {
            return Err(EnvelopeError::TrailingBytes(r.rest.len()));
        }
        Ok(Envelope {
            suite,
            key_id,
            key_version,
            wrapped_key,
            nonce,
            commitment,
            ciphertext,
        })
    }

    /// Serializes; fails only when a field is out of its bound (then nothing is written).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = self.header_bytes(self.ciphertext.len())?;
        out.extend_from_slice(&self.ciphertext);
        Ok(out)
    }

    /// Every byte before the ciphertext, for a ciphertext (with tag) of `ct_len` bytes,
    /// in a buffer with room for it: encryption appends straight into it (one allocation
    /// and one pass over the payload).
    pub(crate) fn header_bytes(&self, ct_len: usize) -> Result<Vec<u8>, EnvelopeError> {
        check_len("key_id", self.key_id.len(), 1, MAX_KEY_ID_LEN)?;
        check_len(
            "wrapped_key",
            self.wrapped_key.len(),
            1,
            MAX_WRAPPED_KEY_LEN,
        )?;
        check_len("ciphertext", ct_len, TAG_LEN, MAX_PLAINTEXT_LEN + TAG_LEN)?;
        let mut out = Vec::with_capacity(
            PREFIX_LEN
                + 2
                + self.key_id.len()
                + 4
                + 2
                + self.wrapped_key.len()
                + NONCE_LEN
                + COMMITMENT_LEN
                + 4
                + ct_len,
        );
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.suite.to_be_bytes());
        out.extend_from_slice(&(self.key_id.len() as u16).to_be_bytes());
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out.extend_from_slice(&(self.wrapped_key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&(ct_len as u32).to_be_bytes());
        Ok(out)
    }

    /// The payload's additional authenticated data: the fixed prefix, nonce and commitment,
    /// then the canonical context. Key id, version and wrapped key are deliberately left out
    /// so a data key can be re-wrapped (KMS ReEncrypt, rotation) without touching the
    /// ciphertext; tampering with them still fails (the unwrap is authenticated and the
    /// commitment pins the data key).
    pub fn payload_aad(&self, canonical_context: &[u8]) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(PREFIX_LEN + NONCE_LEN + COMMITMENT_LEN + canonical_context.len());
        aad.extend_from_slice(&MAGIC);
        aad.push(FORMAT_VERSION);
        aad.extend_from_slice(&self.suite.to_be_bytes());
        aad.extend_from_slice(&self.nonce);
        aad.extend_from_slice(&self.commitment);
        aad.extend_from_slice(canonical_context);
        aad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            suite: SUITE_AES256_GCM_HKDF_SHA256_COMMIT,
            key_id: "k".into(),
            key_version: 7,
            wrapped_key: vec![1, 2, 3],
            nonce: [4; NONCE_LEN],
            commitment: [5; COMMITMENT_LEN],
            ciphertext: vec![6; 20],
        }
    }

    #[test]
    fn round_trips_and_every_prefix_is_truncated() {
        let bytes = sample().to_bytes().unwrap();
        assert_eq!(Envelope::parse(&bytes).unwrap(), sample());
        for cut in 0..bytes.len() {
            let err = Envelope::parse(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::Truncated { .. }),
                "cut {cut}: {err:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Envelope::parse(&long), Err(EnvelopeError::TrailingBytes(1)));
    }

    #[test]
    fn header_fields_are_checked() {
        let bytes = sample().to_bytes().unwrap();
        let mut b = bytes.clone();
        b[0] ^= 1;
        assert_eq!(Envelope::parse(&b), Err(EnvelopeError::BadMagic));
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(
            Envelope::parse(&b),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
        let mut b = bytes.clone();
        b[6] = 9;
        assert_eq!(Envelope::parse(&b), Err(EnvelopeError::UnknownSuite(9)));
        let mut b = bytes.clone();
        b[7] = 0xff; // key id length far above the bound
        assert!(matches!(
            Envelope::parse(&b),
            Err(EnvelopeError::FieldLength {
                field: "key_id",
                ..
            })
        ));
        let mut b = bytes;
        b[9] = 0xff; // key id byte that is not UTF-8
        assert_eq!(Envelope::parse(&b), Err(EnvelopeError::KeyIdNotUtf8));
    }
}
