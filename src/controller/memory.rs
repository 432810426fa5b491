//! What the operator remembers about each environment between reconciles: the versions its
//! last applies produced (so a no-op resync writes nothing) and its consecutive failures (for
//! backoff). Entries go when the environment does, so an operator that has seen thousands of
//! short-lived CI environments holds only the live ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::metrics::gauge::Gauge;

use crate::api::ParityEnvironment;

/// (kind, name) of an applied object; its namespace is the environment's.
pub type AppliedKey = (&'static str, String);

/// What one apply of a desired object produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedVersion {
    /// Hash of the desired object.
    pub desired: u64,
    /// The resourceVersion the API server answered with.
    pub resource_version: String,
}

#[derive(Default)]
struct Remembered {
    applied: HashMap<AppliedKey, AppliedVersion>,
    failures: u32,
}

/// Per-environment memory, adding how many environments it holds to a gauge. Only
/// environments in `known` (the controller's cache) get entries: a reconcile that ends after
/// its environment was deleted must not bring the entry back.
pub struct Memory {
    envs: Mutex<HashMap<ObjectRef<ParityEnvironment>, Remembered>>,
    known: Store<ParityEnvironment>,
    tracked: Gauge,
}

impl Memory {
    pub fn new(known: Store<ParityEnvironment>, tracked: Gauge) -> Memory {
        Memory {
            envs: Mutex::new(HashMap::new()),
            known,
            tracked,
        }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut HashMap<ObjectRef<ParityEnvironment>, Remembered>) -> R,
    ) -> R {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        let mut envs = self.envs.lock().unwrap_or_else(|p| p.into_inner());
        let before = envs.len();
        let r = f(&mut envs);
        // By difference: with watched namespaces, one memory per controller shares the gauge.
        let delta = i64::try_from(envs.len()).unwrap_or(i64::MAX)
            - i64::try_from(before).unwrap_or(i64::MAX);
        self.tracked.inc_by(delta);
        r
    }

    pub fn applied(
        &self,
        env: &ObjectRef<ParityEnvironment>,
        key: &AppliedKey,
    ) -> Option<AppliedVersion> {
        self.with(|m| m.get(env)?.applied.get(key).cloned())
    }

    pub fn record_applied(
        &self,
        env: &ObjectRef<ParityEnvironment>,
        key: AppliedKey,
        v: AppliedVersion,
    ) {
        let known = self.known.get(env).is_some();
        self.with(|m| {
            if known {
                m.entry(env.clone()).or_default().applied.insert(key, v);
            }
        });
    }

    /// Counts a failed reconcile; returns how many in a row.
    pub fn failed(&self, env: &ObjectRef<ParityEnvironment>) -> u32 {
        let known = self.known.get(env).is_some();
        self.with(|m| match m.get_mut(env) {
            Some(r) => {
                r.failures = r.failures.saturating_add(1);
                r.failures
            }
            None if known => {
                m.insert(
                    env.clone(),
                    Remembered {
                        failures: 1,
                        ..Default::default()
                    },
                );
                1
            }
            None => 1,
        })
    }

    pub fn succeeded(&self, env: &ObjectRef<ParityEnvironment>) {
        self.with(|m| {
            if let Some(r) = m.get_mut(env) {
                r.failures = 0;
            }
        });
    }

    /// Forgets every environment that is no longer in the cache. The caller runs it after
    /// the cache has taken in a deletion or a relist.
    pub fn prune(&self) {
        self.with(|m| m.retain(|env, _| self.known.get(env).is_some()));
    }
}

/// Requeue delays after consecutive failures: doubling from `base`, capped at `cap`, so one
/// broken environment neither hammers the API server nor waits long once it is fixed.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(300),
};

impl Backoff {
    /// The delay after the `failures`-th failure in a row (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn env(name: &str) -> ObjectRef<ParityEnvironment> {
        ObjectRef::new(name).within("ns")
    }

    fn object(name: &str) -> ParityEnvironment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
            "metadata": {"name": name, "namespace": "ns"}, "spec": {"tier": "Local"}
        }))
        .expect("environment")
    }

    /// A memory whose cache holds `names`, and the writer that changes the cache.
    fn memory(names: &[&str], gauge: Gauge) -> (Memory, Writer<ParityEnvironment>) {
        let (store, mut writer) = kube::runtime::reflector::store();
        for n in names {
            writer.apply_watcher_event(&Event::Apply(object(n)));
        }
        (Memory::new(store, gauge), writer)
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 40, u32::MAX]
            .map(|n| BACKOFF.delay(n).as_secs())
            .to_vec();
        assert_eq!(delays, vec![1, 2, 4, 8, 256, 300, 300, 300]);
        assert_eq!(BACKOFF.delay(0), BACKOFF.base);
    }

    #[test]
    fn failures_count_per_environment_and_reset_on_success() {
        let (m, _w) = memory(&["a", "b"], Gauge::default());
        assert_eq!((m.failed(&env("a")), m.failed(&env("a"))), (1, 2));
        assert_eq!(m.failed(&env("b")), 1);
        m.succeeded(&env("a"));
        assert_eq!(m.failed(&env("a")), 1);
    }

    #[test]
    fn memories_of_several_controllers_add_up_in_one_gauge() {
        let gauge = Gauge::default();
        let (a, _wa) = memory(&["a"], gauge.clone());
        let (b, _wb) = memory(&["a", "b"], gauge.clone());
        a.failed(&env("a"));
        b.failed(&env("a"));
        b.failed(&env("b"));
        assert_eq!(gauge.get(), 3);
        b.succeeded(&env("b"));
        a.prune();
        assert_eq!(gauge.get(), 3, "nothing gone, nothing pruned");
    }

    #[test]
    fn prune_forgets_deleted_environments_and_they_do_not_come_back() {
        let gauge = Gauge::default();
        let (m, mut w) = memory(&["a", "b", "c"], gauge.clone());
        let v = AppliedVersion {
            desired: 1,
            resource_version: "7".into(),
        };
        for name in ["a", "b", "c"] {
            m.record_applied(&env(name), ("Service", format!("{name}-kms")), v.clone());
        }
        m.failed(&env("c"));
        assert_eq!(gauge.get(), 3);
        for gone in ["a", "c"] {
            w.apply_watcher_event(&Event::Delete(object(gone)));
        }
        m.prune();
        assert_eq!(gauge.get(), 1);
        assert_eq!(
            m.applied(&env("b"), &("Service", "b-kms".into())),
            Some(v.clone())
        );
        assert_eq!(m.applied(&env("a"), &("Service", "a-kms".into())), None);
        // A reconcile that finishes after the deletion leaves nothing behind.
        m.record_applied(&env("a"), ("Service", "a-kms".into()), v);
        assert_eq!((m.failed(&env("c")), gauge.get()), (1, 1));
    }
}
