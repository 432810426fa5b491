//! What process mode keeps under `.parity/<env>/` in place of Secrets and ConfigMaps: the
//! keyring and the credentials (created once, reused by every restart), the generated
//! secrets (one file per secret, as a Secret volume has them), the topology files, the
//! `.env`, the lock and the state file. Every file holding key material or a secret is
//! mode 0600 in a 0700 directory.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::derive::Layout;
use crate::api::{KeySource, ValidatedSpec};
use crate::crypto::Keyring;
use crate::resources::{
    KMS_ACCESS_KEY_ID_KEY, KMS_SECRET_ACCESS_KEY_KEY, SECRETS_API_CLIENT_ID_KEY,
    SECRETS_API_CLIENT_SECRET_KEY, kms_access_key_id, names, secrets_api_client_id,
};
use crate::secrets::{GenerationMode, LocalSecretsProvider, SecretsReport, SecretsSchema};

pub const DOTENV: &str = ".env";
pub const LOCK: &str = "dev.lock";
pub const STATE: &str = "state.json";
pub const LOGS: &str = "logs";

pub fn private_dir(p: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", p.display()))
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file and a rename, so a reader
/// never sees half a file and a crash never leaves one.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<Option<Zeroizing<String>>> {
    match fs::read(path) {
        Ok(b) => {
            let s =
                String::from_utf8(b).with_context(|| format!("{} is not UTF-8", path.display()))?;
            Ok(Some(Zeroizing::new(s.trim_end_matches('\n').to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn random_hex(bytes: usize) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut buf);
    Zeroizing::new(hex::encode(&*buf))
}

/// The keyring file, created once: generated, or derived from the seed (Seeded). An
/// existing keyring is kept (a restart reuses the keys) unless it no longer matches the seed.
/// Returns whether it was created now.
pub fn ensure_keyring(
    layout: &Layout,
    env: &ValidatedSpec,
    seed: Option<&[u8]>,
) -> anyhow::Result<bool> {
    let path = layout.keyring_file(&env.name);
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let now = jiff::Timestamp::now();
    let wanted = match (env.spec.keys.local.source, seed) {
        (KeySource::Seeded, Some(s)) => {
            Some(Keyring::seeded(s, now).map_err(|e| anyhow::anyhow!("--seed-file: {e}"))?)
        }
        (KeySource::Seeded, None) => bail!(
            "spec.keys.local.source is Seeded: give the seed with --seed-file FILE or PARITY_KEY_SEED (process mode has no Secret to read it from)"
        ),
        (KeySource::Generated, _) => None,
    };
    if path.exists() {
        let bytes =
            Zeroizing::new(fs::read(&path).with_context(|| format!("read {}", path.display()))?);
        let existing = Keyring::from_json(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (run `parity dev --reset` to start over with new keys)",
                path.display()
            )
        })?;
        if let Some(w) = &wanted
            && !w.same_material(&existing)
        {
            bail!(
                "{} was derived from another seed: run `parity dev --reset` to derive it from this one",
                path.display()
            );
        }
        return Ok(false);
    }
    let keyring = wanted.unwrap_or_else(|| Keyring::generate(now));
    write_private(&path, &keyring.to_json())?;
    Ok(true)
}

/// The kms and secrets-api credentials, created once (random secrets, fixed ids).
pub fn ensure_credentials(layout: &Layout, env: &ValidatedSpec) -> anyhow::Result<()> {
    let sets = [
        (
            names::kms_credentials(&env.name),
            KMS_ACCESS_KEY_ID_KEY,
            kms_access_key_id(env),
            KMS_SECRET_ACCESS_KEY_KEY,
        ),
        (
            names::secrets_api_credentials(&env.name),
            SECRETS_API_CLIENT_ID_KEY,
            secrets_api_client_id(env),
            SECRETS_API_CLIENT_SECRET_KEY,
        ),
    ];
    for (secret, id_key, id, secret_key) in sets {
        let dir = layout.secret_dir(&env.name, &secret);
        private_dir(&dir)?;
        write_private(&dir.join(id_key), id.as_bytes())?;
        let path = dir.join(secret_key);
        if read_text(&path)?.is_none() {
            write_private(&path, random_hex(32).as_bytes())?;
        }
    }
    Ok(())
}

/// Reads one key of a Secret's stand-in directory.
pub fn read_secret_key(
    layout: &Layout,
    env: &str,
    secret: &str,
    key: &str,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    read_text(&layout.secret_dir(env, secret).join(key))
}

/// Generates the secrets the schema declares (created once, values kept; derived values
/// follow the endpoints) into `.parity/<env>/secrets/`. Names only in the report.
pub fn sync_secrets(
    layout: &Layout,
    env: &ValidatedSpec,
    schema: &SecretsSchema,
    seed: Option<&[u8]>,
    endpoints: &BTreeMap<String, String>,
) -> anyhow::Result<(SecretsReport, BTreeMap<String, Zeroizing<String>>)> {
    let dir = layout.secret_dir(&env.name, &names::secrets(&env.name));
    private_dir(&dir)?;
    let mut current: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || !entry.file_type()?.is_file() {
            continue;
        }
        current.insert(name, fs::read(entry.path())?);
    }
    let mode = match env.spec.keys.local.source {
        KeySource::Seeded => GenerationMode::from_seed(seed),
        KeySource::Generated => GenerationMode::Random,
    };
    let provider = LocalSecretsProvider {
        schema,
        mode,
        prune: false,
    };
    let outcome = provider.reconcile(Some(&current), endpoints);
    for (k, v) in &outcome.data {
        if current.get(k) != Some(v) {
            write_private(&dir.join(k), v)?;
        }
    }
    let values = outcome
        .data
        .into_iter()
        .filter_map(|(k, v)| String::from_utf8(v).ok().map(|v| (k, Zeroizing::new(v))))
        .collect();
    Ok((outcome.report, values))
}

/// Writes the topology ConfigMap's files.
pub fn write_topology(layout: &Layout, files: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let dir = layout.topology_dir();
    private_dir(&dir)?;
    for (k, v) in files {
        write_private(&dir.join(k), v.as_bytes())?;
    }
    Ok(())
}

/// Removes the keys, credentials, secrets and everything else of the environment.
pub fn reset(layout: &Layout) -> anyhow::Result<()> {
    match fs::remove_dir_all(&layout.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", layout.dir.display())),
    }
}

/// One `parity dev` per environment: a lock file holding the owner's pid. A lock whose
/// process is gone (a SIGKILLed run) is taken over.
pub struct Lock {
    path: PathBuf,
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process; no memory is involved.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Lock {
    pub fn acquire(dir: &Path, env: &str) -> anyhow::Result<Lock> {
        let path = dir.join(LOCK);
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .with_context(|| format!("write {}", path.display()))?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok());
                    match pid {
                        Some(pid) if pid > 0 && alive(pid) => bail!(
                            "parity dev is already running environment {env} (pid {pid}, lock {}): stop it first (Ctrl-C or kill {pid}), or see `parity dev status`",
                            path.display()
                        ),
                        // The owner is gone: a stale lock.
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
            }
        }
        bail!("could not take the lock {}", path.display())
    }

    /// The pid holding the lock of `dir`, if that process is alive.
    pub fn holder(dir: &Path) -> Option<i32> {
        fs::read_to_string(dir.join(LOCK))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 0 && alive(*p))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_a_second_lock_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("x");
        write_private(&f, b"v").unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let lock = Lock::acquire(tmp.path(), "dev").unwrap();
        let err = Lock::acquire(tmp.path(), "dev").err().unwrap().to_string();
        assert!(err.contains("already running environment dev"), "{err}");
        assert_eq!(Lock::holder(tmp.path()), Some(std::process::id() as i32));
        drop(lock);
        // A stale lock (no such process) is taken over.
        fs::write(tmp.path().join(LOCK), "2147483646\n").unwrap();
        let _again = Lock::acquire(tmp.path(), "dev").unwrap();
    }
}
