//! Load on `parity kms` (the release binary) over loopback: GenerateDataKey, then Decrypt,
//! each from 32 concurrent aws-sdk-kms clients for a fixed time. Prints requests/s, p50/p99
//! latency and the server's resident memory. Run: `cargo bench --bench kms_load`
//! (env PARITY_LOAD_SECONDS, default 10; PARITY_LOAD_CLIENTS, default 32).
//! Client and server share the machine, so the figures are a floor for the server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use parity_operator::crypto::Keyring;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn client(endpoint: &str) -> aws_sdk_kms::Client {
    let creds =
        aws_credential_types::Credentials::new("bench", "bench-secret", None, None, "bench");
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .build(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn phase<F, Fut>(
    name: &str,
    clients: usize,
    secs: u64,
    c: &aws_sdk_kms::Client,
    op: F,
    pid: u32,
) where
    F: Fn(aws_sdk_kms::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let op = op.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op(c.clone()).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{name:<16} {clients} clients: {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)  server RSS {} KiB (peak {} KiB)",
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.len(),
        rss_kib(pid, "VmRSS:"),
        rss_kib(pid, "VmHWM:"),
    );
}

fn main() {
    // `cargo bench` passes --bench; this is not a criterion harness.
    let secs = env_num("PARITY_LOAD_SECONDS", 10);
    let clients = env_num("PARITY_LOAD_CLIENTS", 32) as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    std::fs::write(&path, &*Keyring::generate(jiff::Timestamp::now()).to_json()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args([
            "kms",
            "--listen",
            "127.0.0.1:0",
            "--access-key-id",
            "bench",
            "--alias",
            "alias/bench",
        ])
        .arg("--keyring")
        .arg(&path)
        .env("PARITY_KMS_SECRET_ACCESS_KEY", "bench-secret")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start parity kms");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let endpoint = loop {
        let line = lines.next().expect("parity kms exited").unwrap();
        if line.contains("parity kms listening") {
            let addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            break format!("http://{addr}");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    println!(
        "parity kms pid {pid}, idle RSS {} KiB",
        rss_kib(pid, "VmRSS:")
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = client(&endpoint);
        let blob = c
            .generate_data_key()
            .key_id("alias/bench")
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .unwrap()
            .ciphertext_blob()
            .unwrap()
            .clone();
        // Warm-up: connections and allocator.
        phase(
            "warm-up",
            clients,
            1,
            &c,
            |c| async move {
                c.list_keys().send().await.unwrap();
            },
            pid,
        )
        .await;
        phase(
            "GenerateDataKey",
            clients,
            secs,
            &c,
            |c| async move {
                c.generate_data_key()
                    .key_id("alias/bench")
                    .key_spec(DataKeySpec::Aes256)
                    .send()
                    .await
                    .unwrap();
            },
            pid,
        )
        .await;
        let b: Blob = blob;
        phase(
            "Decrypt",
            clients,
            secs,
            &c,
            move |c| {
                let b = b.clone();
                async move {
                    c.decrypt().ciphertext_blob(b).send().await.unwrap();
                }
            },
            pid,
        )
        .await;
    });
    let _ = child.kill();
    let _ = child.wait();
}
