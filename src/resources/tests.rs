use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::*;
use crate::api::{ParityEnvironment, Tier, validate};

fn env_yaml(yaml: &str) -> ValidatedSpec {
    let mut env: ParityEnvironment = serde_yaml::from_str(yaml).expect("parse test env");
    env.metadata.uid = Some("1234".to_string());
    validate(&env).unwrap_or_else(|e| panic!("invalid test env: {e:?}"))
}

fn local(level: i32) -> ValidatedSpec {
    env_yaml(&format!(
        r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: dev, namespace: team}}
spec:
  tier: Local
  parityLevel: {level}
  dynamodb:
    tables:
      - name: orders
        partitionKey: {{name: pk, type: S}}
  dashboard: {{decryption: Server}}
"#
    ))
}

fn ci(level: i32) -> ValidatedSpec {
    env_yaml(&format!(
        r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: ci-42, namespace: ci}}
spec:
  tier: CI
  parityLevel: {level}
  ttl: 2h
  keys:
    local: {{source: Seeded, seedSecretRef: {{name: seed, key: seed}}}}
  dynamodb:
    tables:
      - name: orders
        partitionKey: {{name: pk, type: S}}
"#
    ))
}

fn staging(level: i32) -> ValidatedSpec {
    env_yaml(&format!(
        r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: staging, namespace: stg}}
spec:
  tier: Staging
  parityLevel: {level}
  keys: {{provider: Kms, kms: {{keyId: "arn:aws:kms:eu-west-1:1:key/x", region: eu-west-1}}}}
  dynamodb:
    external: {{endpoint: "https://dynamodb.eu-west-1.amazonaws.com", region: eu-west-1}}
"#
    ))
}

fn all_envs() -> Vec<ValidatedSpec> {
    (0..=3)
        .flat_map(|l| [local(l), ci(l), staging(l)])
        .collect()
}

fn build(env: &ValidatedSpec) -> Vec<Object> {
    build_all(
        env,
        env.profile,
        &BuildContext::new("example.com/parity:test"),
    )
}

fn kinds_and_names(objs: &[Object]) -> Vec<String> {
    objs.iter()
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .collect()
}

fn pod_templates(objs: &[Object]) -> Vec<(&str, &PodTemplateSpec)> {
    objs.iter()
        .filter_map(|o| match o {
            Object::Deployment(d) => Some((o.name(), &d.spec.template)),
            Object::Job(j) => Some((o.name(), &j.spec.as_ref()?.template)),
            _ => None,
        })
        .collect()
}

#[test]
fn local_level2_objects_in_apply_order() {
    let env = local(2);
    let objs = build(&env);
    let hash = bootstrap_hash(
        &env,
        env.profile,
        &BuildContext::new("example.com/parity:test"),
    );
    assert_eq!(
        kinds_and_names(&objs),
        vec![
            "ServiceAccount/dev-kms".to_string(),
            "ServiceAccount/dev-dynamodb".into(),
            "ServiceAccount/dev-bootstrap".into(),
            "ServiceAccount/dev-dashboard".into(),
            "NetworkPolicy/dev-kms-ingress".into(),
            "NetworkPolicy/dev-dynamodb-ingress".into(),
            "NetworkPolicy/dev-dashboard-ingress".into(),
            "Secret/dev-keyring".into(),
            "Secret/dev-kms-credentials".into(),
            "ConfigMap/dev-topology".into(),
            "Deployment/dev-kms".into(),
            "Service/dev-kms".into(),
            "PersistentVolumeClaim/dev-dynamodb-data".into(),
            "Deployment/dev-dynamodb".into(),
            "Service/dev-dynamodb".into(),
            format!("Job/dev-bootstrap-{hash}"),
            "Deployment/dev-dashboard".into(),
            "Service/dev-dashboard".into(),
        ]
    );
}

#[test]
fn ci_level2_cuts_dashboard_off_and_keeps_data_in_memory() {
    let names = kinds_and_names(&build(&ci(2)));
    assert!(names.contains(&"NetworkPolicy/ci-42-kms-ingress".to_string()));
    assert!(names.contains(&"NetworkPolicy/ci-42-dashboard-egress".to_string()));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("PersistentVolumeClaim/"))
    );
    assert!(names.contains(&"Deployment/ci-42-dynamodb".to_string()));
    // Policies come before any pod.
    let first_pod = names
        .iter()
        .position(|n| n.starts_with("Deployment/"))
        .unwrap();
    let last_policy = names
        .iter()
        .rposition(|n| n.starts_with("NetworkPolicy/"))
        .unwrap();
    assert!(last_policy < first_pod);
}

#[test]
fn staging_runs_no_dynamodb_no_bootstrap_and_no_keyring() {
    let names = kinds_and_names(&build(&staging(2)));
    assert_eq!(
        names,
        vec![
            "ServiceAccount/staging-dashboard".to_string(),
            "NetworkPolicy/staging-dashboard-ingress".into(),
            "NetworkPolicy/staging-dashboard-egress".into(),
            "ConfigMap/staging-topology".into(),
            "Deployment/staging-dashboard".into(),
            "Service/staging-dashboard".into(),
        ]
    );
}

#[test]
fn level0_is_keys_and_topology_only() {
    for env in [local(0), ci(0)] {
        let names = kinds_and_names(&build(&env));
        assert!(names.iter().any(|n| n.ends_with("-keyring")), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains("dynamodb") || n.contains("dashboard")),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("Job/")));
    }
}

#[test]
fn dashboard_disabled_is_not_built() {
    let mut env = ci(3);
    env.spec.dashboard.enabled = false;
    assert!(
        !kinds_and_names(&build(&env))
            .iter()
            .any(|n| n.contains("dashboard"))
    );
}

#[test]
fn every_pod_meets_restricted_pod_security() {
    for env in all_envs() {
        for (name, t) in pod_templates(&build(&env)) {
            let spec = t.spec.as_ref().unwrap();
            let psc = spec.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_non_root, Some(true), "{name}");
            assert_ne!(psc.run_as_user, Some(0), "{name}");
            assert_eq!(
                psc.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault"
            );
            assert_eq!(spec.automount_service_account_token, Some(false), "{name}");
            for c in &spec.containers {
                let sc = c.security_context.as_ref().unwrap();
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
                assert_eq!(sc.run_as_non_root, Some(true), "{name}");
                assert_eq!(
                    sc.capabilities.as_ref().unwrap().drop,
                    Some(vec!["ALL".to_string()])
                );
                let r = c.resources.as_ref().unwrap();
                for key in ["cpu", "memory"] {
                    assert!(r.requests.as_ref().unwrap().contains_key(key), "{name}");
                    assert!(r.limits.as_ref().unwrap().contains_key(key), "{name}");
                }
                assert!(
                    c.volume_mounts
                        .iter()
                        .flatten()
                        .any(|m| m.mount_path == "/tmp"),
                    "{name} needs a writable /tmp"
                );
            }
            for v in spec.volumes.iter().flatten() {
                assert!(v.host_path.is_none(), "{name}");
            }
        }
    }
}

#[test]
fn only_the_kms_pod_mounts_the_keyring() {
    for env in all_envs() {
        for (name, t) in pod_templates(&build(&env)) {
            let secrets: Vec<_> = t
                .spec
                .as_ref()
                .unwrap()
                .volumes
                .iter()
                .flatten()
                .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
                .collect();
            if name.ends_with("-kms") {
                assert_eq!(
                    secrets,
                    vec![names::keyring(&env.name), names::kms_credentials(&env.name)]
                );
            } else {
                assert!(secrets.is_empty(), "{name} mounts {secrets:?}");
            }
        }
    }
}

#[test]
fn dashboard_outside_local_knows_nothing_of_the_key_service() {
    for env in all_envs() {
        let objs = build(&env);
        let Some((_, t)) = pod_templates(&objs)
            .into_iter()
            .find(|(n, _)| n.ends_with("-dashboard"))
        else {
            continue;
        };
        let pod = serde_json::to_string(t).unwrap();
        assert!(!pod.contains("keyring"), "{pod}");
        let args = t.spec.as_ref().unwrap().containers[0].args.clone().unwrap();
        let tier = args
            .iter()
            .position(|a| a == "--tier")
            .map(|i| args[i + 1].as_str());
        assert_eq!(
            tier,
            Some(match env.tier() {
                Tier::Local => "local",
                Tier::Ci => "ci",
                Tier::Staging => "staging",
            }),
            "{args:?}"
        );
        if env.tier() == Tier::Local {
            assert!(
                pod.contains("--kms-endpoint") && pod.contains("\"server\""),
                "{pod}"
            );
            // Credentials to call the key service, never the keys themselves.
            assert!(pod.contains("kms-credentials"), "{pod}");
        } else {
            assert!(!pod.contains("secretKeyRef"), "{pod}");
            assert!(
                !pod.contains("kms"),
                "{:?} dashboard mentions kms: {pod}",
                env.tier()
            );
            assert!(pod.contains("\"disabled\""));
        }
    }
}

#[test]
fn every_object_is_owned_and_labelled() {
    for env in all_envs() {
        for o in build(&env) {
            let m = o.meta();
            if o.name() == names::keyring(&env.name) {
                // Key material is never garbage collected: tied to its environment by uid.
                assert_eq!(m.owner_references, None);
                let a = m.annotations.as_ref().unwrap();
                assert_eq!(
                    a.get(ANNOTATION_ENVIRONMENT_UID).map(String::as_str),
                    Some("1234")
                );
                continue;
            }
            let owners = m.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "ParityEnvironment");
            assert_eq!(owners[0].uid, "1234");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some(env.namespace.as_str()));
            let l = m.labels.as_ref().unwrap();
            assert_eq!(l.get(LABEL_ENVIRONMENT), Some(&env.name));
            assert_eq!(
                l.get(LABEL_MANAGED_BY).map(String::as_str),
                Some(MANAGED_BY)
            );
            assert!(o.component().is_some(), "{}", o.name());
            assert!(o.name().len() <= 63, "{}", o.name());
            let d = o.to_dynamic();
            assert_eq!(d.types.as_ref().unwrap().kind, o.kind());
        }
    }
}

#[test]
fn bootstrap_job_name_follows_the_tables() {
    let ctx = BuildContext::new("example.com/parity:test");
    let a = ci(1);
    let mut b = a.clone();
    assert_eq!(
        bootstrap_hash(&a, a.profile, &ctx),
        bootstrap_hash(&b, b.profile, &ctx)
    );
    b.spec.dynamodb.tables[0].name = "orders-v2".into();
    assert_ne!(
        bootstrap_hash(&a, a.profile, &ctx),
        bootstrap_hash(&b, b.profile, &ctx)
    );
    // Suspending pauses the same Job instead of making a new one.
    let mut c = a.clone();
    c.spec.suspend = true;
    assert_eq!(
        bootstrap_hash(&a, a.profile, &ctx),
        bootstrap_hash(&c, c.profile, &ctx)
    );
    assert_eq!(
        bootstrap_job(&c, c.profile, &ctx).spec.unwrap().suspend,
        Some(true)
    );
}

#[test]
fn suspend_scales_workloads_to_zero_and_keeps_data() {
    let mut env = local(2);
    env.spec.suspend = true;
    let objs = build(&env);
    for o in &objs {
        if let Object::Deployment(d) = o {
            assert_eq!(d.spec.replicas, Some(0), "{}", o.name());
        }
    }
    assert!(objs.iter().any(|o| o.kind() == "PersistentVolumeClaim"));
    assert!(objs.iter().any(|o| o.kind() == "Secret"));
}

#[test]
fn every_pod_pulls_with_the_operators_image_pull_secrets() {
    let mut ctx = BuildContext::new("registry.example/parity:test");
    ctx.image_pull_secrets = vec!["ghcr".to_string(), "mirror".to_string()];
    let mut components = std::collections::BTreeSet::new();
    let schema = serde_json::json!({"secrets": {"schema": {"name": "s", "key": "schema.json"}}});
    let mut envs = all_envs();
    envs.push(with_spec(&local(3), schema));
    for env in envs {
        let objs = build_all(&env, env.profile, &ctx);
        for (name, t) in pod_templates(&objs) {
            let secrets: Vec<_> = t
                .spec
                .as_ref()
                .and_then(|s| s.image_pull_secrets.as_ref())
                .unwrap_or_else(|| panic!("{name} has no imagePullSecrets"))
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            assert_eq!(secrets, ["ghcr", "mirror"], "{name}");
            components.insert(
                name.trim_start_matches(&format!("{}-", env.name))
                    .to_string(),
            );
        }
    }
    // Every kind of workload was seen: DynamoDB, its bootstrap Job, kms, dashboard, secrets.
    for c in ["dynamodb", "kms", "dashboard", "secrets-api"] {
        assert!(components.contains(c), "{c} not built: {components:?}");
    }
    assert!(
        components.iter().any(|c| c.starts_with("bootstrap")),
        "{components:?}"
    );
    // Without secrets the field stays unset (no empty list for the apiserver to diff).
    for env in all_envs() {
        for (name, t) in pod_templates(&build(&env)) {
            assert!(
                t.spec.as_ref().unwrap().image_pull_secrets.is_none(),
                "{name}"
            );
        }
    }
}

#[test]
fn node_ports_only_where_the_tier_allows() {
    let mut ctx = BuildContext::new("example.com/parity:test");
    ctx.node_ports = true;
    for env in [local(3), ci(3)] {
        for o in build_all(&env, env.profile, &ctx) {
            if let Object::Service(s) = o {
                let ty = s.spec.unwrap().type_.unwrap();
                let want = if env.profile.node_ports_allowed {
                    "NodePort"
                } else {
                    "ClusterIP"
                };
                assert_eq!(ty, want);
            }
        }
    }
}

#[test]
fn topology_lists_tables_aliases_and_secret_names() {
    let ctx = BuildContext::new("x");
    let env = ci(2);
    let t = topology(&env, env.profile, &ctx);
    assert_eq!(t.tables.len(), 1);
    assert_eq!(
        t.tables[0].billing_mode,
        crate::dynamo::topology::BillingMode::PayPerRequest
    );
    assert_eq!(
        t.tables[0].stream_view_type,
        Some(crate::dynamo::topology::StreamViewType::NewAndOldImages)
    );
    assert_eq!(t.kms_key_aliases, vec!["alias/parity/ci-42".to_string()]);
    assert_eq!(t.secret_names, vec!["ci-42-secrets".to_string()]);
    let info = environment_info(&env, env.profile, &ctx);
    assert!(info.streams);
    assert_eq!(
        info.endpoints.dynamodb.as_deref(),
        Some("http://ci-42-dynamodb.ci.svc:8000")
    );
    let data = topology_config_map(&env, env.profile, &ctx).data.unwrap();
    let back: Topology = serde_yaml::from_str(&data[TOPOLOGY_FILE]).unwrap();
    assert_eq!(back, t);
    let back: EnvironmentInfo = serde_yaml::from_str(&data[ENVIRONMENT_FILE]).unwrap();
    assert_eq!(back, info);
    assert_eq!(data[ALIASES_FILE], "alias/parity/ci-42\n");
    // Level 1: tables without streams; level 0: no tables.
    assert_eq!(
        topology(&ci(1), env.profile, &ctx).tables[0].stream_view_type,
        None
    );
    assert!(topology(&ci(0), env.profile, &ctx).tables.is_empty());
}

#[test]
fn topology_document_has_the_bootstrap_format() {
    // The shape src/dynamo/topology.rs reads (deny_unknown_fields there): exactly these keys.
    let env = local(2);
    let v = serde_json::to_value(topology(&env, env.profile, &BuildContext::new("x"))).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, vec!["kmsKeyAliases", "secretNames", "tables"]);
    let table: Vec<_> = v["tables"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        table,
        vec!["billingMode", "name", "partitionKey", "streamViewType"]
    );
    assert_eq!(
        v["tables"][0]["partitionKey"],
        serde_json::json!({"name": "pk", "type": "S"})
    );
}

#[test]
fn kms_container_args_parse_with_parity_kms() {
    use clap::Parser;
    for env in [local(0), ci(3)] {
        let objs = build(&env);
        let Some(Object::Deployment(d)) = objs
            .iter()
            .find(|o| o.kind() == "Deployment" && o.component() == Some(Component::Kms))
        else {
            panic!("no kms Deployment");
        };
        let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
        let mut argv = vec!["parity".to_string()];
        argv.extend(c.args.clone().unwrap());
        // The pod passes the access key id through PARITY_KMS_ACCESS_KEY_ID.
        assert!(
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "PARITY_KMS_ACCESS_KEY_ID")
        );
        argv.push("--access-key-id=test".to_string());
        let cli = crate::cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("parity kms rejects the builder's args {argv:?}: {e}"));
        let crate::cli::Command::Kms(args) = cli.command else {
            panic!("not parity kms: {argv:?}");
        };
        // The cluster's kms serves no admin operations (DisableKey, EnableKey,
        // RotateKeyOnDemand): neither the args nor the pod's environment turn them on.
        assert!(!args.allow_admin_operations, "{argv:?}");
        assert!(
            !c.env
                .iter()
                .flatten()
                .any(|e| e.name == "PARITY_KMS_ALLOW_ADMIN_OPERATIONS"),
            "{:?}",
            c.env
        );
    }
}

#[test]
fn kms_credentials_secret_carries_the_keys_parity_kms_reads() {
    let env = local(1);
    let s = kms_credentials_secret_with(&env, "s3cr3t");
    let data = s.data.unwrap();
    assert_eq!(data[KMS_ACCESS_KEY_ID_KEY].0, b"parity-dev");
    assert_eq!(data[KMS_SECRET_ACCESS_KEY_KEY].0, b"s3cr3t");
    assert_eq!(
        s.metadata.annotations.unwrap()[ANNOTATION_CREATE_ONCE],
        "true"
    );
    // The shape `desired` lists carries no data: the controller creates it once.
    assert!(kms_credentials_secret(&env).data.is_none());
}

#[test]
fn only_a_decrypting_dashboard_mounts_the_seed_schemas() {
    let seed = |mut env: ValidatedSpec| {
        env.spec.dynamodb.seed = Some(
            serde_json::from_value(serde_json::json!({"configMapRef": {"name": "fixtures"}}))
                .unwrap(),
        );
        env
    };
    for (env, decrypts) in [(seed(local(2)), true), (seed(ci(2)), false)] {
        let objs = build(&env);
        let (_, t) = pod_templates(&objs)
            .into_iter()
            .find(|(n, _)| n.ends_with("-dashboard"))
            .unwrap();
        let spec = t.spec.as_ref().unwrap();
        let args = spec.containers[0].args.clone().unwrap();
        let mounts_seed = spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == "fixtures"));
        assert_eq!(args.contains(&"--seeds".to_string()), decrypts, "{args:?}");
        assert_eq!(mounts_seed, decrypts, "{spec:?}");
    }
}

fn policies(objs: &[Object]) -> BTreeMap<String, serde_json::Value> {
    objs.iter()
        .filter_map(|o| match o {
            Object::NetworkPolicy(p) => Some((
                p.metadata.name.clone().unwrap(),
                serde_json::to_value(p.spec.as_ref().unwrap()).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

fn with_spec(env: &ValidatedSpec, patch: serde_json::Value) -> ValidatedSpec {
    let mut doc = serde_json::to_value(ParityEnvironment {
        metadata: kube::api::ObjectMeta {
            name: Some(env.name.clone()),
            namespace: Some(env.namespace.clone()),
            ..Default::default()
        },
        spec: env.spec.clone(),
        status: None,
    })
    .unwrap();
    json_merge(&mut doc["spec"], patch);
    env_yaml(&serde_json::to_string(&doc).unwrap())
}

fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[test]
fn every_serving_pod_admits_only_its_namespace_by_default() {
    let local3 = with_spec(
        &local(3),
        serde_json::json!({"secrets": {"schema": {"name": "s", "key": "k"}}}),
    );
    for (env, components) in [
        (
            local3,
            vec![
                ("kms", 8080),
                ("dynamodb", 8000),
                ("secrets-api", 8095),
                ("dashboard", 8080),
            ],
        ),
        (
            ci(2),
            vec![("kms", 8080), ("dynamodb", 8000), ("dashboard", 8080)],
        ),
    ] {
        let ps = policies(&build(&env));
        for (c, port) in components {
            let name = format!("{}-{c}-ingress", env.name);
            let p = ps.get(&name).unwrap_or_else(|| panic!("{name}: {ps:#?}"));
            assert_eq!(
                p["podSelector"]["matchLabels"],
                serde_json::json!({"parity.dev/environment": env.name, "parity.dev/component": c}),
                "{name}"
            );
            assert_eq!(p["policyTypes"], serde_json::json!(["Ingress"]));
            let rules = p["ingress"].as_array().unwrap();
            assert_eq!(rules.len(), 1, "{name}");
            assert_eq!(
                rules[0]["ports"],
                serde_json::json!([{"port": port, "protocol": "TCP"}])
            );
            let from = rules[0]["from"].as_array().unwrap();
            assert_eq!(from.len(), 1, "{name}: {from:?}");
            // A podSelector without a namespaceSelector: this namespace's pods only.
            assert!(from[0].get("namespaceSelector").is_none(), "{name}");
            assert!(from[0].get("ipBlock").is_none(), "{name}");
            let excludes_dashboards = from[0]["podSelector"]["matchExpressions"]
                == serde_json::json!([{"key": "parity.dev/component", "operator": "NotIn", "values": ["dashboard"]}]);
            assert_eq!(
                excludes_dashboards,
                c == "kms" && env.profile.isolate_dashboard_from_kms,
                "{name}: {from:?}"
            );
        }
    }
}

#[test]
fn ingress_any_drops_the_namespace_policies_but_not_the_kms_isolation() {
    let any = serde_json::json!({"network": {"ingress": "Any"}});
    let ps = policies(&build(&with_spec(&local(2), any.clone())));
    assert!(ps.is_empty(), "{ps:#?}");
    let ps = policies(&build(&with_spec(&ci(2), any)));
    assert_eq!(
        ps.keys().collect::<Vec<_>>(),
        ["ci-42-dashboard-egress", "ci-42-kms-ingress"]
    );
    let from = &ps["ci-42-kms-ingress"]["ingress"][0]["from"][0];
    // Pods of every namespace, dashboards excepted.
    assert_eq!(from["namespaceSelector"], serde_json::json!({}));
    assert_eq!(
        from["podSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["dashboard"])
    );
}

#[test]
fn node_ported_components_admit_any_address() {
    let mut ctx = BuildContext::new("example.com/parity:test");
    ctx.node_ports = true;
    let env = local(2);
    let ps = policies(&build_all(&env, env.profile, &ctx));
    for name in [
        "dev-kms-ingress",
        "dev-dynamodb-ingress",
        "dev-dashboard-ingress",
    ] {
        let from = ps[name]["ingress"][0]["from"].as_array().unwrap();
        let blocks: Vec<&str> = from
            .iter()
            .filter_map(|p| p["ipBlock"]["cidr"].as_str())
            .collect();
        assert_eq!(blocks, ["0.0.0.0/0", "::/0"], "{name}");
    }
    // CI has no NodePorts: still namespace-only.
    let env = ci(2);
    let ps = policies(&build_all(&env, env.profile, &ctx));
    assert!(
        ps["ci-42-dynamodb-ingress"]["ingress"][0]["from"][0]
            .get("ipBlock")
            .is_none()
    );
}

#[test]
fn staging_dashboard_egress_is_dns_and_the_dynamodb_port_on_the_configured_networks() {
    let egress = |env: &ValidatedSpec| {
        policies(&build(env))["staging-dashboard-egress"]["egress"]
            .as_array()
            .unwrap()
            .clone()
    };
    let dns = serde_json::json!({
        "to": [{"namespaceSelector": {}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    });
    let pod_identity = serde_json::json!({
        "to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}, {"ipBlock": {"cidr": "fd00:ec2::23/128"}}],
        "ports": [{"port": 80, "protocol": "TCP"}],
    });
    // Without networks: any address on 443, which an IP rule cannot keep from AWS KMS
    // (docs/dashboard.md says so).
    assert_eq!(
        egress(&staging(2)),
        vec![
            dns.clone(),
            serde_json::json!({
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                "ports": [{"port": 443, "protocol": "TCP"}],
            }),
            pod_identity.clone(),
        ]
    );
    // With the DynamoDB (and STS) VPC endpoints' networks: those only.
    let narrowed = with_spec(
        &staging(2),
        serde_json::json!({"dynamodb": {"external": {"egressCidrs": ["10.20.0.0/24", "10.20.1.16/28"]}}}),
    );
    assert_eq!(
        egress(&narrowed),
        vec![
            dns,
            serde_json::json!({
                "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}, {"ipBlock": {"cidr": "10.20.1.16/28"}}],
                "ports": [{"port": 443, "protocol": "TCP"}],
            }),
            pod_identity,
        ]
    );
    // CI: its own DynamoDB pod and DNS, nothing else.
    let ci_egress = policies(&build(&ci(2)))["ci-42-dashboard-egress"]["egress"].clone();
    assert_eq!(ci_egress.as_array().unwrap().len(), 2);
    assert_eq!(
        ci_egress[1]["to"],
        serde_json::json!([{"podSelector": {"matchLabels": {"parity.dev/component": "dynamodb", "parity.dev/environment": "ci-42"}}}])
    );
}

#[test]
fn a_bad_egress_network_or_trusted_proxy_is_refused_naming_the_field() {
    let mut env: ParityEnvironment = serde_yaml::from_str(
        "metadata: {name: s, namespace: n}\nspec:\n  tier: Staging\n  parityLevel: 2\n  keys: {provider: Kms, kms: {keyId: k}}\n  dynamodb: {external: {endpoint: \"https://d\", region: r, egressCidrs: [\"10.0.0.0/33\"]}}\n  dashboard: {trustedProxies: [\"10.0.0.1\", \"proxy\"]}\n",
    )
    .unwrap();
    env.metadata.uid = Some("u".into());
    let errs = validate(&env).unwrap_err();
    let text: String = errs
        .iter()
        .map(|e| format!("{}: {}\n", e.path, e.message))
        .collect();
    assert!(
        text.contains("spec.dynamodb.external.egressCidrs[0]") && text.contains("10.0.0.0/33"),
        "{text}"
    );
    assert!(
        text.contains("spec.dashboard.trustedProxies[1]") && text.contains("\"proxy\""),
        "{text}"
    );
    assert!(!text.contains("trustedProxies[0]"), "{text}");
}

#[test]
fn staging_dashboards_use_the_sdk_credential_chain_local_and_ci_static_keys() {
    for env in [local(2), ci(2), staging(2)] {
        let objs = build(&env);
        let (_, t) = pod_templates(&objs)
            .into_iter()
            .find(|(n, _)| n.ends_with("-dashboard"))
            .unwrap();
        let c = &t.spec.as_ref().unwrap().containers[0];
        let args = c.args.clone().unwrap();
        let i = args.iter().position(|a| a == "--aws-credentials").unwrap();
        let envs: BTreeMap<String, String> = c
            .env
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect();
        if env.tier() == Tier::Staging {
            assert_eq!(args[i + 1], "default-chain");
            assert!(!envs.contains_key("AWS_ACCESS_KEY_ID"), "{envs:?}");
            assert!(!envs.contains_key("AWS_SECRET_ACCESS_KEY"), "{envs:?}");
        } else {
            assert_eq!(args[i + 1], "static");
            assert!(envs.contains_key("AWS_ACCESS_KEY_ID"), "{envs:?}");
        }
        // The Service's names are allowed Hosts.
        let hosts = &envs["PARITY_DASHBOARD_ALLOWED_HOSTS"];
        let svc = format!("{}-dashboard", env.name);
        assert_eq!(
            hosts,
            &format!(
                "{svc},{svc}.{ns},{svc}.{ns}.svc,{svc}.{ns}.svc.cluster.local",
                ns = env.namespace
            )
        );
        assert!(!envs.contains_key("PARITY_DASHBOARD_TRUSTED_PROXIES"));
    }
    let env = with_spec(
        &local(2),
        serde_json::json!({"dashboard": {"allowedHosts": ["dash.example.com"], "trustedProxies": ["10.0.0.0/8"]}}),
    );
    let objs = build(&env);
    let (_, t) = pod_templates(&objs)
        .into_iter()
        .find(|(n, _)| n.ends_with("-dashboard"))
        .unwrap();
    let envs: BTreeMap<String, String> = t.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
        .collect();
    assert!(
        envs["PARITY_DASHBOARD_ALLOWED_HOSTS"].ends_with(",dash.example.com"),
        "{envs:?}"
    );
    assert_eq!(envs["PARITY_DASHBOARD_TRUSTED_PROXIES"], "10.0.0.0/8");
}

#[test]
fn each_ingress_policy_opens_the_port_its_pods_listen_on() {
    let env = with_spec(
        &local(3),
        serde_json::json!({"secrets": {"schema": {"name": "s", "key": "k"}}}),
    );
    let objs = build(&env);
    let ps = policies(&objs);
    let mut checked = 0;
    for (name, t) in pod_templates(&objs) {
        let Some(component) = name.strip_prefix("dev-") else {
            continue;
        };
        let Some(p) = ps.get(&format!("dev-{component}-ingress")) else {
            continue;
        };
        let ports: Vec<i64> = t.spec.as_ref().unwrap().containers[0]
            .ports
            .iter()
            .flatten()
            .map(|p| i64::from(p.container_port))
            .collect();
        assert_eq!(
            p["ingress"][0]["ports"][0]["port"]
                .as_i64()
                .map(|p| vec![p]),
            Some(ports),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "kms, dynamodb, secrets-api, dashboard");
}
