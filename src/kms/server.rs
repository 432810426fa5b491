//! The `parity kms` process: flags, loading keyrings and aliases, the HTTP router, SigV4
//! check, dispatch, metrics, and reloading keyring files when they change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::KmsError;
use super::metrics::{Labels, Metrics};
use super::ops;
use super::sigv4::{self, AuthError, Credentials};
use super::store::{KeyEntry, Store, parse_alias, read_keyring};

/// `parity kms`: serve the AWS KMS API over keyring files.
#[derive(Debug, clap::Args)]
pub struct KmsArgs {
    /// Address to listen on.
    #[arg(long, env = "PARITY_KMS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Keyring JSON file (the `keyring.json` key of the `<env>-keyring` Secret); repeat or
    /// comma-separate for several keys.
    #[arg(
        long = "keyring",
        env = "PARITY_KMS_KEYRING",
        value_delimiter = ',',
        required = true
    )]
    pub keyrings: Vec<PathBuf>,
    /// Alias, `alias/name` (for the only key) or `alias/name=<key id>`; repeatable.
    #[arg(long = "alias", env = "PARITY_KMS_ALIASES", value_delimiter = ',')]
    pub aliases: Vec<String>,
    /// File with one alias per line (same syntax as --alias; `#` comments).
    #[arg(long, env = "PARITY_KMS_ALIASES_FILE")]
    pub aliases_file: Option<PathBuf>,
    /// Access key id clients must sign with.
    #[arg(long, env = "PARITY_KMS_ACCESS_KEY_ID")]
    pub access_key_id: String,
    /// Secret access key clients sign with (prefer --secret-access-key-file).
    #[arg(long, env = "PARITY_KMS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// File holding the secret access key (trailing newline ignored).
    #[arg(
        long,
        env = "PARITY_KMS_SECRET_ACCESS_KEY_FILE",
        conflicts_with = "secret_access_key"
    )]
    pub secret_access_key_file: Option<PathBuf>,
    /// Region in the ARNs this endpoint returns.
    #[arg(long, env = "PARITY_KMS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id in the ARNs this endpoint returns.
    #[arg(long, env = "PARITY_KMS_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// Rotation period reported by GetKeyRotationStatus (0 = rotation off); the operator
    /// performs scheduled rotations in the keyring Secret.
    #[arg(long, env = "PARITY_KMS_ROTATION_PERIOD_DAYS", default_value_t = 0)]
    pub rotation_period_days: u32,
    /// DecryptOnly versions kept by RotateKeyOnDemand (older ones are destroyed).
    #[arg(long, env = "PARITY_KMS_RETAIN_VERSIONS", default_value_t = 10)]
    pub retain_versions: u32,
    /// How often keyring files are checked for changes, in seconds.
    #[arg(long, env = "PARITY_KMS_RELOAD_SECONDS", default_value_t = 5)]
    pub reload_seconds: u64,
    /// Serve the admin operations (DisableKey, EnableKey, RotateKeyOnDemand). Off by
    /// default: anyone holding the client credentials could otherwise switch a key off for
    /// every app, or rotate it outside the operator's schedule. The cluster never sets it.
    #[arg(long, env = "PARITY_KMS_ALLOW_ADMIN_OPERATIONS")]
    pub allow_admin_operations: bool,
}

struct App {
    store: RwLock<Store>,
    creds: Credentials,
    metrics: Metrics,
    allow_admin: bool,
}

fn load_store(args: &KmsArgs) -> anyhow::Result<Store> {
    let mut keys = BTreeMap::new();
    let mut order = Vec::new();
    for path in &args.keyrings {
        let (keyring, file_hash) = read_keyring(path).map_err(anyhow::Error::msg)?;
        let id = keyring.key_id().to_owned();
        if keys.contains_key(&id) {
            bail!(
                "keyring file {}: key id {id} is already loaded from another file",
                path.display()
            );
        }
        order.push(id.clone());
        keys.insert(
            id,
            KeyEntry {
                keyring,
                enabled: true,
                path: Some(path.clone()),
                file_hash,
            },
        );
    }
    let mut specs: Vec<(String, String)> = args
        .aliases
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| (a.clone(), "--alias".to_owned()))
        .collect();
    if let Some(f) = &args.aliases_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("aliases file {}", f.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                specs.push((line.to_owned(), format!("{} line {}", f.display(), i + 1)));
            }
        }
    }
    let mut aliases = BTreeMap::new();
    for (spec, origin) in specs {
        let (name, target) = parse_alias(&spec, &origin).map_err(anyhow::Error::msg)?;
        let target = match target {
            Some(t) if keys.contains_key(&t) => t,
            Some(t) => bail!("{origin}: alias {name} names key {t}, which no keyring file holds"),
            None if order.len() == 1 => order[0].clone(),
            None => bail!(
                "{origin}: alias {name} names no key and {} keyrings are loaded; write {name}=<key id>",
                order.len()
            ),
        };
        aliases.insert(name, target);
    }
    Ok(Store {
        region: args.region.clone(),
        account: args.account_id.clone(),
        keys,
        order,
        aliases,
        rotation_period_days: args.rotation_period_days,
        retain_versions: args.retain_versions,
    })
}

fn secret(args: &KmsArgs) -> anyhow::Result<String> {
    match (&args.secret_access_key, &args.secret_access_key_file) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(f)) => Ok(std::fs::read_to_string(f)
            .with_context(|| format!("secret access key file {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned()),
        (None, None) => bail!("set --secret-access-key-file or PARITY_KMS_SECRET_ACCESS_KEY"),
    }
}

pub async fn run(args: KmsArgs) -> anyhow::Result<()> {
    let store = load_store(&args)?;
    let creds = Credentials::new(
        args.access_key_id.clone(),
        secret(&args)?,
        args.region.clone(),
    );
    if creds.access_key_id.is_empty() {
        bail!("--access-key-id must not be empty");
    }
    for id in &store.order {
        let e = &store.keys[id];
        tracing::info!(
            key_id = %id,
            active_version = e.keyring.active_version(),
            versions = e.keyring.status_versions().len(),
            "key loaded"
        );
    }
    for (alias, target) in &store.aliases {
        tracing::info!(%alias, key_id = %target, "alias");
    }
    let app = Arc::new(App {
        store: RwLock::new(store),
        creds,
        metrics: Metrics::new(),
        allow_admin: args.allow_admin_operations,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "parity kms listening");
    tokio::spawn(reload_loop(
        app.clone(),
        Duration::from_secs(args.reload_seconds.max(1)),
    ));
    axum::serve(listener, router(app))
        .with_graceful_shutdown(crate::signal::shutdown())
        .await
        .context("serve")?;
    Ok(())
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(api))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(256 * 1024))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

fn auth_error(e: AuthError) -> KmsError {
    let message = match e {
        AuthError::UnknownAccessKey => {
            "The security token included in the request is invalid.".to_owned()
        }
        ref other => other.to_string(),
    };
    KmsError::new(e.code(), message)
}

/// Every operation `dispatch` knows: the only values the operation label (metrics, logs) takes,
/// since X-Amz-Target arrives before any authentication.
const OPERATIONS: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "ReEncrypt",
    "DescribeKey",
    "ListKeys",
    "ListAliases",
    "GetKeyRotationStatus",
    "ListKeyRotations",
    "RotateKeyOnDemand",
    "DisableKey",
    "EnableKey",
];

/// The operations that change a key's state: served only with --allow-admin-operations.
const ADMIN_OPERATIONS: &[&str] = &["RotateKeyOnDemand", "DisableKey", "EnableKey"];

/// The label for an operation name taken from the request: itself if known, else a constant.
fn operation_label(op: &str) -> &'static str {
    match OPERATIONS.iter().find(|o| **o == op) {
        Some(o) => o,
        None if op.is_empty() => "none",
        None => "unsupported",
    }
}

async fn api(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let start = Instant::now();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let op = target
        .strip_prefix("TrentService.")
        .unwrap_or("")
        .to_owned();
    let label = operation_label(&op);
    let verified = sigv4::verify(
        method.as_str(),
        uri.path(),
        uri.query(),
        &headers,
        &body,
        &app.creds,
        jiff::Timestamp::now(),
    )
    .and_then(|()| match sigv4::signs_header(&headers, "x-amz-target") {
        true => Ok(()),
        false => Err(AuthError::Malformed("x-amz-target must be a signed header")),
    });
    let result = match verified {
        Err(e) => {
            tracing::warn!(operation = label, reason = %e, "request rejected: signature");
            Err(auth_error(e))
        }
        Ok(()) => dispatch(&app, &op, &body),
    };
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code.to_owned(),
    };
    app.metrics
        .requests
        .get_or_create(&Labels {
            operation: label.to_owned(),
            outcome: outcome.clone(),
        })
        .inc();
    app.metrics.duration.observe(start.elapsed().as_secs_f64());
    match result {
        Ok(v) => {
            tracing::debug!(operation = label, "ok");
            (
                StatusCode::OK,
                [("content-type", "application/x-amz-json-1.1")],
                v.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::info!(operation = label, code = e.code, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| {
        KmsError::new(
            "SerializationException",
            format!(
                "request body is not a valid request for this operation (line {} column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

fn dispatch(app: &App, op: &str, body: &[u8]) -> Result<Value, KmsError> {
    if !app.allow_admin && ADMIN_OPERATIONS.contains(&op) {
        // AWS answers an operation the caller's policy does not allow with AccessDenied.
        return Err(KmsError::new(
            "AccessDeniedException",
            format!(
                "{op} is an admin operation and is off on this endpoint; start parity kms with --allow-admin-operations (PARITY_KMS_ALLOW_ADMIN_OPERATIONS=true) to allow it. In a cluster, rotate through the ParityEnvironment (spec.keys.rotation)"
            ),
        ));
    }
    let read = || app.store.read().unwrap_or_else(|p| p.into_inner());
    match op {
        "Encrypt" => ops::encrypt(&read(), parse(body)?),
        "Decrypt" => ops::decrypt(&read(), parse(body)?),
        "GenerateDataKey" => ops::generate_data_key(&read(), parse(body)?, true),
        "GenerateDataKeyWithoutPlaintext" => ops::generate_data_key(&read(), parse(body)?, false),
        "GenerateRandom" => ops::generate_random(parse(body)?),
        "ReEncrypt" => ops::re_encrypt(&read(), parse(body)?),
        "DescribeKey" => ops::describe_key(&read(), parse(body)?),
        "ListKeys" => ops::list_keys(&read(), parse(body)?),
        "ListAliases" => ops::list_aliases(&read(), parse(body)?),
        "GetKeyRotationStatus" => ops::get_key_rotation_status(&read(), parse(body)?),
        "ListKeyRotations" => ops::list_key_rotations(&read(), parse(body)?),
        "RotateKeyOnDemand" => rotate(app, parse(body)?),
        "DisableKey" => set_enabled(app, parse(body)?, false),
        "EnableKey" => set_enabled(app, parse(body)?, true),
        "" => Err(KmsError::new(
            "UnknownOperationException",
            "X-Amz-Target must be TrentService.<Operation>",
        )),
        other => Err(KmsError::new(
            "UnknownOperationException",
            format!("operation {other} is not supported by parity kms"),
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdOnly {
    key_id: Option<String>,
}

fn key_of(store: &Store, r: KeyIdOnly) -> Result<String, KmsError> {
    let k = r
        .key_id
        .ok_or_else(|| KmsError::validation("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"))?;
    store.resolve(&k)
}

/// DisableKey / EnableKey: in memory (the keyring file does not record it), like a switch
/// for tests of disabled-key handling.
fn set_enabled(app: &App, r: KeyIdOnly, enabled: bool) -> Result<Value, KmsError> {
    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
    let id = key_of(&store, r)?;
    if let Some(e) = store.keys.get_mut(&id) {
        e.enabled = enabled;
    }
    tracing::info!(key_id = %id, enabled, "key state changed");
    Ok(serde_json::json!({}))
}

/// RotateKeyOnDemand: a new Active version, written back to the keyring file first so no
/// data key is ever wrapped under a version that a restart would lose.
fn rotate(app: &App, r: KeyIdOnly) -> Result<Value, KmsError> {
    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
    let id = key_of(&store, r)?;
    let retain = store.retain_versions;
    let arn = store.key_arn(&id);
    let entry = store
        .keys
        .get_mut(&id)
        .ok_or_else(|| KmsError::not_found(format!("Key '{arn}' does not exist")))?;
    if !entry.enabled {
        return Err(KmsError::disabled(format!("{arn} is disabled.")));
    }
    let mut next = entry.keyring.clone();
    let version = next.rotate(jiff::Timestamp::now(), retain);
    let json = next.to_json();
    if let Some(path) = &entry.path {
        write_atomically(path, &json).map_err(|e| {
            tracing::warn!(key_id = %id, file = %path.display(), error = %e, "rotation not persisted");
            KmsError::new(
                "UnsupportedOperationException",
                format!(
                    "the keyring file {} is not writable ({e}); rotate through the ParityEnvironment (spec.keys.rotation)",
                    path.display()
                ),
            )
        })?;
    }
    entry.file_hash = Sha256::digest(&*json).into();
    entry.keyring = next;
    tracing::info!(key_id = %id, version, "key rotated on demand");
    Ok(serde_json::json!({"KeyId": arn}))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-rotate");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reload ticks a keyring file may be missing before the service reports it gone.
const KEYRING_GONE_TICKS: u32 = 3;

/// Picks up keyring files rewritten by the operator (a rotation in the Secret reaches the
/// mounted file within the kubelet sync period).
async fn reload_loop(app: Arc<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ticks each keyring file has been unreadable for. A Secret volume swapping its symlink
    // makes a file vanish for a moment; a file gone for several ticks means the key's
    // Secret was deleted, and the service must say that it is serving a key from memory.
    let mut missing: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    loop {
        tick.tick().await;
        let paths: Vec<(String, PathBuf, [u8; 32])> = {
            let store = app.store.read().unwrap_or_else(|p| p.into_inner());
            store
                .keys
                .iter()
                .filter_map(|(id, e)| e.path.clone().map(|p| (id.clone(), p, e.file_hash)))
                .collect()
        };
        for (id, path, old_hash) in paths {
            let Ok(bytes) = tokio::fs::read(&path).await.map(zeroize::Zeroizing::new) else {
                let ticks = missing.entry(id.clone()).or_default();
                *ticks += 1;
                if *ticks == KEYRING_GONE_TICKS {
                    tracing::error!(key_id = %id, file = %path.display(), "keyring file is gone: this key is served from memory only and is lost when the service restarts; restore its Secret");
                }
                continue;
            };
            if missing.remove(&id).is_some_and(|t| t >= KEYRING_GONE_TICKS) {
                tracing::info!(key_id = %id, file = %path.display(), "keyring file is back");
            }
            let hash: [u8; 32] = Sha256::digest(&*bytes).into();
            if hash == old_hash {
                continue;
            }
            match crate::crypto::Keyring::from_json(&bytes) {
                Ok(kr) if kr.key_id() == id => {
                    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = store.keys.get_mut(&id) {
                        tracing::info!(key_id = %id, active_version = kr.active_version(), "keyring reloaded");
                        e.keyring = kr;
                        e.file_hash = hash;
                    }
                }
                Ok(kr) => {
                    tracing::warn!(file = %path.display(), expected = %id, found = %kr.key_id(), "keyring file now holds another key; ignored");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "keyring file unreadable; keeping the loaded keyring")
                }
            }
        }
    }
}
