//! `parity dashboard`: browse the environment's tables, see encrypted attributes as envelope
//! metadata (or, in the Local tier with `--decryption server`, decrypted through the key
//! service, each decryption audited), and follow changes live over a WebSocket fed by
//! DynamoDB Streams. docs/dashboard.md describes the pages, the API and the rules.

pub mod access;
pub mod assets;
pub mod audit;
pub mod config;
pub mod decrypt;
pub mod dynamo;
pub mod html;
pub mod hub;
pub mod metrics;
pub mod server;
pub mod tailer;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

pub use config::{ConfigError, DashboardArgs, decryption_flag, tier_flag};
pub use hub::Hub;
pub use view::{DashboardEnvelope, Kind};

use crate::dynamo::connect::error_chain;
use crate::dynamo::topology::Topology;

pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    // Refuse before reading anything: a misconfigured decrypting dashboard must not start.
    config::check(&args)?;
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("--topology {}", args.topology.display()))?;
    let topology = Topology::from_document_str(&text)
        .map_err(|e| anyhow::anyhow!("--topology {}: {e}", args.topology.display()))?;
    let schemas = match &args.seeds {
        Some(dir) => config::read_schemas(dir, args.table_prefix.as_deref())?,
        None => Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = build(&args, topology, schemas, stop_rx).await;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        tier = args.tier.as_str(),
        decryption = ?args.decryption,
        credentials = args.aws_credentials.as_str(),
        tables = app.tables.len(),
        "parity dashboard listening"
    );
    let tasks = start_background(&app, &args).await;
    serve(listener, app, async move {
        crate::signal::shutdown().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    })
    .await?;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// The shared state for `args` (no I/O yet, except what the credential chain reads).
pub async fn build(
    args: &DashboardArgs,
    topology: Topology,
    schemas: std::collections::BTreeMap<String, crate::dynamo::seed::FixtureSchema>,
    shutdown: watch::Receiver<bool>,
) -> Arc<server::App> {
    let credentials = dynamo::credentials(args.aws_credentials, &args.aws).await;
    let ddb = dynamo::dynamodb_client(args.dynamodb_endpoint.as_deref(), &args.aws, credentials);
    let decryptor = match (args.decryption, &args.kms_endpoint) {
        (crate::api::Decryption::Server, Some(endpoint)) => Some(decrypt::Decryptor::new(
            endpoint,
            &args.aws.region,
            &args.aws.access_key_id,
            args.aws.secret_access_key.expose(),
            schemas,
        )),
        _ => None,
    };
    Arc::new(server::App {
        tables: topology.tables,
        ddb,
        decryptor,
        hub: Arc::new(Hub::new(args.client_queue)),
        metrics: Arc::new(metrics::Metrics::new()),
        ready: AtomicBool::new(false),
        page_size: args.page_size,
        mode: args.decryption,
        tier: args.tier,
        notice: args.notice.clone(),
        shutdown,
        hosts: access::HostPolicy::new(&args.allowed_hosts),
        allowed_origins: args.allowed_origins.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        audit: audit::AuditLog::stderr(),
        live_clients: Default::default(),
        max_clients: args.max_clients,
        ws_max_message_bytes: args.ws_max_message_bytes,
    })
}

/// Readiness probe loop, then the stream tailers.
pub async fn start_background(
    app: &Arc<server::App>,
    args: &DashboardArgs,
) -> Vec<tokio::task::JoinHandle<()>> {
    let credentials = dynamo::credentials(args.aws_credentials, &args.aws).await;
    let streams = dynamo::streams_client(args.dynamodb_endpoint.as_deref(), &args.aws, credentials);
    let tailer = Arc::new(tailer::Tailer {
        ddb: app.ddb.clone(),
        streams,
        hub: app.hub.clone(),
        metrics: app.metrics.clone(),
        poll: args.stream_poll,
    });
    let app = app.clone();
    vec![tokio::spawn(async move {
        let mut attempt = 0u32;
        loop {
            match app.ddb.list_tables().limit(1).send().await {
                Ok(_) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %error_chain(&e), "DynamoDB not answering yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        app.ready.store(true, Ordering::Relaxed);
        tracing::info!("DynamoDB answered: ready");
        let handles = tailer.spawn(app.tables.clone());
        // Tailers live as long as this task; aborting it on shutdown ends them.
        struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                for h in &self.0 {
                    h.abort();
                }
            }
        }
        let _guard = AbortOnDrop(handles);
        std::future::pending::<()>().await;
    })]
}

/// Serves until `stop` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<server::App>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        server::router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .context("serve")
}
