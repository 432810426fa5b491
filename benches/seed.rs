//! Seed loading and bootstrap timings against moto server (one run, printed figures; moto is
//! single-process Python, so these measure the emulator as much as our client).
//!
//!   cargo bench --bench seed                 # release build
//!   cargo bench --bench seed --profile dev   # quicker to build; moto dominates either way
//!
//! 1. 10,000 items of ~1 KiB: BatchWriteItem loader (chunks of 25, 1 and 4 in flight) vs a
//!    plain sequential PutItem loop, in the same run.
//! 2. `bootstrap` of 20 tables with 2 GSIs each into an empty endpoint, then the no-op re-run.

#[path = "../tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use parity_operator::dynamo::bootstrap::{BootstrapArgs, run_with};
use parity_operator::dynamo::connect::{AwsArgs, client};
use parity_operator::dynamo::seed::item::Item;
use parity_operator::dynamo::seed::load::write_items;
use parity_operator::dynamo::topology::Topology;

const ITEMS: usize = 10_000;
const ITEM_BYTES: usize = 1024;

fn items() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| {
            let pk = format!("item-{i:06}");
            let filler = "x".repeat(ITEM_BYTES - pk.len() - 2 - 4);
            [
                ("pk".to_string(), AttributeValue::S(pk)),
                ("data".to_string(), AttributeValue::S(filler)),
            ]
            .into_iter()
            .collect()
        })
        .collect()
}

fn topology(tables: usize, prefix: &str) -> Topology {
    let mut yaml = String::from("tables:\n");
    for t in 0..tables {
        yaml.push_str(&format!(
            "  - name: {prefix}{t:02}\n    partitionKey: {{ name: pk, type: S }}\n    sortKey: {{ name: sk, type: N }}\n    globalSecondaryIndexes:\n      - name: byA\n        partitionKey: {{ name: a, type: S }}\n      - name: byB\n        partitionKey: {{ name: b, type: S }}\n        sortKey: {{ name: sk, type: N }}\n        projection: {{ type: KEYS_ONLY }}\n"
        ));
    }
    Topology::from_yaml_str(&yaml).expect("bench topology")
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BootstrapArgs,
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:.0} items/s ({:.2}s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

async fn bootstrap(endpoint: &str, path: &str) -> Duration {
    let cli = Cli::parse_from(["bootstrap", "--endpoint", endpoint, "-f", path]);
    let start = Instant::now();
    run_with(cli.args, None).await.expect("bootstrap");
    start.elapsed()
}

/// A fresh moto with one empty table `items`: every variant starts from the same state (moto
/// slows down as it holds more items, which would favour whichever runs first).
async fn fresh(dir: &std::path::Path) -> (moto::Moto, aws_sdk_dynamodb::Client) {
    let m = moto::Moto::start();
    let path = dir.join("seed.yaml");
    std::fs::write(
        &path,
        "tables:\n  - name: items\n    partitionKey: { name: pk, type: S }\n",
    )
    .unwrap();
    bootstrap(&m.endpoint, &path.display().to_string()).await;
    let c = client(&m.endpoint, &AwsArgs::default(), 5);
    (m, c)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let dir = tempfile::tempdir().unwrap();
    println!("seed loading: {ITEMS} items of {ITEM_BYTES} bytes into moto (fresh server each)");
    for concurrency in [1, 4] {
        let (_m, ddb) = fresh(dir.path()).await;
        let start = Instant::now();
        write_items(&ddb, "items", items(), concurrency)
            .await
            .unwrap();
        println!(
            "  BatchWriteItem, {concurrency} batch(es) in flight: {}",
            rate(ITEMS, start.elapsed())
        );
    }
    let (_m, ddb) = fresh(dir.path()).await;
    let start = Instant::now();
    for item in items() {
        ddb.put_item()
            .table_name("items")
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    println!(
        "  sequential PutItem loop:            {}",
        rate(ITEMS, start.elapsed())
    );

    let m = moto::Moto::start();
    let path = dir.path().join("twenty.yaml");
    std::fs::write(&path, topology(20, "bench").to_yaml()).unwrap();
    let first = bootstrap(&m.endpoint, &path.display().to_string()).await;
    let again = bootstrap(&m.endpoint, &path.display().to_string()).await;
    println!("bootstrap of 20 tables with 2 GSIs each (empty endpoint):");
    println!(
        "  create: {:.2}s, no-op re-run: {:.2}s",
        first.as_secs_f64(),
        again.as_secs_f64()
    );
}
