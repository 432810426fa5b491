//! In-process reconciles against a scripted apiserver (tower-test's mock service behind a
//! real kube Client): what a reconcile writes, and in which order, in milliseconds. The
//! tests against a real apiserver (tests/operator*.rs) stay the proof that it converges.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::api::{ParityEnvironment, validate};
use crate::controller::reconcile::reconcile;
use crate::controller::stores::{Reported, Stores};
use crate::controller::{Context, Error, KEYRING_FINALIZER, memory, metrics};
use crate::crypto::keyring::{KEYRING_SECRET_KEY, Keyring};
use crate::resources::{self, BuildContext, OwnedKind};

/// One request the reconcile made.
#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    body: Value,
}

impl Call {
    fn is(&self, method: &Method, path_end: &str) -> bool {
        self.method == *method && self.path.ends_with(path_end)
    }

    /// A write to anything but the environment itself and its events.
    fn writes_a_child(&self) -> bool {
        self.method != Method::GET
            && !self.path.contains("/parityenvironments/")
            && !self.path.contains("/events")
    }
}

/// The scripted apiserver's answer: status code and JSON body.
type Answer = (StatusCode, Value);

fn not_found() -> Answer {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Owned by the environment `dev` (uid u-1), as the caches hold it.
fn owned<K: Resource<DynamicType = ()>>(name: &str) -> PartialObjectMeta<K> {
    PartialObjectMeta {
        types: None,
        _phantom: std::marker::PhantomData,
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("team".into()),
            resource_version: Some("1".into()),
            owner_references: Some(vec![OwnerReference {
                uid: "u-1".into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
    }
}

/// Runs one reconcile of `env` against an apiserver that answers with `answer` (given each
/// call and the environment); returns its result and every call, in order.
async fn run(
    env: &ParityEnvironment,
    answer: impl Fn(&Call, &ParityEnvironment) -> Answer + Send + 'static,
) -> (Result<kube::runtime::controller::Action, Error>, Vec<Call>) {
    run_with(env, Stores::default(), answer).await
}

async fn run_with(
    env: &ParityEnvironment,
    stores: Stores,
    answer: impl Fn(&Call, &ParityEnvironment) -> Answer + Send + 'static,
) -> (Result<kube::runtime::controller::Action, Error>, Vec<Call>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let served = env.clone();
    let server = tokio::spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call { method, path, body };
            let (status, body) = answer(&call, &served);
            seen.lock().expect("calls").push(call);
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("response");
            reply.send_response(response);
        }
    });
    let metrics = metrics::Metrics::default();
    let ctx = Arc::new(Context {
        client,
        build: BuildContext::new("parity:test"),
        reporter: Reporter {
            controller: "parity-operator".into(),
            instance: None,
        },
        stores,
        memory: memory::Memory::new(reflector::store().0, metrics.tracked_environments.clone()),
        metrics,
        live: None,
    });
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reconcile(Arc::new(env.clone()), ctx),
    )
    .await
    .expect("the reconcile finishes");
    // The reconcile dropped its client: the server sees the end of its requests.
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server finishes")
        .expect("the server does not panic");
    let calls = calls.lock().expect("calls").clone();
    (result, calls)
}

/// An apiserver with nothing but the environment: reads of anything else are 404, writes
/// are echoed back as stored.
fn only_the_environment(call: &Call, env: &ParityEnvironment) -> Answer {
    if call.path.contains("/parityenvironments/") {
        return (StatusCode::OK, serde_json::to_value(env).expect("env"));
    }
    if call.method == Method::GET {
        return not_found();
    }
    let mut body = call.body.clone();
    body["metadata"]["resourceVersion"] = json!("1");
    (StatusCode::OK, body)
}

fn environment(spec: Value) -> ParityEnvironment {
    serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": "dev", "namespace": "team", "uid": "u-1", "generation": 2,
                     "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec
    }))
    .expect("environment")
}

/// The first call of `method` to a path ending in `path_end`.
fn find<'a>(calls: &'a [Call], method: &Method, path_end: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.is(method, path_end))
        .unwrap_or_else(|| panic!("no {method} .../{path_end} in {calls:#?}"))
}

/// An apiserver where `path_end` answers reads with `stored`, and otherwise has only the
/// environment.
fn holding(
    path_end: &'static str,
    stored: Value,
) -> impl Fn(&Call, &ParityEnvironment) -> Answer + Send + 'static {
    move |call, env| {
        if call.is(&Method::GET, path_end) {
            (StatusCode::OK, stored.clone())
        } else {
            only_the_environment(call, env)
        }
    }
}

fn condition(call: &Call, type_: &str) -> Value {
    call.body["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_invalid_spec_is_reported_in_status_and_nothing_is_written() {
    // Local environments have no ttl.
    let env = environment(json!({"tier": "Local", "ttl": "1h"}));
    let (result, calls) = run(&env, only_the_environment).await;
    assert!(result.is_ok(), "{result:?}");
    let status = find(&calls, &Method::PATCH, "/parityenvironments/dev/status");
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.ttl")),
        "{ready}"
    );
    let event = find(&calls, &Method::POST, "/events");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidSpec");
    // Neither the environment's objects nor its finalizers are touched.
    assert!(!calls.iter().any(Call::writes_a_child), "{calls:#?}");
    assert!(
        !calls
            .iter()
            .any(|c| c.is(&Method::PATCH, "/parityenvironments/dev")),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn the_finalizer_goes_on_before_a_keyring_is_created() {
    let env = environment(json!({"tier": "Local"}));
    let (_, calls) = run(&env, only_the_environment).await;
    let finalizer = calls
        .iter()
        .position(|c| c.is(&Method::PATCH, "/parityenvironments/dev"))
        .expect("the finalizer patch");
    assert_eq!(
        calls[finalizer].body["metadata"]["finalizers"],
        json!([KEYRING_FINALIZER])
    );
    // Guarded by the environment's resourceVersion.
    assert_eq!(calls[finalizer].body["metadata"]["resourceVersion"], "7");
    let created = calls
        .iter()
        .position(|c| c.is(&Method::POST, "/namespaces/team/secrets"))
        .expect("the keyring created");
    assert!(finalizer < created, "{calls:#?}");
    let keyring = &calls[created].body;
    assert_eq!(keyring["metadata"]["name"], "dev-keyring");
    // No owner reference: the garbage collector never decides a keyring's fate.
    assert!(
        keyring["metadata"]["ownerReferences"].is_null(),
        "{keyring}"
    );
    assert!(keyring["data"][KEYRING_SECRET_KEY].is_string(), "{keyring}");
}

#[tokio::test]
async fn an_existing_keyring_is_read_and_never_written() {
    let mut env = environment(json!({"tier": "Local"}));
    env.meta_mut().finalizers = Some(vec![KEYRING_FINALIZER.into()]);
    let valid = validate(&env).expect("valid");
    let mut keyring: Secret = resources::keyring_secret(&valid);
    keyring.metadata.resource_version = Some("3".into());
    keyring.data = Some(
        [(
            KEYRING_SECRET_KEY.to_string(),
            ByteString(
                Keyring::generate(k8s_openapi::jiff::Timestamp::now())
                    .to_json()
                    .to_vec(),
            ),
        )]
        .into(),
    );
    let stored = serde_json::to_value(&keyring).expect("keyring");
    let (_, calls) = run(&env, holding("/secrets/dev-keyring", stored)).await;
    find(&calls, &Method::GET, "/secrets/dev-keyring");
    let written: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method != Method::GET)
        .filter(|c| {
            c.path.ends_with("/secrets/dev-keyring") || c.body["metadata"]["name"] == "dev-keyring"
        })
        .collect();
    assert!(written.is_empty(), "{written:#?}");
    // The finalizer is there already: the environment is not patched.
    assert!(
        !calls
            .iter()
            .any(|c| c.is(&Method::PATCH, "/parityenvironments/dev")),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn a_strangers_secret_in_the_keyrings_place_is_refused_and_left_alone() {
    let mut env = environment(json!({"tier": "Local"}));
    env.meta_mut().finalizers = Some(vec![KEYRING_FINALIZER.into()]);
    let stranger = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dev-keyring", "namespace": "team", "resourceVersion": "5"},
        "data": {KEYRING_SECRET_KEY: "e30="}});
    let (result, calls) = run(&env, holding("/secrets/dev-keyring", stranger)).await;
    // Waits for the user, without failing the reconcile into backoff.
    assert!(result.is_ok(), "{result:?}");
    let status = find(&calls, &Method::PATCH, "/parityenvironments/dev/status");
    let keys = condition(status, "KeysReady");
    assert_eq!(keys["reason"], "KeyringUnavailable");
    assert!(
        keys["message"]
            .as_str()
            .is_some_and(|m| m.contains("dev-keyring") && m.contains("not made by parity-operator")),
        "{keys}"
    );
    assert!(!calls.iter().any(Call::writes_a_child), "{calls:#?}");
}

#[tokio::test]
async fn an_expired_environment_is_deleted_and_nothing_else_is_written() {
    // Created 2026-01-01 with a one-hour ttl: long expired.
    let env = environment(json!({"tier": "CI", "ttl": "1h"}));
    let (result, calls) = run(&env, only_the_environment).await;
    assert!(result.is_ok(), "{result:?}");
    let deleted = calls
        .iter()
        .position(|c| c.is(&Method::DELETE, "/parityenvironments/dev"))
        .expect("the environment deleted");
    let event = find(&calls, &Method::POST, "/events");
    assert_eq!(event.body["reason"], "Expired");
    // Deleting is the reconcile's last call, and no child was written before it.
    assert_eq!(deleted, calls.len() - 1, "{calls:#?}");
    assert!(!calls.iter().any(Call::writes_a_child), "{calls:#?}");
}

#[tokio::test]
async fn orphans_are_deleted_but_kept_secrets_never_are() {
    let mut env = environment(json!({"tier": "Local"}));
    env.meta_mut().finalizers = Some(vec![KEYRING_FINALIZER.into()]);
    let stores = Stores::default();
    for name in [
        "dev-secrets",
        "dev-connection",
        "dev-rollout-key",
        "dev-old-credentials",
    ] {
        stores
            .cache(OwnedKind::Secret)
            .apply(&watcher::Event::Apply(owned::<Secret>(name)), |_| {
                Reported::Nothing
            });
    }
    stores.cache(OwnedKind::ConfigMap).apply(
        &watcher::Event::Apply(owned::<ConfigMap>("dev-old")),
        |_| Reported::Nothing,
    );
    let (_, calls) = run_with(&env, stores, only_the_environment).await;
    let mut deleted: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path.as_str())
        .collect();
    deleted.sort_unstable();
    assert_eq!(
        deleted,
        [
            "/api/v1/namespaces/team/configmaps/dev-old",
            "/api/v1/namespaces/team/secrets/dev-old-credentials",
        ],
        "{calls:#?}"
    );
}
