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

#[tokio::test]
async fn rewrap_moves_every_field_to_the_new_key_version_and_items_still_decrypt() {
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
    let cards: Vec<String> = (0..5).map(|i| format!("4000-0000-0000-000{i}")).collect();
    std::fs::write(
        seeds.join("customers.jsonl"),
        cards
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!("{{\"id\": \"{i}\", \"email\": \"u{i}@example.com\", \"card\": \"{c}\"}}\n")
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
    let kms_flags = [
        "--kms-endpoint",
        &kms.endpoint,
        "--kms-key-id",
        "alias/customers-pii",
        "--kms-access-key-id",
        ACCESS_KEY_ID,
    ];
    let mut cmd = parity_cmd(&[
        "bootstrap",
        "--endpoint",
        &moto.endpoint,
        "-f",
        &repo("examples/topology.yaml"),
        "--seeds",
        &seeds.display().to_string(),
    ]);
    cmd.args(kms_flags)
        .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
    let run: dynamo_env::Run = cmd.output().unwrap().into();
    assert_eq!(run.code, 0, "{run:?}");

    let c = ddb(&moto.endpoint);
    let before = envelopes(&c).await;
    assert_eq!(before.len(), 5);
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

    let checkpoint = dir.path().join("rewrap.checkpoint");
    let rewrap = |extra: &[&str]| -> dynamo_env::Run {
        let mut cmd = parity_cmd(&[
            "rewrap",
            "--endpoint",
            &moto.endpoint,
            "--table",
            "customers",
            "--schema",
            &schema.display().to_string(),
            "--checkpoint",
            &checkpoint.display().to_string(),
            "--page-size",
            "2",
        ]);
        cmd.args(kms_flags)
            .args(extra)
            .env("PARITY_KMS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        cmd.output().unwrap().into()
    };
    let run = rewrap(&[]);
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
    let run = rewrap(&[]);
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
        serde_yaml::from_str(&std::fs::read_to_string(&schema).unwrap()).unwrap();
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

    // Resumable: a checkpoint left by an interrupted run makes the scan start after it.
    std::fs::write(&checkpoint, r#"{"id": {"S": "3"}}"#).unwrap();
    let run = rewrap(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("resuming customers from the checkpoint"),
        "{run:?}"
    );
    let scanned: usize = run
        .stdout
        .split("rewrap customers: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {run:?}"));
    assert!(scanned < 5, "resumed scan covered {scanned} items: {run:?}");
    assert!(!checkpoint.exists());
}
