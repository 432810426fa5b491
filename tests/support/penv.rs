//! ParityEnvironments on the test control plane: a namespace with the CRD and an operator,
//! environments from JSON specs, and waits on their conditions and events.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use parity_operator::api::ParityEnvironment;
use serde_json::{Value, json};

use super::kube_env::TestNamespace;
use super::operator::Operator;
use super::wait::until;

pub const WAIT: Duration = Duration::from_secs(90);

pub fn env(name: &str, spec: Value) -> ParityEnvironment {
    serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("environment json")
}

pub fn local_spec() -> Value {
    json!({
        "tier": "Local", "parityLevel": 2,
        "dynamodb": {"tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]},
        "dashboard": {"enabled": true, "decryption": "Server"}
    })
}

pub async fn setup(prefix: &str) -> (TestNamespace, Operator, Api<ParityEnvironment>) {
    let ns = TestNamespace::new(prefix).await;
    super::crd::install_crd(&ns.client).await;
    let op = Operator::start(&ns.name, &format!("{prefix}-a"), None);
    let envs: Api<ParityEnvironment> = ns.api();
    (ns, op, envs)
}

pub fn condition(e: &ParityEnvironment, t: &str) -> Option<(String, String, Option<i64>)> {
    e.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| {
            (
                format!("{:?}", c.status),
                c.reason.clone(),
                c.observed_generation,
            )
        })
}

pub async fn wait_condition(
    envs: &Api<ParityEnvironment>,
    name: &str,
    t: &str,
    status: &str,
) -> ParityEnvironment {
    until(&format!("{name} condition {t}={status}"), WAIT, || async {
        let e = envs.get(name).await.map_err(|e| e.to_string())?;
        match condition(&e, t) {
            Some((s, _, g)) if s == status && g == e.meta().generation => Ok(e),
            other => Err(format!(
                "{t}: {other:?}; Ready: {:?}",
                condition(&e, "Ready")
            )),
        }
    })
    .await
}

pub async fn names<K>(api: &Api<K>) -> Vec<String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut v: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    v.sort();
    v
}

pub async fn wait_warning(ns: &TestNamespace, reason: &str) -> Event {
    wait_event_of(ns, "Warning", reason).await
}

pub async fn wait_event(ns: &TestNamespace, reason: &str) -> Event {
    wait_event_of(ns, "Normal", reason).await
}

async fn wait_event_of(ns: &TestNamespace, type_: &str, reason: &str) -> Event {
    let events: Api<Event> = ns.api();
    until(&format!("a {type_} event {reason}"), WAIT, || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
            .ok_or(format!("events: {reasons:?}"))
    })
    .await
}

pub fn ready_message(e: &ParityEnvironment) -> String {
    e.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Waits until `name` lists at least `n` key versions in status.keys.
pub async fn wait_key_versions(
    envs: &Api<ParityEnvironment>,
    name: &str,
    n: usize,
    timeout: Duration,
) {
    until(
        &format!("{name} to list {n} key versions"),
        timeout,
        || async {
            let e = envs.get(name).await.map_err(|e| e.to_string())?;
            let have = e
                .status
                .and_then(|s| s.keys)
                .map_or(0, |k| k.versions.len());
            if have >= n {
                Ok(())
            } else {
                Err(format!("{have} version(s)"))
            }
        },
    )
    .await
}
