//! Dashboard benchmarks (custom harness: percentiles, not criterion's means).
//!
//! * HTTP: with `PARITY_BENCH_URL` (a release `parity dashboard` over moto with a 10,000-item
//!   `bench` table, started by bench/dashboard.sh), latency of the items page, the items API,
//!   deep pages (via tokens), a filtered page and the item page.
//! * Fan-out: 100 WebSocket clients, 1,000 changes/s for 30 s. The server runs in a child
//!   process (this binary with `fanout-server`), so its RSS is the server's alone. moto does
//!   not sustain 1,000 writes/s, so changes enter the hub where the stream tailer publishes
//!   them (same message builder), in-process: this measures the hub, the per-client queues and
//!   the WebSocket writes, not DynamoDB Streams.
//! * End to end (with `PARITY_BENCH_URL` and `PARITY_BENCH_DYNAMODB`): SDK writes to moto as
//!   fast as it takes them (up to 1,000/s) with 100 clients on the real dashboard; latency
//!   from the write to delivery.
//!
//! Knobs: PARITY_BENCH_CLIENTS (100), PARITY_BENCH_RATE (1000), PARITY_BENCH_SECONDS (30),
//! PARITY_BENCH_E2E_SECONDS (15).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use futures::StreamExt;
use parity_operator::dashboard::{self, DashboardArgs, tailer};
use parity_operator::dynamo::topology::Topology;
use tokio_tungstenite::tungstenite::Message;

const TOPOLOGY: &str = "tables:\n  - name: bench\n    partitionKey: {name: pk, type: S}\n    sortKey: {name: sk, type: N}\n    streamViewType: NEW_AND_OLD_IMAGES\n";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        v.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        v[v.len() - 1]
    )
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: DashboardArgs,
}

/// The fan-out server: the dashboard's router and hub, fed at `rate` changes/s on "GO".
async fn fanout_server() {
    let dir = std::env::temp_dir().join(format!("parity-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let topo_path = dir.join("topology.yaml");
    std::fs::write(&topo_path, TOPOLOGY).unwrap();
    let w = Wrap::parse_from([
        "x",
        "--listen",
        "127.0.0.1:0",
        "--topology",
        topo_path.to_str().unwrap(),
        "--dynamodb-endpoint",
        "http://127.0.0.1:9",
        "--tier",
        "ci",
    ]);
    let topology = Topology::from_yaml_str(TOPOLOGY).unwrap();
    let table = topology.tables[0].clone();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = dashboard::build(&w.args, topology, Default::default(), stop_rx).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("LISTEN {}", listener.local_addr().unwrap());
    let hub = app.hub.clone();
    tokio::spawn(dashboard::serve(listener, app, std::future::pending()));
    // Wait for "GO <rate> <seconds>".
    let line = tokio::task::spawn_blocking(|| {
        let mut l = String::new();
        std::io::stdin().read_line(&mut l).unwrap();
        l
    })
    .await
    .unwrap();
    let parts: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    let (rate, secs) = (parts[0], parts[1]);
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut max_rss = 0;
    let mut last_rss = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        for _ in 0..per_tick {
            let keys: HashMap<String, AttributeValue> = [
                (
                    "pk".to_string(),
                    AttributeValue::S(format!("CUSTOMER#{}", n % 1000)),
                ),
                ("sk".to_string(), AttributeValue::N(n.to_string())),
            ]
            .into();
            let mut item = keys.clone();
            item.insert("status".into(), AttributeValue::S("open".into()));
            item.insert("total".into(), AttributeValue::N(format!("{}.99", n % 500)));
            item.insert(
                "email".into(),
                AttributeValue::S(format!("c{n}@example.com")),
            );
            let msg = tailer::change_message(&table, "INSERT", keys, Some(item));
            hub.publish(&table.name, msg.into());
            n += 1;
        }
        if last_rss.elapsed() > Duration::from_millis(500) {
            last_rss = Instant::now();
            max_rss = max_rss.max(rss_kib(std::process::id()).unwrap_or(0));
        }
    }
    max_rss = max_rss.max(rss_kib(std::process::id()).unwrap_or(0));
    let dropped = hub
        .stats
        .dropped_clients
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "DONE {n} {max_rss} {dropped} {}",
        start.elapsed().as_secs_f64()
    );
    // Let clients drain before the process ends.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn ws_clients(addr: &str, clients: usize) -> Vec<tokio::task::JoinHandle<(Vec<f64>, bool)>> {
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?tables=bench"))
            .await
            .unwrap();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut dropped = false;
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(8), ws.next()).await
            {
                if let Message::Text(t) = m {
                    let now = tailer::now_ms();
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["type"].as_str() {
                        Some("change") => {
                            // sentAt (publish) or, end to end, the write time in the item.
                            let t0 = v["item"]["writtenAt"]["value"]
                                .as_str()
                                .and_then(|s| s.parse::<f64>().ok())
                                .or_else(|| v["sentAt"].as_f64())
                                .unwrap_or(now);
                            lat.push(now - t0);
                        }
                        Some("dropped") => dropped = true,
                        _ => {}
                    }
                }
            }
            (lat, dropped)
        }));
    }
    handles
}

async fn fanout() {
    let clients = env_num("PARITY_BENCH_CLIENTS", 100) as usize;
    let rate = env_num("PARITY_BENCH_RATE", 1000);
    let secs = env_num("PARITY_BENCH_SECONDS", 30);
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(exe)
        .arg("fanout-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("LISTEN ").unwrap().to_string();
    let idle_rss = rss_kib(server.id()).unwrap_or(0);
    let handles = ws_clients(&addr, clients).await;
    let connected_rss = rss_kib(server.id()).unwrap_or(0);
    let mut stdin = server.stdin.take().unwrap();
    writeln!(stdin, "GO {rate} {secs}").unwrap();
    let mut all = Vec::new();
    let mut dropped = 0;
    for h in handles {
        let (lat, d) = h.await.unwrap();
        dropped += d as usize;
        all.extend(lat);
    }
    line.clear();
    out.read_line(&mut line).unwrap();
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    let published = f.first().copied().unwrap_or(0.0);
    println!(
        "fan-out (in-process feed): {clients} clients, {rate}/s target for {secs}s: published {published} ({:.0}/s), delivered {} of {} expected, clients dropped {dropped}",
        published / f.get(3).copied().unwrap_or(secs as f64),
        all.len(),
        published as usize * clients
    );
    println!(
        "fan-out delivery latency (publish to client): {}",
        percentiles(all)
    );
    println!(
        "fan-out server RSS: idle {:.1} MiB, 100 clients connected {:.1} MiB, max during the run {:.1} MiB",
        idle_rss as f64 / 1024.0,
        connected_rss as f64 / 1024.0,
        f.get(1).copied().unwrap_or(0.0) / 1024.0
    );
}

/// Request path for the i-th request of a case.
type PathFn = Box<dyn Fn(usize) -> String>;

async fn http(url: &str) {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = url.to_string();
        async move {
            let t = Instant::now();
            let r = client.get(format!("{url}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let body = r.bytes().await.unwrap();
            (t.elapsed().as_secs_f64() * 1000.0, body)
        }
    };
    // Warm up, and collect page tokens 1..=40 (50 items a page) for the deep-page case.
    let mut tokens = Vec::new();
    let mut token = String::new();
    for _ in 0..40 {
        let (_, b) = get(format!("/api/tables/bench/items?limit=50&token={token}")).await;
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        match v["nextToken"].as_str() {
            Some(t) => {
                token = t.to_string();
                tokens.push(t.to_string());
            }
            None => break,
        }
    }
    let n = 200;
    let cases: Vec<(&str, PathFn)> = vec![
        (
            "items page (HTML, first 50)",
            Box::new(|_| "/tables/bench".to_string()),
        ),
        (
            "items API (first 50)",
            Box::new(|_| "/api/tables/bench/items?limit=50".to_string()),
        ),
        (
            "items API (page 2..40 via token)",
            Box::new(move |i| {
                format!(
                    "/api/tables/bench/items?limit=50&token={}",
                    tokens[i % tokens.len()]
                )
            }),
        ),
        (
            "items API (limit 500)",
            Box::new(|_| "/api/tables/bench/items?limit=500".to_string()),
        ),
        (
            "items API (key filter: one partition of 10 in 10,000)",
            Box::new(|i| format!("/api/tables/bench/items?key=CUSTOMER%23{:04}", i % 1000)),
        ),
        (
            "item page (GetItem)",
            Box::new(|i| {
                format!(
                    "/tables/bench/item?pk=CUSTOMER%23{:04}&sk={}",
                    i % 1000,
                    i % 10
                )
            }),
        ),
        ("tables page", Box::new(|_| "/".to_string())),
    ];
    // What moto itself takes for the Scan behind a first page: the floor under the pages.
    if let Ok(endpoint) = std::env::var("PARITY_BENCH_DYNAMODB") {
        let ddb = parity_operator::dynamo::connect::client(
            &endpoint,
            &parity_operator::dynamo::connect::AwsArgs::default(),
            3,
        );
        let mut lat = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            ddb.scan()
                .table_name("bench")
                .limit(50)
                .send()
                .await
                .unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "moto Scan limit 50, SDK direct (no dashboard): {}",
            percentiles(lat)
        );
    }
    for (name, path) in cases {
        let mut lat = Vec::new();
        let mut bytes = 0;
        for i in 0..n {
            let (ms, b) = get(path(i)).await;
            lat.push(ms);
            bytes = b.len();
        }
        println!("{name}: {} ({} bytes)", percentiles(lat), bytes);
    }
}

async fn end_to_end(url: &str, ddb_endpoint: &str) {
    let clients = env_num("PARITY_BENCH_CLIENTS", 100) as usize;
    let rate = env_num("PARITY_BENCH_RATE", 1000);
    let secs = env_num("PARITY_BENCH_E2E_SECONDS", 15);
    let addr = url.trim_start_matches("http://").to_string();
    let handles = ws_clients(&addr, clients).await;
    let ddb = parity_operator::dynamo::connect::client(
        ddb_endpoint,
        &parity_operator::dynamo::connect::AwsArgs::default(),
        3,
    );
    let start = Instant::now();
    let mut written = 0u64;
    // 8 writers, each paced to rate/8.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let ddb = ddb.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut tick = tokio::time::interval(Duration::from_micros(8_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(secs) {
                    tick.tick().await;
                    ddb.put_item()
                        .table_name("bench")
                        .item("pk", AttributeValue::S(format!("LIVE#{w}")))
                        .item("sk", AttributeValue::N(n.to_string()))
                        .item(
                            "writtenAt",
                            AttributeValue::S(format!("{:.3}", tailer::now_ms())),
                        )
                        .send()
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    for w in writers {
        written += w.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut dropped = 0;
    for h in handles {
        let (lat, d) = h.await.unwrap();
        dropped += d as usize;
        all.extend(lat);
    }
    println!(
        "end to end (moto + Streams): {clients} clients, {written} SDK writes in {elapsed:.1}s ({:.0}/s achieved, {rate}/s asked), delivered {} of {}, clients dropped {dropped}",
        written as f64 / elapsed,
        all.len(),
        written as usize * clients
    );
    println!(
        "end to end latency (SDK write to client): {}",
        percentiles(all)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "fanout-server") {
        return fanout_server().await;
    }
    // `cargo bench` passes --bench; a name filter may follow.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let url = std::env::var("PARITY_BENCH_URL").ok();
    if wants("http") {
        match &url {
            Some(u) => http(u).await,
            None => println!("http: skipped (set PARITY_BENCH_URL; bench/dashboard.sh does)"),
        }
    }
    if wants("fanout") {
        fanout().await;
    }
    if wants("e2e") {
        match (&url, std::env::var("PARITY_BENCH_DYNAMODB")) {
            (Some(u), Ok(d)) => end_to_end(u, &d).await,
            _ => println!("e2e: skipped (set PARITY_BENCH_URL and PARITY_BENCH_DYNAMODB)"),
        }
    }
}
