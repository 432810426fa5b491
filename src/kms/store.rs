//! The keys `parity kms` serves: keyrings loaded from files (the mounted keyring Secret),
//! aliases, per-key enabled state, and resolution of key ids, ARNs and aliases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::KmsError;
use crate::crypto::Keyring;

/// Longest KeyId (id, ARN, alias or alias ARN) AWS KMS accepts.
pub const MAX_KEY_ID_LEN: usize = 2048;

pub struct KeyEntry {
    pub keyring: Keyring,
    pub enabled: bool,
    pub path: Option<PathBuf>,
    /// Hash of the file content last loaded or written, to notice external changes.
    pub file_hash: [u8; 32],
}

pub struct Store {
    pub region: String,
    pub account: String,
    /// By key id, in load order for stable listings.
    pub keys: BTreeMap<String, KeyEntry>,
    pub order: Vec<String>,
    /// Alias name ("alias/x") -> key id.
    pub aliases: BTreeMap<String, String>,
    pub rotation_period_days: u32,
    pub retain_versions: u32,
}

/// An alias spec: `alias/name` (the only key) or `alias/name=<key id>`.
pub fn parse_alias(spec: &str, origin: &str) -> Result<(String, Option<String>), String> {
    let spec = spec.trim();
    let (name, target) = match spec.split_once('=') {
        Some((n, t)) => (n.trim(), Some(t.trim().to_owned())),
        None => (spec, None),
    };
    let rest = name
        .strip_prefix("alias/")
        .ok_or_else(|| format!("{origin}: alias {name:?} must start with \"alias/\""))?;
    if rest.is_empty()
        || rest.len() > 250
        || rest.starts_with("aws/")
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return Err(format!(
            "{origin}: alias {name:?}: the name after alias/ must be 1-250 characters of [A-Za-z0-9/_-] and not start with aws/"
        ));
    }
    Ok((name.to_owned(), target))
}

pub fn read_keyring(path: &Path) -> Result<(Keyring, [u8; 32]), String> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("keyring file {}: {e}", path.display()))?,
    );
    let kr =
        Keyring::from_json(&bytes).map_err(|e| format!("keyring file {}: {e}", path.display()))?;
    Ok((kr, Sha256::digest(&*bytes).into()))
}

impl Store {
    pub fn key_arn(&self, key_id: &str) -> String {
        format!("arn:aws:kms:{}:{}:key/{key_id}", self.region, self.account)
    }

    pub fn alias_arn(&self, alias: &str) -> String {
        format!("arn:aws:kms:{}:{}:{alias}", self.region, self.account)
    }

    /// Resolves a key id, key ARN, alias name or alias ARN to a key id.
    pub fn resolve(&self, key: &str) -> Result<String, KmsError> {
        // AWS's bound on KeyId; it also keeps the id out of error messages and logs when
        // it is only a flood of bytes.
        if key.is_empty() || key.len() > MAX_KEY_ID_LEN {
            return Err(KmsError::validation(format!(
                "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and {MAX_KEY_ID_LEN}"
            )));
        }
        let local = match key.strip_prefix("arn:aws:kms:") {
            Some(rest) => {
                // region:account:resource
                let mut parts = rest.splitn(3, ':');
                let (Some(region), Some(account), Some(resource)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(KmsError::not_found(format!("Invalid arn {key}")));
                };
                if region != self.region || account != self.account {
                    return Err(KmsError::not_found(format!("Key '{key}' does not exist")));
                }
                resource
            }
            None => key,
        };
        if let Some(id) = local.strip_prefix("key/") {
            return self.existing(id, key);
        }
        if local.starts_with("alias/") {
            return self.aliases.get(local).cloned().ok_or_else(|| {
                KmsError::not_found(format!("Alias {} is not found.", self.alias_arn(local)))
            });
        }
        self.existing(local, key)
    }

    fn existing(&self, id: &str, shown: &str) -> Result<String, KmsError> {
        if self.keys.contains_key(id) {
            Ok(id.to_owned())
        } else {
            Err(KmsError::not_found(format!("Key '{shown}' does not exist")))
        }
    }

    pub fn entry(&self, id: &str) -> Result<&KeyEntry, KmsError> {
        self.keys.get(id).ok_or_else(|| {
            KmsError::not_found(format!("Key '{}' does not exist", self.key_arn(id)))
        })
    }

    /// Like [`Store::entry`] but the key must be enabled (for cryptographic operations).
    pub fn usable(&self, id: &str) -> Result<&KeyEntry, KmsError> {
        let e = self.entry(id)?;
        if !e.enabled {
            return Err(KmsError::disabled(format!(
                "{} is disabled.",
                self.key_arn(id)
            )));
        }
        Ok(e)
    }
}
