//! The API server itself rejects invalid ParityEnvironments with messages that name the field
//! and the fix (CEL rules and OpenAPI bounds of the generated CRD), applies the defaults, and
//! accepts the examples.

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use support::crd::install_crd;
use support::kube_env::TestNamespace;
use support::wait::until;

fn penv_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let ar = ApiResource::erase::<parity_operator::api::ParityEnvironment>(&());
    Api::namespaced_with(ns.client.clone(), &ns.name, &ar)
}

fn manifest(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "parity.dev/v1alpha1",
        "kind": "ParityEnvironment",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("manifest")
}

async fn setup(prefix: &str) -> (TestNamespace, Api<DynamicObject>) {
    let ns = TestNamespace::new(prefix).await;
    install_crd(&ns.client).await;
    let api = penv_api(&ns);
    // A freshly updated CRD can take a moment to be served with its new schema: wait until a
    // known-invalid object is refused by the CEL rule.
    let probe = manifest("probe", json!({"tier": "Local", "ttl": "1h"}));
    until("CRD rules served", Duration::from_secs(30), || {
        let api = api.clone();
        let probe = probe.clone();
        async move {
            match api
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &probe,
                )
                .await
            {
                Err(kube::Error::Api(e)) if e.message.contains("spec.ttl is allowed only") => {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    (ns, api)
}

/// (name, spec or full object, expected fragment of the API server's message)
fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    let kms = json!({"provider": "Kms", "kms": {"keyId": "alias/x"}});
    let ext = json!({"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1"}});
    let table = |extra: Value| {
        let mut t = json!({"name": "orders", "partitionKey": {"name": "pk", "type": "S"}});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    };
    vec![
        (
            "trusted-proxy-not-a-network",
            json!({"tier": "CI", "dashboard": {"trustedProxies": ["10.0.0.0/8", "proxy.example"]}}),
            "spec.dashboard.trustedProxies: each entry must be an IP network",
        ),
        (
            "egress-cidr-bad-prefix",
            json!({"tier": "Staging", "parityLevel": 1, "keys": kms, "dynamodb": {"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1", "egressCidrs": ["10.0.0.0/33"]}}}),
            "spec.dynamodb.external.egressCidrs: each entry must be an IP network",
        ),
        (
            "decrypt-ci",
            json!({"tier": "CI", "dashboard": {"decryption": "Server"}}),
            "spec.dashboard.decryption: Server is allowed only when spec.tier is Local",
        ),
        (
            "decrypt-staging",
            json!({"tier": "Staging", "parityLevel": 0, "keys": kms, "dashboard": {"decryption": "Server"}}),
            "spec.dashboard.decryption: Server is allowed only when spec.tier is Local",
        ),
        (
            "ttl-local",
            json!({"tier": "Local", "ttl": "1h"}),
            "spec.ttl is allowed only when spec.tier is CI",
        ),
        (
            "ttl-garbage",
            json!({"tier": "CI", "ttl": "tomorrow"}),
            "spec.ttl in body should match",
        ),
        (
            "kms-no-key",
            json!({"tier": "Local", "keys": {"provider": "Kms"}}),
            "spec.keys.kms.keyId is required when spec.keys.provider is Kms",
        ),
        (
            "seeded-no-ref",
            json!({"tier": "CI", "keys": {"local": {"source": "Seeded"}}}),
            "spec.keys.local.seedSecretRef is required when spec.keys.local.source is Seeded",
        ),
        (
            "level-4",
            json!({"tier": "Local", "parityLevel": 4}),
            "spec.parityLevel must be between 0 and 3",
        ),
        (
            "level-neg",
            json!({"tier": "Local", "parityLevel": -1}),
            "spec.parityLevel must be between 0 and 3",
        ),
        (
            "staging-no-ext",
            json!({"tier": "Staging", "keys": kms}),
            "spec.dynamodb.external is required when spec.tier is Staging",
        ),
        (
            "local-ext",
            json!({"tier": "Local", "dynamodb": ext}),
            "spec.dynamodb.external is allowed only when spec.tier is Staging",
        ),
        (
            "staging-local-keys",
            json!({"tier": "Staging", "dynamodb": ext}),
            "spec.keys.provider must be Kms when spec.tier is Staging",
        ),
        (
            "staging-mirror",
            json!({"tier": "Staging", "keys": kms, "dynamodb": ext, "mirror": {"from": {"name": "x"}}}),
            "spec.mirror is not allowed when spec.tier is Staging",
        ),
        (
            "retain-zero",
            json!({"tier": "Local", "keys": {"rotation": {"retainVersions": 0}}}),
            "spec.keys.rotation.retainVersions must be at least 1",
        ),
        (
            "infisical-bare",
            json!({"tier": "Local", "secrets": {"provider": "Infisical"}}),
            "spec.secrets.infisical is required when spec.secrets.provider is Infisical",
        ),
        (
            "provisioned-bare",
            json!({"tier": "Local", "dynamodb": {"tables": [table(json!({"billingMode": "Provisioned"}))]}}),
            "provisioned is required when billingMode is Provisioned",
        ),
        (
            "same-keys",
            json!({"tier": "Local", "dynamodb": {"tables": [table(json!({"sortKey": {"name": "pk", "type": "N"}}))]}}),
            "sortKey.name must differ from partitionKey.name",
        ),
        (
            "dup-tables",
            json!({"tier": "Local", "dynamodb": {"tables": [table(json!({})), table(json!({}))]}}),
            "Duplicate value",
        ),
        (
            "bad-tier",
            json!({"tier": "Prod"}),
            "Unsupported value: \"Prod\"",
        ),
        (
            "no-tier",
            json!({"parityLevel": 1}),
            "spec.tier: Required value",
        ),
        (
            "moto-volume",
            json!({"tier": "Local", "dynamodb": {"engine": "Moto", "persistence": {"mode": "Volume"}}}),
            "spec.dynamodb.persistence.mode Volume is not supported by engine Moto",
        ),
        (
            "a-name-that-is-far-too-long-for-the-objects-it-prefixes",
            json!({"tier": "Local"}),
            "metadata.name must be a DNS-1035 label of at most 40 characters",
        ),
    ]
}

#[tokio::test]
async fn api_server_rejects_invalid_environments_with_the_fix() {
    let (_ns, api) = setup("crd-invalid").await;
    let cases = invalid_cases();
    assert!(cases.len() >= 12);
    let mut failures = Vec::new();
    for (name, spec, expected) in cases {
        match api
            .create(&PostParams::default(), &manifest(name, spec))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(expected) => {}
            Err(e) => failures.push(format!("{name}: expected {expected:?}, got error {e}")),
            Ok(_) => failures.push(format!("{name}: accepted, expected {expected:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn tier_is_immutable() {
    let (_ns, api) = setup("crd-immutable").await;
    api.create(
        &PostParams::default(),
        &manifest("dev", json!({"tier": "Local"})),
    )
    .await
    .expect("create Local");
    let patch = json!({"spec": {"tier": "CI"}});
    let err = api
        .patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("tier change must be refused");
    assert!(err.to_string().contains("spec.tier is immutable"), "{err}");
    // Other fields stay mutable.
    let patch = json!({"spec": {"parityLevel": 2, "suspend": true}});
    api.patch("dev", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("change level");
}

#[tokio::test]
async fn api_server_applies_visible_defaults() {
    let (_ns, api) = setup("crd-defaults").await;
    let created = api
        .create(
            &PostParams::default(),
            &manifest("minimal", json!({"tier": "CI"})),
        )
        .await
        .expect("create minimal");
    let spec = &created.data["spec"];
    assert_eq!(spec["parityLevel"], 1);
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["dashboard"]["enabled"], true);
    assert_eq!(spec["dashboard"]["decryption"], "Disabled");
    assert_eq!(spec["keys"]["provider"], "Local");
    assert_eq!(spec["keys"]["local"]["source"], "Generated");
    assert_eq!(spec["keys"]["deletionPolicy"], "Retain");
    assert_eq!(spec["keys"]["rotation"]["retainVersions"], 3);
    assert_eq!(spec["secrets"]["provider"], "Local");
    // The engine is a visible default; its image is resolved per engine, not stored.
    assert_eq!(spec["dynamodb"]["engine"], "DynamoDBLocal");
    assert!(spec["dynamodb"].get("image").is_none(), "{spec}");
    assert_eq!(spec["dynamodb"]["persistence"]["size"], "1Gi");
    // What the API server stored reads back into the Rust type and validates.
    let env: parity_operator::api::ParityEnvironment =
        serde_json::from_value(serde_json::to_value(&created).unwrap()).unwrap();
    parity_operator::api::validate(&env).expect("defaulted object validates");
}

/// Through kubectl, as users apply them: its YAML reader is YAML 1.1, where an unquoted `N`
/// (DynamoDB's number type) or `Off` is a boolean, which the API server then rejects.
#[tokio::test]
async fn api_server_accepts_the_examples() {
    let (ns, _api) = setup("crd-examples").await;
    for file in [
        "examples/local.yaml",
        "examples/ci.yaml",
        "examples/staging.yaml",
    ] {
        let out = std::process::Command::new("kubectl")
            .args(["apply", "--server-side", "-n", &ns.name, "-f"])
            .arg(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "{file} rejected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn api_server_accepts_networks_and_single_addresses_where_cidrs_are_asked() {
    let (_ns, api) = setup("crd-cidrs").await;
    api.create(
        &PostParams::default(),
        &manifest(
            "proxies",
            json!({"tier": "CI", "dashboard": {"trustedProxies": ["10.0.0.0/8", "127.0.0.1", "fd00::/8"], "allowedHosts": ["dash.example.com", "*"]}, "network": {"ingress": "Any"}}),
        ),
    )
    .await
    .expect("networks, addresses and host names are accepted");
}
