//! Caches of the objects environments own, fed by watches limited to the operator's label.
//! Every object is cut down to what the controller reads before it is kept: identity, the
//! environment label and owners, plus replica counts for Deployments and Complete/Failed
//! conditions for Jobs (they drive conditions). Everything else is watched as metadata only, so the operator
//! never caches Secret data and its memory stays small with many environments.

use std::fmt::Debug;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::resources::{LABEL_ENVIRONMENT, LABEL_MANAGED_BY, MANAGED_BY, Object, OwnedKind};

pub type Trigger<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub jobs: Store<Job>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub pvcs: Store<PartialObjectMeta<PersistentVolumeClaim>>,
}

/// The trigger streams to hand to the Controller (one per kind); they drive the stores.
pub struct Triggers {
    pub deployments: Trigger<Deployment>,
    pub jobs: Trigger<Job>,
    pub services: Trigger<PartialObjectMeta<Service>>,
    pub config_maps: Trigger<PartialObjectMeta<ConfigMap>>,
    pub secrets: Trigger<PartialObjectMeta<Secret>>,
    pub service_accounts: Trigger<PartialObjectMeta<ServiceAccount>>,
    pub network_policies: Trigger<PartialObjectMeta<NetworkPolicy>>,
    pub pvcs: Trigger<PartialObjectMeta<PersistentVolumeClaim>>,
    /// One item each time a watch of owned objects finishes a (re)list. A relist (after 410
    /// Expired, e.g. an apiserver restart) replaces the cache without an event for objects
    /// deleted while the watch was down: every environment is looked at again instead.
    pub relisted: futures::channel::mpsc::UnboundedReceiver<()>,
}

/// Retry delays of every watch: 250 ms doubling to 4 s, reset by any event. kube's default
/// grows to 30 s and resets only after two quiet minutes: after an apiserver restart the
/// reconnect is met by 410 Expired (the new watch cache starts later), and that error waited
/// out the grown delay again, so changes were seen more than a minute late
/// (tests/faults_controlplane.rs). A few retries a second at worst cost one operator nothing.
pub struct WatchBackoff(crate::dynamo::backoff::Backoff);

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff(crate::dynamo::backoff::Backoff::new(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(4),
        ))
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<std::time::Duration> {
        Some(self.0.next_delay())
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = WatchBackoff::default();
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn config() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"))
}

/// Logs and drops a watch's errors. The watch retries on its own (WatchBackoff, and a relist
/// after 410 Expired); passed on, each error would also pause the controller's merged trigger
/// stream for a backoff, one watch after another: after an apiserver restart every watch
/// meets 410 once, and changes waited ~4 s per watch before anything was reconciled.
pub fn without_errors<K: Send + 'static>(
    s: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> Trigger<K> {
    s.filter_map(|r| async move {
        match r {
            Ok(o) => Some(Ok(o)),
            Err(e) => {
                tracing::debug!(error = %e, "watch error; the watch retries");
                None
            }
        }
    })
    .boxed()
}

/// A label-selected watch feeding a store, each object cut down by `slim` before it is kept.
fn cached_watch<K>(
    client: &Client,
    namespace: Option<&str>,
    slim: fn(&mut K),
    relisted: &futures::channel::mpsc::UnboundedSender<()>,
) -> (Store<K>, Trigger<K>)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let relisted = relisted.clone();
    let stream = watcher(api::<K>(client, namespace), config())
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                let _ = relisted.unbounded_send(());
            }
        })
        .modify(slim)
        .backoff(WatchBackoff::default())
        .reflect(writer)
        .touched_objects();
    (store, without_errors(stream))
}

/// What the controller reads of any cached object ([`Cached`], the owner mapping and
/// [`crate::controller::labelled_environment`]): name, namespace, resourceVersion, the
/// owners' references and the environment label. Everything else (managed fields,
/// annotations, the other labels, uid, timestamps) is most of the bytes of ~15 objects per
/// environment.
fn slim_meta(m: &mut ObjectMeta) {
    *m = ObjectMeta {
        name: m.name.take(),
        namespace: m.namespace.take(),
        resource_version: m.resource_version.take(),
        labels: m.labels.take().map(|mut l| {
            l.retain(|k, _| KEPT_LABELS.contains(&k.as_str()));
            l
        }),
        owner_references: m.owner_references.take(),
        ..ObjectMeta::default()
    };
}

/// The one label read from cached objects: the environment a Secret belongs to (its
/// trigger; the keyring has no owner reference).
const KEPT_LABELS: [&str; 1] = [LABEL_ENVIRONMENT];

fn slim_partial<K>(o: &mut PartialObjectMeta<K>) {
    slim_meta(&mut o.metadata);
    // apiVersion and kind of the metadata-only answer (PartialObjectMetadata), never read.
    o.types = None;
}

/// A Deployment as the conditions read it: wanted and available replicas. The pod
/// template, most of a Deployment, is never looked at.
fn slim_deployment(d: &mut Deployment) {
    slim_meta(&mut d.metadata);
    d.spec = DeploymentSpec {
        replicas: d.spec.replicas,
        ..Default::default()
    };
    d.status = d.status.take().map(|s| DeploymentStatus {
        available_replicas: s.available_replicas,
        ..Default::default()
    });
}

/// A Job as the conditions read it: its Complete and Failed conditions.
fn slim_job(j: &mut Job) {
    slim_meta(&mut j.metadata);
    j.spec = None;
    j.status = j.status.take().map(|s| JobStatus {
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .filter(|c| c.type_ == "Complete" || c.type_ == "Failed")
                .map(|c| JobCondition {
                    type_: c.type_,
                    status: c.status,
                    message: c.message,
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    });
}

/// Changes to any ConfigMap (metadata only, nothing cached): an environment's secrets schema
/// lives in a ConfigMap of the user's, which carries none of the operator's labels.
pub fn all_config_maps(
    client: &Client,
    namespace: Option<&str>,
) -> Trigger<PartialObjectMeta<ConfigMap>> {
    without_errors(
        watcher(
            api::<PartialObjectMeta<ConfigMap>>(client, namespace),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::default())
        .touched_objects(),
    )
}

/// Changes to any environment (a mirror source), as the controller's trigger input.
pub fn all_environments(
    client: &Client,
    namespace: Option<&str>,
) -> Trigger<PartialObjectMeta<crate::api::ParityEnvironment>> {
    let api: Api<PartialObjectMeta<crate::api::ParityEnvironment>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    without_errors(
        watcher(api, watcher::Config::default())
            .backoff(WatchBackoff::default())
            .touched_objects(),
    )
}

pub fn start(client: &Client, namespace: Option<&str>) -> (Stores, Triggers) {
    let (tx, relisted) = futures::channel::mpsc::unbounded();
    let (deployments, t_deployments) = cached_watch(client, namespace, slim_deployment, &tx);
    let (jobs, t_jobs) = cached_watch(client, namespace, slim_job, &tx);
    let (services, t_services) = cached_watch(client, namespace, slim_partial::<Service>, &tx);
    let (config_maps, t_config_maps) =
        cached_watch(client, namespace, slim_partial::<ConfigMap>, &tx);
    let (secrets, t_secrets) = cached_watch(client, namespace, slim_partial::<Secret>, &tx);
    let (service_accounts, t_sas) =
        cached_watch(client, namespace, slim_partial::<ServiceAccount>, &tx);
    let (network_policies, t_nps) =
        cached_watch(client, namespace, slim_partial::<NetworkPolicy>, &tx);
    let (pvcs, t_pvcs) = cached_watch(
        client,
        namespace,
        slim_partial::<PersistentVolumeClaim>,
        &tx,
    );
    (
        Stores {
            deployments,
            jobs,
            services,
            config_maps,
            secrets,
            service_accounts,
            network_policies,
            pvcs,
        },
        Triggers {
            deployments: t_deployments,
            jobs: t_jobs,
            services: t_services,
            config_maps: t_config_maps,
            secrets: t_secrets,
            service_accounts: t_sas,
            network_policies: t_nps,
            pvcs: t_pvcs,
            relisted,
        },
    )
}

/// Identity and version of a cached object: enough to tell whether it changed since we
/// last applied it, and who owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub name: String,
    pub resource_version: Option<String>,
    pub owner_uids: Vec<String>,
}

fn cached<K: Resource>(o: &K) -> Cached {
    Cached {
        name: o.name_any(),
        resource_version: o.resource_version(),
        owner_uids: o.owner_references().iter().map(|r| r.uid.clone()).collect(),
    }
}

impl Stores {
    /// Every store is filled from its first list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        ready(&self.deployments).await?;
        ready(&self.jobs).await?;
        ready(&self.services).await?;
        ready(&self.config_maps).await?;
        ready(&self.secrets).await?;
        ready(&self.service_accounts).await?;
        ready(&self.network_policies).await?;
        ready(&self.pvcs).await
    }

    /// The cached object of the same kind, namespace and name as `o`.
    pub fn get(&self, o: &Object, namespace: &str) -> Option<Cached> {
        let name = o.name();
        macro_rules! look {
            ($store:expr) => {
                $store
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|x| cached(x.as_ref()))
            };
        }
        match o {
            Object::Deployment(_) => look!(self.deployments),
            Object::Job(_) => look!(self.jobs),
            Object::Service(_) => look!(self.services),
            Object::ConfigMap(_) => look!(self.config_maps),
            Object::Secret(_) => look!(self.secrets),
            Object::ServiceAccount(_) => look!(self.service_accounts),
            Object::NetworkPolicy(_) => look!(self.network_policies),
            Object::PersistentVolumeClaim(_) => look!(self.pvcs),
        }
    }

    /// Every cached object in `namespace` owned by `owner_uid`, as (kind, cached).
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Vec<(OwnedKind, Cached)> {
        let mut out = Vec::new();
        macro_rules! collect {
            ($store:expr, $kind:expr) => {
                for o in $store.state() {
                    if o.namespace().as_deref() == Some(namespace)
                        && o.owner_references().iter().any(|r| r.uid == owner_uid)
                    {
                        out.push(($kind, cached(o.as_ref())));
                    }
                }
            };
        }
        collect!(self.deployments, OwnedKind::Deployment);
        collect!(self.jobs, OwnedKind::Job);
        collect!(self.services, OwnedKind::Service);
        collect!(self.config_maps, OwnedKind::ConfigMap);
        collect!(self.secrets, OwnedKind::Secret);
        collect!(self.service_accounts, OwnedKind::ServiceAccount);
        collect!(self.network_policies, OwnedKind::NetworkPolicy);
        collect!(self.pvcs, OwnedKind::PersistentVolumeClaim);
        out
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }

    pub fn job(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Job>> {
        self.jobs.get(&ObjectRef::new(name).within(namespace))
    }
}

/// Waits for a store's first list. Re-polls every second: a waiter registered before the
/// controller started polling the watch was seen to miss the wake-up.
pub async fn ready<K>(store: &Store<K>) -> Result<(), reflector::store::WriterDropped>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(r) =
            tokio::time::timeout(std::time::Duration::from_secs(1), store.wait_until_ready()).await
        {
            return r;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::runtime::utils::Backoff as _;

    use super::{WatchBackoff, slim_partial};

    #[test]
    fn watch_retries_stay_within_4_s_and_start_over_after_an_event() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(8).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert!(delays.windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
        assert_eq!(delays.last(), Some(&Duration::from_secs(4)));
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 4000, 4000, 4000].map(Duration::from_millis)
        );
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn cached_objects_keep_what_the_controller_reads_and_nothing_else() {
        let mut s: kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret> =
            serde_json::from_value(serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {
                    "name": "dev-keyring", "namespace": "team", "uid": "u-1",
                    "resourceVersion": "42", "generation": 3,
                    "creationTimestamp": "2026-12-02T12:00:00Z",
                    "labels": {
                        "parity.dev/environment": "dev", "parity.dev/component": "keyring",
                        "app.kubernetes.io/managed-by": "parity-operator",
                        "app.kubernetes.io/name": "parity"
                    },
                    "annotations": {"a": "b"},
                    "finalizers": ["f"],
                    "ownerReferences": [{"apiVersion": "parity.dev/v1alpha1",
                        "kind": "ParityEnvironment", "name": "dev", "uid": "env-1",
                        "controller": true}],
                    "managedFields": [{"manager": "parity-operator", "operation": "Apply"}]
                }
            }))
            .expect("a Secret's metadata");
        slim_partial(&mut s);
        assert_eq!(
            serde_json::to_value(&s.metadata).expect("json"),
            serde_json::json!({
                "name": "dev-keyring", "namespace": "team", "resourceVersion": "42",
                "labels": {"parity.dev/environment": "dev"},
                "ownerReferences": [{"apiVersion": "parity.dev/v1alpha1",
                    "kind": "ParityEnvironment", "name": "dev", "uid": "env-1",
                    "controller": true}]
            })
        );
        assert!(s.types.is_none());
        // What the controller derives from it is intact.
        assert_eq!(
            super::cached(&s),
            super::Cached {
                name: "dev-keyring".into(),
                resource_version: Some("42".into()),
                owner_uids: vec!["env-1".into()],
            }
        );
        assert_eq!(
            crate::controller::labelled_environment(&s),
            Some(kube::runtime::reflector::ObjectRef::new("dev").within("team"))
        );
    }
}
