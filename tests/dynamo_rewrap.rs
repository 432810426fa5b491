//! `parity rewrap` as a process: seeded encrypted fields (through `parity kms`), a key
//! rotation, then every field moves to the new key version with its ciphertext body untouched
//! and still decrypts; a re-run has nothing left to do.

#[path = "support/dynamo_env.rs"]
mod dynamo_env;
mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_env::{ddb, parity_cmd, repo};
use parity_operator::crypto::{
    EncryptionContext, Encryptor, Envelope, Keyring, KmsKeyProvider, blob,
};
use support::kms::{ACCESS_KEY_ID, ParityKms, REGION, SECRET_ACCESS_KEY};
use support::moto::Moto;

async fn envelopes(c: &aws_sdk_dynamodb::Client) -> HashMap<String, Envelope> {
    let out = c.scan().table_name("customers").send().await.unwrap();
    out.items()
        .iter()
        .map(|it| {
            let AttributeValue::S(id) = &it["id"] else {
                panic!("id")
            };
            let AttributeValue::B(card) = &it["card"] else {
                panic!("card is not binary: {it:?}")
            };
            (id.clone(), Envelope::parse(card.as_ref()).unwrap())
        })
        .collect()
}

fn version(env: &Envelope) -> u32 {
    blob::parse_header(&env.wrapped_key).unwrap().kek_version
}

/// `n` customers seeded with an encrypted card through `parity kms`, and a rotation of the
/// key after seeding: every card is one key version behind.
struct Seeded {
    kms: ParityKms,
    moto: Moto,
    dir: tempfile::TempDir,
    schema: std::path::PathBuf,
    cards: Vec<String>,
    before: HashMap<String, Envelope>,
    v1: u32,
}

const KMS_FLAGS: [&str; 2] = ["--kms-key-id", "alias/customers-pii"];

impl Seeded {
    async fn start(n: usize) -> Seeded {
        let kr = Keyring::seeded(
            b"dynamo rewrap test seed 0123456789",
            jiff::Timestamp::now(),
        )
        .unwrap();
        let kms = ParityKms::start(
            &kr.to_json(),
            &["--alias", "alias/customers-pii", "--allow-admin-operations"],
        );
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let seeds = dir.path().join("seeds");
        std::fs::create_dir(&seeds).unwrap();
        let cards: Vec<String> = (0..n).map(|i| format!("4000-0000-0000-{i:04}")).collect();
        std::fs::write(
            seeds.join("customers.jsonl"),
            cards
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    format!(
                        "{{\"id\": \"{i}\", \"email\": \"u{i}@example.com\", \"card\": \"{c}\"}}\n"
                    )
                })
                .collect::<String>(),
        )
        .unwrap();
        let schema = seeds.join("customers.fixture.yaml");
        std::fs::write(
            &schema,
            "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  id: \"{id}\"\n",
        )
        .unwrap();
        let mut cmd = parity_cmd(&[
            "bootstrap",
            "--endpoint",
            &moto.endpoint,
            "-f",
            &repo("examples/topology.yaml"),
            "--seeds",
            &seeds.display().to_string(),
        ]);
        cmd.args(Self::kms_flags(&kms))
            .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        let run: dynamo_env::Run = cmd.output().unwrap().into();
        assert_eq!(run.code, 0, "{run:?}");

        let before = envelopes(&ddb(&moto.endpoint)).await;
        assert_eq!(before.len(), n);
        let v1 = version(&before["0"]);
        assert!(before.values().all(|e| version(e) == v1));

        // Rotate: a new active version; the old one stays for decryption.
        let k = kms.client();
        let key_id = k
            .describe_key()
            .key_id("alias/customers-pii")
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_string();
        k.rotate_key_on_demand()
            .key_id(&key_id)
            .send()
            .await
            .unwrap();
        Seeded {
            kms,
            moto,
            dir,
            schema,
            cards,
            before,
            v1,
        }
    }

    fn kms_flags(kms: &ParityKms) -> Vec<String> {
        let mut f = vec!["--kms-endpoint".to_string(), kms.endpoint.clone()];
        f.extend(KMS_FLAGS.map(String::from));
        f.extend(["--kms-access-key-id".to_string(), ACCESS_KEY_ID.to_string()]);
        f
    }

    fn checkpoint(&self) -> std::path::PathBuf {
        self.dir.path().join("rewrap.checkpoint")
    }

    /// `parity rewrap` of customers at `endpoint` (moto's unless given), not yet started.
    fn rewrap_cmd(&self, endpoint: Option<&str>, page_size: &str) -> std::process::Command {
        let mut cmd = parity_cmd(&[
            "rewrap",
            "--endpoint",
            endpoint.unwrap_or(&self.moto.endpoint),
            "--table",
            "customers",
            "--schema",
            &self.schema.display().to_string(),
            "--checkpoint",
            &self.checkpoint().display().to_string(),
            "--page-size",
            page_size,
        ]);
        cmd.args(Self::kms_flags(&self.kms))
            .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        cmd
    }
}

#[tokio::test]
async fn rewrap_moves_every_field_to_the_new_key_version_and_items_still_decrypt() {
    let seeded = Seeded::start(5).await;
    let (kms, cards, before, v1) = (&seeded.kms, &seeded.cards, &seeded.before, seeded.v1);
    let (schema, checkpoint) = (&seeded.schema, seeded.checkpoint());
    let c = ddb(&seeded.moto.endpoint);
    let rewrap = || -> dynamo_env::Run { seeded.rewrap_cmd(None, "2").output().unwrap().into() };
    let run = rewrap();
    assert_eq!(run.code, 0, "{run:?}\nkms:\n{}", kms.output());
    let v2 = v1 + 1;
    assert!(
        run.stdout.contains(&format!(
            "rewrap customers: 5 items scanned; fields rewrapped 5, already current 0, changed concurrently 0, not envelopes 0, failed 0; key versions before {{{v1}}}, now {{{v2}}}"
        )),
        "{run:?}"
    );
    assert!(!checkpoint.exists(), "the checkpoint is removed when done");

    let after = envelopes(&c).await;
    let app = Encryptor::new(KmsKeyProvider::new(
        KmsKeyProvider::client_for(&kms.endpoint, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        "alias/customers-pii",
    ));
    for (id, env) in &after {
        assert_eq!(version(env), v2, "item {id}");
        // Only the wrapping changed: same nonce, commitment and ciphertext body.
        let old = &before[id];
        assert_eq!(
            (&env.nonce, &env.commitment, &env.ciphertext),
            (&old.nonce, &old.commitment, &old.ciphertext)
        );
        let ctx: EncryptionContext = [("table", "customers"), ("id", id.as_str())]
            .into_iter()
            .collect();
        let i: usize = id.parse().unwrap();
        assert_eq!(
            *app.decrypt(&env.to_bytes().unwrap(), &ctx).await.unwrap(),
            cards[i].as_bytes()
        );
    }

    // Nothing left to do: no write, and it says so.
    let run = rewrap();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("fields rewrapped 0, already current 5"),
        "{run:?}"
    );
    // A plaintext card never shows in the logs.
    assert!(!run.stderr.contains("4000-0000"), "{run:?}");

    // Safe while the app writes: a field changed after the scan is left as the app wrote it.
    let stale = c
        .get_item()
        .table_name("customers")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ctx1: EncryptionContext = [("table", "customers"), ("id", "1")].into_iter().collect();
    let fresh = app.encrypt(b"5555-app-write", &ctx1).await.unwrap();
    c.update_item()
        .table_name("customers")
        .key("id", AttributeValue::S("1".into()))
        .update_expression("SET card = :c")
        .expression_attribute_values(":c", AttributeValue::B(fresh.clone().into()))
        .send()
        .await
        .unwrap();
    let table = parity_operator::dynamo::live::describe(&c, "customers")
        .await
        .unwrap()
        .unwrap()
        .table;
    // Make the stale copy look outdated so the rewrap wants to write it.
    let mut stale_old = stale.clone();
    stale_old.insert(
        "card".into(),
        AttributeValue::B(before["1"].to_bytes().unwrap().into()),
    );
    let schema_doc: parity_operator::dynamo::seed::FixtureSchema =
        serde_yaml::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let mut summary = parity_operator::dynamo::rewrap::RewrapSummary::default();
    parity_operator::dynamo::rewrap::rewrap_item(
        &c,
        &app,
        &table,
        &schema_doc,
        &["card".to_string()],
        &stale_old,
        &mut summary,
    )
    .await;
    assert_eq!(summary.fields_changed_concurrently, 1, "{summary:?}");
    assert_eq!(summary.fields_rewrapped, 0, "{summary:?}");
    let now = c
        .get_item()
        .table_name("customers")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        now["card"],
        AttributeValue::B(fresh.into()),
        "the app's write was kept"
    );
}

/// An HTTP proxy in front of DynamoDB that forwards `budget` requests and then holds every
/// further one unanswered: a rewrap through it stops at a known point, as if the network or
/// the process had stalled there.
struct Gate {
    endpoint: String,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    async fn start(upstream: &str, budget: usize) -> Gate {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let forwarded = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let (upstream, http) = (upstream.to_string(), reqwest::Client::new());
        let h = held.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (upstream, http, forwarded, held) =
                (upstream.clone(), http.clone(), forwarded.clone(), h.clone());
            async move {
                if forwarded.fetch_add(1, Ordering::SeqCst) >= budget {
                    held.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                }
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
                let mut out = http.request(parts.method, format!("{upstream}{}", parts.uri));
                for (k, v) in parts.headers.iter().filter(|(k, _)| *k != "host") {
                    out = out.header(k, v);
                }
                let resp = out.body(body).send().await.expect("upstream");
                let mut back = axum::http::Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    back = back.header(k, v);
                }
                back.body(axum::body::Body::from(
                    resp.bytes().await.expect("upstream body"),
                ))
                .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Gate { endpoint, held }
    }

    fn holding(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

fn rewrapped_count(run: &dynamo_env::Run) -> usize {
    run.stdout
        .split("fields rewrapped ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {run:?}"))
}

fn scanned_count(run: &dynamo_env::Run) -> usize {
    run.stdout
        .split("rewrap customers: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {run:?}"))
}

#[tokio::test]
async fn an_interrupted_rewrap_resumes_from_its_own_checkpoint_and_a_failed_field_exits_1() {
    const ITEMS: usize = 12;
    let seeded = Seeded::start(ITEMS).await;
    let c = ddb(&seeded.moto.endpoint);
    let v2 = seeded.v1 + 1;
    let at_v2 =
        |envs: &HashMap<String, Envelope>| envs.values().filter(|e| version(e) == v2).count();

    // DescribeTable, then pages of one Scan and two UpdateItems: after 7 requests two pages
    // are done and checkpointed, and the next Scan hangs. The run is killed there.
    let gate = Gate::start(&seeded.moto.endpoint, 7).await;
    let mut first = seeded
        .rewrap_cmd(Some(&gate.endpoint), "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::wait::until(
        "the rewrap to stall at the gate",
        std::time::Duration::from_secs(60),
        || {
            let state = first.try_wait().map_err(|e| e.to_string());
            let holding = gate.holding();
            async move {
                match state {
                    Ok(None) if holding => Ok(()),
                    other => Err(format!("exit status: {other:?}, holding: {holding}")),
                }
            }
        },
    )
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let checkpoint = std::fs::read_to_string(seeded.checkpoint()).expect("a checkpoint was left");
    assert!(checkpoint.contains("\"id\""), "{checkpoint}");
    let done = at_v2(&envelopes(&c).await);
    assert!(
        done > 0 && done < ITEMS,
        "{done} items rewrapped before the kill"
    );

    // The next run starts after the checkpoint: it scans only the rest and rewraps it all.
    let run: dynamo_env::Run = seeded.rewrap_cmd(None, "2").output().unwrap().into();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("resuming customers from the checkpoint"),
        "{run:?}"
    );
    assert_eq!(scanned_count(&run), ITEMS - done, "{run:?}");
    assert_eq!(rewrapped_count(&run), ITEMS - done, "{run:?}");
    assert_eq!(at_v2(&envelopes(&c).await), ITEMS);
    assert!(!seeded.checkpoint().exists());

    // A field that cannot be unwrapped (its wrapped key corrupted) is counted, named in a
    // warning without its value, and makes the command exit 1; the others are untouched.
    let mut broken = seeded.before["3"].clone();
    let last = broken.wrapped_key.len() - 1;
    broken.wrapped_key[last] ^= 0x01;
    let broken = broken.to_bytes().unwrap();
    c.update_item()
        .table_name("customers")
        .key("id", AttributeValue::S("3".into()))
        .update_expression("SET card = :c")
        .expression_attribute_values(":c", AttributeValue::B(broken.clone().into()))
        .send()
        .await
        .unwrap();
    let run: dynamo_env::Run = seeded.rewrap_cmd(None, "5").output().unwrap().into();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("failed 1;"), "{run:?}");
    assert!(run.stderr.contains("could not be rewrapped"), "{run:?}");
    for card in &seeded.cards {
        assert!(
            !run.stdout.contains(card) && !run.stderr.contains(card),
            "{run:?}"
        );
    }
    let now = envelopes(&c).await;
    assert_eq!(
        now["3"].to_bytes().unwrap(),
        broken,
        "the failed field is left as it was"
    );
    assert_eq!(at_v2(&now), ITEMS - 1);
}
