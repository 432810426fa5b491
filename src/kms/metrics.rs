//! Request counters for /metrics: operation and outcome only, never keys or payloads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub operation: String,
    /// "ok" or the KMS error code.
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<Labels, Counter>,
    pub duration: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("parity_kms");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "KMS API requests by operation and outcome",
            requests.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0001, 2.0, 14));
        registry.register(
            "request_duration_seconds",
            "KMS API request handling time",
            duration.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
