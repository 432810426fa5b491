//! Cluster mode's side of "connect the app the same way": the operator writes the
//! `<env>-connection` Secret (owned, labelled, written only when its data changes) from the
//! kms and secrets-api credentials and `<env>-secrets`, and `parity env` prints it (in-cluster
//! URLs, or kind's localhost ports with --host). examples/app-deployment.yaml loads it
//! with envFrom and passes the restricted Pod Security level.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Resource, ResourceExt};
use parity_operator::api::ParityEnvironment;
use serde_json::json;
use support::kube_env::TestNamespace;
use support::operator::Operator;
use support::wait::until;

fn data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

fn parity_env(ns: &str, extra: &[&str]) -> String {
    let out = Command::new(support::dev::parity_bin())
        .args(["env", "dev", "-n", ns])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_connection_secret_and_parity_env_carry_the_same_set() {
    let ns = TestNamespace::new("devenv").await;
    support::crd::install_crd(&ns.client).await;
    let op = Operator::start(&ns.name, "devenv-a", None);
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/secrets.schema.json"
    ))
    .unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-secrets-schema"},
        "data": {"secrets.schema.json": schema}
    }))
    .unwrap();
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let env: ParityEnvironment = serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": "dev"},
        "spec": {
            "tier": "Local", "parityLevel": 3,
            "dynamodb": {"persistence": {"mode": "InMemory"},
                         "tables": [{"name": "orders", "partitionKey": {"name": "id", "type": "S"}}]},
            "secrets": {"schema": {"name": "app-secrets-schema", "key": "secrets.schema.json"},
                        "infisical": {"projectSlug": "shop-backend", "envSlug": "dev"}},
            "dashboard": {"enabled": true, "decryption": "Server"}
        }
    }))
    .unwrap();
    let envs: Api<ParityEnvironment> = ns.api();
    let created = envs.create(&PostParams::default(), &env).await.unwrap();
    let secrets: Api<Secret> = ns.api();
    let conn = until("Secret dev-connection", Duration::from_secs(90), || async {
        secrets
            .get_opt("dev-connection")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "not yet".to_string())
    })
    .await;

    // Owned by the environment, labelled like its other objects.
    let owner = &conn.owner_references()[0];
    assert_eq!(owner.uid, created.uid().unwrap());
    assert_eq!(
        conn.labels()["app.kubernetes.io/managed-by"],
        "parity-operator"
    );
    assert_eq!(conn.labels()["parity.dev/environment"], "dev");

    let d = data(&conn);
    let kms = data(&secrets.get("dev-kms-credentials").await.unwrap());
    let api = data(&secrets.get("dev-secrets-api-credentials").await.unwrap());
    let app = data(&secrets.get("dev-secrets").await.unwrap());
    let svc = |s: &str, port: u16| format!("http://dev-{s}.{}.svc:{port}", ns.name);
    assert_eq!(d["AWS_ENDPOINT_URL_DYNAMODB"], svc("dynamodb", 8000));
    assert_eq!(d["AWS_ENDPOINT_URL_KMS"], svc("kms", 8080));
    assert_eq!(d["INFISICAL_SITE_URL"], svc("secrets-api", 8095));
    assert_eq!(d["AWS_ACCESS_KEY_ID"], kms["access-key-id"]);
    assert_eq!(d["AWS_SECRET_ACCESS_KEY"], kms["secret-access-key"]);
    assert_eq!(d["INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"], api["client-id"]);
    assert_eq!(
        d["INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"],
        api["client-secret"]
    );
    assert_eq!(d["PARITY_KMS_KEY_ID"], "alias/parity/dev");
    assert_eq!(d["AWS_REGION"], "us-east-1");
    for (k, v) in &app {
        if k != "AWS_REGION" {
            assert_eq!(&d[k], v, "{k}");
        }
    }

    // parity env prints the same set: dotenv and JSON, in-cluster URLs.
    let dotenv = parity_env(&ns.name, &[]);
    for (k, v) in &d {
        assert!(dotenv.contains(&format!("{k}='{v}'\n")), "{k} in\n{dotenv}");
    }
    let json: BTreeMap<String, String> =
        serde_json::from_str(&parity_env(&ns.name, &["-o", "json"])).unwrap();
    assert_eq!(json, d);
    let shell = parity_env(&ns.name, &["-o", "shell"]);
    assert!(shell.contains("export PARITY_KMS_KEY_ID='alias/parity/dev'\n"));
    // --host: kind-config.yaml's localhost ports, also in the endpointUrl secrets.
    let host: BTreeMap<String, String> =
        serde_json::from_str(&parity_env(&ns.name, &["-o", "json", "--host"])).unwrap();
    assert_eq!(host["AWS_ENDPOINT_URL_DYNAMODB"], "http://localhost:8000");
    assert_eq!(host["AWS_ENDPOINT_URL_KMS"], "http://localhost:8880");
    assert_eq!(host["INFISICAL_SITE_URL"], "http://localhost:8095");
    assert_eq!(host["PARITY_DASHBOARD_URL"], "http://localhost:8080");
    assert_eq!(host["KMS_ENDPOINT"], "http://localhost:8880");
    assert_eq!(host["AWS_SECRET_ACCESS_KEY"], d["AWS_SECRET_ACCESS_KEY"]);

    // Written only when the data changes: a reconcile (forced by a touch) leaves it alone.
    let rv = conn.resource_version();
    let reconciles = op.ok_reconciles().await;
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
    )
    .await
    .unwrap();
    until(
        "the operator to reconcile the touch",
        Duration::from_secs(60),
        || async {
            match op.ok_reconciles().await {
                n if n > reconciles => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    assert_eq!(
        secrets
            .get("dev-connection")
            .await
            .unwrap()
            .resource_version(),
        rv
    );

    // A hand edit is repaired.
    secrets
        .patch(
            "dev-connection",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"AWS_REGION": "ZXUtd2VzdC0x"}})),
        )
        .await
        .unwrap();
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touch": "2"}}})),
    )
    .await
    .unwrap();
    until(
        "dev-connection repaired",
        Duration::from_secs(30),
        || async {
            let s = secrets
                .get("dev-connection")
                .await
                .map_err(|e| e.to_string())?;
            (data(&s)["AWS_REGION"] == "us-east-1")
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;

    // The example app loads it with envFrom and meets the restricted Pod Security level.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/app-deployment.yaml"
    ))
    .unwrap();
    let obj: DynamicObject = serde_yaml::from_str(&text).unwrap();
    let ar = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "apps",
        "v1",
        "Deployment",
    ));
    let deployments: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    deployments
        .patch(
            "shop-backend",
            &PatchParams::apply("test").dry_run(),
            &Patch::Apply(&obj),
        )
        .await
        .expect("examples/app-deployment.yaml is accepted");
    assert_eq!(
        obj.data["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "dev-connection"
    );
    let _ = conn.meta();
}
