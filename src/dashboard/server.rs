//! The HTTP side: application state, the router (HTML pages, `/api/` JSON, the live-feed
//! WebSocket, embedded assets, health and metrics) and the per-request audit identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::Uri;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::access::{self, Cidr, HostPolicy};
use super::assets;
use super::audit::{Action, AuditLog, Record};
use super::config::{MAX_PAGE_SIZE, decryption_flag, tier_flag};
use super::decrypt::Decryptor;
use super::dynamo::{self, QueryError, key_label};
use super::html::{self, ItemRow, ItemsView, PageMeta, TableSummary};
use super::hub::Hub;
use super::metrics::{Metrics, OutcomeLabels, RouteLabels};
use super::view::{DashboardEnvelope, Kind, classify};
use crate::api::{Decryption, Tier};
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
    pub mode: Decryption,
    pub tier: Tier,
    pub notice: Option<String>,
    /// Flips to true on shutdown: live-feed connections close with "service restart".
    pub shutdown: watch::Receiver<bool>,
    pub hosts: HostPolicy,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<Cidr>,
    pub audit: AuditLog,
    /// Live-feed connections now open (or upgrading), against `max_clients`.
    pub live_clients: Arc<AtomicUsize>,
    pub max_clients: usize,
    pub ws_max_message_bytes: usize,
}

/// Who is asking: the audit log's `who` (a trusted proxy's user, or `anonymous`) and the
/// peer address.
pub struct Requester {
    pub who: String,
    pub peer: SocketAddr,
}

impl Requester {
    fn record<'a>(
        &'a self,
        action: Action,
        table: &'a str,
        key: Option<&'a str>,
        attribute: Option<&'a str>,
        outcome: &'a str,
    ) -> Record<'a> {
        Record {
            who: &self.who,
            peer: self.peer,
            action,
            table: Some(table),
            key,
            attribute,
            outcome,
        }
    }
}

impl App {
    fn requester(&self, headers: &HeaderMap, peer: SocketAddr) -> Requester {
        Requester {
            who: access::who(headers, peer, &self.trusted_proxies),
            peer,
        }
    }

    fn table(&self, name: &str) -> Result<&Table, ApiError> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ApiError::NotFound(format!("table {name:?} is not in the topology")))
    }

    fn meta(&self) -> PageMeta<'_> {
        PageMeta {
            mode: decryption_flag(self.mode),
            tier: tier_flag(self.tier),
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
    who: &Requester,
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
            let ok = dec.open(bytes.as_ref(), ctx, &mut v).await;
            let outcome = if ok { "decrypted" } else { "failed" };
            app.audit.write(&who.record(
                Action::Decrypt,
                &table.name,
                Some(&label),
                Some(name),
                outcome,
            ));
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
    who: &Requester,
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
    // Audited once DynamoDB answered: that is when data was read.
    app.audit
        .write(&who.record(Action::Table, &table.name, None, None, "ok"));
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
    who: &Requester,
) -> Result<(&'a Table, String, BTreeMap<String, DashboardEnvelope>), ApiError> {
    let table = app.table(table_name)?;
    let item = dynamo::get_item(&app.ddb, table, &q.pk, q.sk.as_deref())
        .await
        .map_err(upstream)??
        .ok_or_else(|| ApiError::NotFound(format!("no item with that key in {table_name}")))?;
    let label = key_label(table, &item);
    app.audit
        .write(&who.record(Action::Item, &table.name, Some(&label), None, "ok"));
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
    Json(json!({ "tables": tables, "decryption": app.meta().mode, "tier": tier_flag(app.tier) }))
        .into_response()
}

async fn items_html(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Response {
    let who = app.requester(&headers, peer);
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
    let who = app.requester(&headers, peer);
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
    let who = app.requester(&headers, peer);
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
    let who = app.requester(&headers, peer);
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    if !access::origin_allowed(
        origin,
        access::request_host(&headers, &uri),
        &app.allowed_origins,
    ) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "Origin: the live feed is only served to this dashboard's own pages (or --allowed-origin)" })),
        )
            .into_response();
    }
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
    let Some(slot) = LiveSlot::take(&app.live_clients, app.max_clients) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            Json(json!({ "error": format!("the live feed serves at most {} clients (--max-clients); try again later", app.max_clients) })),
        )
            .into_response();
    };
    let who = app.requester(&headers, peer);
    let tables_text = wanted.as_ref().map(|w| w.join(","));
    app.audit.write(&Record {
        who: &who.who,
        peer,
        action: Action::Live,
        table: tables_text.as_deref(),
        key: None,
        attribute: None,
        outcome: "ok",
    });
    upgrade
        .max_message_size(app.ws_max_message_bytes)
        .max_frame_size(app.ws_max_message_bytes)
        .on_upgrade(move |socket| async move {
            live_feed(app, socket, wanted).await;
            drop(slot);
        })
}

/// One of `--max-clients` live-feed places, given back on drop (also when the upgrade
/// never completes).
struct LiveSlot(Arc<AtomicUsize>);

impl LiveSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<LiveSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| LiveSlot(count.clone()))
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
                Some(Ok(WsMessage::Close(_))) | None => break,
                // Over --ws-max-message-bytes (or a protocol error): say why, then go.
                Some(Err(e)) => {
                    // tungstenite's CapacityError ("Space limit exceeded: Message too long");
                    // axum does not re-export the type to match on.
                    let too_big = e.to_string().contains("Space limit exceeded");
                    tracing::debug!(error = %e, "live-feed client read failed");
                    let (code, reason) = if too_big { (1009, "message too big") } else { (1002, "protocol error") };
                    let _ = tokio::time::timeout(WS_SEND_TIMEOUT, sink.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() })))).await;
                    break;
                }
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

/// Refuses requests whose Host is not one of ours (DNS rebinding: a page of another site
/// whose name now resolves here would otherwise read this dashboard as its own origin).
async fn host_guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = access::request_host(req.headers(), req.uri()).unwrap_or("");
    if !app.hosts.allows(host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            Json(json!({ "error": "Host: not a name this dashboard answers to (add it with --allowed-host / spec.dashboard.allowedHosts)" })),
        )
            .into_response();
    }
    next.run(req).await
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
        .layer(middleware::from_fn_with_state(app.clone(), host_guard))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}
