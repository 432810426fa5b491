//! Process mode's child commands, derived from the pod specs the operator would apply
//! (one source of truth): the `parity` container of each workload, with every mounted
//! volume replaced by its directory under `.parity/<env>/`, every Service URL and listen
//! address by a loopback port, and every Secret-backed variable by the file holding it.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use crate::api::ValidatedSpec;
use crate::connection::Endpoint;
use crate::resources::{BuildContext, Component, Object, build_all, endpoints, names};

/// Where process mode keeps what the cluster keeps in Secrets and ConfigMaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `.parity/<env>`
    pub dir: PathBuf,
    /// The seed fixtures (spec.dynamodb.seed's ConfigMap in a cluster).
    pub seeds: Option<PathBuf>,
}

impl Layout {
    pub fn topology_dir(&self) -> PathBuf {
        self.dir.join("topology")
    }

    /// The directory standing in for Secret `name` (`<env>-kms-credentials` ->
    /// `.parity/<env>/kms-credentials`), one file per key as a Secret volume has.
    pub fn secret_dir(&self, env: &str, name: &str) -> PathBuf {
        let suffix = name
            .strip_prefix(env)
            .and_then(|s| s.strip_prefix('-'))
            .unwrap_or(name);
        self.dir.join(suffix)
    }

    /// The directory standing in for a Secret or ConfigMap volume: the Secret's, the topology
    /// files, or the seed fixtures (the only other ConfigMap a pod mounts).
    pub fn stand_in(&self, env: &str, v: &Volume) -> Option<PathBuf> {
        if let Some(s) = &v.secret {
            s.secret_name.as_deref().map(|n| self.secret_dir(env, n))
        } else if let Some(cm) = &v.config_map {
            if cm.name == names::topology(env) {
                Some(self.topology_dir())
            } else {
                self.seeds.clone()
            }
        } else {
            None
        }
    }

    pub fn keyring_file(&self, env: &str) -> PathBuf {
        self.secret_dir(env, &names::keyring(env))
            .join(crate::crypto::keyring::KEYRING_SECRET_KEY)
    }
}

/// The loopback port of each service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub kms: u16,
    pub dynamodb: u16,
    pub secrets: u16,
    pub dashboard: u16,
}

impl Ports {
    pub fn get(&self, e: Endpoint) -> u16 {
        match e {
            Endpoint::Kms => self.kms,
            Endpoint::DynamoDb => self.dynamodb,
            Endpoint::Secrets => self.secrets,
            Endpoint::Dashboard => self.dashboard,
        }
    }
}

/// A variable's value: as is, or read from a file when the child starts (the files hold
/// credentials, which stay out of this struct and anything that prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvSource {
    Value(String),
    File(PathBuf),
}

/// One `parity` child: the subcommand's arguments and environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildCommand {
    pub component: Component,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvSource)>,
}

/// The service a workload component serves.
pub fn served(c: Component) -> Option<Endpoint> {
    match c {
        Component::Kms => Some(Endpoint::Kms),
        Component::SecretsApi => Some(Endpoint::Secrets),
        Component::Dashboard => Some(Endpoint::Dashboard),
        Component::DynamoDb => Some(Endpoint::DynamoDb),
        _ => None,
    }
}

/// The in-cluster URLs of the environment's services and their loopback replacements.
/// `dynamodb` overrides DynamoDB's (an endpoint the user runs).
pub fn url_map(
    env: &ValidatedSpec,
    ports: &Ports,
    dynamodb: Option<&str>,
) -> Vec<(String, String)> {
    let ep = endpoints(env, env.profile, &BuildContext::new("parity"));
    let local = |e: Endpoint| format!("http://127.0.0.1:{}", ports.get(e));
    let mut out = Vec::new();
    for (url, e) in [
        (ep.kms, Endpoint::Kms),
        (ep.secrets, Endpoint::Secrets),
        (ep.dashboard, Endpoint::Dashboard),
    ] {
        if let Some(u) = url {
            out.push((u, local(e)));
        }
    }
    if let Some(u) = ep.dynamodb {
        let to = dynamodb.map_or_else(|| local(Endpoint::DynamoDb), str::to_string);
        out.push((u, to));
    }
    out
}

/// Mount path -> local path for the container's volumes (the writable /tmp stays the
/// child's own).
fn mount_map(
    env: &ValidatedSpec,
    pod: &PodSpec,
    c: &Container,
    layout: &Layout,
) -> Vec<(String, PathBuf)> {
    let volumes = pod.volumes.clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        if let Some(l) = layout.stand_in(&env.name, v) {
            out.push((m.mount_path.clone(), l));
        }
    }
    // Longest first, so /etc/parity/secrets-api-credentials is not read as /etc/parity/secrets.
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    out
}

fn rewrite(
    arg: &str,
    urls: &[(String, String)],
    listen: Option<(i32, u16)>,
    mounts: &[(String, PathBuf)],
) -> String {
    let mut a = arg.to_string();
    for (from, to) in urls {
        a = a.replace(from.as_str(), to);
    }
    if let Some((container_port, port)) = listen {
        a = a.replace(
            &format!("0.0.0.0:{container_port}"),
            &format!("127.0.0.1:{port}"),
        );
    }
    for (from, to) in mounts {
        if let Some(i) = a.find(from.as_str()) {
            let rest = &a[i + from.len()..];
            if rest.is_empty() || rest.starts_with('/') {
                let local = format!("{}{rest}", to.display());
                a = format!("{}{local}", &a[..i]);
                break;
            }
        }
    }
    a
}

/// The `parity` children of the environment, in the operator's apply order: one per
/// workload whose container runs the operator image (kms, bootstrap, secrets-api,
/// dashboard). DynamoDB Local's pod is not one: process mode runs an emulator instead.
pub fn parity_children(
    env: &ValidatedSpec,
    layout: &Layout,
    ports: &Ports,
    dynamodb: Option<&str>,
) -> Vec<ChildCommand> {
    let ctx = BuildContext::new("parity");
    let urls = url_map(env, ports, dynamodb);
    let mut out = Vec::new();
    for o in build_all(env, env.profile, &ctx) {
        let Some(component) = o.component() else {
            continue;
        };
        let pod = match &o {
            Object::Deployment(d) => d.spec.template.spec.clone(),
            Object::Job(j) => j.spec.as_ref().and_then(|s| s.template.spec.clone()),
            _ => None,
        };
        let Some(pod) = pod else { continue };
        let Some(c) = pod.containers.first() else {
            continue;
        };
        if c.image.as_deref() != Some(ctx.image.as_str()) {
            continue;
        }
        let mounts = mount_map(env, &pod, c, layout);
        let listen = served(component).and_then(|e| {
            let port = c.ports.as_ref()?.first()?.container_port;
            Some((port, ports.get(e)))
        });
        let args = c
            .args
            .iter()
            .flatten()
            .map(|a| rewrite(a, &urls, listen, &mounts))
            .collect();
        let env_vars = c
            .env
            .iter()
            .flatten()
            .filter_map(|v| {
                if let Some(value) = &v.value {
                    return Some((
                        v.name.clone(),
                        EnvSource::Value(rewrite(value, &urls, None, &[])),
                    ));
                }
                let r = v.value_from.as_ref()?.secret_key_ref.as_ref()?;
                Some((
                    v.name.clone(),
                    EnvSource::File(layout.secret_dir(&env.name, &r.name).join(&r.key)),
                ))
            })
            .collect();
        out.push(ChildCommand {
            component,
            args,
            env: env_vars,
        });
    }
    out
}

/// The topology ConfigMap's files with in-cluster URLs replaced by the loopback ones.
pub fn topology_files(env: &ValidatedSpec, urls: &[(String, String)]) -> BTreeMap<String, String> {
    crate::resources::topology_data(env, env.profile, &BuildContext::new("parity"))
        .into_iter()
        .map(|(k, mut v)| {
            for (from, to) in urls {
                v = v.replace(from.as_str(), to);
            }
            (k, v)
        })
        .collect()
}

/// The emulator standing in for DynamoDB Local: moto server on loopback.
pub fn moto_args(port: u16) -> Vec<String> {
    vec![
        "-H".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        port.to_string(),
    ]
}

/// Whether `path` is under the layout (for tests and the unit test's normalisation).
pub fn is_local(layout: &Layout, path: &Path) -> bool {
    path.starts_with(&layout.dir) || layout.seeds.as_deref().is_some_and(|s| path.starts_with(s))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::api::SeedSpec;
    use crate::resources::{KEYRING_DIR, KMS_CREDENTIALS_DIR, SECRETS_DIR, SEED_DIR, TOPOLOGY_DIR};

    const PORTS: Ports = Ports {
        kms: 18880,
        dynamodb: 18000,
        secrets: 18095,
        dashboard: 18080,
    };

    fn env(file: &str, mirror: bool) -> ValidatedSpec {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join(file)).expect("example");
        let sources = if mirror {
            crate::manifest::mirror_sources(&root.join("examples/topology.yaml")).expect("topology")
        } else {
            crate::manifest::MirrorSources::default()
        };
        let mut v = crate::manifest::validated_environments(&text, file, "default", &sources)
            .expect("valid example")
            .remove(0);
        v.spec.dynamodb.seed = Some(SeedSpec {
            config_map_ref: crate::api::LocalObjectRef {
                name: "fixtures".into(),
            },
        });
        v
    }

    fn layout() -> Layout {
        Layout {
            dir: PathBuf::from("/home/u/app/.parity/dev"),
            seeds: Some(PathBuf::from("/home/u/app/fixtures")),
        }
    }

    const DIRS: [(&str, &str); 6] = [
        (
            "/etc/parity/secrets-api-credentials",
            "/home/u/app/.parity/dev/secrets-api-credentials",
        ),
        (KEYRING_DIR, "/home/u/app/.parity/dev/keyring"),
        (
            KMS_CREDENTIALS_DIR,
            "/home/u/app/.parity/dev/kms-credentials",
        ),
        (SECRETS_DIR, "/home/u/app/.parity/dev/secrets"),
        (TOPOLOGY_DIR, "/home/u/app/.parity/dev/topology"),
        (SEED_DIR, "/home/u/app/fixtures"),
    ];

    /// A pod argument with its mount points and Service URLs replaced by placeholders.
    fn normalize_pod(e: &ValidatedSpec, arg: &str) -> String {
        let ep = endpoints(e, e.profile, &BuildContext::new("parity"));
        let mut a = arg.to_string();
        for (url, tag) in [
            (ep.kms, "<kms>"),
            (ep.dynamodb, "<dynamodb>"),
            (ep.secrets, "<secrets>"),
            (ep.dashboard, "<dashboard>"),
        ] {
            if let Some(u) = url {
                a = a.replace(&u, tag);
            }
        }
        for port in [8080, 8095] {
            a = a.replace(&format!("0.0.0.0:{port}"), "<listen>");
        }
        for (pod, _) in DIRS {
            a = a.replace(pod, "<dir>");
        }
        a
    }

    /// A child argument with the layout's directories and loopback addresses replaced.
    fn normalize_child(arg: &str) -> String {
        let mut a = arg.to_string();
        for (port, tag) in [
            (PORTS.kms, "<kms>"),
            (PORTS.dynamodb, "<dynamodb>"),
            (PORTS.secrets, "<secrets>"),
            (PORTS.dashboard, "<dashboard>"),
        ] {
            a = a.replace(&format!("http://127.0.0.1:{port}"), tag);
            a = a.replace(&format!("127.0.0.1:{port}"), "<listen>");
        }
        for (_, local) in DIRS {
            a = a.replace(local, "<dir>");
        }
        a
    }

    fn pod_containers(e: &ValidatedSpec) -> Vec<(Component, Container)> {
        build_all(e, e.profile, &BuildContext::new("parity"))
            .into_iter()
            .filter_map(|o| {
                let c = o.component()?;
                let pod = match &o {
                    Object::Deployment(d) => d.spec.template.spec.clone(),
                    Object::Job(j) => j.spec.as_ref()?.template.spec.clone(),
                    _ => None,
                }?;
                let container = pod.containers.first()?.clone();
                (container.image.as_deref() == Some("parity")).then_some((c, container))
            })
            .collect()
    }

    #[test]
    fn child_args_are_the_pod_args_apart_from_paths_and_ports() {
        for (file, mirror) in [("examples/local.yaml", true), ("examples/ci.yaml", true)] {
            let e = env(file, mirror);
            let children = parity_children(&e, &layout(), &PORTS, None);
            let pods = pod_containers(&e);
            assert_eq!(children.len(), pods.len(), "{file}");
            assert!(children.len() >= 3, "{file}: {children:?}");
            for (child, (component, c)) in children.iter().zip(&pods) {
                assert_eq!(child.component, *component);
                let pod_args = c.args.clone().unwrap_or_default();
                assert_eq!(child.args.len(), pod_args.len(), "{file} {component:?}");
                for (got, want) in child.args.iter().zip(&pod_args) {
                    assert_eq!(
                        normalize_child(got),
                        normalize_pod(&e, want),
                        "{file} {component:?}"
                    );
                    // Nothing in-cluster is left.
                    assert!(
                        !got.contains(".svc") && !got.contains("/etc/parity"),
                        "{got}"
                    );
                }
                let names: Vec<&String> = child.env.iter().map(|(k, _)| k).collect();
                let pod_names: Vec<String> =
                    c.env.iter().flatten().map(|v| v.name.clone()).collect();
                assert_eq!(names, pod_names.iter().collect::<Vec<_>>(), "{component:?}");
                // Each child's command line is one its subcommand accepts.
                let mut argv = vec!["parity".to_string()];
                argv.extend(child.args.clone());
                // parity kms reads its access key id from the environment the child gets.
                if child
                    .env
                    .iter()
                    .any(|(k, _)| k == "PARITY_KMS_ACCESS_KEY_ID")
                    && child.component == Component::Kms
                {
                    argv.push("--access-key-id=from-env".to_string());
                }
                crate::cli::Cli::try_parse_from(&argv)
                    .unwrap_or_else(|err| panic!("{file}: {argv:?}: {err}"));
            }
        }
    }

    #[test]
    fn paths_and_ports_land_in_the_layout_and_on_loopback() {
        let e = env("examples/local.yaml", true);
        let children = parity_children(&e, &layout(), &PORTS, None);
        let kms = children
            .iter()
            .find(|c| c.component == Component::Kms)
            .expect("kms child");
        assert!(kms.args.contains(&"--listen=127.0.0.1:18880".to_string()));
        assert!(
            kms.args
                .contains(&"--keyring=/home/u/app/.parity/dev/keyring/keyring.json".to_string())
        );
        assert_eq!(
            kms.env[0],
            (
                "PARITY_KMS_ACCESS_KEY_ID".to_string(),
                EnvSource::File(PathBuf::from(
                    "/home/u/app/.parity/dev/kms-credentials/access-key-id"
                ))
            )
        );
        let boot = children
            .iter()
            .find(|c| c.component == Component::Bootstrap)
            .expect("bootstrap child");
        assert!(boot.args.contains(&"http://127.0.0.1:18000".to_string()));
        assert!(boot.args.contains(&"/home/u/app/fixtures".to_string()));
        assert!(boot.args.contains(&"http://127.0.0.1:18880".to_string()));
        let dash = children
            .iter()
            .find(|c| c.component == Component::Dashboard)
            .expect("dashboard child");
        assert!(dash.args.contains(&"server".to_string()));
        // A user-run DynamoDB replaces the emulator's URL everywhere.
        let ext = parity_children(&e, &layout(), &PORTS, Some("http://localhost:9999"));
        assert!(
            ext.iter()
                .any(|c| c.args.contains(&"http://localhost:9999".to_string()))
        );
        // The secrets-api reads its client secret from the layout, not /etc.
        let api = children
            .iter()
            .find(|c| c.component == Component::SecretsApi)
            .expect("secrets-api child");
        assert!(api.args.contains(
            &"--client-secret-file=/home/u/app/.parity/dev/secrets-api-credentials/client-secret".to_string()
        ));
        assert!(
            api.args
                .contains(&"--secrets-dir=/home/u/app/.parity/dev/secrets".to_string())
        );
    }

    #[test]
    fn ci_dashboard_never_decrypts() {
        let e = env("examples/ci.yaml", true);
        let dash = parity_children(&e, &layout(), &PORTS, None)
            .into_iter()
            .find(|c| c.component == Component::Dashboard)
            .expect("dashboard");
        assert!(dash.args.contains(&"disabled".to_string()));
        assert!(!dash.args.iter().any(|a| a == "--kms-endpoint"));
        assert!(
            dash.env
                .iter()
                .all(|(_, v)| !matches!(v, EnvSource::File(_)))
        );
    }

    #[test]
    fn topology_files_name_loopback_urls() {
        let e = env("examples/local.yaml", true);
        let files = topology_files(&e, &url_map(&e, &PORTS, None));
        assert!(files["environment.yaml"].contains("http://127.0.0.1:18880"));
        assert!(!files["environment.yaml"].contains(".svc"));
        assert!(files["aliases"].contains("alias/parity/dev"));
    }
}
