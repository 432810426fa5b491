//! Key material types: zeroized on drop, redacted in Debug and Display, compared in
//! constant time.

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every symmetric key in the hierarchy (AES-256).
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key (root, key-encryption key, data key or derived message key).
///
/// The bytes are wiped when the value is dropped. `Debug`/`Display` print
/// `SecretKey(<redacted>)`, so a key that slips into a log line or an error leaks nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps existing bytes. The caller's copy is not wiped; prefer [`SecretKey::from_slice`]
    /// on a buffer the caller zeroizes itself.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(bytes)
    }

    /// Copies a slice that must be exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<SecretKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(SecretKey(arr))
    }

    /// A fresh key from the operating system's RNG.
    pub fn generate() -> SecretKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    /// The raw bytes, for the AEAD and KDF calls that need them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Variable-length secret bytes (KMS data keys of any size, KMS Encrypt plaintext).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_bytes() {
        let k = SecretKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{k:?} {k} {:?}", Some(&k));
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        let b = SecretBytes::new(vec![0xcd; 5]);
        assert_eq!(format!("{b:?}"), "SecretBytes(<5 bytes redacted>)");
    }

    #[test]
    fn equality_compares_bytes() {
        assert_eq!(
            SecretKey::from_bytes([1; 32]),
            SecretKey::from_bytes([1; 32])
        );
        assert_ne!(
            SecretKey::from_bytes([1; 32]),
            SecretKey::from_bytes([2; 32])
        );
        assert!(SecretKey::from_slice(&[0; 31]).is_none());
    }
}
