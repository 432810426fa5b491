//! Leader election on a coordination.k8s.io Lease.
//!
//! Only the leader runs the controller, so only the leader writes status. Losing the lease
//! ends the process (as client-go's leader election does): a fresh start re-reads everything,
//! which is simpler and safer than trying to stop a controller mid-flight.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews and candidates retry.
    pub retry: Duration,
}

/// What one attempt concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following,
}

/// Whether `lease` is held by someone other than `me` and still valid at `now`.
/// Pure, so the take-over rule is unit tested without a cluster.
pub fn held_by_other(lease: &Lease, me: &str, now: Timestamp) -> bool {
    let Some(spec) = lease.spec.as_ref() else {
        return false;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return false;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let ttl = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match renewed {
        Some(t) => t + ttl > now,
        None => false,
    }
}

fn spec_for(cfg: &LeaseConfig, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let same_holder = previous
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| h == cfg.identity);
    let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same_holder {
            previous.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// One acquire-or-renew round. Conflicts (another candidate won the race) are Following.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(cfg, now, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            }
        }
        Some(current) if held_by_other(&current, &cfg.identity, now) => Ok(Attempt::Following),
        Some(current) => {
            // Replace carries the resourceVersion we read: if someone else renewed or took
            // the lease in between, the apiserver refuses with 409 and we stay a follower.
            let mut next = current.clone();
            next.spec = Some(spec_for(cfg, now, current.spec.as_ref()));
            match api.replace(&cfg.name, &PostParams::default(), &next).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            }
        }
    }
}

/// Campaigns until elected, then keeps renewing in the background. The returned receiver
/// turns false if the lease is lost; the operator exits then.
pub async fn acquire(client: Client, cfg: LeaseConfig) -> watch::Receiver<bool> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(Attempt::Leading) => break,
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
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(cfg.retry).await;
            match try_acquire(&api, &cfg).await {
                Ok(Attempt::Leading) => last_renewed = tokio::time::Instant::now(),
                Ok(Attempt::Following) => {
                    tracing::error!(lease = %cfg.name, "lost the lease to another replica");
                    let _ = tx.send(false);
                    return;
                }
                // Transient errors are tolerated until the lease would have expired.
                Err(e) if last_renewed.elapsed() < cfg.duration => {
                    tracing::warn!(error = %e, "lease renewal failed; retrying")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not renew the lease before it expired");
                    let _ = tx.send(false);
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_valid_lease_of_another_holder_blocks_us() {
        let now = Timestamp::now();
        assert!(held_by_other(&lease("b", now, 15), "a", now));
    }

    #[test]
    fn an_expired_lease_can_be_taken_over() {
        let now = Timestamp::now();
        let old = now - SignedDuration::from_secs(16);
        assert!(!held_by_other(&lease("b", old, 15), "a", now));
    }

    #[test]
    fn our_own_or_an_empty_lease_never_blocks() {
        let now = Timestamp::now();
        assert!(!held_by_other(&lease("a", now, 15), "a", now));
        assert!(!held_by_other(&lease("", now, 15), "a", now));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let cfg = LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        };
        let now = Timestamp::now();
        let theirs = lease("b", now, 15).spec;
        let taken = spec_for(&cfg, now, theirs.as_ref());
        assert_eq!(taken.lease_transitions, Some(1));
        let renewed = spec_for(&cfg, now, Some(&taken));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
