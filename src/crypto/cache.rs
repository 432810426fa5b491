//! Data-key cache for encryption: one data key per encryption context, reused until it hits
//! an age, message or byte limit (as the AWS Encryption SDK's caching CMM does), never for
//! 2^32 messages or more.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::provider::DataKey;

/// Hard ceiling on messages per data key, whatever the configuration says: at most
/// 2^32 - 1 uses, the bound NIST SP 800-38D sets for random 96-bit GCM nonces.
pub const MAX_MESSAGES_HARD_LIMIT: u64 = (1u64 << 32) - 1;

/// Limits per cached data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_age: Duration,
    pub max_messages: u64,
    pub max_bytes: u64,
    /// Distinct encryption contexts kept at once.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_age: Duration::from_secs(300),
            max_messages: 10_000,
            max_bytes: 1 << 30,
            max_entries: 1024,
        }
    }
}

impl CacheLimits {
    fn clamped(self) -> CacheLimits {
        CacheLimits {
            max_messages: self.max_messages.clamp(1, MAX_MESSAGES_HARD_LIMIT),
            max_entries: self.max_entries.max(1),
            ..self
        }
    }
}

struct Entry {
    key: std::sync::Arc<DataKey>,
    created: Instant,
    messages: u64,
    bytes: u64,
}

/// Keyed by the canonical encryption context: a data key is bound to its context.
pub(crate) struct DataKeyCache {
    limits: CacheLimits,
    entries: HashMap<Vec<u8>, Entry>,
}

impl DataKeyCache {
    pub(crate) fn new(limits: CacheLimits) -> DataKeyCache {
        DataKeyCache {
            limits: limits.clamped(),
            entries: HashMap::new(),
        }
    }

    /// A cached key usable for one more message of `len` bytes, counted as used.
    pub(crate) fn take(
        &mut self,
        ctx: &[u8],
        len: usize,
        now: Instant,
    ) -> Option<std::sync::Arc<DataKey>> {
        let l = self.limits;
        let e = self.entries.get_mut(ctx)?;
        let fresh = now.saturating_duration_since(e.created) < l.max_age;
        let fits = e.messages < l.max_messages && e.bytes.saturating_add(len as u64) <= l.max_bytes;
        if fresh && fits {
            e.messages += 1;
            e.bytes = e.bytes.saturating_add(len as u64);
            Some(e.key.clone())
        } else {
            self.entries.remove(ctx);
            None
        }
    }

    /// Stores a new key that was just used for one message of `len` bytes.
    pub(crate) fn put(
        &mut self,
        ctx: Vec<u8>,
        key: std::sync::Arc<DataKey>,
        len: usize,
        now: Instant,
    ) {
        if self.entries.len() >= self.limits.max_entries {
            let l = self.limits;
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.created) < l.max_age);
            if self.entries.len() >= self.limits.max_entries {
                // Still full of live keys: drop the oldest.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.created)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        if len as u64 > self.limits.max_bytes || self.limits.max_messages <= 1 {
            return; // would be exhausted by this very message
        }
        self.entries.insert(
            ctx,
            Entry {
                key,
                created: now,
                messages: 1,
                bytes: len as u64,
            },
        );
    }

    #[cfg(test)]
    fn limits(&self) -> CacheLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key::SecretKey;

    fn dk() -> std::sync::Arc<DataKey> {
        std::sync::Arc::new(DataKey {
            plaintext: SecretKey::from_bytes([1; 32]),
            wrapped: vec![1],
            key_id: "k".into(),
            key_version: 1,
        })
    }

    #[test]
    fn limits_on_messages_bytes_and_age() {
        let t0 = Instant::now();
        let mut c = DataKeyCache::new(CacheLimits {
            max_age: Duration::from_secs(10),
            max_messages: 3,
            max_bytes: 100,
            max_entries: 8,
        });
        c.put(b"a".to_vec(), dk(), 10, t0);
        assert!(c.take(b"a", 10, t0).is_some()); // 2nd message
        assert!(c.take(b"a", 10, t0).is_some()); // 3rd
        assert!(
            c.take(b"a", 10, t0).is_none(),
            "4th message exceeds max_messages"
        );
        c.put(b"a".to_vec(), dk(), 90, t0);
        assert!(c.take(b"a", 11, t0).is_none(), "bytes would exceed 100");
        c.put(b"a".to_vec(), dk(), 1, t0);
        assert!(
            c.take(b"a", 1, t0 + Duration::from_secs(10)).is_none(),
            "too old"
        );
        assert!(
            c.take(b"other", 1, t0).is_none(),
            "contexts never share keys"
        );
    }

    #[test]
    fn message_limit_is_clamped_below_2_pow_32() {
        let c = DataKeyCache::new(CacheLimits {
            max_messages: u64::MAX,
            ..CacheLimits::default()
        });
        assert_eq!(c.limits().max_messages, (1 << 32) - 1);
    }
}
