//! The operator SIGKILLed at 20 random points while environments are created, their keys
//! rotated and they are deleted, restarted each time (same identity, as a restarted pod with
//! its name would be, so it takes its own Lease back at once). After each phase everything
//! must converge: no duplicate objects, each keyring Secret made once and never regenerated
//! (same uid, same key id and root), status naming the keyring's versions, and deletion
//! keeping (Retain) or removing (Delete) the keyring as asked.
//!
//! The kill points come from a seeded RNG; the seed is printed, and PARITY_FAULT_SEED=<seed>
//! replays a run. A random delay before each kill is the fault's position, not a wait.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::kube_env::TestNamespace;
use support::operator::Operator;
use support::penv::*;
use support::wait::until;

const IDENTITY: &str = "flt-kill";
/// Kills per phase: create, rotation, deletion (20 in all).
const KILLS: [usize; 3] = [7, 7, 6];
const ENVS: [(&str, &str); 2] = [("keep", "Retain"), ("gone", "Delete")];

fn spec(policy: &str) -> Value {
    let mut s = local_spec();
    s["keys"] = json!({"deletionPolicy": policy});
    s
}

/// What must never change about a keyring once made: its Secret's uid, key id and root.
#[derive(PartialEq, Clone)]
struct Identity {
    uid: String,
    key_id: String,
    root: String,
}

/// The root is key material: never in a failure message.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("uid", &self.uid)
            .field("key_id", &self.key_id)
            .field("root", &"<redacted>")
            .finish()
    }
}

fn keyring_json(s: &Secret) -> Value {
    let bytes = &s
        .data
        .as_ref()
        .and_then(|d| d.get("keyring.json"))
        .expect("keyring.json")
        .0;
    serde_json::from_slice(bytes).expect("keyring json")
}

async fn keyring(secrets: &Api<Secret>, env: &str) -> Option<(Identity, Value)> {
    let s = secrets
        .get_opt(&format!("{env}-keyring"))
        .await
        .expect("get keyring")?;
    let json = keyring_json(&s);
    Some((
        Identity {
            uid: s.uid().expect("uid"),
            key_id: json["keyId"].as_str().expect("keyId").to_string(),
            root: json["root"].as_str().expect("root").to_string(),
        },
        json,
    ))
}

struct Chaos {
    ns: TestNamespace,
    op: Operator,
    rng: rand_chacha::ChaCha8Rng,
    kills: Vec<Duration>,
    /// When the operator last started: recovery times count from there.
    started: Instant,
}

impl Chaos {
    /// SIGKILL at a random point within the next 1.5 s, then start again at once.
    async fn kill_somewhere(&mut self) {
        let at = Duration::from_millis(self.rng.gen_range(0..1500));
        tokio::time::sleep(at).await;
        self.op.kill();
        self.kills.push(at);
        self.op = Operator::start(&self.ns.name, IDENTITY, None);
        self.started = Instant::now();
    }
}

/// Waits for every environment to be Ready; how long after `since` that was.
async fn all_ready(envs: &Api<ParityEnvironment>, names: &[&str], since: Instant) -> Duration {
    for name in names {
        wait_condition(envs, name, "Ready", "True").await;
    }
    since.elapsed()
}

/// One object per name and kind, as many as the environments need.
async fn assert_no_duplicates(ns: &TestNamespace, envs: usize) {
    let deployments = names(&ns.api::<Deployment>()).await;
    assert_eq!(deployments.len(), 3 * envs, "{deployments:?}");
    let jobs = names(&ns.api::<Job>()).await;
    assert_eq!(jobs.len(), envs, "{jobs:?}");
    let keyrings: Vec<String> = names(&ns.api::<Secret>())
        .await
        .into_iter()
        .filter(|n| n.ends_with("-keyring"))
        .collect();
    assert_eq!(keyrings.len(), envs, "{keyrings:?}");
}

async fn events_of(ns: &TestNamespace, reason: &str) -> Vec<Event> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// status.keys names exactly the keyring's versions and their states.
fn assert_status_matches_keyring(e: &ParityEnvironment, keyring: &Value) {
    let status: Vec<(String, String)> = e
        .status
        .as_ref()
        .and_then(|s| s.keys.as_ref())
        .expect("status.keys")
        .versions
        .iter()
        .map(|v| (v.id.clone(), format!("{:?}", v.state)))
        .collect();
    let key_id = keyring["keyId"].as_str().expect("keyId");
    let ring: Vec<(String, String)> = keyring["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                format!("{key_id}/{}", v["id"]),
                v["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(status, ring, "status.keys vs the keyring");
}

#[tokio::test]
async fn the_operator_killed_at_20_random_points_converges_and_keeps_every_keyring() {
    let seed: u64 = std::env::var("PARITY_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("PARITY_FAULT_SEED={seed}");
    let ns = TestNamespace::new("flt-kill").await;
    support::crd::install_crd(&ns.client).await;
    let op = Operator::start(&ns.name, IDENTITY, None);
    let mut chaos = Chaos {
        ns,
        op,
        rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        kills: Vec::new(),
        started: Instant::now(),
    };
    let envs: Api<ParityEnvironment> = chaos.ns.api();
    let secrets: Api<Secret> = chaos.ns.api();
    let names_: Vec<&str> = ENVS.iter().map(|(n, _)| *n).collect();

    // Create, killed at random points.
    for (name, policy) in ENVS {
        envs.create(&PostParams::default(), &env(name, spec(policy)))
            .await
            .expect("create");
    }
    for _ in 0..KILLS[0] {
        chaos.kill_somewhere().await;
    }
    let created = all_ready(&envs, &names_, chaos.started).await;
    assert_no_duplicates(&chaos.ns, ENVS.len()).await;
    let mut made = BTreeMap::new();
    for name in &names_ {
        let (id, json) = keyring(&secrets, name).await.expect("a keyring");
        assert_status_matches_keyring(&envs.get(name).await.expect("get"), &json);
        made.insert(name.to_string(), id);
    }
    assert!(
        events_of(&chaos.ns, "KeyringReplaced").await.is_empty(),
        "a keyring was replaced"
    );
    let created_events = events_of(&chaos.ns, "KeyringCreated").await;
    for name in &names_ {
        let n = created_events
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .count();
        assert!(n <= 1, "{name}'s keyring was created {n} times");
    }

    // Rotation (the shortest period the API takes, 1m) with the kills around the moment it
    // falls due, then the period removed.
    let (_, keep_json) = keyring(&secrets, "keep").await.expect("keyring");
    let born: k8s_openapi::jiff::Timestamp = keep_json["versions"][0]["created"]
        .as_str()
        .expect("created")
        .parse()
        .expect("a timestamp");
    for name in &names_ {
        envs.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keys": {"rotation": {"period": "1m"}}}})),
        )
        .await
        .expect("rotation period");
    }
    // Positions the faults: the kills below span [due - 2 s, due + ~5 s].
    let due = born + k8s_openapi::jiff::SignedDuration::from_secs(58);
    if let Ok(left) = Duration::try_from(due.duration_since(k8s_openapi::jiff::Timestamp::now())) {
        tokio::time::sleep(left).await;
    }
    for _ in 0..KILLS[1] {
        chaos.kill_somewhere().await;
    }
    let start = chaos.started;
    for name in &names_ {
        wait_key_versions(&envs, name, 2, WAIT).await;
    }
    let first_rotation = start.elapsed();
    for name in &names_ {
        envs.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keys": {"rotation": {"period": null}}}})),
        )
        .await
        .expect("no rotation");
    }
    let rotated = all_ready(&envs, &names_, chaos.started).await;
    assert_no_duplicates(&chaos.ns, ENVS.len()).await;
    for name in &names_ {
        let (id, json) = keyring(&secrets, name).await.expect("the keyring");
        assert_eq!(id, made[*name], "{name}'s keyring was regenerated");
        // Ids only in messages: the versions hold key material.
        let ids: Vec<u64> = json["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter_map(|v| v["id"].as_u64())
            .collect();
        assert!(ids.iter().any(|&i| i >= 2), "{name} never rotated: {ids:?}");
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: versions not consecutive: {ids:?}"
        );
        assert_status_matches_keyring(&envs.get(name).await.expect("get"), &json);
    }

    // Deletion, killed at random points.
    for name in &names_ {
        envs.delete(name, &DeleteParams::background())
            .await
            .expect("delete");
    }
    for _ in 0..KILLS[2] {
        chaos.kill_somewhere().await;
    }
    let start = chaos.started;
    for name in &names_ {
        until(&format!("{name} finalized"), WAIT, || async {
            envs.get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .map_or(Ok(()), |e| Err(format!("{:?}", e.finalizers())))
        })
        .await;
    }
    let deleted = start.elapsed();
    let (kept, _) = keyring(&secrets, "keep")
        .await
        .expect("the Retain keyring survives deletion");
    assert_eq!(kept, made["keep"], "the retained keyring changed");
    assert!(
        keyring(&secrets, "gone").await.is_none(),
        "the Delete keyring outlived its environment"
    );
    eprintln!(
        "kill points (ms after the previous start): {:?}",
        chaos
            .kills
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>()
    );
    eprintln!(
        "converged, counted from the operator's last start: create {created:?}, rotation {first_rotation:?} (Ready without the period {rotated:?}), deletion {deleted:?}"
    );
}
