//! `parity bootstrap` as the Job runs it: a real process against moto server.

// support/wait.rs (shared) trips unused_assignments; not used here.
#[path = "support/dynamo_env.rs"]
mod dynamo_env;
#[allow(unused_assignments)]
mod support;

use std::time::Duration;

use dynamo_env::{MotoAt, ddb, parity, parity_cmd, repo};
use parity_operator::dynamo::live::capture;
use parity_operator::dynamo::topology::Topology;

fn example_topology() -> Topology {
    Topology::from_yaml_str(&std::fs::read_to_string(repo("examples/topology.yaml")).unwrap())
        .unwrap()
}

#[tokio::test]
async fn bootstrap_waits_for_an_endpoint_that_comes_up_late_then_creates_the_tables() {
    let port = support::moto::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let topology = repo("examples/topology.yaml");
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr");
    let child = parity_cmd(&[
        "bootstrap",
        "--endpoint",
        &endpoint,
        "--topology",
        &topology,
        "--initial-backoff",
        "100ms",
        "--max-backoff",
        "400ms",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    // Nothing listens yet: the process keeps retrying, up to the capped delay, until moto is up.
    support::wait::until(
        "retries up to --max-backoff",
        Duration::from_secs(60),
        || async {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            if err.contains("next retry in 400ms") {
                Ok(())
            } else {
                Err(err)
            }
        },
    )
    .await;
    let moto = MotoAt::start(port);
    let out = child.wait_with_output().unwrap();
    let run = dynamo_env::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: std::fs::read_to_string(&log).unwrap(),
    };
    assert_eq!(run.code, 0, "{run:?}");

    // One clear line per failed attempt: number, next delay, the error.
    assert!(
        run.stderr.contains(&format!(
            "waiting for DynamoDB at {endpoint}: attempt 1 failed, next retry in 100ms: "
        )),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("attempt 2 failed, next retry in 200ms: ")
            && run.stderr.contains("Connection refused"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("next retry in 400ms"),
        "the delay is capped at --max-backoff: {run:?}"
    );
    assert!(
        !run.stderr.contains("next retry in 800ms"),
        "the delay exceeded --max-backoff: {run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("DynamoDB at {endpoint} is ready (attempt ")),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("bootstrap complete: 2 table change(s)"),
        "{run:?}"
    );

    // The live tables are exactly the declared ones, indexes, TTL and stream included.
    let live = capture(&ddb(&moto.endpoint), &[]).await.unwrap();
    let declared = example_topology();
    let drift = parity_operator::dynamo::diff(
        &Topology {
            tables: declared.tables,
            ..Default::default()
        },
        &live,
    );
    assert_eq!(drift, vec![], "live tables differ from the topology");
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_after_the_wait_timeout_with_the_last_error() {
    let port = support::moto::free_port();
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &format!("http://127.0.0.1:{port}"),
        "-f",
        &repo("examples/topology.yaml"),
        "--wait-timeout",
        "1s",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: DynamoDB at http://127.0.0.1:{port} did not answer within 1s ("
        )) && run.stderr.contains("last error: "),
        "{run:?}"
    );
}

/// The example fixtures without their encryption schema: these tests run no key service
/// (encrypted seeds are tested in tests/dynamo_seed.rs and end to end).
fn plain_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["orders.jsonl", "customers.json"] {
        std::fs::copy(repo(&format!("examples/fixtures/{f}")), dir.path().join(f)).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_second_bootstrap_changes_nothing_and_says_so() {
    let moto = support::moto::Moto::start();
    let fixtures = plain_fixtures();
    let args = [
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &fixtures.path().display().to_string(),
    ];
    let first = parity(&args);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first
            .stdout
            .contains("bootstrap complete: 2 table change(s), 5 seed item(s) written"),
        "{first:?}"
    );
    let before = capture(&ddb(&moto.endpoint), &[]).await.unwrap();

    let second = parity(&args);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second
            .stdout
            .contains("bootstrap complete: no changes (5 seed item(s) already present)"),
        "{second:?}"
    );
    assert!(
        second.stderr.contains("table orders: up to date"),
        "{second:?}"
    );
    assert!(!second.stderr.contains("create table"), "{second:?}");
    assert_eq!(capture(&ddb(&moto.endpoint), &[]).await.unwrap(), before);
}

#[tokio::test]
async fn in_place_changes_are_applied_and_key_changes_need_recreate() {
    let moto = support::moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topology.yaml");
    let path_s = path.display().to_string();
    let fixtures = plain_fixtures();
    let seeds = fixtures.path().display().to_string();
    let mut t = example_topology();
    std::fs::write(&path, t.to_yaml()).unwrap();
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &path_s,
        "--seeds",
        &seeds,
    ]);
    assert_eq!(run.code, 0, "{run:?}");

    // In place: a changed GSI (replaced), a new GSI, TTL moved, stream view changed.
    let orders = t.tables.iter_mut().find(|x| x.name == "orders").unwrap();
    orders.global_secondary_indexes[0]
        .projection
        .projection_type = parity_operator::dynamo::topology::ProjectionType::All;
    orders.global_secondary_indexes[0]
        .projection
        .non_key_attributes
        .clear();
    let mut extra = orders.global_secondary_indexes[0].clone();
    extra.name = "bySk".into();
    extra.partition_key.name = "sk".into();
    extra.sort_key = None;
    orders.global_secondary_indexes.push(extra);
    orders.ttl_attribute = Some("purgeAt".into());
    // Streams: off on orders, on for customers. (moto cannot re-enable a stream on a table
    // that ever had one, so a view type change, disable then enable, is unit-tested only.)
    orders.stream_view_type = None;
    let customers = t.tables.iter_mut().find(|x| x.name == "customers").unwrap();
    customers.stream_view_type = Some(parity_operator::dynamo::topology::StreamViewType::KeysOnly);
    std::fs::write(&path, t.to_yaml()).unwrap();
    let run = parity(&["bootstrap", "--endpoint", &moto.endpoint, "-f", &path_s]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        "table orders: remove global secondary index byStatus",
        "table orders: add global secondary index byStatus",
        "table orders: add global secondary index bySk",
        "table orders: disable TTL on expiresAt",
        "table orders: enable TTL on purgeAt",
        "table orders: disable stream",
        "table customers: enable stream KEYS_ONLY",
    ] {
        assert!(run.stderr.contains(line), "missing {line:?}: {run:?}");
    }
    let live = capture(&ddb(&moto.endpoint), &[]).await.unwrap();
    let declared = Topology {
        tables: t.tables.clone(),
        ..Default::default()
    };
    assert_eq!(parity_operator::dynamo::diff(&declared, &live), vec![]);

    // Key schema change: refused without --recreate, nothing changed, data kept.
    let orders = t.tables.iter_mut().find(|x| x.name == "orders").unwrap();
    orders.sort_key.as_mut().unwrap().attr_type =
        parity_operator::dynamo::topology::AttributeType::N;
    // The LSI's sort key and the GSI on sk would otherwise clash with the new type.
    orders.global_secondary_indexes.retain(|g| g.name != "bySk");
    std::fs::write(&path, t.to_yaml()).unwrap();
    let run = parity(&["bootstrap", "--endpoint", &moto.endpoint, "-f", &path_s]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "error: 1 table(s) cannot be changed in place (key schema and local indexes are fixed at creation):\n  table orders: sortKey sk (S) -> sk (N)\nRe-creating deletes their data: re-run with --recreate to do it. Nothing was changed."
        ),
        "{run:?}"
    );
    let client = ddb(&moto.endpoint);
    let count = |c: aws_sdk_dynamodb::Client| async move {
        c.scan().table_name("orders").send().await.unwrap().count()
    };
    assert_eq!(count(client.clone()).await, 3, "data must be kept");
    let live_gsis = capture(&client, &["orders".into()]).await.unwrap().tables[0]
        .global_secondary_indexes
        .len();
    assert_eq!(live_gsis, 2, "no change may be applied when one is refused");

    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &path_s,
        "--recreate",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("table orders: dropping and re-creating (--recreate); its data is deleted"),
        "{run:?}"
    );
    assert_eq!(count(client.clone()).await, 0);
    let live = capture(&client, &[]).await.unwrap();
    let declared = Topology {
        tables: t.tables.clone(),
        ..Default::default()
    };
    assert_eq!(parity_operator::dynamo::diff(&declared, &live), vec![]);
}

#[test]
fn an_invalid_topology_is_rejected_with_the_field_path_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        "tables:\n  - name: orders\n    partitionKey: { name: pk, type: STRING }\n",
    )
    .unwrap();
    // Port 9 (discard) is never a DynamoDB: the error must come before any connection.
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        "http://127.0.0.1:9",
        "-f",
        &path.display().to_string(),
    ]);
    // Invalid input exits 3: the bootstrap Job fails at once instead of retrying.
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains(
            "tables[0].partitionKey.type: must be one of S, N, B (got \"STRING\") at line 3"
        ),
        "{run:?}"
    );
    assert!(!run.stderr.contains("waiting for DynamoDB"), "{run:?}");
}

/// Through the real process: a fixture error about a field marked encrypted names the file,
/// the line and the field on stderr, never the plaintext, and nothing is contacted.
#[test]
fn fixture_errors_on_stderr_never_quote_encrypted_values() {
    const CANARY: &str = "CANARY-5e1d0";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.fixture.yaml"),
        "encrypt: [ssn, card]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("orders.jsonl"),
        format!(
            concat!(
                r#"{{"pk": {{"S": "c1"}}, "sk": {{"S": "o1"}}, "ssn": {{"N": "{c}"}}}}"#,
                "\n",
                r#"{{"pk": {{"S": "c2"}}, "sk": {{"S": "o2"}}, "card": {{"SS": ["{c}", "{c}"]}}}}"#,
                "\n"
            ),
            c = CANARY
        ),
    )
    .unwrap();
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        "http://127.0.0.1:9",
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("orders.jsonl:1: attribute \"ssn\": N value is not a number")
            && run
                .stderr
                .contains("orders.jsonl:2: attribute \"card\": SS has a duplicate value"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains(CANARY) && !run.stdout.contains(CANARY),
        "the plaintext of an encrypted field leaked: {run:?}"
    );
}

/// The Job and ConfigMap the operator renders for examples/local.yaml (mirroring
/// examples/topology.yaml), run for real: the Job's arguments (endpoint swapped for moto, the
/// mount for a temp file) over the ConfigMap's topology.yaml create staging's tables, with
/// their indexes, TTL and streams.
#[tokio::test]
async fn the_operator_rendered_bootstrap_job_creates_the_environment_tables() {
    use serde::Deserialize;
    let render = parity(&[
        "render",
        "-f",
        &repo("examples/local.yaml"),
        "--mirror-source",
        &repo("examples/topology.yaml"),
    ]);
    assert_eq!(render.code, 0, "{render:?}");
    let mut topology_doc = None;
    let mut job_args: Vec<String> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&render.stdout) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("ConfigMap") if v["data"].get("topology.yaml").is_some() => {
                topology_doc = v["data"]["topology.yaml"].as_str().map(str::to_string);
            }
            Some("Job") => {
                job_args = serde_yaml::from_value(
                    v["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
                )
                .unwrap();
            }
            _ => {}
        }
    }
    let topology_doc = topology_doc.expect("a topology ConfigMap in the render");
    assert_eq!(
        job_args.first().map(String::as_str),
        Some("bootstrap"),
        "{job_args:?}"
    );

    let moto = support::moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topology.yaml");
    std::fs::write(&path, &topology_doc).unwrap();
    let mut args = job_args.clone();
    // The example seeds its tables (the seed ConfigMap's mount): the fixtures, without the
    // encryption schema, since no key service runs here.
    let fixtures = plain_fixtures();
    for (flag, value) in [
        ("--endpoint", moto.endpoint.clone()),
        ("--topology", path.display().to_string()),
        ("--seeds", fixtures.path().display().to_string()),
    ] {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in {job_args:?}"));
        args[i + 1] = value;
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = parity(&args);
    assert_eq!(run.code, 0, "{run:?}\n{topology_doc}");
    let declared = Topology::from_document_str(&topology_doc).unwrap();
    assert!(!declared.tables.is_empty());
    let live = capture(&ddb(&moto.endpoint), &[]).await.unwrap();
    let declared = Topology {
        tables: declared.tables,
        ..Default::default()
    };
    assert_eq!(parity_operator::dynamo::diff(&declared, &live), vec![]);
    let again = parity(&args);
    assert!(
        again.stdout.contains("bootstrap complete: no changes"),
        "{again:?}"
    );
}
