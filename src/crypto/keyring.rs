//! The keyring: one root key and its key-encryption-key (KEK) versions. The operator keeps
//! it in the `<env>-keyring` Secret (JSON under [`KEYRING_SECRET_KEY`]); `parity kms` and
//! `LocalKeyProvider` read it. Pure: the caller supplies the time.
//!
//! Derivation (HKDF-SHA256 throughout):
//! - Generated: root from the OS RNG; version material =
//!   `HKDF(salt = 32 fresh random bytes, ikm = root, info = "parity/v1/kek" || key_id || u32 version)`.
//!   The salt is not stored, so a destroyed version cannot be derived again.
//! - Seeded: `prk = HKDF-Extract("parity/v1/seeded-keyring", seed)`; root and key id are
//!   expanded from `prk`; version salts from the root
//!   (`HKDF(salt = "parity/v1/seeded-rotation", ikm = root, info = u32 version)`). Only the
//!   seed enters, never a time, so the same seed gives the same key id and material in any
//!   namespace and on any day. Destroying a seeded version wipes it from the keyring, but
//!   whoever holds the seed can derive it again:
//!   seeded keyrings are for CI reproducibility, not for secrecy.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hkdf::Hkdf;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroize;

use super::key::{KEY_LEN, SecretKey};

/// The data key of the keyring Secret that holds [`Keyring::to_json`].
pub const KEYRING_SECRET_KEY: &str = "keyring.json";
/// Current keyring serialization format.
pub const KEYRING_FORMAT: u32 = 1;
/// Shortest accepted seed (128 bits).
pub const MIN_SEED_LEN: usize = 16;
/// Bound on versions kept in one keyring (Destroyed entries included).
pub const MAX_VERSIONS: usize = 1000;

/// Where the root came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyringSource {
    Generated,
    Seeded,
}

/// Lifecycle of one KEK version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum VersionState {
    /// Wraps new data keys (exactly one version is Active).
    Active,
    /// Unwraps existing data keys only.
    DecryptOnly,
    /// Material wiped; data keys wrapped under it are unrecoverable.
    Destroyed,
}

/// What status may show about a version: no material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersionStatus {
    pub id: u32,
    #[schemars(with = "String")]
    pub created: Timestamp,
    pub state: VersionState,
}

#[derive(Clone)]
struct Version {
    id: u32,
    created: Timestamp,
    state: VersionState,
    material: Option<SecretKey>,
}

/// Root key plus KEK versions. `Debug` shows ids and states only.
#[derive(Clone)]
pub struct Keyring {
    key_id: String,
    source: KeyringSource,
    root: SecretKey,
    versions: Vec<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring is not valid JSON: {0}")]
    Json(String),
    #[error("keyring format {0} is not supported (expected {KEYRING_FORMAT})")]
    Format(u32),
    #[error("keyring field {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The seed's length is not said: status and events carry this message.
    #[error("the seed is too short: at least {MIN_SEED_LEN} bytes are required")]
    SeedTooShort,
    #[error("key version {0} does not exist in keyring")]
    UnknownVersion(u32),
    #[error("key version {0} was destroyed")]
    VersionDestroyed(u32),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> KeyringError {
    KeyringError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Version-4 layout like KMS key ids, whatever the bytes (random or derived from a seed).
fn uuid_from(bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn version_material(root: &SecretKey, salt: &[u8], key_id: &str, version: u32) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(Some(salt), root.expose());
    let mut info = b"parity/v1/kek".to_vec();
    info.extend_from_slice(key_id.as_bytes());
    info.extend_from_slice(&version.to_be_bytes());
    let mut out = [0u8; KEY_LEN];
    hk.expand(&info, &mut out)
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    let k = SecretKey::from_bytes(out);
    out.zeroize();
    k
}

struct Seeded(Hkdf<Sha256>);

impl Seeded {
    fn new(seed: &[u8]) -> Result<Seeded, KeyringError> {
        if seed.len() < MIN_SEED_LEN {
            return Err(KeyringError::SeedTooShort);
        }
        Ok(Seeded(Hkdf::<Sha256>::new(
            Some(b"parity/v1/seeded-keyring"),
            seed,
        )))
    }
    fn expand<const N: usize>(&self, label: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        self.0
            .expand(label, &mut out)
            .unwrap_or_else(|_| unreachable!("short HKDF output"));
        out
    }
    fn root(&self) -> SecretKey {
        let mut r = self.expand::<KEY_LEN>(b"root");
        let k = SecretKey::from_bytes(r);
        r.zeroize();
        k
    }
    fn key_id(&self) -> String {
        uuid_from(self.expand::<16>(b"key-id"))
    }
}

impl Keyring {
    /// A new keyring with fresh randomness and one Active version (id 1).
    pub fn generate(now: Timestamp) -> Keyring {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let mut k = Keyring {
            key_id: uuid_from(id),
            source: KeyringSource::Generated,
            root: SecretKey::generate(),
            versions: Vec::new(),
        };
        k.push_version(1, now, None);
        k
    }

    /// A keyring derived only from `seed` (plus `now` as the recorded creation time):
    /// the same seed gives the same key id and key material everywhere.
    pub fn seeded(seed: &[u8], now: Timestamp) -> Result<Keyring, KeyringError> {
        let s = Seeded::new(seed)?;
        let mut k = Keyring {
            key_id: s.key_id(),
            source: KeyringSource::Seeded,
            root: s.root(),
            versions: Vec::new(),
        };
        let salt = seeded_rotation_salt(&k.root, 1);
        k.push_version(1, now, Some(&salt));
        Ok(k)
    }

    fn push_version(&mut self, id: u32, now: Timestamp, salt: Option<&[u8; 32]>) {
        let mut random = [0u8; 32];
        let salt = match salt {
            Some(s) => s,
            None => {
                rand::rngs::OsRng.fill_bytes(&mut random);
                &random
            }
        };
        let material = version_material(&self.root, salt, &self.key_id, id);
        random.zeroize();
        self.versions.push(Version {
            id,
            created: whole_seconds(now),
            state: VersionState::Active,
            material: Some(material),
        });
    }

    /// Makes a new Active version; the previous Active becomes DecryptOnly; of the
    /// DecryptOnly versions, the newest `retain_versions` stay and older ones become
    /// Destroyed (material wiped). Seeded keyrings derive the new version from the seed
    /// material already in the keyring, so two seeded keyrings rotated the same number of
    /// times hold the same material. Returns the new version id.
    pub fn rotate(&mut self, now: Timestamp, retain_versions: u32) -> u32 {
        let next = self.versions.iter().map(|v| v.id).max().unwrap_or(0) + 1;
        for v in &mut self.versions {
            if v.state == VersionState::Active {
                v.state = VersionState::DecryptOnly;
            }
        }
        match self.source {
            KeyringSource::Generated => self.push_version(next, now, None),
            KeyringSource::Seeded => {
                // The seed is not kept; version salts come from the root, itself a pure
                // function of the seed.
                let salt = seeded_rotation_salt(&self.root, next);
                self.push_version(next, now, Some(&salt));
            }
        }
        self.retain(retain_versions);
        // Destroyed entries are kept as a record but bounded.
        while self.versions.len() > MAX_VERSIONS {
            if let Some(pos) = self
                .versions
                .iter()
                .position(|v| v.state == VersionState::Destroyed)
            {
                self.versions.remove(pos);
            } else {
                break;
            }
        }
        next
    }

    /// Destroys DecryptOnly versions beyond the newest `retain_versions` (for a lowered
    /// `retainVersions` without a rotation).
    pub fn retain(&mut self, retain_versions: u32) {
        let mut kept = 0u32;
        for v in self.versions.iter_mut().rev() {
            if v.state == VersionState::DecryptOnly {
                if kept < retain_versions {
                    kept += 1;
                } else {
                    v.state = VersionState::Destroyed;
                    v.material = None; // SecretKey zeroizes on drop
                }
            }
        }
    }

    /// Versions for status: id, created, state. No material.
    pub fn status_versions(&self) -> Vec<KeyVersionStatus> {
        self.versions
            .iter()
            .map(|v| KeyVersionStatus {
                id: v.id,
                created: v.created,
                state: v.state,
            })
            .collect()
    }

    /// The key id (a UUID, like a KMS key id).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn source(&self) -> KeyringSource {
        self.source
    }

    /// The Active version's id.
    pub fn active_version(&self) -> u32 {
        self.versions
            .iter()
            .find(|v| v.state == VersionState::Active)
            .map(|v| v.id)
            .unwrap_or(0)
    }

    /// When the Active version was created (the operator rotates when this plus the
    /// rotation period has passed).
    pub fn active_created(&self) -> Timestamp {
        self.versions
            .iter()
            .find(|v| v.state == VersionState::Active)
            .map(|v| v.created)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Whether the Active version is at least `period` old (a keyring without one never is).
    pub fn rotation_due(&self, now: Timestamp, period: std::time::Duration) -> bool {
        self.versions
            .iter()
            .find(|v| v.state == VersionState::Active)
            .is_some_and(|v| {
                std::time::Duration::try_from(now.duration_since(v.created))
                    .is_ok_and(|age| age >= period)
            })
    }

    /// How long until [`Self::rotation_due`] turns true (nothing watches that moment, so the
    /// operator looks again then); `None` once past it, or without an Active version.
    pub fn rotation_due_in(
        &self,
        now: Timestamp,
        period: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let active = self
            .versions
            .iter()
            .find(|v| v.state == VersionState::Active)?;
        let due = active
            .created
            .checked_add(jiff::SignedDuration::try_from(period).ok()?)
            .ok()?;
        std::time::Duration::try_from(due.duration_since(now)).ok()
    }

    /// Creation time of the first version (the key's creation date).
    pub fn created(&self) -> Timestamp {
        self.versions
            .first()
            .map(|v| v.created)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The KEK of `version`, if it exists and was not destroyed.
    pub fn kek(&self, version: u32) -> Result<&SecretKey, KeyringError> {
        let v = self
            .versions
            .iter()
            .find(|v| v.id == version)
            .ok_or(KeyringError::UnknownVersion(version))?;
        v.material
            .as_ref()
            .ok_or(KeyringError::VersionDestroyed(version))
    }

    /// The Active KEK and its version.
    pub fn active_kek(&self) -> Result<(u32, &SecretKey), KeyringError> {
        let id = self.active_version();
        Ok((id, self.kek(id)?))
    }

    /// True when both keyrings hold the same key id, root and version material (constant
    /// time per key). Creation times are ignored: they are records, not key material.
    pub fn same_material(&self, other: &Keyring) -> bool {
        self.key_id == other.key_id
            && self.root == other.root
            && self.versions.len() == other.versions.len()
            && self
                .versions
                .iter()
                .zip(&other.versions)
                .all(|(a, b)| a.id == b.id && a.state == b.state && a.material == b.material)
    }

    /// Serializes to the JSON stored in the Secret. Deterministic: the same keyring always
    /// gives the same bytes. The returned buffer is wiped when dropped.
    pub fn to_json(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let repr = Repr {
            format: KEYRING_FORMAT,
            key_id: self.key_id.clone(),
            source: self.source,
            root: B64.encode(self.root.expose()),
            versions: self
                .versions
                .iter()
                .map(|v| VersionRepr {
                    id: v.id,
                    created: v.created,
                    state: v.state,
                    material: v.material.as_ref().map(|m| B64.encode(m.expose())),
                })
                .collect(),
        };
        // Serializing plain strings, numbers and timestamps cannot fail.
        zeroize::Zeroizing::new(serde_json::to_vec(&repr).unwrap_or_default())
    }

    /// Parses and validates the Secret's JSON. Errors name the field, never a value.
    pub fn from_json(bytes: &[u8]) -> Result<Keyring, KeyringError> {
        let repr: Repr = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json messages quote offending values only for enum/type mismatches of
            // short tokens; the position is what a human needs.
            KeyringError::Json(format!(
                "{} at line {} column {}",
                match e.classify() {
                    serde_json::error::Category::Io => "I/O error",
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Data => "unexpected field or type",
                    serde_json::error::Category::Eof => "unexpected end of input",
                },
                e.line(),
                e.column()
            ))
        })?;
        if repr.format != KEYRING_FORMAT {
            return Err(KeyringError::Format(repr.format));
        }
        if repr.key_id.is_empty()
            || repr.key_id.len() > super::blob::MAX_BLOB_KEY_ID_LEN
            || !repr
                .key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("keyId", "must be 1-64 characters of [A-Za-z0-9_-]"));
        }
        let root = decode_key(&repr.root, "root")?;
        if repr.versions.is_empty() {
            return Err(invalid("versions", "must not be empty"));
        }
        if repr.versions.len() > MAX_VERSIONS {
            return Err(invalid(
                "versions",
                format!("more than {MAX_VERSIONS} entries"),
            ));
        }
        let mut versions = Vec::with_capacity(repr.versions.len());
        let mut last = 0u32;
        let mut active = 0;
        for (i, v) in repr.versions.iter().enumerate() {
            let field = format!("versions[{i}]");
            if v.id <= last {
                return Err(invalid(
                    format!("{field}.id"),
                    "ids must be ascending and start at 1",
                ));
            }
            last = v.id;
            let material = match (v.state, &v.material) {
                (VersionState::Destroyed, None) => None,
                (VersionState::Destroyed, Some(_)) => {
                    return Err(invalid(
                        format!("{field}.material"),
                        "a Destroyed version must have no material",
                    ));
                }
                (_, Some(m)) => Some(decode_key(m, &format!("{field}.material"))?),
                (_, None) => {
                    return Err(invalid(format!("{field}.material"), "missing"));
                }
            };
            if v.state == VersionState::Active {
                active += 1;
            }
            versions.push(Version {
                id: v.id,
                created: v.created,
                state: v.state,
                material,
            });
        }
        if active != 1 {
            return Err(invalid(
                "versions",
                format!("exactly one Active version required, found {active}"),
            ));
        }
        Ok(Keyring {
            key_id: repr.key_id.clone(),
            source: repr.source,
            root,
            versions,
        })
    }
}

fn seeded_rotation_salt(root: &SecretKey, version: u32) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"parity/v1/seeded-rotation"), root.expose());
    let mut out = [0u8; 32];
    hk.expand(&version.to_be_bytes(), &mut out)
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    out
}

fn decode_key(b64: &str, field: &str) -> Result<SecretKey, KeyringError> {
    let mut bytes = B64
        .decode(b64)
        .map_err(|_| invalid(field, "not valid base64"))?;
    let key = SecretKey::from_slice(&bytes);
    bytes.zeroize();
    // Not the length it had: this message reaches status and events.
    key.ok_or_else(|| invalid(field, format!("must decode to {KEY_LEN} bytes")))
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &self.key_id)
            .field("source", &self.source)
            .field("root", &"<redacted>")
            .field("versions", &self.status_versions())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Repr {
    format: u32,
    key_id: String,
    source: KeyringSource,
    root: String,
    versions: Vec<VersionRepr>,
}

impl Drop for Repr {
    fn drop(&mut self) {
        self.root.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VersionRepr {
    id: u32,
    created: Timestamp,
    state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    material: Option<String>,
}

impl Drop for VersionRepr {
    fn drop(&mut self) {
        if let Some(m) = self.material.as_mut() {
            m.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn rotation_is_due_once_the_active_version_is_a_period_old() {
        let day = std::time::Duration::from_secs(86_400);
        let mut k = Keyring::generate(t(0));
        assert!(!k.rotation_due(t(86_399), day));
        assert!(k.rotation_due(t(86_400), day));
        k.rotate(t(86_400), 1);
        // The new Active version restarts the clock.
        assert!(!k.rotation_due(t(86_401), day));
        assert!(k.rotation_due(t(2 * 86_400), day));
        // Due again a day after the rotation at 86_400.
        assert_eq!(
            k.rotation_due_in(t(86_400 + 3_600), day),
            Some(std::time::Duration::from_secs(86_400 - 3_600))
        );
        assert_eq!(k.rotation_due_in(t(3 * 86_400), day), None);
    }

    #[test]
    fn seeded_is_identical_whatever_the_time_and_json_round_trips() {
        let a = Keyring::seeded(b"0123456789abcdef-seed", t(0)).unwrap();
        let b = Keyring::seeded(b"0123456789abcdef-seed", t(999)).unwrap();
        assert!(a.same_material(&b));
        assert_eq!(
            *a.to_json(),
            *Keyring::seeded(b"0123456789abcdef-seed", t(0))
                .unwrap()
                .to_json()
        );
        let c = Keyring::seeded(b"another seed, 16+ bytes", t(0)).unwrap();
        assert!(!a.same_material(&c));
        let back = Keyring::from_json(&a.to_json()).unwrap();
        assert!(back.same_material(&a));
        assert_eq!(back.status_versions(), a.status_versions());
        assert_eq!(
            Keyring::seeded(b"short", t(0)).unwrap_err(),
            KeyringError::SeedTooShort
        );
    }

    #[test]
    fn rotation_keeps_retained_versions_and_wipes_older() {
        let mut k = Keyring::generate(t(0));
        for i in 1..=4 {
            assert_eq!(k.rotate(t(i), 2), i as u32 + 1);
        }
        let states: Vec<_> = k
            .status_versions()
            .iter()
            .map(|v| (v.id, v.state))
            .collect();
        use VersionState::*;
        assert_eq!(
            states,
            vec![
                (1, Destroyed),
                (2, Destroyed),
                (3, DecryptOnly),
                (4, DecryptOnly),
                (5, Active)
            ]
        );
        assert_eq!(k.kek(1).unwrap_err(), KeyringError::VersionDestroyed(1));
        assert!(k.kek(3).is_ok());
        assert_eq!(k.active_version(), 5);
        assert_eq!(k.active_created(), t(4));
        let json = String::from_utf8(k.to_json().to_vec()).unwrap();
        assert_eq!(
            json.matches("\"material\"").count(),
            3,
            "destroyed versions carry no material"
        );
        let back = Keyring::from_json(json.as_bytes()).unwrap();
        assert!(back.same_material(&k));
    }

    #[test]
    fn seeded_rotation_is_reproducible() {
        let mut a = Keyring::seeded(&[7; 32], t(0)).unwrap();
        let mut b = Keyring::seeded(&[7; 32], t(50)).unwrap();
        a.rotate(t(10), 1);
        b.rotate(t(70), 1);
        assert!(a.same_material(&b));
        assert!(a.kek(1).unwrap() != a.kek(2).unwrap());
    }

    #[test]
    fn debug_is_redacted_and_bad_json_names_the_field() {
        let k = Keyring::seeded(&[9; 32], t(0)).unwrap();
        let json = String::from_utf8(k.to_json().to_vec()).unwrap();
        let root_b64 = B64.encode(k.root.expose());
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains(&root_b64) && dbg.contains("<redacted>"),
            "{dbg}"
        );
        let broken = json.replace(&root_b64, "AAAA");
        let err = Keyring::from_json(broken.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
        assert!(!err.to_string().contains("AAAA"));
        let err = Keyring::from_json(b"{\"format\": 2").unwrap_err();
        assert!(matches!(err, KeyringError::Json(_)), "{err}");
    }
}
