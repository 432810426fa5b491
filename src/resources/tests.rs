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
    // The shape build_all lists carries no data: the controller creates it once.
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
