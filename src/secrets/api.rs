//! `parity secrets-api`: the part of Infisical's REST API that the official SDKs use to read
//! secrets, served from the environment's Secret, so an app's Infisical code path runs
//! unmodified with only the site URL changed.
//!
//! Endpoints (shapes as the Infisical API returns them):
//! - `POST /api/v1/auth/universal-auth/login` `{clientId, clientSecret}` ->
//!   `{accessToken, expiresIn, accessTokenMaxTTL, tokenType}`
//! - `GET /api/v3/secrets/raw` (and `/api/v4/secrets`) -> `{secrets: [...], imports: []}`
//! - `GET /api/v3/secrets/raw/{name}` (and `/api/v4/secrets/{name}`) -> `{secret: {...}}`
//! - `GET /api/status`, `GET /healthz` for probes.
//!
//! Errors use Infisical's shape `{reqId, statusCode, message, error}`. Logs carry the route
//! template and the status only: no query strings, secret names in paths, or values.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::store::{Snapshot, Source, StoreError};

/// Most tokens kept at once; older ones are dropped first.
const MAX_TOKENS: usize = 10_000;

#[derive(clap::Args)]
pub struct SecretsApiArgs {
    /// Address to listen on (use 0.0.0.0:PORT in a pod).
    #[arg(
        long,
        env = "PARITY_SECRETS_API_LISTEN",
        default_value = "127.0.0.1:8095"
    )]
    pub listen: SocketAddr,
    /// Directory with one file per secret, as Kubernetes mounts a Secret volume.
    #[arg(
        long,
        env = "PARITY_SECRETS_DIR",
        required_unless_present = "secrets_file",
        conflicts_with = "secrets_file"
    )]
    pub secrets_dir: Option<PathBuf>,
    /// JSON file: `{"NAME": "value"}` or a Secret manifest with base64 `data`.
    #[arg(long, env = "PARITY_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Universal-auth client id the apps log in with.
    #[arg(long, env = "PARITY_SECRETS_API_CLIENT_ID")]
    pub client_id: String,
    /// Universal-auth client secret (prefer --client-secret-file).
    #[arg(
        long,
        env = "PARITY_SECRETS_API_CLIENT_SECRET",
        hide_env_values = true,
        required_unless_present = "client_secret_file"
    )]
    pub client_secret: Option<String>,
    /// File holding the client secret (trailing newline ignored).
    #[arg(long, env = "PARITY_SECRETS_API_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "PARITY_SECRETS_API_TOKEN_TTL", default_value_t = 7200,
          value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub token_ttl: u64,
    /// Only this project id or slug is served (others: 404). Default: any.
    #[arg(long, env = "PARITY_SECRETS_API_PROJECT")]
    pub project: Option<String>,
    /// Only this environment slug is served (others: 404). Default: any.
    #[arg(long, env = "PARITY_SECRETS_API_ENVIRONMENT")]
    pub environment: Option<String>,
    /// The folder path the secrets live at; other paths list empty.
    #[arg(long, env = "PARITY_SECRETS_API_SECRET_PATH", default_value = "/")]
    pub secret_path: String,
}

impl fmt::Debug for SecretsApiArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsApiArgs")
            .field("listen", &self.listen)
            .field("secrets_dir", &self.secrets_dir)
            .field("secrets_file", &self.secrets_file)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("token_ttl", &self.token_ttl)
            .field("project", &self.project)
            .field("environment", &self.environment)
            .field("secret_path", &self.secret_path)
            .finish()
    }
}

/// Server settings, independent of the command line (tests build the router from this).
pub struct ApiConfig {
    pub source: Source,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub token_ttl: Duration,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub secret_path: String,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("source", &self.source)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("project", &self.project)
            .field("environment", &self.environment)
            .field("secret_path", &self.secret_path)
            .finish()
    }
}

struct AppState {
    source: Source,
    client_id: String,
    client_secret_digest: [u8; 32],
    token_ttl: Duration,
    project: Option<String>,
    environment: Option<String>,
    secret_path: String,
    /// SHA-256 of each live token -> expiry; tokens themselves are never stored.
    tokens: Mutex<HashMap<[u8; 32], Instant>>,
    requests: AtomicU64,
}

/// An error in Infisical's shape. Messages name routes, projects and secret names only.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UnauthorizedError", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut id = [0u8; 8];
        OsRng.fill_bytes(&mut id);
        let body = json!({
            "reqId": format!("req-{}", hex::encode(id)),
            "statusCode": self.status.as_u16(),
            "message": self.message,
            "error": self.error,
        });
        (self.status, Json(body)).into_response()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares digests without an early exit, so timing reveals nothing about the secret.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn normalize_path(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else if trimmed.starts_with('/') {
        trimmed.into()
    } else {
        format!("/{trimmed}")
    }
}

/// Builds the router (no listener): used by `run` and by tests.
pub fn router(config: ApiConfig) -> Router {
    let state = Arc::new(AppState {
        source: config.source,
        client_id: config.client_id,
        client_secret_digest: digest(config.client_secret.as_bytes()),
        token_ttl: config.token_ttl,
        project: config.project,
        environment: config.environment,
        secret_path: normalize_path(&config.secret_path),
        tokens: Mutex::new(HashMap::new()),
        requests: AtomicU64::new(0),
    });
    Router::new()
        .route("/api/v1/auth/universal-auth/login", post(login))
        .route("/api/v3/secrets/raw", get(list_secrets))
        .route("/api/v3/secrets/raw/{name}", get(get_secret))
        .route("/api/v4/secrets", get(list_secrets))
        .route("/api/v4/secrets/{name}", get(get_secret))
        .route("/api/status", get(status))
        .route("/healthz", get(status))
        // route_layer: MatchedPath is only known after routing.
        .route_layer(middleware::from_fn_with_state(state.clone(), log_request))
        .fallback(not_found_route)
        .with_state(state)
}

async fn log_request(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    // The route template, not the URI: paths carry secret names and queries carry scopes.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".into());
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        request = n,
        %method,
        route,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "secrets-api request"
    );
    resp
}

async fn status() -> Json<Value> {
    Json(json!({"message": "Ok", "date": jiff::Timestamp::now().to_string()}))
}

async fn not_found_route() -> ApiError {
    ApiError::not_found("Route not found")
}

async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("Request body must be JSON"))?;
    let (Some(id), Some(secret)) = (
        parsed.get("clientId").and_then(Value::as_str),
        parsed.get("clientSecret").and_then(Value::as_str),
    ) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationFailure",
            "clientId and clientSecret are required strings",
        ));
    };
    let id_ok = digests_equal(&digest(id.as_bytes()), &digest(state.client_id.as_bytes()));
    let secret_ok = digests_equal(&digest(secret.as_bytes()), &state.client_secret_digest);
    if !(id_ok & secret_ok) {
        tracing::warn!("secrets-api login rejected: invalid credentials");
        return Err(ApiError::unauthorized("Invalid credentials"));
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    let token = Zeroizing::new(hex::encode(*raw));
    let now = Instant::now();
    {
        let mut tokens = state
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.retain(|_, exp| *exp > now);
        if tokens.len() >= MAX_TOKENS
            && let Some(oldest) = tokens.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            tokens.remove(&oldest);
        }
        tokens.insert(digest(token.as_bytes()), now + state.token_ttl);
    }
    let ttl = state.token_ttl.as_secs();
    Ok(Json(json!({
        "accessToken": token.as_str(),
        "expiresIn": ttl,
        "accessTokenMaxTTL": ttl,
        "tokenType": "Bearer",
    })))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("Missing Authorization header"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <token>'"))?;
    let key = digest(token.trim().as_bytes());
    let mut tokens = state
        .tokens
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match tokens.get(&key) {
        Some(exp) if *exp > Instant::now() => Ok(()),
        Some(_) => {
            tokens.remove(&key);
            // Infisical answers an expired token with 403 TokenError.
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "TokenError",
                "Your token has expired. Please re-authenticate.",
            ))
        }
        None => Err(ApiError::unauthorized(
            "Failed to authenticate: unknown or revoked access token",
        )),
    }
}

/// The project/environment/path a request asks for, checked against what is served.
struct Scope {
    project: String,
    environment: String,
    path: String,
}

fn scope(state: &AppState, q: &HashMap<String, String>) -> Result<Scope, ApiError> {
    let project = ["workspaceId", "projectId", "workspaceSlug", "projectSlug"]
        .iter()
        .find_map(|k| q.get(*k).filter(|v| !v.is_empty()))
        .ok_or_else(|| ApiError::bad_request("Missing workspaceId, projectId or workspaceSlug"))?;
    if let Some(served) = &state.project
        && served != project
    {
        return Err(ApiError::not_found(format!(
            "Project with ID '{project}' not found"
        )));
    }
    let environment = q
        .get("environment")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("Missing environment"))?;
    if let Some(served) = &state.environment
        && served != environment
    {
        return Err(ApiError::not_found(format!(
            "Environment with slug '{environment}' in project with ID '{project}' not found"
        )));
    }
    Ok(Scope {
        project: project.clone(),
        environment: environment.clone(),
        path: normalize_path(q.get("secretPath").map_or("/", String::as_str)),
    })
}

fn internal(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "secrets-api cannot read its secrets");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "Something went wrong",
    )
}

async fn load(state: &AppState) -> Result<Snapshot, ApiError> {
    state.source.load().await.map_err(internal)
}

/// A deterministic id per (project, environment, path, key), in UUID form.
fn secret_id(scope: &Scope, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [&scope.project, &scope.environment, &scope.path, key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = hex::encode(&h.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &d[0..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

fn secret_json(scope: &Scope, key: &str, value: &str, modified: &str, show: bool) -> Value {
    let id = secret_id(scope, key);
    json!({
        "id": id,
        "_id": id,
        "workspace": scope.project,
        "environment": scope.environment,
        "version": 1,
        "type": "shared",
        "secretKey": key,
        "secretValue": if show { value } else { "<hidden-by-infisical>" },
        "secretValueHidden": !show,
        "secretComment": "",
        "secretReminderNote": null,
        "secretReminderRepeatDays": null,
        "skipMultilineEncoding": false,
        "secretPath": scope.path,
        "secretMetadata": [],
        "tags": [],
        "createdAt": modified,
        "updatedAt": modified,
    })
}

fn timestamp(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn show_values(q: &HashMap<String, String>) -> bool {
    q.get("viewSecretValue").map(String::as_str) != Some("false")
}

async fn list_secrets(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let scope = scope(&state, &q)?;
    if scope.path != state.secret_path {
        return Ok(Json(json!({"secrets": [], "imports": []})));
    }
    let snap = load(&state).await?;
    let modified = timestamp(snap.modified);
    let show = show_values(&q);
    let secrets: Vec<Value> = snap
        .data
        .iter()
        .filter_map(|(k, v)| match std::str::from_utf8(v) {
            Ok(text) => Some(secret_json(&scope, k, text, &modified, show)),
            Err(_) => {
                tracing::warn!(secret = %k, "secrets-api skips a value that is not UTF-8");
                None
            }
        })
        .collect();
    Ok(Json(json!({"secrets": secrets, "imports": []})))
}

async fn get_secret(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let scope = scope(&state, &q)?;
    let not_found = || ApiError::not_found(format!("Secret with name '{name}' not found"));
    if scope.path != state.secret_path {
        return Err(not_found());
    }
    let (value, modified) = state
        .source
        .load_one(&name)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let text = std::str::from_utf8(&value).map_err(|_| not_found())?;
    let modified = timestamp(modified);
    Ok(Json(json!({
        "secret": secret_json(&scope, &name, text, &modified, show_values(&q))
    })))
}

impl SecretsApiArgs {
    fn into_config(self) -> anyhow::Result<(SocketAddr, ApiConfig)> {
        let source = match (self.secrets_dir, self.secrets_file) {
            (Some(d), None) => Source::Dir(d),
            (None, Some(f)) => Source::JsonFile(f),
            _ => anyhow::bail!("give exactly one of --secrets-dir or --secrets-file"),
        };
        let client_secret = match (self.client_secret, self.client_secret_file) {
            (Some(s), _) => Zeroizing::new(s),
            (None, Some(path)) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
                        format!("read --client-secret-file {}", path.display())
                    })?);
                Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned())
            }
            (None, None) => anyhow::bail!("give --client-secret or --client-secret-file"),
        };
        if client_secret.is_empty() || self.client_id.is_empty() {
            anyhow::bail!("the client id and client secret must not be empty");
        }
        Ok((
            self.listen,
            ApiConfig {
                source,
                client_id: self.client_id,
                client_secret,
                token_ttl: Duration::from_secs(self.token_ttl),
                project: self.project,
                environment: self.environment,
                secret_path: self.secret_path,
            },
        ))
    }
}

/// `parity secrets-api`: serves until SIGINT/SIGTERM.
pub async fn run(args: SecretsApiArgs) -> anyhow::Result<()> {
    let (listen, config) = args.into_config()?;
    // Fail fast on a wrong path instead of on the first request.
    let snap = config
        .source
        .load()
        .await
        .context("read the secrets to serve")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    let addr = listener.local_addr().context("local address")?;
    tracing::info!(
        %addr,
        secrets = snap.data.len(),
        source = ?config.source,
        "secrets-api listening"
    );
    drop(snap);
    axum::serve(listener, router(config))
        .with_graceful_shutdown(crate::signal::shutdown())
        .await
        .context("serve")?;
    tracing::info!("secrets-api stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_like_infisical_folders() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/app/"), "/app");
        assert_eq!(normalize_path("app"), "/app");
    }

    #[test]
    fn digest_comparison() {
        assert!(digests_equal(&digest(b"a"), &digest(b"a")));
        assert!(!digests_equal(&digest(b"a"), &digest(b"b")));
    }

    #[test]
    fn config_debug_redacts_the_client_secret() {
        let c = ApiConfig {
            source: Source::Dir("/x".into()),
            client_id: "id".into(),
            client_secret: Zeroizing::new("CANARY-client-secret".into()),
            token_ttl: Duration::from_secs(1),
            project: None,
            environment: None,
            secret_path: "/".into(),
        };
        assert!(!format!("{c:?}").contains("CANARY"));
    }
}
