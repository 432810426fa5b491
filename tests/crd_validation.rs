//! The API server itself rejects invalid ParityEnvironments with messages that name the field
//! and the fix (CEL rules and OpenAPI bounds of the generated CRD), applies the defaults, and
//! accepts the examples. The invalid and valid specs are one table,
//! tests/fixtures/admission_cases.yaml, which api::validate runs too (no API server needed for
//! that test), so admission and the operator cannot drift apart. Both also follow the tier
//! table (src/tier.rs): `validate_and_api_server_follow_the_tier_table`.

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use parity_operator::api::{KeyProvider, KeySource, ParityEnvironment, Tier, validate};
use parity_operator::tier::{DynamoPlacement, TierProfile, profile};
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
    fn valid(name: &str, spec: Value) -> Case {
        Case {
            case: name.to_string(),
            name: None,
            spec,
            field: String::new(),
            message: String::new(),
            admission_field: None,
        }
    }

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
        .map_err(|errors| errors.into_iter().map(|e| e.path).collect())
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

/// One tier rule: a change to a tier's base spec, and whether the tier table allows it.
struct TierRule {
    name: &'static str,
    /// `None`: the rule does not apply to this tier's base (e.g. a key source without the
    /// Local provider).
    change: fn(&TierProfile, &mut Value) -> Option<()>,
    allowed: fn(&TierProfile) -> bool,
}

/// The smallest spec a tier accepts, built from its row of the tier table: parity level 1
/// (DynamoDB), the first key provider it allows, an external DynamoDB where it has no
/// in-cluster one.
fn tier_base(p: &TierProfile) -> Value {
    let mut spec = json!({"tier": p.tier.as_str(), "parityLevel": 1});
    if p.key_providers[0] == KeyProvider::Kms {
        spec["keys"] = json!({"provider": "Kms", "kms": {"keyId": "alias/app"}});
    }
    if p.dynamodb == DynamoPlacement::External {
        spec["dynamodb"] = json!({"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1"}});
    }
    spec
}

fn tier_rules() -> Vec<TierRule> {
    vec![
        TierRule {
            name: "dashboard-decryption-server",
            change: |_, s| {
                s["dashboard"] = json!({"decryption": "Server"});
                Some(())
            },
            allowed: |p| p.dashboard_decryption_allowed,
        },
        TierRule {
            name: "ttl",
            change: |_, s| {
                s["ttl"] = json!("2h");
                Some(())
            },
            allowed: |p| p.ttl_allowed,
        },
        TierRule {
            name: "mirror",
            change: |_, s| {
                s["mirror"] = json!({"configMapRef": {"name": "app-topology"}});
                Some(())
            },
            allowed: |p| p.mirror_allowed,
        },
        TierRule {
            name: "key-provider-local",
            change: |_, s| {
                s["keys"] = json!({"provider": "Local"});
                Some(())
            },
            allowed: |p| p.allows_key_provider(KeyProvider::Local),
        },
        TierRule {
            name: "key-provider-kms",
            change: |_, s| {
                s["keys"] = json!({"provider": "Kms", "kms": {"keyId": "alias/app"}});
                Some(())
            },
            allowed: |p| p.allows_key_provider(KeyProvider::Kms),
        },
        TierRule {
            name: "key-source-seeded",
            change: |p, s| {
                p.allows_key_provider(KeyProvider::Local).then(|| {
                    s["keys"] = json!({"provider": "Local", "local": {"source": "Seeded",
                        "seedSecretRef": {"name": "seed", "key": "seed"}}});
                })
            },
            allowed: |p| p.allows_key_source(KeySource::Seeded),
        },
        TierRule {
            name: "dynamodb-external",
            change: |_, s| {
                s["dynamodb"] = json!({"external": {"endpoint": "https://dynamodb.eu-west-1.amazonaws.com", "region": "eu-west-1"}});
                Some(())
            },
            allowed: |p| p.dynamodb == DynamoPlacement::External,
        },
        TierRule {
            name: "dynamodb-in-cluster",
            change: |_, s| {
                s.as_object_mut()?.remove("dynamodb");
                Some(())
            },
            allowed: |p| p.dynamodb == DynamoPlacement::InCluster,
        },
        TierRule {
            name: "dynamodb-seed",
            change: |_, s| {
                s["dynamodb"]["seed"] = json!({"configMapRef": {"name": "app-seeds"}});
                Some(())
            },
            allowed: |p| p.dynamodb == DynamoPlacement::InCluster,
        },
    ]
}

/// The tier rules are written three times: the tier table (src/tier.rs), api::validate and
/// the CRD's CEL rules. For every tier and rule, a spec that needs the rule is accepted by
/// validate() and by the API server exactly when the tier table allows it, so a change to
/// one of the three that the others do not follow fails here.
#[tokio::test]
async fn validate_and_api_server_follow_the_tier_table() {
    let (_ns, api) = setup("crd-tiers").await;
    let mut failures = Vec::new();
    for tier in Tier::ALL {
        let p = profile(tier);
        let base = tier_base(p);
        let base_case = Case::valid("base", base.clone());
        if operator_verdict(&base_case).is_err() {
            failures.push(format!(
                "{}: base spec {base} refused by validate",
                tier.as_str()
            ));
        }
        for rule in tier_rules() {
            let mut spec = base.clone();
            if (rule.change)(p, &mut spec).is_none() {
                continue;
            }
            let allowed = (rule.allowed)(p);
            let name = format!("{}-{}", tier.as_str().to_lowercase(), rule.name);
            let by_validate = operator_verdict(&Case::valid(&name, spec.clone())).is_ok();
            let by_api_server = match api
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &manifest(&name, spec.clone()),
                )
                .await
            {
                Ok(_) => true,
                Err(kube::Error::Api(e)) if e.code == 422 => false,
                Err(e) => panic!("{name}: {e}"),
            };
            if by_validate != allowed || by_api_server != allowed {
                failures.push(format!(
                    "{name}: tier table allows={allowed}, validate accepts={by_validate}, API server accepts={by_api_server} ({spec})"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
