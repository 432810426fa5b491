//! Where `parity secrets-api` reads secret data: a directory as Kubernetes mounts a Secret
//! (one file per key, plus `..data`-style entries that are skipped), or a JSON file (either
//! `{"KEY": "value"}` or a Secret manifest with base64 `data`). Read on every request so a
//! Secret update reaches clients without a restart (the kubelet swaps `..data` atomically).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::Value;

use super::schema::check_secret_key;

/// The secrets on disk and when they last changed.
pub struct Snapshot {
    pub data: BTreeMap<String, Vec<u8>>,
    pub modified: SystemTime,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("modified", &self.modified)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub enum Source {
    Dir(PathBuf),
    JsonFile(PathBuf),
}

/// Why the secrets could not be read. Names paths and keys, never contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON at line {line}, column {column}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}: {reason}")]
    Shape { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Source {
    /// Every secret. Blocking file I/O runs on one blocking thread for the whole read.
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        let source = self.clone();
        tokio::task::spawn_blocking(move || match &source {
            Source::Dir(dir) => load_dir(dir),
            Source::JsonFile(path) => load_json(path),
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// One secret (None when absent). A directory read touches only that key's file.
    pub async fn load_one(&self, key: &str) -> Result<Option<(Vec<u8>, SystemTime)>, StoreError> {
        // Keys become file names: refuse anything that is not a plain Secret key, so no
        // path (`../x`, `a/b`) or kubelet internal (`..data`) is ever opened.
        if key.starts_with('.') || check_secret_key(key).is_err() {
            return Ok(None);
        }
        let source = self.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || match &source {
            Source::Dir(dir) => {
                let path = dir.join(&key);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => {
                        let value = std::fs::read(&path).map_err(io(&path))?;
                        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        Ok(Some((value, modified)))
                    }
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&path)(e)),
                }
            }
            Source::JsonFile(path) => {
                let mut snap = load_json(path)?;
                Ok(snap.data.remove(&key).map(|v| (v, snap.modified)))
            }
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

fn load_dir(dir: &Path) -> Result<Snapshot, StoreError> {
    let mut data = BTreeMap::new();
    let mut modified = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Kubernetes' atomic-writer layout: `..data` and `..<timestamp>` are internals.
        if name.starts_with('.') || check_secret_key(&name).is_err() {
            continue;
        }
        let path = entry.path();
        // Follows the symlinks Kubernetes uses for each key.
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if !meta.is_file() {
            continue;
        }
        if let Ok(m) = meta.modified() {
            modified = modified.max(m);
        }
        let value = std::fs::read(&path).map_err(io(&path))?;
        data.insert(name, value);
    }
    Ok(Snapshot { data, modified })
}

fn load_json(path: &Path) -> Result<Snapshot, StoreError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let modified = std::fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // serde_json's messages can quote input, so only the position is kept.
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
    })?;
    let shape = |reason: String| StoreError::Shape {
        path: path.to_owned(),
        reason,
    };
    let Value::Object(obj) = doc else {
        return Err(shape("must be a JSON object".into()));
    };
    let mut data = BTreeMap::new();
    if obj.get("kind") == Some(&Value::String("Secret".into())) {
        for (field, base64_encoded) in [("data", true), ("stringData", false)] {
            let Some(map) = obj.get(field) else { continue };
            let Value::Object(map) = map else {
                return Err(shape(format!("{field} must be an object")));
            };
            for (k, v) in map {
                let Value::String(s) = v else {
                    return Err(shape(format!("{field}.{k} must be a string")));
                };
                let value = if base64_encoded {
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|_| shape(format!("data.{k} is not valid base64")))?
                } else {
                    s.clone().into_bytes()
                };
                data.insert(k.clone(), value);
            }
        }
    } else {
        for (k, v) in obj {
            let Value::String(s) = v else {
                return Err(shape(format!("{k} must be a string")));
            };
            data.insert(k, s.into_bytes());
        }
    }
    Ok(Snapshot { data, modified })
}
