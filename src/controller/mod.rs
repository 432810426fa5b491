//! The reconciler (reconcile.rs over steps/): validate -> fetch -> keys and secrets -> build ->
//! apply (server-side, one field manager) -> status. `parity operator` runs it: leader
//! election, watches of everything environments own, /healthz, /readyz (caches synced) and
//! /metrics.

pub mod conditions;
pub mod connection;
pub mod http;
pub mod leader;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod ownership;
pub mod pods;
mod reconcile;
pub mod resident;
pub mod seed_secret;
mod steps;
pub mod stores;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::api::ParityEnvironment;
use crate::resources::BuildContext;

pub const FIELD_MANAGER: &str = "parity-operator";
/// Held while a Local keyring may exist, so that deletion decides the keyring's fate
/// (deletionPolicy Retain or Delete) rather than the garbage collector.
pub const KEYRING_FINALIZER: &str = "parity.dev/keyring";
/// Creates under the one field manager.
pub fn create_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Merge patches under the one field manager (server-side applies use
/// `PatchParams::apply(FIELD_MANAGER)`).
pub fn merge_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// The finalizer of earlier versions (Retain only); removed on sight.
pub const LEGACY_RETAIN_FINALIZER: &str = "parity.dev/retain-keyring";

/// Why a reconcile stopped, by the step it stopped in (see reconcile.rs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading what the environment refers to: its mirror source, its seed Secret.
    #[error("reading the environment's sources: {0}")]
    Fetch(#[source] kube::Error),
    /// The finalizer, ttl expiry, or finalization on deletion.
    #[error("the environment's lifecycle: {0}")]
    Lifecycle(#[source] kube::Error),
    /// The keyring.
    #[error("the keyring: {0}")]
    Keys(#[source] kube::Error),
    /// The application's secrets, their rollout key, the connection Secret, the apps they roll.
    #[error("the secrets: {0}")]
    Secrets(#[source] kube::Error),
    /// Writing (or removing) one of the environment's objects.
    #[error("{object}: {source}")]
    Apply {
        /// `Kind name`
        object: String,
        #[source]
        source: kube::Error,
    },
    /// Writing status.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Only the user can fix this (a missing seed Secret, a lost keyring, a stranger's Secret
    /// in the way): it goes into the condition named here and a Warning event, and the
    /// environment is looked at again later.
    #[error("{message}")]
    NeedsUser {
        reason: crate::verdict::Reason,
        condition: crate::api::ConditionType,
        message: String,
    },
}

impl Error {
    pub fn keyring(message: impl Into<String>) -> Self {
        Error::NeedsUser {
            reason: crate::verdict::KEYRING_UNAVAILABLE,
            condition: crate::api::ConditionType::KeysReady,
            message: message.into(),
        }
    }

    /// A failed write of `kind name`.
    pub fn apply(kind: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let object = format!("{kind} {name}");
        move |source| Error::Apply { object, source }
    }
}

/// The environment an object belongs to, by its `parity.dev/environment` label. The keyring
/// has no owner reference, so owner-based mapping would miss its deletion.
pub fn labelled_environment<K: kube::Resource>(o: &K) -> Option<ObjectRef<ParityEnvironment>> {
    let name = o.labels().get(crate::resources::LABEL_ENVIRONMENT)?;
    let mut r = ObjectRef::new(name);
    if let Some(ns) = o.meta().namespace.as_deref() {
        r = r.within(ns);
    }
    Some(r)
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub build: BuildContext,
    pub metrics: metrics::Metrics,
    /// Who publishes the events. Each event goes through a Recorder of its own: a shared
    /// one keeps every event it published for six minutes (to count repeats as a series) in
    /// a map that never shrinks, and this operator publishes events only on change.
    pub reporter: Reporter,
    pub stores: stores::Stores,
    pub memory: memory::Memory,
    /// `--live-drift`: compare tables with the live ones.
    pub live: Option<live::LiveCheck>,
}

/// The environments whose secrets schema or mirrored topology is the ConfigMap
/// `namespace/name`: a change reconciles them at once (new secrets generated, readers
/// rolled; tables created).
pub fn reading_config_map(
    envs: &[Arc<ParityEnvironment>],
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<ParityEnvironment>> {
    envs.iter()
        .filter(|e| e.namespace().as_deref() == namespace)
        .filter(|e| {
            let schema = e.spec.secrets.schema.as_ref().map(|s| s.name.as_str());
            let topology = e
                .spec
                .mirror
                .as_ref()
                .and_then(|m| m.config_map_ref.as_ref());
            schema == Some(name) || topology.is_some_and(|t| t.name == name)
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// The environments mirroring `namespace/name`: a change of the source re-evaluates them.
pub fn mirroring(
    envs: &[Arc<ParityEnvironment>],
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<ParityEnvironment>> {
    envs.iter()
        .filter(|e| {
            e.spec
                .mirror
                .as_ref()
                .and_then(|m| m.from.as_ref())
                .is_some_and(|f| {
                    f.name == name
                        && f.namespace.as_deref().or(e.namespace().as_deref()) == namespace
                })
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Image the environment's workloads run (`parity kms`, `parity bootstrap`, ...).
    #[arg(long, env = "PARITY_IMAGE", default_value = crate::resources::DEFAULT_IMAGE)]
    pub image: String,
    /// Image pull policy for those workloads (e.g. IfNotPresent for images loaded into kind).
    #[arg(long, env = "PARITY_IMAGE_PULL_POLICY")]
    pub image_pull_policy: Option<String>,
    /// A Secret every workload pod pulls its images with (private registries); repeat for
    /// several. Pull secrets are namespaced: it must exist in each environment's namespace.
    #[arg(long = "image-pull-secret", env = "PARITY_IMAGE_PULL_SECRETS",
          value_delimiter = ',', value_parser = parse_secret_name)]
    pub image_pull_secrets: Vec<String>,
    /// Expose Local-tier Services on the fixed NodePorts of kind-config.yaml.
    #[arg(long, env = "PARITY_NODE_PORTS")]
    pub node_ports: bool,
    /// Watch only these namespaces (comma-separated; default: all namespaces). With a list,
    /// every watch is namespaced, so Roles in those namespaces are all the RBAC it needs.
    #[arg(long = "watch-namespaces", alias = "watch-namespace", env = "PARITY_WATCH_NAMESPACES",
          value_delimiter = ',', value_parser = parse_namespace)]
    pub watch_namespaces: Vec<String>,
    /// Take a Lease before reconciling, so only one replica writes.
    #[arg(long, env = "PARITY_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    #[arg(long, default_value = "parity-operator-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else hostname + pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PARITY_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Reconciles running at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Compare each environment's tables with DescribeTable at its DynamoDB endpoint
    /// (condition InSync, status.drift). Needs the operator to reach the endpoints: in the
    /// cluster, and with AWS credentials for Staging's external endpoint.
    #[arg(long, env = "PARITY_LIVE_DRIFT")]
    pub live_drift: bool,
    /// Seconds between live checks of a converged environment.
    #[arg(long, env = "PARITY_LIVE_DRIFT_INTERVAL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub live_drift_interval: u64,
    /// Credentials for live checks of external (Staging) endpoints: read-only calls.
    #[command(flatten)]
    pub aws: crate::dynamo::connect::AwsArgs,
}

/// A namespace name as the apiserver accepts it (RFC 1123 label), so a typo in
/// `--watch-namespaces` fails at start with the field named instead of as 403s or empty watches.
fn parse_namespace(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "--watch-namespaces: {s:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

/// A Secret name as the apiserver accepts it (RFC 1123 subdomain): a typo fails at start,
/// not as pods stuck in ImagePullBackOff.
fn parse_secret_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "--image-pull-secret: {s:?} is not a Secret name (lowercase letters, digits, '-' and '.', at most 253)"
        ))
    }
}

fn error_policy(env: Arc<ParityEnvironment>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.memory.failed(&ObjectRef::from_obj(env.as_ref()));
    let delay = memory::BACKOFF.delay(failures);
    tracing::warn!(error = %error, failures, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "parity".into());
        format!("{}-{}", host.trim(), std::process::id())
    });
    let metrics = metrics::Metrics::default();
    let ready = http::Readiness::default();
    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        ready.clone(),
        metrics.clone(),
    ));

    let leadership = if args.leader_elect {
        let cfg = leader::LeaseConfig::new(&args.lease_namespace, &args.lease_name, &identity);
        Some(leader::acquire(client.clone(), cfg, metrics.leader.clone()).await?)
    } else {
        metrics.leader.set(1);
        None
    };
    ready.set_leading();

    // One controller per scope: all namespaces, or each watched namespace with namespaced
    // watches (a cache cannot merge several namespaces' watches: each relist would
    // wipe the others' objects). They share the metrics and the identity.
    let scopes: Vec<Option<String>> = if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let controllers = scopes.iter().map(|scope| {
        let (ready, synced, n) = (ready.clone(), synced.clone(), scopes.len());
        let finished = metrics.clone();
        let on_synced = Box::new(move || {
            if synced.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n {
                tracing::info!("caches synced");
                ready.set_synced();
                tokio::spawn(resident::release_when_quiet(move || finished.finished()));
            }
        });
        controller(
            &client,
            scope.as_deref(),
            &args,
            &identity,
            metrics.clone(),
            on_synced,
        )
    });
    let run = futures::future::join_all(controllers);

    // Losing the Lease ends the process from leader.rs, wherever the controller is.
    tokio::select! {
        _ = run => tracing::info!("controller stopped"),
        r = server => anyhow::bail!("metrics server stopped: {r:?}"),
    }
    // Stopped by a signal, every reconcile finished: hand the Lease over now.
    if let Some(l) = leadership {
        l.release().await;
    }
    Ok(())
}

/// The controller of one scope (`None`: all namespaces): its caches, its watches and its
/// reconciles; `on_synced` runs once its caches have synced.
fn controller(
    client: &Client,
    scope: Option<&str>,
    args: &OperatorArgs,
    identity: &str,
    metrics: metrics::Metrics,
    on_synced: Box<dyn FnOnce() + Send>,
) -> impl std::future::Future<Output = ()> + use<> {
    let (stores, triggers) = stores::start(client, scope);
    let envs: Api<ParityEnvironment> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // The environments' own cache, without managed fields (a few KiB each) and kubectl's
    // copy of the last applied spec (client-side apply): never read, and never written back
    // (every write is a patch of named fields).
    let (env_reader, env_writer) = kube::runtime::reflector::store();
    let mut build = BuildContext::new(args.image.clone());
    build.image_pull_policy = args.image_pull_policy.clone();
    build.image_pull_secrets = args.image_pull_secrets.clone();
    build.node_ports = args.node_ports;
    let ctx = Arc::new(Context {
        client: client.clone(),
        build,
        metrics: metrics.clone(),
        reporter: Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity.to_string()),
        },
        stores: stores.clone(),
        memory: memory::Memory::new(env_reader.clone(), metrics.tracked_environments.clone()),
        live: args.live_drift.then(|| live::LiveCheck {
            aws: args.aws.clone(),
            interval: Duration::from_secs(args.live_drift_interval),
        }),
    });

    let forget = ctx.clone();
    let env_events = watcher(envs, watcher::Config::default())
        .modify(|e| {
            e.managed_fields_mut().clear();
            e.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .backoff(stores::WatchBackoff::default())
        .reflect(env_writer)
        // A deletion, or a relist that no longer has an environment: forget what we kept.
        .inspect_ok(move |ev| {
            if matches!(ev, watcher::Event::Delete(_) | watcher::Event::InitDone) {
                forget.memory.prune();
            }
        })
        .applied_objects();
    let env_events = stores::without_errors(env_events);
    let controller = Controller::for_stream(env_events, env_reader);
    let env_store = controller.store();
    let schema_changes = stores::all_config_maps(client, scope);
    let source_changes = stores::all_environments(client, scope);
    let mirrors_store = env_store.clone();
    let controller = controller
        .watches_stream(schema_changes, move |cm| {
            reading_config_map(
                &env_store.state(),
                cm.namespace().as_deref(),
                &cm.name_any(),
            )
        })
        .watches_stream(source_changes, move |src| {
            mirroring(
                &mirrors_store.state(),
                src.namespace().as_deref(),
                &src.name_any(),
            )
        })
        .owns_stream(triggers.deployments)
        .owns_stream(triggers.jobs)
        .owns_stream(triggers.services)
        .owns_stream(triggers.config_maps)
        .watches_stream(triggers.secrets, |s| labelled_environment(&s))
        .owns_stream(triggers.service_accounts)
        .owns_stream(triggers.network_policies)
        .owns_stream(triggers.pvcs)
        .reconcile_all_on(triggers.relisted)
        // The controller backs off errors of its merged triggers once more, by default up to
        // 30 s: the same short schedule as each watch.
        .trigger_backoff(stores::WatchBackoff::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrency));
    let main_store = controller.store();
    tokio::spawn(async move {
        if stores::ready(&main_store).await.is_ok() {
            stores.wait_until_ready().await;
            on_synced();
        }
    });

    controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(ns: &str, name: &str, schema: Option<&str>) -> Arc<ParityEnvironment> {
        let mut spec = serde_json::json!({"tier": "Local"});
        if let Some(s) = schema {
            spec["secrets"] = serde_json::json!({"schema": {"name": s, "key": "k"}});
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
                "metadata": {"name": name, "namespace": ns}, "spec": spec
            }))
            .expect("environment"),
        )
    }

    #[test]
    fn watched_namespaces_must_be_namespace_names() {
        assert_eq!(parse_namespace(" team-a ").as_deref(), Ok("team-a"));
        for bad in ["", "Team", "a_b", "-a", "a-", &"a".repeat(64)] {
            let e = parse_namespace(bad).expect_err(bad);
            assert!(e.contains("--watch-namespaces"), "{e}");
        }
    }

    #[test]
    fn image_pull_secrets_must_be_secret_names() {
        assert_eq!(parse_secret_name(" ghcr.pull ").as_deref(), Ok("ghcr.pull"));
        for bad in ["", "Reg", "a_b", "-a", "a.", &"a".repeat(254)] {
            let e = parse_secret_name(bad).expect_err(bad);
            assert!(e.contains("--image-pull-secret"), "{e}");
        }
    }

    #[test]
    fn a_schema_or_topology_config_map_maps_to_the_environments_reading_it() {
        let mut topology = (*env("a", "five", None)).clone();
        topology.spec.mirror = Some(
            serde_json::from_value(serde_json::json!({"configMapRef": {"name": "schema"}}))
                .expect("mirror"),
        );
        let envs = [
            env("a", "one", Some("schema")),
            env("a", "two", Some("other")),
            env("b", "three", Some("schema")),
            env("a", "four", None),
            Arc::new(topology),
        ];
        let hits: Vec<String> = reading_config_map(&envs, Some("a"), "schema")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(hits, ["one", "five"]);
        assert!(reading_config_map(&envs, Some("c"), "schema").is_empty());
    }

    #[test]
    fn a_source_maps_to_the_environments_mirroring_it() {
        let mirror = |ns: &str, name: &str, from: serde_json::Value| {
            Arc::new(
                serde_json::from_value::<ParityEnvironment>(serde_json::json!({
                    "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"tier": "Local", "mirror": {"from": from}}
                }))
                .expect("environment"),
            )
        };
        let envs = [
            mirror("a", "same-ns", serde_json::json!({"name": "staging"})),
            mirror(
                "b",
                "other-ns",
                serde_json::json!({"name": "staging", "namespace": "a"}),
            ),
            mirror("b", "not-it", serde_json::json!({"name": "staging"})),
            env("a", "plain", None),
        ];
        let hits: Vec<String> = mirroring(&envs, Some("a"), "staging")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(hits, ["same-ns", "other-ns"]);
    }
}
