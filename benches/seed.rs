//! Seed loading and bootstrap timings against moto server (one run, printed figures; moto is
//! single-process Python, so these measure the emulator as much as our client).
//!
//!   cargo bench --bench seed                 # release build
//!   cargo bench --bench seed --profile dev   # quicker to build; moto dominates either way
//!   cargo bench --bench seed -- ceiling      # only 3. (bench/seeding.sh)
//!
//! 1. 10,000 items of ~1 KiB: BatchWriteItem loader (chunks of 25, 1 and 4 in flight) vs a
//!    plain sequential PutItem loop, in the same run.
//! 2. `bootstrap` of 20 tables with 2 GSIs each into an empty endpoint, then the no-op re-run.
//! 3. The emulator's ceiling: raw SDK BatchWriteItem (requests built before the clock starts,
//!    1 to 32 batches in flight; the best is the ceiling), then rounds alternating the
//!    ceiling's concurrency with `parity bootstrap --seeds` of the same items from a JSON Lines
//!    fixture (read, validated, checked for existing keys, written). Each run gets a fresh
//!    moto with the table already created. Prints the median of each and their ratio.

#[path = "../tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use clap::Parser;
use futures::{StreamExt, stream};
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
    bootstrap_with(endpoint, path, &[]).await
}

async fn bootstrap_with(endpoint: &str, path: &str, extra: &[&str]) -> Duration {
    let mut argv = vec!["bootstrap", "--endpoint", endpoint, "-f", path];
    argv.extend_from_slice(extra);
    let cli = Cli::parse_from(argv);
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

/// Raw SDK BatchWriteItem of `items` into `items`, `concurrency` batches in flight,
/// unprocessed items resent at once. The clock starts once every request is built.
async fn raw_batch_write(
    ddb: &aws_sdk_dynamodb::Client,
    items: Vec<Item>,
    concurrency: usize,
) -> Duration {
    let batches: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    stream::iter(batches)
        .map(|mut batch| async move {
            while !batch.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items("items", batch)
                    .send()
                    .await
                    .unwrap();
                batch = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove("items"))
                    .unwrap_or_default();
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// 3. bootstrap's seeding against raw BatchWriteItem, on fresh servers in one run.
async fn ceiling(dir: &std::path::Path) {
    let rounds = std::env::var("PARITY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    println!(
        "seeding vs the emulator's ceiling: {ITEMS} items of {ITEM_BYTES} bytes, moto (fresh server each)"
    );
    let mut best = (0, Duration::MAX);
    for concurrency in [1, 4, 8, 16, 32] {
        let (_m, ddb) = fresh(dir).await;
        let took = raw_batch_write(&ddb, items(), concurrency).await;
        println!(
            "  raw BatchWriteItem, {concurrency:>2} in flight: {}",
            rate(ITEMS, took)
        );
        if took < best.1 {
            best = (concurrency, took);
        }
    }
    let seeds = dir.join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    let mut jsonl = String::new();
    for item in items() {
        let (AttributeValue::S(pk), AttributeValue::S(data)) = (&item["pk"], &item["data"]) else {
            unreachable!("bench items are strings")
        };
        jsonl.push_str(&serde_json::json!({ "pk": pk, "data": data }).to_string());
        jsonl.push('\n');
    }
    std::fs::write(seeds.join("items.jsonl"), jsonl).unwrap();
    let topology = dir.join("seed.yaml").display().to_string();
    let seeds = seeds.display().to_string();
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (_m, ddb) = fresh(dir).await;
        raw.push(raw_batch_write(&ddb, items(), best.0).await);
        let (m, _) = fresh(dir).await;
        ours.push(bootstrap_with(&m.endpoint, &topology, &["--seeds", &seeds]).await);
    }
    let (raw, ours) = (median(raw), median(ours));
    println!("  median of {rounds} alternating rounds:");
    println!(
        "  ceiling (raw BatchWriteItem, {} in flight): {}",
        best.0,
        rate(ITEMS, raw)
    );
    println!(
        "  parity bootstrap --seeds (defaults):        {}",
        rate(ITEMS, ours)
    );
    println!(
        "  bootstrap / ceiling: {:.0}%",
        100.0 * raw.as_secs_f64() / ours.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    // `cargo bench` passes --bench; `-- ceiling` runs only the ceiling comparison.
    if std::env::args().any(|a| a == "ceiling") {
        ceiling(dir.path()).await;
        return;
    }
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
    ceiling(dir.path()).await;
}
