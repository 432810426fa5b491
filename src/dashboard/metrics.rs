//! /metrics: request counts by route and status, live-feed counters and decryption outcomes.
//! Labels are route templates and outcomes only: never table keys, values or users.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub duration: Histogram,
    pub decryptions: Family<OutcomeLabels, Counter>,
    pub changes: Counter,
    pub ws_clients: Gauge,
    pub dropped_clients: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("parity_dashboard");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling time",
            duration.clone(),
        );
        let decryptions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "decryptions",
            "Attribute decryptions by outcome (server mode)",
            decryptions.clone(),
        );
        let changes = Counter::default();
        registry.register(
            "stream_changes",
            "Changes read from DynamoDB Streams",
            changes.clone(),
        );
        let ws_clients = Gauge::default();
        registry.register(
            "websocket_clients",
            "Connected live-feed clients",
            ws_clients.clone(),
        );
        let dropped_clients = Counter::default();
        registry.register(
            "websocket_dropped_clients",
            "Live-feed clients dropped because their queue was full",
            dropped_clients.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            decryptions,
            changes,
            ws_clients,
            dropped_clients,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
