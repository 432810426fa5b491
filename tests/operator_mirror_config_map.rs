//! spec.mirror.configMapRef with the operator as a process on the test control plane: a
//! committed topology in a ConfigMap becomes the environment's tables and follows the
//! ConfigMap's changes; a missing ConfigMap, a missing key or invalid YAML is InSync=False /
//! MirrorUnavailable naming them (never the data), with a Warning event. And the CI example
//! standing alone, created exactly as its header says, with `kubectl get penv -o wide`.

mod support;

use std::process::Command;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use parity_operator::api::ParityEnvironment;
use parity_operator::dynamo::topology::{BillingMode, Topology};
use serde_json::json;
use support::kube_env::TestNamespace;
use support::penv::*;
use support::wait::until;

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn example_topology() -> String {
    std::fs::read_to_string(repo("examples/topology.yaml")).expect("examples/topology.yaml")
}

async fn put_topology(ns: &TestNamespace, text: &str) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-topology"},
        "data": {"topology.yaml": text}
    }))
    .expect("configmap");
    ns.api::<ConfigMap>()
        .patch(
            "app-topology",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("apply app-topology");
}

/// The topology the environment's bootstrap Job creates (its `<env>-topology` ConfigMap).
async fn applied_topology(ns: &TestNamespace, env: &str) -> Result<Topology, String> {
    let cm = ns
        .api::<ConfigMap>()
        .get(&format!("{env}-topology"))
        .await
        .map_err(|e| e.to_string())?;
    let text = cm
        .data
        .and_then(|d| d.get("topology.yaml").cloned())
        .ok_or("no topology.yaml")?;
    Topology::from_yaml_str(&text).map_err(|e| e.to_string())
}

fn table_names(t: &Topology) -> Vec<String> {
    t.tables.iter().map(|t| t.name.clone()).collect()
}

fn in_sync_message(e: &ParityEnvironment) -> String {
    e.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "InSync"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Waits until InSync is False/MirrorUnavailable with a message containing `want`.
async fn wait_unavailable(envs: &Api<ParityEnvironment>, name: &str, want: &str) -> String {
    until(
        &format!("{name}: MirrorUnavailable with {want:?}"),
        WAIT,
        || async {
            let e = envs.get(name).await.map_err(|e| e.to_string())?;
            let msg = in_sync_message(&e);
            match condition(&e, "InSync") {
                Some((s, r, _))
                    if s == "False" && r == "MirrorUnavailable" && msg.contains(want) =>
                {
                    Ok(msg)
                }
                other => Err(format!("{other:?}: {msg}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_config_map_topology_is_mirrored_followed_and_its_problems_named() {
    let (ns, _op, envs) = setup("op-mirror-cm").await;
    put_topology(&ns, &example_topology()).await;
    envs.create(
        &PostParams::default(),
        &env(
            "dev",
            json!({
                "tier": "Local", "parityLevel": 1,
                "mirror": {"configMapRef": {"name": "app-topology"},
                           "overrides": {"billingMode": "PAY_PER_REQUEST"}}
            }),
        ),
    )
    .await
    .expect("create dev");

    let e = wait_condition(&envs, "dev", "InSync", "True").await;
    assert_eq!(
        condition(&e, "InSync").map(|c| c.1).as_deref(),
        Some("Mirrored")
    );
    assert!(
        in_sync_message(&e).contains(&format!(
            "2 tables copied from ConfigMap {}/app-topology",
            ns.name
        )),
        "{}",
        in_sync_message(&e)
    );
    wait_condition(&envs, "dev", "Ready", "True").await;
    let t = applied_topology(&ns, "dev").await.expect("dev-topology");
    assert_eq!(table_names(&t), ["orders", "customers"]);
    let customers = t.table("customers").expect("customers");
    assert_eq!(customers.billing_mode, BillingMode::PayPerRequest);
    assert_eq!(customers.global_secondary_indexes[0].name, "byEmail");

    // A change to the ConfigMap is applied: customers is dropped from the committed topology.
    let orders_only = example_topology()
        .split("  - name: customers")
        .next()
        .expect("orders part")
        .to_string();
    put_topology(&ns, &orders_only).await;
    until("dev follows the ConfigMap", WAIT, || async {
        let t = applied_topology(&ns, "dev").await?;
        match table_names(&t).as_slice() {
            [only] if only == "orders" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Invalid YAML: the ConfigMap, the key and the position, not the data; a Warning event.
    put_topology(
        &ns,
        "tables:\n  - name: orders\n    partitionKey: {name: pk, type: SECRET-VALUE}\n",
    )
    .await;
    let msg = wait_unavailable(&envs, "dev", "is not a topology").await;
    let named = format!("ConfigMap {}/app-topology key topology.yaml", ns.name);
    for want in [
        named.as_str(),
        "tables[0].partitionKey.type",
        "line 3 column",
    ] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    assert!(!msg.contains("SECRET-VALUE"), "{msg}");
    let event = wait_warning(&ns, "MirrorUnavailable").await;
    assert!(
        event
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("app-topology"),
        "{event:?}"
    );
    // Nothing is torn down: the last good topology stays.
    assert_eq!(
        table_names(&applied_topology(&ns, "dev").await.expect("kept")),
        ["orders"]
    );

    // A missing ConfigMap, and a missing key.
    ns.api::<ConfigMap>()
        .delete("app-topology", &DeleteParams::default())
        .await
        .expect("delete app-topology");
    let msg = wait_unavailable(&envs, "dev", "not found").await;
    assert!(
        msg.contains(&format!(
            "spec.mirror.configMapRef: ConfigMap {}/app-topology not found",
            ns.name
        )),
        "{msg}"
    );
    put_topology(&ns, &example_topology()).await;
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mirror": {"configMapRef": {"key": "prod.yaml"}}}})),
    )
    .await
    .expect("patch key");
    let msg = wait_unavailable(&envs, "dev", "has no key").await;
    assert!(
        msg.contains("has no key prod.yaml (its keys: topology.yaml)"),
        "{msg}"
    );

    // Fixed: back in sync and Ready, with both tables again.
    envs.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mirror": {"configMapRef": {"key": "topology.yaml"}}}})),
    )
    .await
    .expect("patch key back");
    wait_condition(&envs, "dev", "InSync", "True").await;
    wait_condition(&envs, "dev", "Ready", "True").await;
    until("both tables again", WAIT, || async {
        let t = applied_topology(&ns, "dev").await?;
        (t.tables.len() == 2)
            .then_some(())
            .ok_or(format!("{:?}", table_names(&t)))
    })
    .await;
}

fn kubectl(ns: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("-n")
        .arg(ns)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_ci_example_stands_alone_and_wide_columns_show_message_expiry_and_dashboard() {
    let (ns, _op, envs) = setup("op-ci-example").await;
    // The steps in examples/ci.yaml's header, in a namespace of the test's.
    for step in [
        "create configmap app-topology --from-file=topology.yaml=examples/topology.yaml",
        "create configmap app-secrets-schema --from-file=examples/secrets.schema.json",
        "create configmap app-seeds --from-file=examples/fixtures/",
        "apply -f examples/ci.yaml",
    ] {
        kubectl(&ns.name, &step.split(' ').collect::<Vec<_>>());
    }
    let e = wait_condition(&envs, "ci", "Ready", "True").await;
    assert_eq!(
        condition(&e, "InSync").map(|c| c.1).as_deref(),
        Some("Mirrored")
    );
    let t = applied_topology(&ns, "ci").await.expect("ci-topology");
    assert_eq!(table_names(&t), ["orders", "customers"]);
    let status = e.status.clone().expect("status");
    let expires = status.expires_at.expect("status.expiresAt (ttl 2h)");
    let dashboard = status
        .endpoints
        .dashboard
        .expect("status.endpoints.dashboard");

    let wide = kubectl(&ns.name, &["get", "penv", "ci", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    for col in ["MESSAGE", "EXPIRES", "DASHBOARD"] {
        assert!(header.contains(&col), "{col} missing from {header:?}");
    }
    let row = lines.next().expect("row");
    let expires = serde_json::to_value(&expires).expect("time");
    for want in [
        ready_message(&e).as_str(),
        expires.as_str().expect("RFC 3339"),
        dashboard.as_str(),
    ] {
        assert!(
            !want.is_empty() && row.contains(want),
            "{want:?} missing from:\n{wide}"
        );
    }
    // Only with -o wide.
    let narrow = kubectl(&ns.name, &["get", "penv", "ci"]);
    assert!(
        !narrow.contains("DASHBOARD") && !narrow.contains(&dashboard),
        "{narrow}"
    );
}
