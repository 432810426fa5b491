//! Prometheus metrics of the operator. Labels carry names and outcomes, never spec values.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// What was written: apply, status, event, delete.
    pub kind: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<OutcomeLabels, Counter>,
    pub duration: Histogram,
    pub writes: Family<WriteLabels, Counter>,
    /// Environments the operator keeps per-environment state for (see controller::memory).
    pub tracked_environments: Gauge,
    /// 1 while this replica holds the Lease (or runs without leader election).
    pub leader: Gauge,
    /// Reconciles finished, whatever their outcome: how busy the operator has been (not
    /// exported; `reconciles` is, by outcome).
    finished: Counter,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("parity_operator");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        // 1 ms .. ~4 s: reconciles are dominated by API round trips.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by outcome (ok, error, invalid)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "writes",
            "Writes to the API server by kind (apply, status, event, delete)",
            writes.clone(),
        );
        let tracked_environments = Gauge::default();
        registry.register(
            "tracked_environments",
            "Environments the operator keeps state for between reconciles",
            tracked_environments.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the leader and reconciles, 0 while it waits on the Lease",
            leader.clone(),
        );
        Metrics {
            leader,
            finished: Counter::default(),
            reconciles,
            duration,
            writes,
            tracked_environments,
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    pub fn record(&self, outcome: &str, started: Instant) {
        self.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.finished.inc();
        self.duration.observe(started.elapsed().as_secs_f64());
    }

    /// Reconciles finished so far.
    pub fn finished(&self) -> u64 {
        self.finished.get()
    }

    pub fn wrote(&self, kind: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
