//! The API server itself rejects invalid ParityEnvironments with messages that name the field
//! and the fix (CEL rules and OpenAPI bounds of the generated CRD), applies the defaults, and
//! accepts the examples. The invalid and valid specs are one table,
//! tests/fixtures/admission_cases.yaml, which api::validate runs too (no API server needed for
//! that test), so admission and the operator cannot drift apart.

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use parity_operator::api::{ParityEnvironment, validate};
use serde::Deserialize;
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

/// One case of tests/fixtures/admission_cases.yaml (see its header).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    case: String,
    #[serde(default)]
    name: Option<String>,
    spec: Value,
    #[serde(default)]
    field: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    admission_field: Option<String>,
}

impl Case {
    fn object_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.case)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    invalid: Vec<Case>,
    valid: Vec<Case>,
}

/// The one table both checks below run.
fn cases() -> Cases {
    let text = include_str!("fixtures/admission_cases.yaml");
    serde_yaml::from_str(text).expect("tests/fixtures/admission_cases.yaml")
}

/// What api::validate says about a case: Ok, or the fields it refuses (a spec the Rust types
/// cannot even parse is refused at the path where parsing fails).
fn operator_verdict(case: &Case) -> Result<(), Vec<String>> {
    let object = json!({
        "apiVersion": "parity.dev/v1alpha1",
        "kind": "ParityEnvironment",
        "metadata": {"name": case.object_name(), "namespace": "ns"},
        "spec": case.spec,
    });
    let env: ParityEnvironment = match serde_path_to_error::deserialize(object) {
        Ok(env) => env,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            // "missing field `tier`" at `spec` is about spec.tier.
            let field = match inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                Some(missing) => format!("{path}.{missing}"),
                None => path,
            };
            return Err(vec![field]);
        }
    };
    validate(&env)
        .map(|_| ())
        .map_err(|errors| errors.into_iter().map(|e| e.field).collect())
}

/// Every case through the operator's own validation (no API server): each invalid spec is
/// refused naming its field, each valid one accepted.
#[test]
fn validate_refuses_every_admission_case() {
    let Cases { invalid, valid } = cases();
    assert!(invalid.len() >= 60, "{} invalid cases", invalid.len());
    let mut failures = Vec::new();
    for case in &invalid {
        match operator_verdict(case) {
            Err(fields) if fields.contains(&case.field) => {}
            Err(fields) => failures.push(format!(
                "{}: refused at {fields:?}, expected {}",
                case.case, case.field
            )),
            Ok(()) => failures.push(format!("{}: accepted, expected {}", case.case, case.field)),
        }
    }
    for case in &valid {
        if let Err(fields) = operator_verdict(case) {
            failures.push(format!("{} (valid): refused at {fields:?}", case.case));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same cases on the real API server with the generated CRD: each invalid spec is refused
/// (422) with a message naming the field and saying why, each valid one created.
#[tokio::test]
async fn api_server_refuses_every_admission_case() {
    let (_ns, api) = setup("crd-invalid").await;
    let Cases { invalid, valid } = cases();
    let mut failures = Vec::new();
    for case in &invalid {
        let field = case.admission_field.as_deref().unwrap_or(&case.field);
        match api
            .create(
                &PostParams::default(),
                &manifest(case.object_name(), case.spec.clone()),
            )
            .await
        {
            Err(kube::Error::Api(e))
                if e.code == 422
                    // Rules on the root (metadata.name) have no field path of their own;
                    // their message starts with the field instead.
                    && e.message.contains(field)
                    && e.message.contains(&case.message) => {}
            Err(e) => failures.push(format!(
                "{}: expected {field}: ...{:?}, got error {e}",
                case.case, case.message
            )),
            Ok(_) => failures.push(format!(
                "{}: accepted, expected {field}: ...{:?}",
                case.case, case.message
            )),
        }
    }
    for case in &valid {
        if let Err(e) = api
            .create(
                &PostParams::default(),
                &manifest(case.object_name(), case.spec.clone()),
            )
            .await
        {
            failures.push(format!("{} (valid): refused: {e}", case.case));
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
        "examples/local-from-staging.yaml",
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
