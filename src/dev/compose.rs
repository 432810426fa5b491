//! `parity render --format compose`: the environment as a Compose file for teams that run
//! their local stack with Docker Compose. Each service is the main container of a pod the
//! operator would create, from the same builders (image, command, arguments, variables),
//! with one profile per parity level (`level0` .. `level3`): a level's profile starts what
//! that level runs. Secret and ConfigMap volumes become read-only bind mounts of the files
//! `parity dev` keeps under `.parity/<env>/`, mounted where the pod mounts them, so the
//! arguments need no rewriting; in-cluster URLs become the Compose service names.
//! Secret-backed variables are read from a per-service env file (mode 0600) so no credential
//! is written into the Compose file itself. The translation is pure; [`run`] writes the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::{Value, json};

use super::derive::{Layout, Ports, served};
use super::files;
use crate::api::ValidatedSpec;
use crate::connection::{
    DASHBOARD_HOST_PORT, DYNAMODB_HOST_PORT, Endpoint, KMS_HOST_PORT, SECRETS_API_HOST_PORT,
};
use crate::resources::{BuildContext, Component, Object, build_all, endpoints};

/// Parity levels, lowest first; a service of level L is in the profiles of L and above.
pub const LEVELS: std::ops::RangeInclusive<i32> = 0..=3;

/// Where the env files of Secret-backed variables go, under the layout.
pub const ENV_FILES: &str = "compose";

pub fn profile(level: i32) -> String {
    format!("level{level}")
}

/// A Secret-backed variable of a service: written to the service's env file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVar {
    pub service: String,
    pub name: String,
    /// The file standing in for the Secret's key.
    pub file: PathBuf,
}

/// The Compose file and the variables its env files must hold.
#[derive(Debug)]
pub struct ComposeFile {
    pub document: Value,
    pub secret_vars: Vec<SecretVar>,
}

/// Where the host reaches each service: the ports `parity dev` prefers.
const HOST_PORTS: Ports = Ports {
    kms: KMS_HOST_PORT,
    dynamodb: DYNAMODB_HOST_PORT,
    secrets: SECRETS_API_HOST_PORT,
    dashboard: DASHBOARD_HOST_PORT,
};

/// The pods of `env` at its declared level: component, pod spec, whether it runs to completion.
fn pods(env: &ValidatedSpec, ctx: &BuildContext) -> Vec<(Component, PodSpec, bool)> {
    build_all(env, env.profile, ctx)
        .into_iter()
        .filter_map(|o| {
            let c = o.component()?;
            match o {
                Object::Deployment(d) => Some((c, d.spec.template.spec?, false)),
                Object::Job(j) => Some((c, j.spec?.template.spec?, true)),
                _ => None,
            }
        })
        .collect()
}

/// In-cluster service URLs -> `http://<service>:<container port>`.
fn url_map(
    env: &ValidatedSpec,
    ctx: &BuildContext,
    pods: &[(Component, PodSpec, bool)],
) -> Vec<(String, String)> {
    let ep = endpoints(env, env.profile, ctx);
    let mut out = Vec::new();
    for (component, pod, _) in pods {
        let Some(endpoint) = served(*component) else {
            continue;
        };
        let url = match endpoint {
            Endpoint::Kms => &ep.kms,
            Endpoint::DynamoDb => &ep.dynamodb,
            Endpoint::Secrets => &ep.secrets,
            Endpoint::Dashboard => &ep.dashboard,
        };
        if let (Some(url), Some(port)) = (url, container_port(pod)) {
            out.push((url.clone(), format!("http://{}:{port}", component.as_str())));
        }
    }
    out
}

fn container_port(pod: &PodSpec) -> Option<i32> {
    Some(
        pod.containers
            .first()?
            .ports
            .as_ref()?
            .first()?
            .container_port,
    )
}

/// In-cluster URLs replaced by the Compose ones; in a comma-separated list of host names
/// (the dashboard's allowed hosts), a Service's cluster names become its Compose name.
fn rewrite(env: &ValidatedSpec, s: &str, urls: &[(String, String)]) -> String {
    let s = urls
        .iter()
        .fold(s.to_string(), |a, (from, to)| a.replace(from.as_str(), to));
    let cluster_name = |item: &str| {
        urls.iter().find_map(|(_, to)| {
            let service = to.strip_prefix("http://")?.split(':').next()?;
            let k8s = format!("{}-{service}", env.name);
            (item == k8s || item.starts_with(&format!("{k8s}."))).then(|| service.to_string())
        })
    };
    let items: Vec<&str> = s.split(',').collect();
    if !items.iter().any(|i| cluster_name(i).is_some()) {
        return s;
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item = cluster_name(item).unwrap_or_else(|| item.to_string());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out.join(",")
}

/// The container's volumes: Secrets and ConfigMaps as read-only bind mounts of their
/// stand-in directories, emptyDir as tmpfs, a claim as a named volume.
fn mounts(env: &ValidatedSpec, pod: &PodSpec, c: &Container, layout: &Layout) -> Vec<Value> {
    let volumes = pod.volumes.clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        if let Some(source) = layout.stand_in(&env.name, v) {
            out.push(json!({
                "type": "bind",
                "source": source.display().to_string(),
                "target": m.mount_path,
                "read_only": true,
            }));
        } else if v.empty_dir.is_some() {
            out.push(json!({"type": "tmpfs", "target": m.mount_path}));
        } else if v.persistent_volume_claim.is_some() {
            out.push(json!({
                "type": "volume",
                "source": format!("{}-{}", env.name, m.name),
                "target": m.mount_path,
            }));
        }
    }
    out
}

/// One service: the pod's first container as Compose runs it.
fn service(
    env: &ValidatedSpec,
    component: Component,
    pod: &PodSpec,
    once: bool,
    layout: &Layout,
    urls: &[(String, String)],
) -> (Value, Vec<SecretVar>) {
    let name = component.as_str().to_string();
    let mut svc = serde_json::Map::new();
    let Some(c) = pod.containers.first() else {
        return (Value::Object(svc), Vec::new());
    };
    if let Some(image) = &c.image {
        svc.insert("image".into(), json!(image));
    }
    if let Some(cmd) = &c.command {
        svc.insert("entrypoint".into(), json!(cmd));
    }
    if let Some(args) = &c.args {
        let args: Vec<String> = args.iter().map(|a| rewrite(env, a, urls)).collect();
        svc.insert("command".into(), json!(args));
    }
    let mut environment = BTreeMap::new();
    let mut secret_vars = Vec::new();
    for v in c.env.iter().flatten() {
        if let Some(value) = &v.value {
            environment.insert(v.name.clone(), rewrite(env, value, urls));
        } else if let Some(r) = v
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        {
            secret_vars.push(SecretVar {
                service: name.clone(),
                name: v.name.clone(),
                file: layout.secret_dir(&env.name, &r.name).join(&r.key),
            });
        }
    }
    if !environment.is_empty() {
        svc.insert("environment".into(), json!(environment));
    }
    if !secret_vars.is_empty() {
        svc.insert(
            "env_file".into(),
            json!([env_file(layout, &name).display().to_string()]),
        );
    }
    let volumes = mounts(env, pod, c, layout);
    if !volumes.is_empty() {
        svc.insert("volumes".into(), Value::Array(volumes));
    }
    if let (Some(e), Some(port)) = (served(component), container_port(pod)) {
        let host = HOST_PORTS.get(e);
        svc.insert("ports".into(), json!([format!("127.0.0.1:{host}:{port}")]));
    }
    // A one-shot service keeps Compose's default ("no"): it must not run again on exit.
    if !once {
        svc.insert("restart".into(), json!("unless-stopped"));
    }
    (Value::Object(svc), secret_vars)
}

pub fn env_file(layout: &Layout, service: &str) -> PathBuf {
    layout.dir.join(ENV_FILES).join(format!("{service}.env"))
}

/// The Compose file for `env`: every level up to the declared one, each service in the
/// profiles of the levels that run it as it is.
pub fn compose(env: &ValidatedSpec, layout: &Layout, ctx: &BuildContext) -> ComposeFile {
    // (service name, component, definition, profiles)
    let mut services: Vec<(String, Component, Value, Vec<String>)> = Vec::new();
    let mut secret_vars: BTreeMap<String, Vec<SecretVar>> = BTreeMap::new();
    for level in LEVELS.filter(|l| *l <= env.spec.parity_level) {
        let mut at = env.clone();
        at.spec.parity_level = level;
        let pods = pods(&at, ctx);
        let urls = url_map(&at, ctx, &pods);
        for (component, pod, once) in &pods {
            let (svc, vars) = service(&at, *component, pod, *once, layout, &urls);
            let base = component.as_str();
            if let Some(same) = services
                .iter_mut()
                .find(|(_, c, def, _)| c == component && *def == svc)
            {
                same.3.push(profile(level));
                continue;
            }
            // A level that runs the component differently gets its own service, reachable
            // under the same host name (only one level's profile runs at a time).
            let name = if services.iter().any(|(n, ..)| n == base) {
                format!("{base}-{}", profile(level))
            } else {
                base.to_string()
            };
            for v in &vars {
                secret_vars
                    .entry(name.clone())
                    .or_default()
                    .push(SecretVar {
                        service: name.clone(),
                        ..v.clone()
                    });
            }
            services.push((name, *component, svc, vec![profile(level)]));
        }
    }
    let has = |c: Component| services.iter().any(|(_, x, ..)| *x == c);
    let mut out = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    for (name, component, mut svc, profiles) in services.iter().cloned() {
        if let Value::Object(m) = &mut svc {
            m.insert("profiles".into(), json!(profiles));
            if name != component.as_str() {
                m.insert(
                    "networks".into(),
                    json!({"default": {"aliases": [component.as_str()]}}),
                );
                if m.contains_key("env_file") {
                    m.insert(
                        "env_file".into(),
                        json!([env_file(layout, &name).display().to_string()]),
                    );
                }
            }
            let mut depends = serde_json::Map::new();
            // Bootstrap needs DynamoDB and the key service; the dashboard needs the tables.
            if component == Component::Bootstrap {
                for dep in [Component::DynamoDb, Component::Kms] {
                    if has(dep) {
                        depends.insert(
                            dep.as_str().into(),
                            json!({"condition": "service_started", "required": false}),
                        );
                    }
                }
            }
            if component == Component::Dashboard && has(Component::Bootstrap) {
                depends.insert(
                    Component::Bootstrap.as_str().into(),
                    json!({"condition": "service_completed_successfully", "required": false}),
                );
            }
            if !depends.is_empty() {
                m.insert("depends_on".into(), Value::Object(depends));
            }
            for v in m
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if v.get("type").and_then(Value::as_str) == Some("volume")
                    && let Some(s) = v.get("source").and_then(Value::as_str)
                {
                    volumes.insert(s.to_string(), json!({}));
                }
            }
        }
        out.insert(name, svc);
    }
    let mut document = json!({"name": format!("parity-{}", env.name), "services": out});
    if !volumes.is_empty() {
        document["volumes"] = Value::Object(volumes);
    }
    ComposeFile {
        document,
        secret_vars: secret_vars.into_values().flatten().collect(),
    }
}

/// The env file of each service with Secret-backed variables, mode 0600, values read from
/// the files `prepare_files` made.
pub fn write_env_files(layout: &Layout, vars: &[SecretVar]) -> anyhow::Result<()> {
    let mut by_service: BTreeMap<&str, String> = BTreeMap::new();
    for v in vars {
        let value = std::fs::read_to_string(&v.file)
            .with_context(|| format!("{} for {} of {}", v.file.display(), v.name, v.service))?;
        let line = by_service.entry(v.service.as_str()).or_default();
        line.push_str(&format!("{}={}\n", v.name, value.trim_end_matches('\n')));
    }
    files::private_dir(&layout.dir.join(ENV_FILES))?;
    for (service, text) in by_service {
        files::write_private(&env_file(layout, service), text.as_bytes())?;
    }
    Ok(())
}

/// Paths in the Compose file relative to `base` (the directory compose runs in), so the
/// file can be committed or moved with the project.
pub fn relative_to(layout: &Layout, base: &Path) -> Layout {
    let rel = |p: &Path| {
        p.strip_prefix(base)
            .map(|r| Path::new(".").join(r))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    Layout {
        dir: rel(&layout.dir),
        seeds: layout.seeds.as_deref().map(rel),
    }
}

/// `parity render --format compose`: validates the environment as `parity dev` does, writes
/// the keys, credentials, topology, secrets and env files under --state-dir (created once,
/// reused), and prints the Compose file with paths relative to the current directory.
pub struct ComposeRequest<'a> {
    /// The manifest (a file: the secrets schema is found next to it).
    pub file: &'a Path,
    pub namespace: &'a str,
    pub image: &'a str,
    pub mirror_source: Option<&'a Path>,
    /// Where the keys, credentials and secrets go (one directory per environment).
    pub state_dir: &'a Path,
    /// Seed fixtures, standing in for spec.dynamodb.seed's ConfigMap.
    pub seeds: Option<&'a Path>,
    pub secrets_schema: Option<&'a Path>,
    pub seed_file: Option<&'a Path>,
}

pub fn run(args: ComposeRequest<'_>) -> anyhow::Result<()> {
    if args.file.as_os_str() == "-" {
        anyhow::bail!("--format compose needs -f FILE (the secrets schema is found next to it)");
    }
    let (mut env, manifest) = super::load(args.file, None, args.namespace, args.mirror_source)?;
    let cwd = std::env::current_dir().context("current directory")?;
    let seeds = match args.seeds {
        Some(d) if !d.is_dir() => anyhow::bail!("--seeds {}: not a directory", d.display()),
        Some(d) => Some(std::path::absolute(d)?),
        None => None,
    };
    if seeds.is_none()
        && let Some(s) = env.spec.dynamodb.seed.take()
    {
        eprintln!(
            "parity render: spec.dynamodb.seed names ConfigMap {}: give its fixtures with --seeds DIR to load them (skipped)",
            s.config_map_ref.name
        );
    }
    let layout = Layout {
        dir: std::path::absolute(args.state_dir)?.join(&env.name),
        seeds,
    };
    files::private_dir(&layout.dir)?;
    let ctx = BuildContext::new(args.image);
    // The topology and derived secrets name the services as Compose resolves them.
    let pods = pods(&env, &ctx);
    let urls = url_map(&env, &ctx, &pods);
    // stdout is the Compose file: notes go to stderr.
    let inputs = super::FileInputs {
        seed_file: args.seed_file,
        secrets_schema: args.secrets_schema,
    };
    super::prepare_files(inputs, &env, args.file, &manifest, &layout, &urls, |m| {
        eprintln!("{m}")
    })?;
    // Paths relative to the current directory: the env files are read from here too.
    let file = compose(&env, &relative_to(&layout, &cwd), &ctx);
    write_env_files(&layout, &file.secret_vars)?;
    print!("{}", serde_yaml::to_string(&file.document)?);
    eprintln!(
        "parity render: keys and secrets in {}; start with `docker compose -f FILE --profile level{} up`",
        layout.dir.display(),
        env.spec.parity_level
    );
    Ok(())
}
