//! The encryption context: string pairs bound to a ciphertext as additional authenticated
//! data, never stored in the envelope (the caller supplies the same pairs to decrypt).
//!
//! Canonical encoding (what the AEAD authenticates), identical for any insertion order:
//! `u16 count` then, sorted by key bytes, `u16 key_len, key, u16 value_len, value`
//! (big-endian lengths, UTF-8 bytes). An empty context encodes as `00 00`.

use std::collections::BTreeMap;

/// At most this many pairs (bounds the AAD and the cost of a malicious context).
pub const MAX_CONTEXT_PAIRS: usize = 64;
/// At most this many bytes in the canonical encoding (AWS KMS allows 8192 characters).
pub const MAX_CONTEXT_BYTES: usize = 8192;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ContextError {
    #[error("encryption context has {0} pairs; at most {MAX_CONTEXT_PAIRS} are allowed")]
    TooManyPairs(usize),
    #[error("encryption context encodes to {0} bytes; at most {MAX_CONTEXT_BYTES} are allowed")]
    TooLarge(usize),
    #[error("encryption context key must not be empty")]
    EmptyKey,
}

/// Sorted string pairs. Keys are unique by construction.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new() -> EncryptionContext {
        EncryptionContext(BTreeMap::new())
    }

    /// Builds and validates a context from pairs (a later duplicate key wins).
    pub fn from_pairs<K, V, I>(pairs: I) -> Result<EncryptionContext, ContextError>
    where
        K: Into<String>,
        V: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        let ctx = EncryptionContext(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        ctx.canonical()?;
        Ok(ctx)
    }

    pub fn from_map(map: BTreeMap<String, String>) -> Result<EncryptionContext, ContextError> {
        Self::from_pairs(map)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The canonical AAD bytes (see the module docs), or why the context is out of bounds.
    pub fn canonical(&self) -> Result<Vec<u8>, ContextError> {
        if self.0.len() > MAX_CONTEXT_PAIRS {
            return Err(ContextError::TooManyPairs(self.0.len()));
        }
        let size = 2 + self
            .0
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>();
        if size > MAX_CONTEXT_BYTES {
            return Err(ContextError::TooLarge(size));
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for (k, v) in &self.0 {
            if k.is_empty() {
                return Err(ContextError::EmptyKey);
            }
            // Both lengths fit in u16: the whole encoding is at most MAX_CONTEXT_BYTES.
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        Ok(out)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptionContext {
    /// Unvalidated; bounds are checked when the context is encoded.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        EncryptionContext(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_sorted_and_independent_of_insertion_order() {
        let a: EncryptionContext = [("tenant", "t1"), ("app", "x")].into_iter().collect();
        let b: EncryptionContext = [("app", "x"), ("tenant", "t1")].into_iter().collect();
        let enc = a.canonical().unwrap();
        assert_eq!(enc, b.canonical().unwrap());
        assert_eq!(
            enc,
            b"\x00\x02\x00\x03app\x00\x01x\x00\x06tenant\x00\x02t1".to_vec()
        );
        assert_eq!(EncryptionContext::new().canonical().unwrap(), vec![0, 0]);
    }

    #[test]
    fn bounds_are_typed_errors() {
        let many: EncryptionContext = (0..65).map(|i| (format!("k{i}"), "v")).collect();
        assert_eq!(many.canonical(), Err(ContextError::TooManyPairs(65)));
        let big: EncryptionContext = [("k", "v".repeat(9000))].into_iter().collect();
        assert!(matches!(big.canonical(), Err(ContextError::TooLarge(_))));
        assert_eq!(
            EncryptionContext::from_pairs([("", "v")]),
            Err(ContextError::EmptyKey)
        );
    }
}
