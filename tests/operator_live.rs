//! `--live-drift`: the operator compares a Staging environment's declared topology with
//! DescribeTable at its external endpoint (moto server on loopback standing in for the AWS
//! account), flips InSync when the live tables change, and shrugs off an unreachable one.

#[path = "support/dynamo_env.rs"]
mod dynamo_env;
mod support;

use std::time::Duration;

use dynamo_env::{parity, repo};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use parity_operator::api::ParityEnvironment;
use parity_operator::dynamo::connect::{AwsArgs, client};
use serde_json::{Value, json};
use support::kube_env::TestNamespace;
use support::moto::Moto;
use support::operator::Operator;
use support::wait::until;

const WAIT: Duration = Duration::from_secs(60);
/// Signs the operator's calls to the "staging account"; must never be printed.
const CANARY_SECRET: &str = "CANARY-live-drift-secret-key-7f3a9";

fn staging(name: &str, endpoint: &str) -> ParityEnvironment {
    let topology: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("examples/topology.yaml")).expect("topology"),
    )
    .expect("yaml");
    serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": name},
        "spec": {
            "tier": "Staging", "parityLevel": 1,
            "keys": {"provider": "Kms", "kms": {"keyId": "alias/app", "region": "eu-west-1"}},
            "dynamodb": {"external": {"endpoint": endpoint, "region": "eu-west-1"}},
            "topology": topology
        }
    }))
    .expect("environment")
}

async fn in_sync(
    envs: &Api<ParityEnvironment>,
    name: &str,
    status: &str,
    reason: &str,
) -> ParityEnvironment {
    until(
        &format!("{name} InSync={status} {reason}"),
        WAIT,
        || async {
            let e = envs.get(name).await.map_err(|e| e.to_string())?;
            let c = e
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "InSync"))
                .cloned();
            match c {
                Some(c) if format!("{:?}", c.status) == status && c.reason == reason => Ok(e),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn staging_in_sync_follows_its_live_tables() {
    let moto = Moto::start();
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "--region",
        "eu-west-1",
        "-f",
        &repo("examples/topology.yaml"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");

    let ns = TestNamespace::new("op-live").await;
    support::crd::install_crd(&ns.client).await;
    let op = Operator::start_with(
        &ns.name,
        "op-live-a",
        None,
        &["--live-drift", "--live-drift-interval", "1"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDLIVEDRIFTTEST"),
            ("AWS_SECRET_ACCESS_KEY", CANARY_SECRET),
        ],
    );
    let envs: Api<ParityEnvironment> = ns.api();
    for e in [
        staging("staging", &moto.endpoint),
        // Nothing listens on port 9: reported, never fatal.
        staging("unreachable", "http://127.0.0.1:9"),
    ] {
        envs.create(&PostParams::default(), &e)
            .await
            .expect("create");
    }

    let e = in_sync(&envs, "staging", "True", "LiveInSync").await;
    assert!(e.status.expect("status").drift.is_empty());

    // Someone turns TTL off in the account: the operator notices without any spec change.
    let aws = AwsArgs {
        region: "eu-west-1".into(),
        ..AwsArgs::default()
    };
    let client = client(&moto.endpoint, &aws, 1);
    client
        .update_time_to_live()
        .table_name("orders")
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name("expiresAt")
                .enabled(false)
                .build()
                .expect("ttl spec"),
        )
        .send()
        .await
        .expect("disable ttl");
    let e = in_sync(&envs, "staging", "False", "LiveDrift").await;
    let status = e.status.expect("status");
    assert_eq!(status.drift.len(), 1, "{:?}", status.drift);
    assert_eq!(status.drift[0].path, "live.tables[orders].ttlAttribute");
    assert_eq!(status.drift[0].expected.as_deref(), Some("expiresAt"));
    // Drift is information, not an outage.
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    assert_eq!(
        ready.map(|c| format!("{:?}", c.status)),
        Some("True".into())
    );

    let u = in_sync(&envs, "unreachable", "True", "NotMirrored").await;
    let c = u
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "InSync"))
        .expect("InSync");
    assert!(
        c.message
            .contains("live tables at http://127.0.0.1:9 not checked"),
        "{}",
        c.message
    );

    // The credential never leaves the process.
    let events = serde_json::to_string(
        &ns.api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    let statuses =
        serde_json::to_string(&envs.list(&ListParams::default()).await.expect("list").items)
            .expect("json");
    for (what, text) in [("log", op.logs()), ("events", events), ("status", statuses)] {
        assert!(!text.contains(CANARY_SECRET), "secret key in {what}");
    }
}
