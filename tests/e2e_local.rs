//! End to end on the real node: a Local level-3 environment (engine Moto, seed fixtures with
//! an encrypted field, generated secrets, a decrypting dashboard) becomes Ready with every pod
//! Running and passing its probes, and unmodified clients on the host reach it through its
//! Services: aws-sdk-kms, the DynamoDB SDK (seeds decrypting through the kms pod), the
//! Infisical SDK and headless Chromium. Then a moto restart and a suspend show what survives.
//! Run with `make e2e` (the tests are ignored on kwok's fake nodes).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use parity_operator::crypto::{EncryptionContext, Encryptor, KmsKeyProvider};
use serde_json::{Value, json};
use support::browser::{Browser, screenshot_dir};
use support::e2e::*;
use support::kube_env::TestNamespace;
use support::wait::until;

/// The plaintext of customer 42's encrypted `card`: only the decrypting dashboard's page and
/// the app's own decryption may show it.
const CANARY: &str = "4111-1111-1111-1111-canary-e2e9";

fn spec() -> Value {
    json!({
        "tier": "Local", "parityLevel": 3,
        "topology": {"tables": [{
            "name": "customers", "partitionKey": {"name": "id", "type": "S"},
            "billingMode": "PAY_PER_REQUEST",
            "globalSecondaryIndexes": [{
                "name": "byEmail", "partitionKey": {"name": "email", "type": "S"},
                "projection": {"type": "ALL"}
            }]
        }]},
        "dynamodb": {"engine": "Moto", "seed": {"configMapRef": {"name": "seeds"}}},
        "keys": {"deletionPolicy": "Delete"},
        "secrets": {
            "provider": "Local",
            "schema": {"name": "app-secrets-schema", "key": "secrets.schema.json"},
            "infisical": {"projectSlug": "shop", "envSlug": "dev", "secretsPath": "/"}
        },
        "dashboard": {"enabled": true, "decryption": "Server"}
    })
}

async fn config_map(ns: &TestNamespace, name: &str, data: &[(&str, String)]) {
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .expect("configmap");
}

/// The namespace, its ConfigMaps (schema, seeds), the CRD, the operator and the environment.
async fn start(prefix: &str) -> (TestNamespace, support::operator::Operator) {
    require_real_node();
    let ns = TestNamespace::new(prefix).await;
    support::crd::install_crd(&ns.client).await;
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/secrets.schema.json"
    ))
    .expect("schema");
    config_map(
        &ns,
        "app-secrets-schema",
        &[("secrets.schema.json", schema)],
    )
    .await;
    config_map(
        &ns,
        "seeds",
        &[
            (
                "customers.jsonl",
                format!(
                    "{{\"id\": \"1\", \"email\": \"ada@example.com\"}}\n{{\"id\": \"42\", \"email\": \"c42@example.com\", \"card\": \"{CANARY}\"}}\n"
                ),
            ),
            (
                "customers.fixture.yaml",
                "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  attribute: \"{attribute}\"\n  id: \"{id}\"\n".into(),
            ),
        ],
    )
    .await;
    let op = operator(&ns, &format!("{prefix}-op"), &[]);
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": "dev"}, "spec": spec()
    }))
    .expect("environment");
    ns.api::<ParityEnvironment>()
        .create(&PostParams::default(), &env)
        .await
        .expect("create environment");
    (ns, op)
}

async fn wait_ready(ns: &TestNamespace) -> ParityEnvironment {
    let envs = ns.api::<ParityEnvironment>();
    until("environment dev to be Ready", E2E_WAIT, || async {
        let e = envs.get("dev").await.map_err(|e| vec![e.to_string()])?;
        let conds: Vec<String> = e
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .map(|c| format!("{}={:?}/{}: {}", c.type_, c.status, c.reason, c.message))
            .collect();
        let ready = e.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && format!("{:?}", c.status) == "True"
                    && c.observed_generation == e.metadata.generation
            })
        });
        if ready { Ok(e) } else { Err(conds) }
    })
    .await
}

fn ddb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use parity_operator::dynamo::connect::{AwsArgs, client};
    client(endpoint, &AwsArgs::default(), 3)
}

async fn customer(
    ddb: &aws_sdk_dynamodb::Client,
    id: &str,
) -> Option<BTreeMap<String, AttributeValue>> {
    ddb.get_item()
        .table_name("customers")
        .key("id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .ok()?
        .item
        .map(|i| i.into_iter().collect())
}

/// The kms pod as an app reaches it: its Service URL and the credentials Secret.
struct KeyService {
    url: String,
    akid: String,
    secret: String,
}

impl KeyService {
    async fn of(ns: &TestNamespace) -> KeyService {
        KeyService {
            url: service_url(ns, "dev-kms").await,
            akid: secret_value(ns, "dev-kms-credentials", "access-key-id").await,
            secret: secret_value(ns, "dev-kms-credentials", "secret-access-key").await,
        }
    }

    fn client(&self) -> aws_sdk_kms::Client {
        support::kms::client(&self.url, &self.akid, &self.secret)
    }

    /// Envelope decryption the way the app does it, through this key service.
    fn app(&self) -> Encryptor<KmsKeyProvider> {
        Encryptor::new(KmsKeyProvider::new(
            KmsKeyProvider::client_for(&self.url, "us-east-1", &self.akid, &self.secret),
            "alias/parity/dev",
        ))
    }
}

/// The encryption context the seed schema binds customer 42's card to.
fn card_context() -> EncryptionContext {
    [("table", "customers"), ("attribute", "card"), ("id", "42")]
        .into_iter()
        .collect()
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_a_local_environment_serves_unmodified_clients_from_the_host() {
    let (ns, op) = start("e2e-local").await;
    wait_ready(&ns).await;

    // Ready means serving: every pod Running, every container ready, restricted and read-only.
    let pods = wait_pods_ready(&ns, "dev").await;
    let components: Vec<String> = pods
        .iter()
        .filter_map(|p| p.labels().get("parity.dev/component").cloned())
        .collect();
    for c in ["kms", "dynamodb", "dashboard", "secrets-api"] {
        assert!(
            components.iter().any(|x| x == c),
            "no running {c} pod: {components:?}"
        );
    }
    for p in &pods {
        for c in &p.spec.as_ref().expect("spec").containers {
            let sc = c.security_context.as_ref().expect("security context");
            assert_eq!(
                sc.read_only_root_filesystem,
                Some(true),
                "{}/{}",
                p.name_any(),
                c.name
            );
            assert_eq!(
                sc.run_as_non_root,
                Some(true),
                "{}/{}",
                p.name_any(),
                c.name
            );
        }
        let probes = p.spec.as_ref().expect("spec").containers[0]
            .readiness_probe
            .is_some();
        assert!(probes, "{} has no readiness probe", p.name_any());
    }

    // KMS: aws-sdk-kms against the kms pod, through its Service.
    let keys = KeyService::of(&ns).await;
    let kms = keys.client();
    let dk = kms
        .generate_data_key()
        .key_id("alias/parity/dev")
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey through the kms pod");
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().expect("blob").clone())
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(back.plaintext(), dk.plaintext());
    // The cluster's kms pod serves no admin operations: an app holding the client
    // credentials cannot rotate (or disable) the key; rotation goes through the environment.
    // (The read-only keyring mount behind it is covered by tests/kms_sdk.rs.)
    let key_id = dk.key_id().expect("key id").to_string();
    let rotate = kms.rotate_key_on_demand().key_id(&key_id).send().await;
    let err = format!(
        "{:?}",
        rotate.expect_err("the kms pod served RotateKeyOnDemand")
    );
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains("--allow-admin-operations"), "{err}");

    // DynamoDB SDK against the moto pod: the table, its index, the seeds, and the encrypted
    // field decrypting the way the app decrypts, through the kms pod.
    let ddb_url = service_url(&ns, "dev-dynamodb").await;
    let ddb = ddb(&ddb_url);
    let table = ddb
        .describe_table()
        .table_name("customers")
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("table");
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some("byEmail")
    );
    let item = customer(&ddb, "42").await.expect("seeded customer 42");
    let AttributeValue::B(card) = &item["card"] else {
        panic!("card is not encrypted: {item:?}")
    };
    assert!(!String::from_utf8_lossy(card.as_ref()).contains(CANARY));
    let (app, ctx) = (keys.app(), card_context());
    assert_eq!(
        *app.decrypt(card.as_ref(), &ctx).await.expect("decrypt"),
        CANARY.as_bytes()
    );

    // The bootstrap Job really ran, and its log shows its progress.
    let job_pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("parity.dev/component=bootstrap"))
        .await
        .expect("pods");
    let job_pod = job_pods.items.first().expect("bootstrap pod").name_any();
    let log = ns
        .api::<Pod>()
        .logs(&job_pod, &LogParams::default())
        .await
        .expect("bootstrap log");
    for step in ["seed fixtures valid", "bootstrap complete"] {
        assert!(
            log.contains(step),
            "no {step:?} in the bootstrap log:\n{log}"
        );
    }

    // The Infisical SDK against secrets-api: the generated secrets, by their schema names.
    let site = service_url(&ns, "dev-secrets-api").await;
    let client_id = secret_value(&ns, "dev-secrets-api-credentials", "client-id").await;
    let client_secret = secret_value(&ns, "dev-secrets-api-credentials", "client-secret").await;
    let expected = secret_value(&ns, "dev-secrets", "WEBHOOK_SECRET").await;
    let out = Command::new(support::moto::python_bin().join("python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/infisical_sdk_client.py"
        ))
        .args([
            &site,
            &client_id,
            &client_secret,
            "shop",
            "dev",
            "/",
            "WEBHOOK_SECRET",
        ])
        .output()
        .expect("run the Infisical SDK");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("sdk json");
    assert_eq!(got["get"]["WEBHOOK_SECRET"], expected.as_str());

    // Headless Chromium on the dashboard pod: the seeded item decrypted, a live write shown.
    let dashboard = service_url(&ns, "dev-dashboard").await;
    let mut b = Browser::start(&dashboard);
    let page = b.cmd("open /tables/customers");
    assert_eq!(page["card"]["kind"], "decrypted", "{page}");
    assert_eq!(page["card"]["text"], CANARY);
    assert_eq!(b.cmd("waitlive 30000")["live"], true);
    ddb.put_item()
        .table_name("customers")
        .item("id", AttributeValue::S("live-1".into()))
        .item("email", AttributeValue::S("live@example.com".into()))
        .send()
        .await
        .expect("app write");
    let seen = b.cmd("waitrow id=live-1 10000");
    assert_eq!(seen["found"], true, "the live write did not appear: {seen}");
    println!("live write shown after {} ms", seen["ms"]);
    let shot = screenshot_dir().join("e2e-dashboard.png");
    b.cmd(&format!("screenshot {}", shot.display()));
    drop(b);

    // The plaintext never left through a log: every container of the namespace, the operator.
    let logs = all_logs(&ns).await;
    assert!(
        !logs.contains(CANARY) && !logs.contains("canary-e2e9"),
        "plaintext in pod logs"
    );
    assert!(
        !op.logs().contains("canary-e2e9"),
        "plaintext in the operator log"
    );
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_moto_restarts_and_suspend_bring_back_tables_and_seeds_but_not_app_writes() {
    let (ns, _op) = start("e2e-restart").await;
    wait_ready(&ns).await;
    let ddb = ddb(&service_url(&ns, "dev-dynamodb").await);
    ddb.put_item()
        .table_name("customers")
        .item("id", AttributeValue::S("app-1".into()))
        .send()
        .await
        .expect("app write");

    // The DynamoDB pod is deleted: its replacement starts empty, and the restore sidecar
    // brings the tables and the seeds back. Moto keeps nothing else: the app's item is gone.
    let pod_api = ns.api::<Pod>();
    let old: Vec<String> = pod_api
        .list(&ListParams::default().labels("parity.dev/component=dynamodb"))
        .await
        .expect("pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    for p in &old {
        pod_api
            .delete(p, &DeleteParams::default())
            .await
            .expect("delete pod");
    }
    // Only the replacement serves now (the old pod takes a while to terminate).
    until("the old DynamoDB pod to be gone", E2E_WAIT, || async {
        let left: Vec<String> = pods(&ns, "dev")
            .await
            .iter()
            .map(|p| p.name_any())
            .filter(|n| old.contains(n))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
    wait_pods_ready(&ns, "dev").await;
    wait_seeded(&ddb, "the seeds to come back after the restart").await;
    assert_eq!(
        customer(&ddb, "app-1").await,
        None,
        "moto kept an app write across a restart"
    );
    // It was the new pod's restore sidecar that made them.
    let logs = all_logs(&ns).await;
    let restore = logs
        .split("\n--- ")
        .find(|l| l.contains("/restore\n") && !old.iter().any(|o| l.starts_with(o.as_str())))
        .unwrap_or_else(|| panic!("no restore log of the new pod in:\n{logs}"));
    assert!(
        restore.contains("table customers: create table"),
        "{restore}"
    );
    assert!(restore.contains("2 seed item(s) written"), "{restore}");

    // The emulator loses its tables while the pod lives on (moto restarted alone): the
    // sidecar notices within seconds and restores them.
    ddb.delete_table()
        .table_name("customers")
        .send()
        .await
        .expect("DeleteTable");
    wait_seeded(&ddb, "the sidecar to restore the dropped table").await;
    let logs = all_logs(&ns).await;
    assert!(logs.contains("restoring tables and seeds"), "{logs}");

    // Suspend scales everything to zero; resume brings the same seeds back again.
    let envs = ns.api::<ParityEnvironment>();
    let suspend = |on: bool| json!({"spec": {"suspend": on}});
    envs.patch("dev", &PatchParams::default(), &Patch::Merge(suspend(true)))
        .await
        .expect("suspend");
    until("the pods to be gone while suspended", E2E_WAIT, || async {
        let left: Vec<String> = pods(&ns, "dev")
            .await
            .iter()
            .filter(|p| !p.labels().contains_key("job-name"))
            .map(|p| p.name_any())
            .collect();
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(suspend(false)),
    )
    .await
    .expect("resume");
    wait_ready(&ns).await;
    wait_seeded(&ddb, "the seeds after resume").await;
}

/// Waits until the seeded customer 42, with its encrypted card, is there.
async fn wait_seeded(ddb: &aws_sdk_dynamodb::Client, what: &str) {
    until(what, E2E_WAIT, || async {
        match customer(ddb, "42").await {
            Some(item) if item.contains_key("card") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The key version a stored envelope's data key is wrapped under (the parity kms blob header).
fn kek_version(envelope: &[u8]) -> u32 {
    let env = parity_operator::crypto::envelope::Envelope::parse(envelope).expect("envelope");
    parity_operator::crypto::blob::parse_header(&env.wrapped_key)
        .expect("parity kms blob")
        .kek_version
}

#[tokio::test]
#[ignore = "needs the real node: make e2e"]
async fn e2e_a_rotation_reaches_the_running_kms_and_rewrap_moves_old_envelopes() {
    let (ns, _op) = start("e2e-rotate").await;
    let envs = ns.api::<ParityEnvironment>();
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"keys": {"rotation": {"period": "1m"}}}})),
    )
    .await
    .expect("rotation period");
    wait_ready(&ns).await;
    let keys = KeyService::of(&ns).await;
    let ddb_url = service_url(&ns, "dev-dynamodb").await;
    let ddb = ddb(&ddb_url);
    let card = |item: BTreeMap<String, AttributeValue>| match item.get("card") {
        Some(AttributeValue::B(b)) => b.clone().into_inner(),
        other => panic!("card: {other:?}"),
    };
    let seeded = card(customer(&ddb, "42").await.expect("seeded customer"));
    let v1 = kek_version(&seeded);

    // The operator rotates once the active version is a minute old (it requeues for that
    // moment), says so in status and an event...
    support::penv::wait_key_versions(&envs, "dev", 2, E2E_WAIT).await;
    support::penv::wait_event(&ns, "KeyRotated").await;
    // ...and the running kms pod wraps new data keys with it once the kubelet refreshed the
    // mounted Secret (no restart).
    let kms = keys.client();
    until(
        "the kms pod to wrap with the new version",
        E2E_WAIT,
        || async {
            let dk = kms
                .generate_data_key()
                .key_id("alias/parity/dev")
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let blob = dk.ciphertext_blob().expect("blob").as_ref().to_vec();
            let v = parity_operator::crypto::blob::parse_header(&blob)
                .map_err(|e| e.to_string())?
                .kek_version;
            if v > v1 {
                Ok(v)
            } else {
                Err(format!("still version {v}"))
            }
        },
    )
    .await;

    // The seeded envelope (old version) still decrypts.
    let (app, ctx) = (keys.app(), card_context());
    assert_eq!(
        *app.decrypt(&seeded, &ctx).await.expect("old envelope"),
        CANARY.as_bytes()
    );

    // `parity rewrap` from the host moves it to the active version; it still decrypts.
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("customers.fixture.yaml");
    std::fs::write(
        &schema,
        "encrypt: [card]\ncontext:\n  table: \"{table}\"\n  attribute: \"{attribute}\"\n  id: \"{id}\"\n",
    )
    .expect("schema");
    let out = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["rewrap", "--endpoint", &ddb_url, "--table", "customers"])
        .args(["--schema", &schema.display().to_string()])
        .args([
            "--kms-endpoint",
            &keys.url,
            "--kms-key-id",
            "alias/parity/dev",
        ])
        .args(["--kms-access-key-id", &keys.akid])
        .env("PARITY_KMS_SECRET_ACCESS_KEY", &keys.secret)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .expect("parity rewrap");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("fields rewrapped 1"), "{said}");
    let moved = card(customer(&ddb, "42").await.expect("customer"));
    assert!(kek_version(&moved) > v1, "still under version {v1}");
    assert_eq!(
        *app.decrypt(&moved, &ctx).await.expect("rewrapped"),
        CANARY.as_bytes()
    );
}
