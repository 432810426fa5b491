//! The HTTP side: application state, the router (HTML pages, `/api/` JSON, the live-feed
//! WebSocket, embedded assets, health and metrics) and the per-request audit identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::assets;
use super::config::{DecryptionMode, MAX_PAGE_SIZE, TierArg};
use super::decrypt::{AuditEntry, Decryptor};
use super::dynamo::{self, QueryError, key_label};
use super::html::{self, ItemRow, ItemsView, PageMeta, TableSummary};
use super::hub::Hub;
use super::metrics::{Metrics, OutcomeLabels, RouteLabels};
use super::view::{DashboardEnvelope, Kind, classify};
use crate::dynamo::seed::item::{Item, key_text};
use crate::dynamo::topology::Table;

/// Decryptions in flight for one page.
const DECRYPT_CONCURRENCY: usize = 8;
/// A WebSocket send that takes longer than this ends the connection.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Queued messages written to a client per flush.
const WS_BATCH: usize = 64;

pub struct App {
    pub tables: Vec<Table>,
    pub ddb: aws_sdk_dynamodb::Client,
    pub decryptor: Option<Decryptor>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub page_size: u32,
    pub mode: DecryptionMode,
    pub tier: TierArg,
    pub notice: Option<String>,
    /// Flips to true on shutdown: live-feed connections close with "service restart".
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    fn table(&self, name: &str) -> Result<&Table, ApiError> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ApiError::NotFound(format!("table {name:?} is not in the topology")))
    }

    fn meta(&self) -> PageMeta<'_> {
        PageMeta {
            mode: match self.mode {
                DecryptionMode::Server => "server",
                DecryptionMode::Disabled => "disabled",
            },
            tier: self.tier.as_str(),
            notice: self.notice.as_deref(),
        }
    }
}

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
    Upstream(String),
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
    fn message(&self) -> &str {
        match self {
            ApiError::NotFound(m) | ApiError::BadRequest(m) | ApiError::Upstream(m) => m,
        }
    }
    fn json(self) -> Response {
        (self.status(), Json(json!({ "error": self.message() }))).into_response()
    }
    fn html(self, app: &App) -> Response {
        let status = self.status();
        (
            status,
            Html(html::error_page(
                &app.meta(),
                status.as_u16(),
                self.message(),
            )),
        )
            .into_response()
    }
}

fn upstream(e: anyhow::Error) -> ApiError {
    ApiError::Upstream(format!("{e:#}"))
}

/// Who is asking, for the audit line: the authenticating proxy's user header when it is
/// sane, else the peer address.
pub fn who(headers: &HeaderMap, peer: SocketAddr) -> String {
    for name in ["x-forwarded-user", "x-auth-request-user", "x-remote-user"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() && v.len() <= 256 && v.chars().all(|c| !c.is_control()) {
                return format!("{v} (via {peer})");
            }
        }
    }
    peer.to_string()
}

#[derive(Debug, Default, Deserialize)]
pub struct ItemsQuery {
    pub key: Option<String>,
    pub token: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ItemQuery {
    pub pk: String,
    pub sk: Option<String>,
}

/// Every attribute of `item` as shown: classified, and in server mode decrypted (audited).
async fn view_item(
    app: &App,
    table: &Table,
    who: &str,
    item: &Item,
) -> BTreeMap<String, DashboardEnvelope> {
    let label = key_label(table, item);
    let mut out = BTreeMap::new();
    for (name, value) in item {
        let mut v = classify(value);
        if v.kind == Kind::Encrypted
            && v.error.is_none()
            && let (Some(dec), AttributeValue::B(bytes)) = (&app.decryptor, value)
        {
            let ctx = dec.context(&table.name, name, item);
            let audit = AuditEntry {
                who,
                table: &table.name,
                key: &label,
                attribute: name,
            };
            let ok = dec.open(&audit, bytes.as_ref(), ctx, &mut v).await;
            app.metrics
                .decryptions
                .get_or_create(&OutcomeLabels {
                    outcome: if ok { "decrypted" } else { "failed" }.into(),
                })
                .inc();
        }
        out.insert(name.clone(), v);
    }
    out
}

async fn load_items<'a>(
    app: &'a App,
    table_name: &str,
    q: &ItemsQuery,
    who: &str,
) -> Result<(&'a Table, Vec<ItemRow>, Option<String>, u32), ApiError> {
    let table = app.table(table_name)?;
    let limit = q.limit.unwrap_or(app.page_size);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ApiError::BadRequest(format!(
            "limit: must be 1..={MAX_PAGE_SIZE}, got {limit}"
        )));
    }
    let page = dynamo::scan_page(&app.ddb, table, limit, q.token.as_deref(), q.key.as_deref())
        .await
        .map_err(upstream)??;
    let rows = futures::stream::iter(page.items)
        .map(|item| async move {
            let attributes = view_item(app, table, who, &item).await;
            ItemRow {
                label: key_label(table, &item),
                pk: item
                    .get(&table.partition_key.name)
                    .map(key_text)
                    .unwrap_or_default(),
                sk: table
                    .sort_key
                    .as_ref()
                    .and_then(|k| item.get(&k.name).map(key_text)),
                attributes,
            }
        })
        .buffered(DECRYPT_CONCURRENCY)
        .collect()
        .await;
    Ok((table, rows, page.next, limit))
}

async fn load_item<'a>(
    app: &'a App,
    table_name: &str,
    q: &ItemQuery,
    who: &str,
) -> Result<(&'a Table, String, BTreeMap<String, DashboardEnvelope>), ApiError> {
    let table = app.table(table_name)?;
    let item = dynamo::get_item(&app.ddb, table, &q.pk, q.sk.as_deref())
        .await
        .map_err(upstream)??
        .ok_or_else(|| ApiError::NotFound(format!("no item with that key in {table_name}")))?;
    let label = key_label(table, &item);
    let attrs = view_item(app, table, who, &item).await;
    Ok((table, label, attrs))
}

async fn tables_html(State(app): State<Arc<App>>) -> Response {
    let mut counts = Vec::new();
    for t in &app.tables {
        let n = app
            .ddb
            .describe_table()
            .table_name(&t.name)
            .send()
            .await
            .ok()
            .and_then(|o| o.table.and_then(|t| t.item_count));
        counts.push(TableSummary { table: t, items: n });
    }
    Html(html::tables_page(&app.meta(), &counts)).into_response()
}

async fn tables_api(State(app): State<Arc<App>>) -> Response {
    let tables: Vec<_> = app
        .tables
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "partitionKey": t.partition_key,
                "sortKey": t.sort_key,
                "stream": t.stream_view_type.is_some(),
            })
        })
        .collect();
    Json(json!({ "tables": tables, "decryption": app.meta().mode, "tier": app.tier.as_str() }))
        .into_response()
}

async fn items_html(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Response {
    let who = who(&headers, peer);
    match load_items(&app, &table, &q, &who).await {
        Ok((table, rows, next, limit)) => Html(html::items_page(
            &app.meta(),
            &ItemsView {
                table,
                rows,
                filter: q.key.as_deref().filter(|k| !k.is_empty()),
                next,
                limit,
            },
        ))
        .into_response(),
        Err(e) => e.html(&app),
    }
}

async fn items_api(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Response {
    let who = who(&headers, peer);
    match load_items(&app, &table, &q, &who).await {
        Ok((_, rows, next, _)) => {
            let items: Vec<_> = rows
                .into_iter()
                .map(|r| json!({ "key": r.label, "attributes": r.attributes }))
                .collect();
            Json(json!({ "items": items, "nextToken": next })).into_response()
        }
        Err(e) => e.json(),
    }
}

async fn item_html(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Response {
    let who = who(&headers, peer);
    match load_item(&app, &table, &q, &who).await {
        Ok((table, label, attrs)) => {
            Html(html::item_page(&app.meta(), table, &label, &attrs)).into_response()
        }
        Err(e) => e.html(&app),
    }
}

async fn item_api(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Response {
    let who = who(&headers, peer);
    match load_item(&app, &table, &q, &who).await {
        Ok((_, label, attrs)) => Json(json!({ "key": label, "attributes": attrs })).into_response(),
        Err(e) => e.json(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    pub tables: Option<String>,
}

async fn ws(
    State(app): State<Arc<App>>,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let wanted: Option<Vec<String>> = q.tables.as_deref().filter(|t| !t.is_empty()).map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    });
    if let Some(w) = &wanted
        && let Some(unknown) = w.iter().find(|n| !app.tables.iter().any(|t| &t.name == *n))
    {
        return ApiError::NotFound(format!("tables: {unknown:?} is not in the topology")).json();
    }
    upgrade.on_upgrade(move |socket| live_feed(app, socket, wanted))
}

async fn live_feed(app: Arc<App>, socket: WebSocket, tables: Option<Vec<String>>) {
    let mut sub = app.hub.subscribe(tables.clone());
    app.metrics.ws_clients.inc();
    let (mut sink, mut incoming) = socket.split();
    let mut shutdown = app.shutdown.clone();
    let hello =
        json!({ "type": "hello", "tables": tables, "queue": app.hub.capacity() }).to_string();
    let mut ok = sink.send(WsMessage::Text(hello.into())).await.is_ok();
    while ok {
        tokio::select! {
            biased;
            _ = sub.dropped.notified() => {
                let notice = json!({
                    "type": "dropped",
                    "reason": format!("this client fell {} changes behind; reconnect to resume", app.hub.capacity()),
                }).to_string();
                let _ = tokio::time::timeout(WS_SEND_TIMEOUT, async {
                    sink.send(WsMessage::Text(notice.into())).await?;
                    sink.send(WsMessage::Close(Some(CloseFrame { code: 1013, reason: "too slow".into() }))).await
                }).await;
                break;
            }
            _ = shutdown.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(WsMessage::Close(Some(CloseFrame {
                    code: 1012,
                    reason: "server restarting".into(),
                })))).await;
                break;
            }
            // After the hub drops this client its queue ends; the arm above then fires.
            Some(m) = sub.rx.recv() => {
                // Whatever else is queued goes out in the same write (one flush, fewer
                // syscalls when a client is a few messages behind).
                let mut batch = vec![m];
                while batch.len() < WS_BATCH {
                    match sub.rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let send = async {
                    for m in batch {
                        sink.feed(WsMessage::Text(m.as_ref().into())).await?;
                    }
                    sink.flush().await
                };
                ok = matches!(tokio::time::timeout(WS_SEND_TIMEOUT, send).await, Ok(Ok(())));
            }
            frame = incoming.next() => match frame {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    app.hub.unsubscribe(sub.id);
    app.metrics.ws_clients.dec();
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for DynamoDB").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let mut resp = next.run(req).await;
    app.metrics.duration.observe(start.elapsed().as_secs_f64());
    app.metrics
        .requests
        .get_or_create(&RouteLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    let h = resp.headers_mut();
    // Pages are rendered with escaped data and load only our own script and stylesheet.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(tables_html))
        .route("/tables/{table}", get(items_html))
        .route("/tables/{table}/item", get(item_html))
        .route("/api/tables", get(tables_api))
        .route("/api/tables/{table}/items", get(items_api))
        .route("/api/tables/{table}/item", get(item_api))
        .route("/ws", get(ws))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", assets::APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", assets::STYLE_CSS) }),
        )
        // Browsers ask for it on every page; nothing to show, nothing to log as missing.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_the_proxy_user_with_the_peer_or_the_peer_alone() {
        let peer: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(who(&h, peer), "10.0.0.7:5000");
        h.insert("x-forwarded-user", HeaderValue::from_static("alice"));
        assert_eq!(who(&h, peer), "alice (via 10.0.0.7:5000)");
        // Control characters could forge audit lines: ignored.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-user",
            HeaderValue::from_bytes(b"mallory\tx").unwrap(),
        );
        assert_eq!(who(&h, peer), "10.0.0.7:5000");
    }
}
