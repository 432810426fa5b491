//! /healthz, /readyz and /metrics of `parity operator`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::Metrics;

/// Readiness: a follower is ready (it is a healthy standby); the leader is ready once its
/// watches have synced, so a probe never routes work to a controller with an empty cache.
#[derive(Clone, Default)]
pub struct Readiness {
    leading: Arc<AtomicBool>,
    synced: Arc<AtomicBool>,
}

impl Readiness {
    pub fn set_leading(&self) {
        self.leading.store(true, Ordering::SeqCst);
    }
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        !self.leading.load(Ordering::SeqCst) || self.synced.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    ready: Readiness,
    metrics: Metrics,
}

pub async fn serve(addr: SocketAddr, ready: Readiness, metrics: Metrics) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.ready.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    s.metrics.encode(),
                )
            }),
        )
        .with_state(AppState { ready, metrics });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz /readyz /metrics");
    axum::serve(listener, app).await?;
    Ok(())
}
