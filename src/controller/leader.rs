//! Leader election on a coordination.k8s.io Lease, with client-go's semantics.
//!
//! Only the leader runs the controller, so only the leader writes status. Three rules keep
//! two replicas from ever acting as leader at once:
//!
//! - **Observed time.** A candidate judges a Lease expired by when *it* last saw the record
//!   change, on its own monotonic clock, never by comparing the holder's `renewTime` with its
//!   own wall clock (clocks of two nodes can be minutes apart). A fresh candidate therefore
//!   waits one full lease duration before taking over a Lease it has just seen.
//! - **Renew deadline.** The leader steps down when it has not renewed for `renew_deadline`,
//!   which is shorter than the lease: it stops acting before any candidate can see the
//!   record unchanged for a whole lease duration. The deadline is counted from the *start*
//!   of the last successful renewal, before the write could have reached the apiserver.
//! - **Timeouts.** Every apiserver call has a timeout, and a renewal never outlives the
//!   deadline, so a hung connection cannot keep a leader that has stopped renewing alive.
//!
//! Stepping down ends the process (as client-go's leader election does): a fresh start
//! re-reads everything, which is simpler and safer than stopping a controller mid-flight.
//! A watchdog thread enforces the deadline outside the async runtime, so a process that was
//! frozen (SIGSTOP, a paused VM) exits the moment it runs again instead of finishing work.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a candidate waits, after it last saw the record change, before taking over.
    pub duration: Duration,
    /// How long the leader goes on acting without a successful renewal; shorter than
    /// `duration`, the difference being the margin for stepping down.
    pub renew_deadline: Duration,
    /// How often the holder renews and candidates retry.
    pub retry: Duration,
    /// Upper bound of one apiserver call.
    pub call_timeout: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: lease 15 s, renew deadline 10 s, retry 2 s; one call at most 5 s
    /// so a renewal that hangs still leaves time for another attempt within the deadline.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
        }
    }

    /// The orderings the safety argument needs, as client-go checks them.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.duration {
            return Err(format!(
                "leader election: the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.duration
            ));
        }
        if self.retry >= self.renew_deadline {
            return Err(format!(
                "leader election: the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry, self.renew_deadline
            ));
        }
        if self.duration.as_secs() == 0 || self.duration.as_secs() > i32::MAX as u64 {
            return Err("leader election: the lease duration must be 1 s or more".into());
        }
        Ok(())
    }
}

/// What one attempt concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following,
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} of the Lease timed out after {1:?}")]
    Timeout(&'static str, Duration),
}

/// The last Lease record this candidate saw, and when (on its monotonic clock) it last
/// changed. Pure, so the take-over rule is unit tested without a cluster.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    record: Option<LeaseSpec>,
    changed_at: Option<Instant>,
}

impl Observed {
    /// Records what a read returned at `now`; the clock restarts only when the record differs
    /// from the last one seen (a renewal changes renewTime, so a live holder keeps moving it).
    pub fn observe(&mut self, record: Option<&LeaseSpec>, now: Instant) {
        if self.changed_at.is_none() || self.record.as_ref() != record {
            self.record = record.cloned();
            self.changed_at = Some(now);
        }
    }

    /// Whether someone other than `me` holds the Lease and, by our own clock, has changed the
    /// record within its lease duration.
    pub fn held_by_other(&self, me: &str, now: Instant) -> bool {
        let (Some(spec), Some(at)) = (self.record.as_ref(), self.changed_at) else {
            return false;
        };
        let holder = spec.holder_identity.as_deref().unwrap_or("");
        if holder.is_empty() || holder == me {
            return false;
        }
        let secs = spec.lease_duration_seconds.unwrap_or(15).max(0);
        let ttl = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        now.saturating_duration_since(at) < ttl
    }
}

/// Whether a leader whose last successful renewal started at `last_renewed` must stop
/// acting at `now`.
pub fn must_step_down(last_renewed: Instant, renew_deadline: Duration, now: Instant) -> bool {
    now.saturating_duration_since(last_renewed) >= renew_deadline
}

fn spec_for(cfg: &LeaseConfig, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let same_holder = previous
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| h == cfg.identity);
    let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        // validate() bounds the duration to i32.
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same_holder {
            previous.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        // Written for humans and other tools; no replica of ours compares it with a clock.
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

async fn bounded<T>(
    what: &'static str,
    limit: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ElectionError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ElectionError::Timeout(what, limit)),
    }
}

/// One replica's view of the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    observed: Observed,
}

impl Elector {
    pub fn new(api: Api<Lease>, cfg: LeaseConfig) -> Elector {
        Elector {
            api,
            cfg,
            observed: Observed::default(),
        }
    }

    /// One acquire-or-renew round, each call bounded by `limit`. Conflicts (another
    /// candidate won the race) are Following.
    pub async fn try_acquire(&mut self, limit: Duration) -> Result<Attempt, ElectionError> {
        let limit = limit.min(self.cfg.call_timeout);
        let current = bounded("get", limit, self.api.get_opt(&self.cfg.name)).await?;
        let now = Instant::now();
        self.observed
            .observe(current.as_ref().and_then(|l| l.spec.as_ref()), now);
        if self.observed.held_by_other(&self.cfg.identity, now) {
            return Ok(Attempt::Following);
        }
        let spec = spec_for(
            &self.cfg,
            Timestamp::now(),
            current.as_ref().and_then(|l| l.spec.as_ref()),
        );
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                bounded(
                    "create",
                    limit,
                    self.api.create(&PostParams::default(), &lease),
                )
                .await
            }
            // Replace carries the resourceVersion we read: if someone else renewed or took
            // the lease in between, the apiserver refuses with 409 and we stay a follower.
            Some(mut next) => {
                next.spec = Some(spec);
                bounded(
                    "update",
                    limit,
                    self.api
                        .replace(&self.cfg.name, &PostParams::default(), &next),
                )
                .await
            }
        };
        match written {
            Ok(lease) => {
                self.observed.observe(lease.spec.as_ref(), Instant::now());
                Ok(Attempt::Leading)
            }
            Err(ElectionError::Kube(kube::Error::Api(s)))
                if s.is_conflict() || s.is_already_exists() =>
            {
                Ok(Attempt::Following)
            }
            Err(e) => Err(e),
        }
    }
}

/// Leaves the process: the only way this replica stops being leader.
fn step_down(cfg: &LeaseConfig, why: &str) -> ! {
    tracing::error!(lease = %cfg.name, identity = %cfg.identity, "stepping down: {why}; exiting");
    std::process::exit(1)
}

/// The Lease this replica holds, renewed in the background until [`Leadership::release`].
pub struct Leadership {
    api: Api<Lease>,
    cfg: LeaseConfig,
    renewing: tokio::task::JoinHandle<()>,
    leading: Gauge,
}

impl Leadership {
    /// After a graceful stop (the controller has finished): stops renewing and gives the Lease
    /// up (no holder, 1 s), as client-go's ReleaseOnCancel does, so a standby takes over at its
    /// next retry instead of a lease duration later. Best effort: if it fails, the Lease
    /// simply expires.
    pub async fn release(self) {
        self.renewing.abort();
        let _ = self.renewing.await;
        self.leading.set(0);
        let limit = self.cfg.call_timeout;
        let result = async {
            let Some(mut lease) = bounded("get", limit, self.api.get_opt(&self.cfg.name)).await?
            else {
                return Ok(false);
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(false);
            };
            if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                return Ok(false);
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            bounded(
                "release",
                limit,
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease),
            )
            .await
            .map(|_| true)
        }
        .await;
        match result {
            Ok(true) => tracing::info!(lease = %self.cfg.name, "released the Lease"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not release the Lease; it expires"),
        }
    }
}

/// Campaigns until elected, then keeps renewing in the background and sets `leading` to 1.
/// A leader that loses the Lease or cannot renew within the renew deadline ends the process
/// (see [`step_down`]), so returning means leading.
pub async fn acquire(
    client: Client,
    cfg: LeaseConfig,
    leading: Gauge,
) -> anyhow::Result<Leadership> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut elector = Elector::new(api.clone(), cfg.clone());
    let mut last_renewed;
    loop {
        let started = Instant::now();
        match elector.try_acquire(cfg.call_timeout).await {
            Ok(Attempt::Leading) => {
                last_renewed = started;
                break;
            }
            Ok(Attempt::Following) => {
                tracing::debug!(lease = %cfg.name, "another replica leads; waiting")
            }
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "leader election attempt failed")
            }
        }
        tokio::time::sleep(cfg.retry).await;
    }
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    leading.set(1);

    // The watchdog runs on a plain thread: it needs no runtime worker, so it fires even when
    // every worker is busy, and first thing after the process is thawed.
    let renewed_at = Arc::new(Mutex::new(last_renewed));
    {
        let renewed_at = renewed_at.clone();
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name("lease-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let last = *renewed_at.lock().unwrap_or_else(|p| p.into_inner());
                    if must_step_down(last, cfg.renew_deadline, Instant::now()) {
                        step_down(&cfg, "no renewal within the renew deadline");
                    }
                }
            })?;
    }

    let renewing = tokio::spawn({
        let cfg = cfg.clone();
        async move {
            loop {
                tokio::time::sleep(cfg.retry).await;
                let started = Instant::now();
                if must_step_down(last_renewed, cfg.renew_deadline, started) {
                    step_down(&cfg, "no renewal within the renew deadline");
                }
                let left = cfg.renew_deadline - started.duration_since(last_renewed);
                match elector.try_acquire(left).await {
                    Ok(Attempt::Leading) => {
                        last_renewed = started;
                        *renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = started;
                        tracing::trace!(lease = %cfg.name, "renewed");
                    }
                    Ok(Attempt::Following) => step_down(&cfg, "another replica holds the Lease"),
                    // Transient errors are retried until the renew deadline.
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                }
            }
        }
    });
    Ok(Leadership {
        api,
        cfg,
        renewing,
        leading,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    fn seen(record: &LeaseSpec, at: Instant) -> Observed {
        let mut o = Observed::default();
        o.observe(Some(record), at);
        o
    }

    #[test]
    fn a_lease_another_holder_just_renewed_blocks_us() {
        let t0 = Instant::now();
        let o = seen(&spec("b", Timestamp::now(), 15), t0);
        assert!(o.held_by_other("a", t0));
        assert!(o.held_by_other("a", t0 + Duration::from_millis(14_999)));
    }

    #[test]
    fn expiry_counts_from_when_we_saw_the_record_change_not_from_its_renew_time() {
        let t0 = Instant::now();
        // A renewTime an hour in the past (the holder's clock is behind ours): a wall-clock
        // comparison would take over at once; we wait a full lease from our first sight.
        let skewed = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3600);
        let o = seen(&spec("b", skewed, 15), t0);
        assert!(o.held_by_other("a", t0 + Duration::from_secs(14)));
        assert!(!o.held_by_other("a", t0 + Duration::from_secs(15)));
        // And a renewTime an hour ahead does not keep a silent holder forever.
        let ahead = Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(3600);
        let o = seen(&spec("b", ahead, 15), t0);
        assert!(!o.held_by_other("a", t0 + Duration::from_secs(16)));
    }

    #[test]
    fn an_unchanged_record_does_not_restart_the_clock_and_a_renewal_does() {
        let t0 = Instant::now();
        let first = spec("b", Timestamp::now(), 15);
        let mut o = seen(&first, t0);
        o.observe(Some(&first), t0 + Duration::from_secs(10));
        assert!(
            !o.held_by_other("a", t0 + Duration::from_secs(15)),
            "re-reading the same record is not a renewal"
        );
        let renewed = spec(
            "b",
            Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(2),
            15,
        );
        o.observe(Some(&renewed), t0 + Duration::from_secs(16));
        assert!(o.held_by_other("a", t0 + Duration::from_secs(30)));
        assert!(!o.held_by_other("a", t0 + Duration::from_secs(31)));
    }

    #[test]
    fn our_own_an_empty_or_a_missing_lease_never_blocks() {
        let t0 = Instant::now();
        assert!(!seen(&spec("a", Timestamp::now(), 15), t0).held_by_other("a", t0));
        assert!(!seen(&spec("", Timestamp::now(), 15), t0).held_by_other("a", t0));
        let mut none = Observed::default();
        assert!(!none.held_by_other("a", t0));
        none.observe(None, t0);
        assert!(!none.held_by_other("a", t0));
    }

    #[test]
    fn the_leader_steps_down_at_the_renew_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(!must_step_down(
            t0,
            deadline,
            t0 + Duration::from_millis(9_999)
        ));
        assert!(must_step_down(t0, deadline, t0 + deadline));
        // A process frozen past its lease sees the deadline long gone when it resumes.
        assert!(must_step_down(t0, deadline, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn the_leader_stops_before_a_follower_may_take_over() {
        // The follower sees the last renewal no earlier than the renewal started, and waits
        // a full lease from then; the leader stops at start + renew deadline.
        let cfg = LeaseConfig::new("ns", "l", "a");
        cfg.validate().expect("defaults are valid");
        let started = Instant::now();
        let follower_saw = started + Duration::from_millis(1);
        let o = seen(&spec("a", Timestamp::now(), 15), follower_saw);
        let mut t = started;
        while !must_step_down(started, cfg.renew_deadline, t) {
            assert!(
                o.held_by_other("b", t),
                "the follower would take over at {t:?}"
            );
            t += Duration::from_millis(100);
        }
        assert!(o.held_by_other("b", t));
    }

    #[test]
    fn a_renew_deadline_not_shorter_than_the_lease_is_refused() {
        let mut cfg = LeaseConfig::new("ns", "l", "a");
        cfg.renew_deadline = cfg.duration;
        let e = cfg.validate().expect_err("refused");
        assert!(e.contains("renew deadline"), "{e}");
        let mut cfg = LeaseConfig::new("ns", "l", "a");
        cfg.retry = cfg.renew_deadline;
        assert!(
            cfg.validate()
                .expect_err("refused")
                .contains("retry period")
        );
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let cfg = LeaseConfig::new("ns", "l", "a");
        let now = Timestamp::now();
        let theirs = spec("b", now, 15);
        let taken = spec_for(&cfg, now, Some(&theirs));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        let renewed = spec_for(&cfg, now, Some(&taken));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
