//! The Helm chart rendered with `helm template` and server-side applied to the real API
//! server: every object is accepted, the operator's pod passes restricted Pod Security, and
//! the ClusterRole holds exactly the generated least-privilege rules; the aggregated roles let
//! a namespace's edit users apply environments and its view users only read them; the pull
//! secrets reach every workload the operator creates.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams};

use support::cmd::run;
use support::kube_env::TestNamespace;
use support::wait::until;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/parity-operator");

#[test]
fn chart_lints() {
    run(Command::new("helm").args(["lint", "--strict", CHART]), None);
}

#[test]
fn values_schema_rejects_unknown_values() {
    let out = Command::new("helm")
        .args(["template", "x", CHART, "--set", "replicaCont=2"])
        .output()
        .expect("run helm");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replicaCont"));
}

#[test]
fn operator_args_parse_with_parity_operator() {
    use clap::Parser;
    let manifest = run(
        Command::new("helm").args([
            "template",
            "x",
            CHART,
            "--set",
            "nodePorts=true",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ]),
        None,
    );
    let deployment = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment in the chart");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(["/usr/local/bin/parity-operator"])
    );
    let mut argv = vec!["parity-operator".to_string()];
    for a in container["args"].as_array().unwrap() {
        argv.push(a.as_str().unwrap().to_string());
    }
    assert!(argv.contains(&"--leader-elect".to_string()));
    let cli = parity_operator::operator_bin::OperatorCli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("parity-operator rejects the chart's args {argv:?}: {e}"));
    assert_eq!(cli.operator.watch_namespaces, ["team-a", "team-b"]);
}

#[test]
fn values_schema_rejects_a_watched_namespace_that_is_not_a_name() {
    let out = Command::new("helm")
        .args(["template", "x", CHART, "--set", "watchNamespaces={Team_A}"])
        .output()
        .expect("run helm");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("watchNamespaces"));
}

/// Cluster-scoped objects outlive the test's namespace: deleted when the test ends, pass or fail.
struct ClusterScoped(Vec<String>);

impl ClusterScoped {
    fn of_release(release: &str) -> ClusterScoped {
        let name = format!("{release}-parity-operator");
        ClusterScoped(vec![
            format!("clusterrole/{name}"),
            format!("clusterrole/{name}-edit"),
            format!("clusterrole/{name}-view"),
            format!("clusterrolebinding/{name}"),
        ])
    }
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["delete", "--ignore-not-found"])
            .args(&self.0)
            .stdout(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn chart_applies_and_operator_pods_are_admitted() {
    let ns = TestNamespace::new("chart").await;
    let release = ns.name.clone();
    let _cleanup = ClusterScoped::of_release(&release);
    let manifest = run(
        Command::new("helm").args([
            "template",
            &release,
            CHART,
            "--namespace",
            &ns.name,
            "--set",
            "replicaCount=2",
            "--set",
            "image.tag=test",
        ]),
        None,
    );
    assert!(manifest.contains("--leader-elect"));
    run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-chart-test",
            "-n",
            &ns.name,
            "-f",
            "-",
        ]),
        Some(&manifest),
    );

    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    let role = roles
        .get(&format!("{release}-parity-operator"))
        .await
        .expect("ClusterRole");
    let rules = role.rules.unwrap_or_default();
    assert_eq!(rules, parity_operator::resources::rbac::operator_rules());

    let pods: Api<Pod> = ns.api();
    until(
        "2 operator pods admitted",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=parity-operator"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() == 2 {
                Ok(())
            } else {
                Err(list.items.len().to_string())
            }
        },
    )
    .await;
}

/// `kubectl auth can-i VERB parityenvironments -n NS --as USER`: true for yes.
fn can_i(user: &str, verb: &str, ns: &str) -> bool {
    let out = Command::new("kubectl")
        .args(["auth", "can-i", verb, "parityenvironments.parity.dev"])
        .args(["-n", ns, "--as", user])
        .output()
        .expect("run kubectl");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

fn kubectl_as(user: &str, ns: &str, args: &[&str], input: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(["--as", user, "-n", ns])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait kubectl")
}

#[tokio::test]
async fn namespace_edit_may_apply_environments_and_view_only_read_them() {
    let ns = TestNamespace::new("aggregate").await;
    support::crd::install_crd(&ns.client).await;
    let release = ns.name.clone();
    let _cleanup = ClusterScoped::of_release(&release);
    for (user, role) in [("dev-alice", "edit"), ("dev-bob", "view")] {
        run(
            Command::new("kubectl").args([
                "create",
                "rolebinding",
                &format!("{user}-{role}"),
                &format!("--clusterrole={role}"),
                &format!("--user={user}"),
                "-n",
                &ns.name,
            ]),
            None,
        );
    }
    // Before the chart's roles exist, edit and view grant nothing on environments.
    let leftovers = "edit or view grants parityenvironments before this test applied its roles: \
        leftover aggregated ClusterRoles (kubectl get clusterrole -l app.kubernetes.io/name=parity-operator)";
    assert!(!can_i("dev-alice", "create", &ns.name), "{leftovers}");
    assert!(!can_i("dev-bob", "list", &ns.name), "{leftovers}");
    let roles = run(
        Command::new("helm").args([
            "template",
            &release,
            CHART,
            "--show-only",
            "templates/aggregate-roles.yaml",
        ]),
        None,
    );
    run(
        Command::new("kubectl").args([
            "apply",
            "--server-side",
            "--field-manager=parity-chart-test",
            "-f",
            "-",
        ]),
        Some(&roles),
    );
    // kube-controller-manager aggregates the rules into edit and view asynchronously.
    until(
        "edit and view aggregate the chart's rules",
        Duration::from_secs(30),
        || async {
            if can_i("dev-alice", "create", &ns.name) && can_i("dev-bob", "list", &ns.name) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;

    let env = serde_json::to_string(&support::penv::env("dev", support::penv::local_spec()))
        .expect("environment json");
    let created = kubectl_as("dev-alice", &ns.name, &["create", "-f", "-"], Some(&env));
    assert!(
        created.status.success(),
        "edit may create a ParityEnvironment: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let patched = kubectl_as(
        "dev-alice",
        &ns.name,
        &[
            "patch",
            "penv",
            "dev",
            "--type=merge",
            "-p",
            r#"{"spec":{"parityLevel":1}}"#,
        ],
        None,
    );
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );

    let listed = kubectl_as("dev-bob", &ns.name, &["get", "penv", "-o", "name"], None);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "parityenvironment.parity.dev/dev"
    );
    for args in [&["delete", "penv", "dev"][..], &["create", "-f", "-"][..]] {
        let out = kubectl_as("dev-bob", &ns.name, args, Some(&env));
        assert!(!out.status.success(), "view may not {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("forbidden"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The grant is the namespace's: edit here is nothing in another namespace.
    assert!(!can_i("dev-alice", "create", "default"));
}

/// The chart's imagePullSecrets reach every pod the operator creates: the operator runs with
/// the `--image-pull-secret` arguments the chart renders, and the Deployments and the
/// bootstrap Job it applies carry them.
#[tokio::test]
async fn the_charts_pull_secrets_reach_every_workload() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::PostParams;

    let rendered = run(
        Command::new("helm").args([
            "template",
            "x",
            CHART,
            "--show-only",
            "templates/deployment.yaml",
            "--set",
            "imagePullSecrets[0].name=regcred",
            "--set",
            "imagePullSecrets[1].name=mirror",
        ]),
        None,
    );
    let pull_args: Vec<String> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|a| a.starts_with("--image-pull-secret="))
        .map(str::to_string)
        .collect();
    assert_eq!(pull_args.len(), 2, "{rendered}");

    let ns = TestNamespace::new("pullsecrets").await;
    support::crd::install_crd(&ns.client).await;
    let args: Vec<&str> = pull_args.iter().map(String::as_str).collect();
    let _op = support::operator::Operator::start_with(&ns.name, "pull-a", None, &args, &[]);
    let envs: Api<parity_operator::api::ParityEnvironment> = ns.api();
    envs.create(
        &PostParams::default(),
        &support::penv::env("dev", support::penv::local_spec()),
    )
    .await
    .expect("create environment");

    let deployments: Api<Deployment> = ns.api();
    let jobs: Api<Job> = ns.api();
    until(
        "the workloads applied with the pull secrets",
        Duration::from_secs(60),
        || async {
            let mut templates: Vec<(String, _)> = Vec::new();
            for d in deployments
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
            {
                templates.push((d.metadata.name.unwrap_or_default(), Some(d.spec.template)));
            }
            for j in jobs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
            {
                templates.push((
                    j.metadata.name.unwrap_or_default(),
                    j.spec.map(|s| s.template),
                ));
            }
            let names: Vec<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
            // Local level 2: DynamoDB, its bootstrap Job, kms and the dashboard.
            if templates.len() < 4 {
                return Err(format!("only {names:?} so far"));
            }
            for (name, t) in &templates {
                let secrets: Vec<_> = t
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .and_then(|s| s.image_pull_secrets.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                if secrets != ["regcred", "mirror"] {
                    return Err(format!("{name} pulls with {secrets:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}
