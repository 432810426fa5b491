//! The chart with the helm binary alone (no cluster): each value's toggle passes
//! `helm lint --strict` and renders the object it promises; values.schema.json covers every
//! value and rejects bad ones naming the field; the packaged chart renders the same as the
//! directory; deploy/install.yaml is the chart rendered by `make install-yaml`.

use std::path::PathBuf;
use std::process::{Command, Output};

use clap::Parser;
use parity_operator::controller::OperatorArgs;
use parity_operator::operator_bin::OperatorCli;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator");
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The directory holding helm: the testenv's build (hack/testenv/build), else PATH.
fn helm_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("PARITY_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/parity-operator"))
        })?;
    let dir = cache.join("testenv/bin");
    dir.join("helm").exists().then_some(dir)
}

/// A command with the testenv's helm first on PATH.
fn with_helm(program: &str) -> Command {
    let mut cmd = Command::new(program);
    if let Some(dir) = helm_dir() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    }
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("run {cmd:?} (make testenv-build builds helm): {e}"))
}

fn succeed(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn set_args(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

fn docs(manifest: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifest)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("a YAML document"))
        .filter(|d| !d.is_null())
        .collect()
}

fn template(chart: &str, sets: &[&str]) -> Vec<Value> {
    docs(&succeed(
        with_helm("helm")
            .args(["template", "rel", chart, "--namespace", "ops"])
            .args(set_args(sets)),
    ))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn deployment(docs: &[Value]) -> &Value {
    find(docs, "Deployment", "rel-parity-operator").expect("the operator Deployment")
}

fn pod(docs: &[Value]) -> &Value {
    &deployment(docs)["spec"]["template"]["spec"]
}

fn container(docs: &[Value]) -> &Value {
    &pod(docs)["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// The Deployment's arguments as the image's lean `parity-operator` parses them: a toggle
/// whose flag the binary does not know fails here, not in a crash-looping pod.
fn operator_args(docs: &[Value]) -> OperatorArgs {
    assert_eq!(
        container(docs)["command"],
        json!(["/usr/local/bin/parity-operator"]),
        "the chart runs the lean operator executable the image ships"
    );
    let argv = std::iter::once("parity-operator".to_string()).chain(args(docs));
    match OperatorCli::try_parse_from(argv) {
        Ok(cli) => cli.operator,
        Err(e) => panic!(
            "parity-operator rejects the chart's args {:?}: {e}",
            args(docs)
        ),
    }
}

fn env_value(docs: &[Value], name: &str) -> Option<Value> {
    container(docs)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

type Check = fn(&[Value]);

/// Each value with a setting that changes the rendering, and what it must render.
const TOGGLES: &[(&str, &[&str], Check)] = &[
    ("defaults", &[], |d| {
        let a = operator_args(d);
        assert_eq!(
            container(d)["image"],
            "ghcr.io/parity-dev/parity-operator:0.1.0"
        );
        assert_eq!(a.image, "ghcr.io/parity-dev/parity-operator:0.1.0");
        assert!(a.leader_elect && a.live_drift && !a.node_ports);
        assert!(a.image_pull_secrets.is_empty());
        assert_eq!(a.concurrency, 8);
        assert!(pod(d).get("imagePullSecrets").is_none());
        assert!(pod(d).get("priorityClassName").is_none());
        assert!(find(d, "PodDisruptionBudget", "rel-parity-operator").is_none());
        assert!(!d.iter().any(|o| o["kind"] == "ServiceMonitor"));
        assert!(find(d, "ClusterRole", "rel-parity-operator").is_some());
        assert!(find(d, "ServiceAccount", "rel-parity-operator").is_some());
    }),
    ("image.tag", &["image.tag=1.2.3"], |d| {
        assert_eq!(
            container(d)["image"],
            "ghcr.io/parity-dev/parity-operator:1.2.3"
        );
        assert_eq!(
            operator_args(d).image,
            "ghcr.io/parity-dev/parity-operator:1.2.3"
        );
    }),
    (
        "image.digest",
        &[
            "image.tag=ignored",
            concat!(
                "image.digest=",
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
        ],
        |d| {
            let want = format!("ghcr.io/parity-dev/parity-operator@{DIGEST}");
            assert_eq!(container(d)["image"], want.as_str());
            assert_eq!(
                operator_args(d).image,
                want,
                "the workloads run the pinned image too"
            );
        },
    ),
    ("image.pullPolicy", &["image.pullPolicy=Always"], |d| {
        assert_eq!(container(d)["imagePullPolicy"], "Always");
        assert_eq!(
            operator_args(d).image_pull_policy.as_deref(),
            Some("Always")
        );
    }),
    (
        "workloadImage",
        &[concat!(
            "workloadImage=reg.example/parity@",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )],
        |d| {
            assert_eq!(
                container(d)["image"],
                "ghcr.io/parity-dev/parity-operator:0.1.0"
            );
            assert_eq!(
                operator_args(d).image,
                format!("reg.example/parity@{DIGEST}")
            );
        },
    ),
    (
        "imagePullSecrets",
        &[
            "imagePullSecrets[0].name=regcred",
            "imagePullSecrets[1].name=mirror.pull",
        ],
        |d| {
            assert_eq!(
                pod(d)["imagePullSecrets"],
                json!([{"name": "regcred"}, {"name": "mirror.pull"}])
            );
            assert_eq!(
                operator_args(d).image_pull_secrets,
                ["regcred", "mirror.pull"]
            );
        },
    ),
    ("replicaCount", &["replicaCount=3"], |d| {
        assert_eq!(deployment(d)["spec"]["replicas"], 3);
        let pdb =
            find(d, "PodDisruptionBudget", "rel-parity-operator").expect("a PDB with 3 replicas");
        assert_eq!(pdb["apiVersion"], "policy/v1");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        let labels = &deployment(d)["spec"]["template"]["metadata"]["labels"];
        for (k, v) in pdb["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("selector")
        {
            assert_eq!(&labels[k], v, "the PDB selects the operator's pods");
        }
    }),
    (
        "leaderElection.enabled",
        &["leaderElection.enabled=false"],
        |d| {
            assert!(!operator_args(d).leader_elect);
            assert!(find(d, "Role", "rel-parity-operator-leader-election").is_none());
        },
    ),
    ("concurrency", &["concurrency=3"], |d| {
        assert_eq!(operator_args(d).concurrency, 3);
    }),
    (
        "watchNamespaces",
        &["watchNamespaces={team-a,team-b}"],
        |d| {
            assert_eq!(operator_args(d).watch_namespaces, ["team-a", "team-b"]);
            assert!(find(d, "ClusterRole", "rel-parity-operator").is_none());
            assert!(find(d, "ClusterRoleBinding", "rel-parity-operator").is_none());
            let roles: Vec<_> = d
                .iter()
                .filter(|o| o["kind"] == "Role" && o["metadata"]["name"] == "rel-parity-operator")
                .map(|o| o["metadata"]["namespace"].clone())
                .collect();
            assert_eq!(roles, [json!("team-a"), json!("team-b")]);
        },
    ),
    (
        "rbac.aggregateToDefaultRoles",
        &["rbac.aggregateToDefaultRoles=false"],
        |d| {
            assert!(
                find(d, "ClusterRole", "rel-parity-operator-edit").is_none(),
                "{:?}",
                kinds(d)
            );
            assert!(find(d, "ClusterRole", "rel-parity-operator-view").is_none());
        },
    ),
    ("nodePorts", &["nodePorts=true"], |d| {
        assert!(operator_args(d).node_ports)
    }),
    ("liveDrift.enabled", &["liveDrift.enabled=false"], |d| {
        assert!(!operator_args(d).live_drift)
    }),
    (
        "liveDrift.intervalSeconds",
        &["liveDrift.intervalSeconds=5"],
        |d| {
            assert_eq!(operator_args(d).live_drift_interval, 5);
        },
    ),
    (
        "liveDrift.awsCredentialsSecret",
        &["liveDrift.awsCredentialsSecret=aws-ro"],
        |d| {
            assert_eq!(
                container(d)["envFrom"],
                json!([{"secretRef": {"name": "aws-ro"}}])
            );
        },
    ),
    ("logFormat", &["logFormat=text"], |d| {
        assert_eq!(
            env_value(d, "PARITY_LOG_FORMAT").expect("env")["value"],
            "text"
        );
    }),
    ("port", &["port=9000"], |d| {
        assert_eq!(operator_args(d).metrics_addr.port(), 9000);
        assert_eq!(container(d)["ports"][0]["containerPort"], 9000);
        let svc = find(d, "Service", "rel-parity-operator-metrics").expect("metrics Service");
        assert_eq!(svc["spec"]["ports"][0]["port"], 9000);
    }),
    (
        "serviceMonitor",
        &[
            "serviceMonitor.enabled=true",
            "serviceMonitor.interval=15s",
            "serviceMonitor.labels.release=kps",
        ],
        |d| {
            let sm = find(d, "ServiceMonitor", "rel-parity-operator").expect("a ServiceMonitor");
            assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
            assert_eq!(sm["metadata"]["namespace"], "ops");
            assert_eq!(sm["metadata"]["labels"]["release"], "kps");
            assert_eq!(
                sm["spec"]["namespaceSelector"]["matchNames"],
                json!(["ops"])
            );
            let ep = &sm["spec"]["endpoints"][0];
            assert_eq!(ep["path"], "/metrics");
            assert_eq!(ep["interval"], "15s");
            // It must select the metrics Service and name one of its ports.
            let svc = find(d, "Service", "rel-parity-operator-metrics").expect("metrics Service");
            assert_eq!(ep["port"], svc["spec"]["ports"][0]["name"]);
            for (k, v) in sm["spec"]["selector"]["matchLabels"]
                .as_object()
                .expect("selector")
            {
                assert_eq!(&svc["metadata"]["labels"][k], v);
            }
        },
    ),
    (
        "serviceAccount",
        &[
            "serviceAccount.create=false",
            "serviceAccount.name=preexisting",
        ],
        |d| {
            assert!(!d.iter().any(|o| o["kind"] == "ServiceAccount"));
            assert_eq!(pod(d)["serviceAccountName"], "preexisting");
            let crb = find(d, "ClusterRoleBinding", "rel-parity-operator").expect("binding");
            assert_eq!(crb["subjects"][0]["name"], "preexisting");
        },
    ),
    ("resources", &["resources.limits.memory=1Gi"], |d| {
        assert_eq!(container(d)["resources"]["limits"]["memory"], "1Gi");
    }),
    (
        "priorityClassName",
        &["priorityClassName=platform-critical"],
        |d| {
            assert_eq!(pod(d)["priorityClassName"], "platform-critical");
        },
    ),
    ("extraArgs", &["extraArgs={--lease-name=parity-b}"], |d| {
        assert_eq!(
            args(d).last().map(String::as_str),
            Some("--lease-name=parity-b")
        );
        assert_eq!(operator_args(d).lease_name, "parity-b");
    }),
    (
        "extraEnv",
        &["extraEnv[0].name=RUST_BACKTRACE", "extraEnv[0].value=full"],
        |d| {
            assert_eq!(
                env_value(d, "RUST_BACKTRACE"),
                Some(json!({"name": "RUST_BACKTRACE", "value": "full"}))
            );
            assert!(
                env_value(d, "POD_NAME").is_some(),
                "the chart's own env stays"
            );
        },
    ),
    ("nodeSelector", &["nodeSelector.pool=ops"], |d| {
        assert_eq!(pod(d)["nodeSelector"], json!({"pool": "ops"}));
    }),
    (
        "tolerations",
        &["tolerations[0].key=ops", "tolerations[0].operator=Exists"],
        |d| {
            assert_eq!(
                pod(d)["tolerations"],
                json!([{"key": "ops", "operator": "Exists"}])
            );
        },
    ),
    (
        "affinity",
        &[
            "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
            "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        ],
        |d| {
            assert!(pod(d)["affinity"]["nodeAffinity"].is_object());
        },
    ),
    ("podAnnotations", &["podAnnotations.team=platform"], |d| {
        let a = &deployment(d)["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(a["team"], "platform");
        assert_eq!(a["prometheus.io/scrape"], "true");
    }),
];

#[test]
fn each_toggle_lints_and_renders_what_it_promises() {
    for (name, sets, check) in TOGGLES {
        succeed(
            with_helm("helm")
                .args(["lint", "--strict", CHART])
                .args(set_args(sets)),
        );
        eprintln!("toggle {name}: {sets:?}");
        check(&template(CHART, sets));
    }
}

#[test]
fn aggregated_roles_extend_admin_edit_and_view() {
    let d = template(CHART, &[]);
    let edit = find(&d, "ClusterRole", "rel-parity-operator-edit").expect("edit role");
    let view = find(&d, "ClusterRole", "rel-parity-operator-view").expect("view role");
    for label in ["aggregate-to-edit", "aggregate-to-admin"] {
        assert_eq!(
            edit["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")],
            "true"
        );
    }
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert!(
        view["metadata"]["labels"]
            .get("rbac.authorization.k8s.io/aggregate-to-edit")
            .is_none()
    );
    let verbs = |r: &Value| r["rules"][0]["verbs"].clone();
    assert_eq!(
        verbs(edit),
        json!([
            "create", "update", "patch", "delete", "get", "list", "watch"
        ])
    );
    assert_eq!(verbs(view), json!(["get", "list", "watch"]));
}

fn yaml_file(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// Follows a local `$ref` (`#/definitions/x`) of the schema.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"].as_str() {
        Some(r) => root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => s,
    }
}

/// Every key of `values` has a schema, every schema property a documented default, and
/// every object that has a schema of its own refuses unknown keys.
fn compare(root: &Value, schema: &Value, values: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(root, schema);
    let Some(map) = values.as_object() else {
        return;
    };
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    if schema["additionalProperties"] != false {
        errors.push(format!("{path}: additionalProperties is not false"));
    }
    for (k, v) in map {
        match props.get(k) {
            Some(s) => compare(root, s, v, &format!("{path}.{k}"), errors),
            None => errors.push(format!(
                "{path}.{k}: in values.yaml, not in values.schema.json"
            )),
        }
    }
    for k in props.keys().filter(|k| !map.contains_key(*k)) {
        errors.push(format!(
            "{path}.{k}: in values.schema.json, no default in values.yaml"
        ));
    }
}

#[test]
fn values_schema_covers_every_value() {
    let values = yaml_file("charts/parity-operator/values.yaml");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CHART}/values.schema.json")).expect("read schema"),
    )
    .expect("values.schema.json is JSON");
    let mut errors = Vec::new();
    compare(&schema, &schema, &values, "", &mut errors);
    assert!(
        errors.is_empty(),
        "values.schema.json and values.yaml differ:\n{}",
        errors.join("\n")
    );
}

#[test]
fn bad_values_fail_lint_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        ("replicaCount=two", "replicaCount"),
        ("image.digest=latest", "digest"),
        ("imagePullSecrets[0].name=Reg_Cred", "imagePullSecrets"),
        ("imagePullSecrets[0].secret=x", "imagePullSecrets"),
        ("concurrency=0", "concurrency"),
        ("serviceMonitor.interval=soon", "interval"),
        ("serviceMonitor.enable=true", "enable"),
        ("rbac.aggregate=true", "aggregate"),
        ("extraEnv[0].value=x", "extraEnv"),
        ("extraEnv[0].name=A,extraEnv[0].value=1", "extraEnv"),
    ];
    for (set, field) in cases {
        let out = output(with_helm("helm").args(["lint", "--strict", CHART, "--set", set]));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "helm lint accepted {set}:\n{text}");
        assert!(
            text.contains(field),
            "helm lint's error for {set} does not name {field}:\n{text}"
        );
    }
}

#[test]
fn packaged_chart_renders_like_the_directory() {
    let dist = tempfile::tempdir().expect("tempdir");
    let dist_arg = format!("DIST={}", dist.path().display());
    succeed(
        with_helm("make")
            .current_dir(ROOT)
            .args(["-s", "chart-package", &dist_arg]),
    );
    let chart = yaml_file("charts/parity-operator/Chart.yaml");
    let version = chart["version"].as_str().expect("Chart.yaml version");
    let tgz = dist.path().join(format!("parity-operator-{version}.tgz"));
    let tgz = tgz.to_str().expect("utf-8 path");

    let listing = succeed(Command::new("tar").args(["tzf", tgz]));
    for file in [
        "parity-operator/Chart.yaml",
        "parity-operator/values.yaml",
        "parity-operator/values.schema.json",
        "parity-operator/crds/parity.dev_parityenvironments.yaml",
        "parity-operator/files/rbac-rules.yaml",
        "parity-operator/templates/NOTES.txt",
    ] {
        assert!(
            listing.lines().any(|l| l == file),
            "{file} missing from {tgz}:\n{listing}"
        );
    }
    let render = |chart: &str| {
        succeed(with_helm("helm").args([
            "template",
            "rel",
            chart,
            "--include-crds",
            "--set",
            "replicaCount=2",
        ]))
    };
    let packaged = render(tgz);
    assert_eq!(
        packaged,
        render(CHART),
        "the packaged chart renders differently"
    );
    assert!(
        docs(&packaged)
            .iter()
            .any(|d| d["kind"] == "CustomResourceDefinition")
    );
    // The schema travels with the package.
    let out = output(with_helm("helm").args(["template", "rel", tgz, "--set", "replicaCount=two"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replicaCount"));
}

#[test]
fn install_yaml_is_the_rendered_chart() {
    let rendered = succeed(&mut with_helm(&format!("{ROOT}/deploy/render")));
    let committed = std::fs::read_to_string(format!("{ROOT}/deploy/install.yaml"))
        .expect("read deploy/install.yaml");
    assert!(
        rendered == committed,
        "deploy/install.yaml differs from the chart's rendering: run `make install-yaml` and commit the result"
    );
    let d = docs(&committed);
    assert_eq!(d[0]["kind"], "Namespace");
    assert_eq!(d[0]["metadata"]["name"], "parity-system");
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(
            d.iter().any(|o| o["kind"] == kind),
            "no {kind} in install.yaml"
        );
    }
    for o in d
        .iter()
        .filter(|o| o["metadata"].get("namespace").is_some())
    {
        assert_eq!(
            o["metadata"]["namespace"], "parity-system",
            "{}",
            o["metadata"]["name"]
        );
    }
}
