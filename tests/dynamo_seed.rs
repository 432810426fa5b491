//! Seed fixtures against moto server: loaded and readable back, bad fixtures rejected with
//! file, line and reason before anything is written, encrypted fields stored as ciphertext
//! that decrypts with its context.

// support/wait.rs (shared) trips unused_assignments; not used here.
#[path = "support/dynamo_env.rs"]
mod dynamo_env;
#[allow(unused_assignments)]
mod support;

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use dynamo_env::{ddb, parity, repo};
use futures::future::BoxFuture;
use parity_operator::dynamo::bootstrap::{BootstrapArgs, run_with};
use parity_operator::dynamo::seed::{EncryptionContext, FieldEncryptor};
use support::moto::Moto;

async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &[(&str, AttributeValue)],
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(
            key.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("item {key:?} not found in {table}"))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[tokio::test]
async fn seeds_in_every_format_load_and_read_back_with_their_types() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    // orders: plain JSON Lines (example); customers: DynamoDB JSON array (example);
    // events: DynamoDB export lines with a binary key.
    let mut topo = parity_operator::dynamo::Topology::from_yaml_str(
        &std::fs::read_to_string(repo("examples/topology.yaml")).unwrap(),
    )
    .unwrap();
    topo.tables.push(
        parity_operator::dynamo::Topology::from_yaml_str(
            "tables:\n  - name: events\n    partitionKey: { name: id, type: B }\n    sortKey: { name: at, type: N }\n",
        )
        .unwrap()
        .tables
        .remove(0),
    );
    let topo_path = dir.path().join("topology.yaml");
    std::fs::write(&topo_path, topo.to_yaml()).unwrap();
    let seeds = dir.path().join("seeds");
    std::fs::create_dir(&seeds).unwrap();
    for f in ["orders.jsonl", "customers.json"] {
        std::fs::copy(repo(&format!("examples/fixtures/{f}")), seeds.join(f)).unwrap();
    }
    std::fs::write(
        seeds.join("events.json"),
        "{\"Item\": {\"id\": {\"B\": \"AQID\"}, \"at\": {\"N\": \"1\"}, \"kind\": {\"S\": \"login\"}}}\n\
         {\"Item\": {\"id\": {\"B\": \"AQID\"}, \"at\": {\"N\": \"2\"}, \"ns\": {\"NS\": [\"1\", \"2.5\"]}}}\n",
    )
    .unwrap();
    // A ConfigMap volume's bookkeeping entries are ignored.
    std::fs::create_dir(seeds.join("..2026_11_25_data")).unwrap();

    let topology = topo_path.display().to_string();
    let seed_dir = seeds.display().to_string();
    let bootstrap = |extra: &[&str]| {
        let mut args = vec![
            "bootstrap",
            "--endpoint",
            &moto.endpoint,
            "-f",
            &topology,
            "--seeds",
            &seed_dir,
        ];
        args.extend_from_slice(extra);
        parity(&args)
    };
    let run = bootstrap(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("7 seed item(s) written"), "{run:?}");
    assert!(run.stderr.contains("seeding orders: 3/3 items"), "{run:?}");

    let c = ddb(&moto.endpoint);
    let order = get(
        &c,
        "orders",
        &[("pk", s("CUSTOMER#2")), ("sk", s("ORDER#1700007200"))],
    )
    .await;
    assert_eq!(order["total"], AttributeValue::N("120".into()));
    assert_eq!(order["status"], s("PAID"));
    let AttributeValue::L(lines) = &order["lines"] else {
        panic!("lines is not a list: {order:?}")
    };
    let AttributeValue::M(line) = &lines[0] else {
        panic!("line is not a map")
    };
    assert_eq!(line["qty"], AttributeValue::N("2".into()));

    let customer = get(&c, "customers", &[("id", s("1"))]).await;
    let AttributeValue::Ss(mut tags) = customer["tags"].clone() else {
        panic!("tags is not a string set: {customer:?}")
    };
    tags.sort();
    assert_eq!(tags, ["beta", "vip"]);

    let event = get(
        &c,
        "events",
        &[
            ("id", AttributeValue::B(vec![1u8, 2, 3].into())),
            ("at", AttributeValue::N("2".into())),
        ],
    )
    .await;
    let AttributeValue::Ns(mut ns) = event["ns"].clone() else {
        panic!("ns is not a number set: {event:?}")
    };
    ns.sort();
    assert_eq!(ns, ["1", "2.5"]);

    // An item changed by the app is kept by a re-run (default seed mode: missing only)...
    c.put_item()
        .table_name("customers")
        .item("id", s("1"))
        .item("email", s("changed@example.com"))
        .send()
        .await
        .unwrap();
    let again = bootstrap(&[]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("no changes"), "{again:?}");
    assert_eq!(
        get(&c, "customers", &[("id", s("1"))]).await["email"],
        s("changed@example.com")
    );
    // ...and replaced with --seed-mode overwrite.
    let over = bootstrap(&["--seed-mode", "overwrite"]);
    assert_eq!(over.code, 0, "{over:?}");
    assert!(over.stdout.contains("7 seed item(s) written"), "{over:?}");
    assert_eq!(
        get(&c, "customers", &[("id", s("1"))]).await["email"],
        s("ada@example.com")
    );
}

#[tokio::test]
async fn bad_fixtures_are_reported_with_file_line_and_reason_and_nothing_is_written() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path();
    std::fs::write(
        seeds.join("orders.jsonl"),
        [
            r#"{"pk": "CUSTOMER#1", "sk": "ORDER#1"}"#,
            r#"{"pk": "CUSTOMER#1"}"#,
            r#"{"pk": 42, "sk": "ORDER#3"}"#,
            r#"{"pk": "CUSTOMER#1", "sk": "ORDER#4", "createdAt": "yesterday"}"#,
            r#"{"pk": "CUSTOMER#1", "sk": "ORDER#5""#,
            &format!(
                r#"{{"pk": "CUSTOMER#1", "sk": "ORDER#6", "blob": "{}"}}"#,
                "x".repeat(420_000)
            ),
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(
        seeds.join("customers.json"),
        "[\n  {\"id\": {\"S\": \"1\"}},\n  {\"id\": {\"N\": \"2\"}},\n  {\"email\": {\"S\": \"x\"}}\n]\n",
    )
    .unwrap();
    std::fs::write(seeds.join("ghosts.jsonl"), "{}\n").unwrap();
    std::fs::write(seeds.join("README.txt"), "hello\n").unwrap();

    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &seeds.display().to_string(),
    ]);
    assert_eq!(run.code, 3, "invalid input exits 3: {run:?}");
    let expected = "error: seed fixtures rejected, nothing was written: 9 problems in 4 files\n  \
README.txt: not a fixture: expected <table>.jsonl, .ndjson, .json or <table>.fixture.yaml\n  \
customers.json:3: wrong key type: attribute \"id\" (partition key of table customers) must be S, got N\n  \
customers.json:4: missing key attribute \"id\" (partition key of table customers)\n  \
ghosts.jsonl: no table \"ghosts\" in the topology (declared: orders, customers)\n  \
orders.jsonl:2: missing key attribute \"sk\" (sort key of table orders)\n  \
orders.jsonl:3: wrong key type: attribute \"pk\" (partition key of table orders) must be S, got N\n  \
orders.jsonl:4: wrong key type: attribute \"createdAt\" (sort key of index byStatus) must be N, got S\n  \
orders.jsonl:5: invalid JSON: EOF while parsing an object at line 1 column 36\n  \
orders.jsonl:6: item is 420025 bytes, over DynamoDB's 400 KB (409600 bytes) limit\n";
    assert!(run.stderr.ends_with(expected), "{run:?}");
    // Validation happens before DynamoDB is touched: no table was created.
    let tables = ddb(&moto.endpoint).list_tables().send().await.unwrap();
    assert!(tables.table_names().is_empty(), "{tables:?}");
}

/// Test-only stand-in for the envelope encryptor: AES-256-GCM with a fixed key, the
/// canonical context as additional data, output nonce || ciphertext.
struct TestEncryptor {
    key: [u8; 32],
}

fn aad(context: &EncryptionContext) -> Vec<u8> {
    context.canonical().unwrap()
}

impl FieldEncryptor for TestEncryptor {
    fn encrypt<'a>(
        &'a self,
        plaintext: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async move {
            let cipher = Aes256Gcm::new_from_slice(&self.key)?;
            let nonce: [u8; 12] = rand::random();
            let ct = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext,
                        aad: &aad(context),
                    },
                )
                .map_err(|_| anyhow::anyhow!("encrypt failed"))?;
            Ok([nonce.as_slice(), &ct].concat())
        })
    }
}

impl TestEncryptor {
    fn decrypt(&self, blob: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, aes_gcm::Error> {
        let cipher = Aes256Gcm::new_from_slice(&self.key).unwrap();
        cipher.decrypt(
            Nonce::from_slice(&blob[..12]),
            Payload {
                msg: &blob[12..],
                aad: &aad(context),
            },
        )
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BootstrapArgs,
}

#[tokio::test]
async fn fields_marked_encrypted_are_stored_as_ciphertext_that_decrypts_with_the_context() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let plaintext_ssn = "123-45-6789-canary";
    std::fs::write(
        dir.path().join("customers.jsonl"),
        format!(
            "{{\"id\": \"1\", \"email\": \"a@example.com\", \"ssn\": \"{plaintext_ssn}\", \"score\": 7}}\n{{\"id\": \"2\", \"email\": \"b@example.com\"}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("customers.fixture.yaml"),
        "encrypt: [ssn, score]\ncontext:\n  table: \"{table}\"\n  field: \"{attribute}\"\n  id: \"customer/{id}\"\n",
    )
    .unwrap();

    // Without a key service the run refuses before touching DynamoDB.
    let run = parity(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(run.code, 3, "invalid input exits 3: {run:?}");
    assert!(
        run.stderr.contains(
            "error: fixtures customers.jsonl mark fields encrypted, but no key service is configured (--kms-endpoint, --kms-key-id); nothing was changed"
        ),
        "{run:?}"
    );

    let enc = Arc::new(TestEncryptor { key: [7u8; 32] });
    let cli = Cli::parse_from([
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &dir.path().display().to_string(),
    ]);
    let summary = run_with(cli.args, Some(enc.clone())).await.unwrap();
    assert_eq!(summary.fields_encrypted, 2);
    assert_eq!(summary.items_written, 2);

    let c = ddb(&moto.endpoint);
    let item = get(&c, "customers", &[("id", s("1"))]).await;
    assert_eq!(
        item["email"],
        s("a@example.com"),
        "unmarked fields stay plain"
    );
    let AttributeValue::B(ssn) = &item["ssn"] else {
        panic!("ssn is not binary: {item:?}")
    };
    assert!(
        !String::from_utf8_lossy(ssn.as_ref()).contains("canary"),
        "plaintext stored"
    );
    let ctx = |field: &str| -> EncryptionContext {
        [
            ("table", "customers"),
            ("field", field),
            ("id", "customer/1"),
        ]
        .into_iter()
        .collect()
    };
    assert_eq!(
        enc.decrypt(ssn.as_ref(), &ctx("ssn")).unwrap(),
        plaintext_ssn.as_bytes()
    );
    let AttributeValue::B(score) = &item["score"] else {
        panic!("score is not binary")
    };
    assert_eq!(enc.decrypt(score.as_ref(), &ctx("score")).unwrap(), b"7");
    // The context is bound: the ciphertext of one field does not open as another.
    assert!(enc.decrypt(ssn.as_ref(), &ctx("score")).is_err());
    // An item without the field is stored without it.
    let other = get(&c, "customers", &[("id", s("2"))]).await;
    assert!(!other.contains_key("ssn"));
}

#[tokio::test]
async fn encrypted_seed_fields_decrypt_back_through_the_key_service() {
    use parity_operator::crypto::{Encryptor, Keyring, KmsKeyProvider};
    use support::kms::{ACCESS_KEY_ID, ParityKms, REGION, SECRET_ACCESS_KEY};

    let kr = Keyring::seeded(b"dynamo seed test seed 0123456789", jiff::Timestamp::now()).unwrap();
    let kms = ParityKms::start(&kr.to_json(), &["--alias", "alias/customers-pii"]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let canary = "4111-1111-1111-1111-canary-7b1e";
    std::fs::write(
        dir.path().join("customers.jsonl"),
        format!("{{\"id\": \"42\", \"email\": \"c@example.com\", \"card\": \"{canary}\"}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("customers.fixture.yaml"),
        "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  attribute: \"{attribute}\"\n  id: \"{id}\"\n",
    )
    .unwrap();

    let run: dynamo_env::Run = dynamo_env::parity_cmd(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &dir.path().display().to_string(),
        "--kms-endpoint",
        &kms.endpoint,
        "--kms-key-id",
        "alias/customers-pii",
        "--kms-access-key-id",
        ACCESS_KEY_ID,
    ])
    .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    .env("RUST_LOG", "debug")
    .output()
    .unwrap()
    .into();
    assert_eq!(run.code, 0, "{run:?}\nkms:\n{}", kms.output());
    assert!(run.stdout.contains("1 seed item(s) written"), "{run:?}");

    let item = get(&ddb(&moto.endpoint), "customers", &[("id", s("42"))]).await;
    let AttributeValue::B(card) = &item["card"] else {
        panic!("card is not binary: {item:?}")
    };
    // Decrypt the way an application does: envelope + the same key service.
    let app = Encryptor::new(KmsKeyProvider::new(
        KmsKeyProvider::client_for(&kms.endpoint, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        "alias/customers-pii",
    ));
    let ctx: EncryptionContext = [("table", "customers"), ("attribute", "card"), ("id", "42")]
        .into_iter()
        .collect();
    assert_eq!(
        *app.decrypt(card.as_ref(), &ctx).await.unwrap(),
        canary.as_bytes()
    );
    let wrong: EncryptionContext = [("table", "customers"), ("attribute", "card"), ("id", "43")]
        .into_iter()
        .collect();
    assert!(app.decrypt(card.as_ref(), &wrong).await.is_err());

    // The plaintext never shows in logs (debug level) of either process.
    for (who, text) in [("bootstrap", format!("{run:?}")), ("kms", kms.output())] {
        assert!(
            !text.contains("canary-7b1e"),
            "{who} logged the plaintext:\n{text}"
        );
    }
}

/// In front of moto: forwards everything, except that each BatchWriteItem reaches moto with
/// only the first half of its requests; the rest comes back as UnprocessedItems, as a
/// throttled DynamoDB answers. Counts how often moto was asked to write each key.
struct Throttle {
    target: String,
    http: reqwest::Client,
    writes: std::sync::Mutex<HashMap<String, usize>>,
    held_back: std::sync::atomic::AtomicUsize,
}

async fn throttle(
    axum::extract::State(t): axum::extract::State<Arc<Throttle>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let batch_write = headers
        .get("x-amz-target")
        .is_some_and(|v| v == "DynamoDB_20120810.BatchWriteItem");
    let mut body = body.to_vec();
    let mut held = serde_json::Map::new();
    if batch_write {
        let mut req: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for (table, requests) in req["RequestItems"].as_object_mut().unwrap() {
            let requests = requests.as_array_mut().unwrap();
            let rest = requests.split_off(requests.len().div_ceil(2));
            let mut writes = t.writes.lock().unwrap();
            for r in requests.iter() {
                let pk = r["PutRequest"]["Item"]["pk"]["S"].as_str().unwrap();
                *writes.entry(pk.to_string()).or_default() += 1;
            }
            t.held_back
                .fetch_add(rest.len(), std::sync::atomic::Ordering::Relaxed);
            if !rest.is_empty() {
                held.insert(table.clone(), serde_json::Value::Array(rest));
            }
        }
        body = serde_json::to_vec(&req).unwrap();
    }
    let mut fwd = t.http.post(&t.target).body(body);
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length") {
            fwd = fwd.header(name.as_str(), value.as_bytes());
        }
    }
    let resp = fwd.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").cloned();
    let mut out = resp.bytes().await.unwrap().to_vec();
    if batch_write && status == 200 {
        let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let unprocessed = v
            .as_object_mut()
            .unwrap()
            .entry("UnprocessedItems")
            .or_insert_with(|| serde_json::json!({}));
        for (table, rest) in held {
            unprocessed[table] = rest;
        }
        out = serde_json::to_vec(&v).unwrap();
    }
    // The body changed, so moto's x-amz-crc32 is dropped (the SDK checks it when present).
    let mut r = axum::response::Response::builder().status(status);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(axum::body::Body::from(out)).unwrap()
}

#[tokio::test]
async fn a_large_seed_in_parallel_batches_writes_every_item_once_resending_unprocessed_ones() {
    const N: usize = 2_000;
    let moto = Moto::start();
    let t = Arc::new(Throttle {
        target: format!("{}/", moto.endpoint),
        http: reqwest::Client::new(),
        writes: Default::default(),
        held_back: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(axum::routing::any(throttle))
        .with_state(t.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("topology.yaml");
    std::fs::write(
        &topology,
        "tables:\n  - name: items\n    partitionKey: { name: pk, type: S }\n",
    )
    .unwrap();
    let seeds = dir.path().join("seeds");
    std::fs::create_dir(&seeds).unwrap();
    let lines: String = (0..N)
        .map(|i| format!("{{\"pk\": \"item-{i:05}\", \"n\": {i}}}\n"))
        .collect();
    std::fs::write(seeds.join("items.jsonl"), lines).unwrap();

    let cli = Cli::parse_from([
        "bootstrap",
        "--endpoint",
        &proxy,
        "-f",
        &topology.display().to_string(),
        "--seeds",
        &seeds.display().to_string(),
        "--concurrency",
        "8",
    ]);
    let summary = run_with(cli.args, None).await.unwrap();
    assert_eq!(summary.items_written, N);

    // Every key reached moto exactly once, although about half of each batch was sent back
    // as unprocessed (25 -> 13 + 12 -> 6 + 6 -> ...).
    let writes = t.writes.lock().unwrap().clone();
    assert_eq!(writes.len(), N);
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    assert!(
        t.held_back.load(std::sync::atomic::Ordering::Relaxed) >= N / 2,
        "the proxy sent items back as unprocessed"
    );

    // And the table holds them all (read from moto directly, past the proxy).
    let c = ddb(&moto.endpoint);
    let mut count = 0;
    let mut start = None;
    loop {
        let out = c
            .scan()
            .table_name("items")
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        count += out.count as usize;
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(count, N);
    server.abort();
}
