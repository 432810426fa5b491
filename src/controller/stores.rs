//! Caches of the objects environments own, fed by watches limited to the operator's label.
//! Of each object only what the controller reads is kept: its resourceVersion, its owners'
//! uids and, for Deployments and Jobs, the replica counts and the outcome that drive the
//! conditions. Everything else, Deployments' pod templates included, is dropped as it is
//! read, so an operator with a thousand environments keeps a few hundred bytes per object.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Deserialize;

use crate::controller::conditions::JobState;
use crate::resources::{LABEL_MANAGED_BY, MANAGED_BY, Object, OwnedKind};

pub type Trigger<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// A Deployment as the controller reads it. Read into this type straight from the API
/// server's answer, so the pod template, most of a Deployment, is never built.
#[derive(kube::Resource, Clone, Debug, Deserialize)]
#[resource(inherit = Deployment)]
pub struct DeploymentReplicas {
    pub metadata: ObjectMeta,
    pub spec: Option<ReplicasWanted>,
    pub status: Option<ReplicasAvailable>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReplicasWanted {
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasAvailable {
    pub available_replicas: Option<i32>,
}

/// A Job as the controller reads it: its conditions.
#[derive(kube::Resource, Clone, Debug, Deserialize)]
#[resource(inherit = Job)]
pub struct JobConditions {
    pub metadata: ObjectMeta,
    pub status: Option<JobConditionList>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JobConditionList {
    pub conditions: Option<Vec<JobCondition>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JobCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub message: Option<String>,
}

/// What the controller reads of an object beyond its identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reported {
    #[default]
    Nothing,
    /// A Deployment's replicas: wanted (unset means 1) and available.
    Replicas { wanted: i32, available: i32 },
    /// How far a Job got.
    Job(JobState),
}

fn replicas(d: &DeploymentReplicas) -> Reported {
    Reported::Replicas {
        wanted: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        available: d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

fn job_outcome(j: &JobConditions) -> Reported {
    let conditions = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    Reported::Job(if holds("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(c) = holds("Failed") {
        JobState::Failed(
            c.message
                .clone()
                .unwrap_or_else(|| "see the Job's pod logs".into()),
        )
    } else {
        JobState::Running
    })
}

/// Identity and version of a cached object: enough to tell whether it changed since we
/// last applied it, and who owns it; plus what it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub name: String,
    pub resource_version: Option<String>,
    pub owner_uids: Vec<String>,
    pub reported: Reported,
}

/// A cached object without its name, which is half of its key.
struct Entry {
    resource_version: Option<String>,
    owner_uids: Vec<String>,
    reported: Reported,
}

/// (namespace, name)
type Key = (String, String);

#[derive(Default)]
struct Objects {
    live: HashMap<Key, Entry>,
    /// Filled during a (re)list and swapped in when it is complete, so that objects deleted
    /// while the watch was down go.
    relisting: Option<HashMap<Key, Entry>>,
}

/// One kind's cache.
#[derive(Clone)]
pub struct Cache {
    objects: Arc<Mutex<Objects>>,
    listed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            objects: Arc::default(),
            listed: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Cache {
    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        // A panic elsewhere while holding the lock leaves maps that are still consistent.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one watch event; `read` takes what the controller reads of an object.
    pub fn apply<K: Resource>(&self, event: &watcher::Event<K>, read: fn(&K) -> Reported) {
        let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
        let entry = |o: &K| {
            let entry = Entry {
                resource_version: o.resource_version(),
                owner_uids: o.owner_references().iter().map(|r| r.uid.clone()).collect(),
                reported: read(o),
            };
            (key(o), entry)
        };
        let mut objects = self.objects();
        match event {
            watcher::Event::Apply(o) => {
                let (key, entry) = entry(o);
                objects.live.insert(key, entry);
            }
            watcher::Event::Delete(o) => {
                objects.live.remove(&key(o));
            }
            watcher::Event::Init => objects.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(o) => {
                let (key, entry) = entry(o);
                objects.relisting.get_or_insert_default().insert(key, entry);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = objects.relisting.take() {
                    objects.live = listed;
                }
                drop(objects);
                self.listed.send_replace(true);
            }
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Cached> {
        let key = (namespace.to_string(), name.to_string());
        self.objects().live.get(&key).map(|e| cached(&key, e))
    }

    /// Every object in `namespace` owned by `owner_uid`.
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Vec<Cached> {
        self.objects()
            .live
            .iter()
            .filter(|((ns, _), e)| ns == namespace && e.owner_uids.iter().any(|u| u == owner_uid))
            .map(|(key, e)| cached(key, e))
            .collect()
    }

    /// Waits for the first complete list.
    pub async fn listed(&self) {
        // The sender lives as long as `self`, so this cannot fail.
        let _ = self.listed.subscribe().wait_for(|listed| *listed).await;
    }
}

fn cached((_, name): &Key, e: &Entry) -> Cached {
    Cached {
        name: name.clone(),
        resource_version: e.resource_version.clone(),
        owner_uids: e.owner_uids.clone(),
        reported: e.reported.clone(),
    }
}

/// One cache per owned kind.
#[derive(Clone)]
pub struct Stores {
    caches: Arc<[Cache]>,
}

impl Default for Stores {
    fn default() -> Self {
        Stores {
            caches: OwnedKind::ALL.iter().map(|_| Cache::default()).collect(),
        }
    }
}

impl Stores {
    pub fn cache(&self, kind: OwnedKind) -> &Cache {
        // OwnedKind::ALL lists the kinds in declaration order (a test checks it).
        &self.caches[kind as usize]
    }

    /// Every cache is filled from its first list.
    pub async fn wait_until_ready(&self) {
        for cache in self.caches.iter() {
            cache.listed().await;
        }
    }

    /// The cached object of the same kind, namespace and name as `o`.
    pub fn get(&self, o: &Object, namespace: &str) -> Option<Cached> {
        self.cache(o.owned_kind()).get(namespace, o.name())
    }

    /// Every cached object in `namespace` owned by `owner_uid`, with its kind.
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Vec<(OwnedKind, Cached)> {
        OwnedKind::ALL
            .iter()
            .flat_map(|&kind| {
                self.cache(kind)
                    .owned_by(namespace, owner_uid)
                    .into_iter()
                    .map(move |c| (kind, c))
            })
            .collect()
    }

    /// The Deployment has all the replicas it wants (and wants some).
    pub fn deployment_available(&self, namespace: &str, name: &str) -> bool {
        match self.cache(OwnedKind::Deployment).get(namespace, name) {
            Some(Cached {
                reported: Reported::Replicas { wanted, available },
                ..
            }) => wanted > 0 && available >= wanted,
            _ => false,
        }
    }

    pub fn job_state(&self, namespace: &str, name: &str) -> JobState {
        match self.cache(OwnedKind::Job).get(namespace, name) {
            None => JobState::Absent,
            Some(Cached {
                reported: Reported::Job(state),
                ..
            }) => state,
            Some(_) => JobState::Running,
        }
    }
}

/// The trigger streams to hand to the Controller (one per kind); they fill the caches.
pub struct Triggers {
    pub deployments: Trigger<DeploymentReplicas>,
    pub jobs: Trigger<JobConditions>,
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
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn owned() -> watcher::Config {
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

/// A watch feeding `cache`, passed on as the controller's trigger.
fn cached_watch<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    cache: &Cache,
    read: fn(&K) -> Reported,
    relisted: &futures::channel::mpsc::UnboundedSender<()>,
) -> Trigger<K>
where
    K: Resource + Clone + Send + 'static,
{
    let (cache, relisted) = (cache.clone(), relisted.clone());
    let stream = events
        .backoff(WatchBackoff::default())
        .inspect(move |e| {
            if let Ok(event) = e {
                cache.apply(event, read);
                if matches!(event, watcher::Event::InitDone) {
                    let _ = relisted.unbounded_send(());
                }
            }
        })
        .touched_objects();
    without_errors(stream)
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
    without_errors(
        watcher(
            api::<PartialObjectMeta<crate::api::ParityEnvironment>>(client, namespace),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::default())
        .touched_objects(),
    )
}

/// The watches of every owned kind, labelled as the operator's. Deployments and Jobs are read
/// in full for their status; the rest as metadata only (`PartialObjectMeta`), so Secret data
/// is never sent.
pub fn start(client: &Client, namespace: Option<&str>) -> (Stores, Triggers) {
    let stores = Stores::default();
    let (tx, relisted) = futures::channel::mpsc::unbounded();
    macro_rules! metadata {
        ($kind:ident) => {
            cached_watch(
                watcher(api::<PartialObjectMeta<$kind>>(client, namespace), owned()),
                stores.cache(OwnedKind::$kind),
                |_| Reported::Nothing,
                &tx,
            )
        };
    }
    let triggers = Triggers {
        deployments: cached_watch(
            watcher(api::<DeploymentReplicas>(client, namespace), owned()),
            stores.cache(OwnedKind::Deployment),
            replicas,
            &tx,
        ),
        jobs: cached_watch(
            watcher(api::<JobConditions>(client, namespace), owned()),
            stores.cache(OwnedKind::Job),
            job_outcome,
            &tx,
        ),
        services: metadata!(Service),
        config_maps: metadata!(ConfigMap),
        secrets: metadata!(Secret),
        service_accounts: metadata!(ServiceAccount),
        network_policies: metadata!(NetworkPolicy),
        pvcs: metadata!(PersistentVolumeClaim),
        relisted,
    };
    (stores, triggers)
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

    use k8s_openapi::api::core::v1::Secret;
    use kube::core::PartialObjectMeta;
    use kube::runtime::utils::Backoff as _;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    #[test]
    fn watch_retries_stay_within_4_s_and_start_over_after_an_event() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(8).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 4000, 4000, 4000].map(Duration::from_millis)
        );
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn each_kind_has_its_own_cache() {
        for (i, kind) in OwnedKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
        let stores = Stores::default();
        stores.cache(OwnedKind::Secret).apply(
            &Event::Apply(secret("team", "dev-keyring", "7", "env-1")),
            |_| Reported::Nothing,
        );
        assert!(
            stores
                .cache(OwnedKind::ConfigMap)
                .get("team", "dev-keyring")
                .is_none()
        );
        assert!(
            stores
                .cache(OwnedKind::Secret)
                .get("team", "dev-keyring")
                .is_some()
        );
    }

    fn secret(ns: &str, name: &str, rv: &str, owner: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {
                "name": name, "namespace": ns, "uid": "u-1", "resourceVersion": rv,
                "labels": {"parity.dev/environment": "dev"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "parity.dev/v1alpha1",
                    "kind": "ParityEnvironment", "name": "dev", "uid": owner,
                    "controller": true}],
                "managedFields": [{"manager": "parity-operator", "operation": "Apply"}]
            }
        }))
        .expect("a Secret's metadata")
    }

    #[test]
    fn a_cached_object_keeps_its_version_and_owners() {
        let cache = Cache::default();
        cache.apply(
            &Event::Apply(secret("team", "dev-keyring", "42", "env-1")),
            |_| Reported::Nothing,
        );
        let want = Cached {
            name: "dev-keyring".into(),
            resource_version: Some("42".into()),
            owner_uids: vec!["env-1".into()],
            reported: Reported::Nothing,
        };
        assert_eq!(cache.get("team", "dev-keyring"), Some(want.clone()));
        assert_eq!(cache.owned_by("team", "env-1"), [want]);
        assert!(cache.owned_by("team", "env-2").is_empty());
        assert!(cache.owned_by("other", "env-1").is_empty());
        assert!(cache.get("other", "dev-keyring").is_none());
        // The trigger maps a Secret to its environment by label (the keyring has no owner).
        assert_eq!(
            crate::controller::labelled_environment(&secret("team", "dev-keyring", "42", "e")),
            Some(kube::runtime::reflector::ObjectRef::new("dev").within("team"))
        );

        cache.apply(
            &Event::Delete(secret("team", "dev-keyring", "43", "env-1")),
            |_| Reported::Nothing,
        );
        assert!(cache.get("team", "dev-keyring").is_none());
    }

    #[tokio::test]
    async fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
        let cache = Cache::default();
        let none = |_: &PartialObjectMeta<Secret>| Reported::Nothing;
        cache.apply(&Event::Init, none);
        cache.apply(&Event::InitApply(secret("team", "a", "1", "env-1")), none);
        cache.apply(&Event::InitApply(secret("team", "b", "1", "env-1")), none);
        // Nothing is visible, and the cache is not listed, until the list is complete.
        assert!(cache.get("team", "a").is_none());
        assert!(!*cache.listed.borrow());
        cache.apply(&Event::InitDone, none);
        tokio::time::timeout(Duration::from_secs(1), cache.listed())
            .await
            .expect("listed after InitDone");
        assert_eq!(cache.owned_by("team", "env-1").len(), 2);

        cache.apply(&Event::Init, none);
        cache.apply(&Event::InitApply(secret("team", "a", "2", "env-1")), none);
        // Until the relist is complete the old objects stay.
        assert!(cache.get("team", "b").is_some());
        cache.apply(&Event::InitDone, none);
        assert!(cache.get("team", "b").is_none());
        let a = cache.get("team", "a").expect("a");
        assert_eq!(a.resource_version.as_deref(), Some("2"));
    }

    fn deployment(replicas: Option<i32>, status: serde_json::Value) -> DeploymentReplicas {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "kms"}},
            "template": {"metadata": {"labels": {"app": "kms"}},
                "spec": {"containers": [{"name": "kms", "image": "parity:dev",
                    "args": ["kms"], "ports": [{"containerPort": 4599}]}]}}
        });
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "dev-kms", "namespace": "team", "resourceVersion": "9"},
            "spec": spec, "status": status
        }))
        .expect("a Deployment")
    }

    #[test]
    fn a_deployment_is_available_with_all_the_replicas_it_wants() {
        let stores = Stores::default();
        let available = |d: DeploymentReplicas| {
            stores
                .cache(OwnedKind::Deployment)
                .apply(&Event::Apply(d), replicas);
            stores.deployment_available("team", "dev-kms")
        };
        assert!(!stores.deployment_available("team", "dev-kms"), "absent");
        assert!(available(deployment(None, json!({"availableReplicas": 1}))));
        assert!(available(deployment(
            Some(2),
            json!({"availableReplicas": 2})
        )));
        assert!(!available(deployment(
            Some(2),
            json!({"availableReplicas": 1})
        )));
        assert!(!available(deployment(Some(1), json!({}))));
        assert!(!available(deployment(Some(1), serde_json::Value::Null)));
        // Scaled to zero is not available.
        assert!(!available(deployment(
            Some(0),
            json!({"availableReplicas": 0})
        )));
    }

    #[test]
    fn a_job_reports_its_outcome() {
        let stores = Stores::default();
        let state = |conditions: serde_json::Value| {
            let job: JobConditions = serde_json::from_value(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "dev-bootstrap", "namespace": "team"},
                "spec": {"template": {"spec": {"containers": []}}},
                "status": {"conditions": conditions}
            }))
            .expect("a Job");
            stores
                .cache(OwnedKind::Job)
                .apply(&Event::Apply(job), job_outcome);
            stores.job_state("team", "dev-bootstrap")
        };
        assert_eq!(stores.job_state("team", "dev-bootstrap"), JobState::Absent);
        assert_eq!(state(json!([])), JobState::Running);
        assert_eq!(
            state(json!([{"type": "Complete", "status": "True"}])),
            JobState::Succeeded
        );
        assert_eq!(
            state(json!([{"type": "Complete", "status": "False"}])),
            JobState::Running
        );
        assert_eq!(
            state(json!([{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])),
            JobState::Failed("BackoffLimitExceeded".into())
        );
        assert_eq!(
            state(json!([{"type": "Failed", "status": "True"}])),
            JobState::Failed("see the Job's pod logs".into())
        );
    }
}
