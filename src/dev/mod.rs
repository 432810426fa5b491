//! `parity dev`: process mode. Runs an environment's components as child processes of
//! `parity` (no Docker, no cluster), with arguments derived from the same builders as the
//! pods ([`derive`]), and connects an app to it through `.parity/<env>/.env` (or runs the
//! app itself after `--`). docs/dev.md describes it.

pub mod compose;
pub mod derive;
pub mod files;
pub mod moto;
pub mod ports;
pub mod state;
pub mod supervise;

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tokio::sync::{mpsc, oneshot, watch};
use zeroize::Zeroizing;

use crate::api::{Endpoints, KeySource, LocalObjectRef, SecretsProvider, SeedSpec, ValidatedSpec};
use crate::connection::{ConnectionSet, Format};
use crate::resources::{
    BuildContext, Component, ConnectionInputs, KMS_SECRET_ACCESS_KEY_KEY,
    SECRETS_API_CLIENT_SECRET_KEY, connection_set, endpoints, names, plan,
};
use derive::{ChildCommand, Layout, Ports, parity_children, topology_files, url_map};
use state::{Phase, StateFile};
use supervise::Program;

/// Run an environment as local processes and connect an app to it.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  parity dev -f examples/local.yaml --mirror-source examples/topology.yaml
                                      run until Ctrl-C; the app reads .parity/dev/.env
  parity dev -f examples/ci.yaml --mirror-source examples/topology.yaml -- cargo test
                                      start, run the app's tests against it, stop; their exit code
  parity dev status --env dev         what runs and where"
)]
pub struct DevArgs {
    #[command(subcommand)]
    pub action: Option<DevAction>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum DevAction {
    /// Show each component's state (from .parity/<env>/state.json).
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The environment's manifest (or give its name with --env).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// The environment's name (metadata.name).
    #[arg(long = "env")]
    pub env: Option<String>,
    /// Where process mode keeps its state.
    #[arg(long, env = "PARITY_DEV_DIR", default_value = ".parity")]
    pub state_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The ParityEnvironment manifest (tier Local or CI).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Which environment of the file, when it holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace for an environment that does not set one (it only names things).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// File with the environment(s) spec.mirror.from names (e.g. staging.yaml), or the
    /// topology spec.mirror.configMapRef's ConfigMap holds (e.g. topology.yaml).
    #[arg(long)]
    pub mirror_source: Option<PathBuf>,
    /// File holding the key seed (keys.local.source Seeded; a cluster reads it from a Secret).
    /// Default: PARITY_KEY_SEED, else the seed Secret when the manifest file carries it.
    #[arg(long, env = "PARITY_KEY_SEED_FILE")]
    pub seed_file: Option<PathBuf>,
    /// Directory of seed fixtures, standing in for spec.dynamodb.seed's ConfigMap.
    #[arg(long, visible_alias = "seed-dir")]
    pub seeds: Option<PathBuf>,
    /// The secrets schema, standing in for spec.secrets.schema's ConfigMap. Default: the
    /// file named by the schema's key, next to the manifest.
    #[arg(long)]
    pub secrets_schema: Option<PathBuf>,
    /// Use this DynamoDB endpoint instead of starting the emulator (e.g. your own
    /// DynamoDB Local); tables and seeds are still bootstrapped there.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// Fixed ports (a busy fixed port is an error; a busy default moves to a free port).
    #[arg(long)]
    pub kms_port: Option<u16>,
    #[arg(long)]
    pub dynamodb_port: Option<u16>,
    #[arg(long)]
    pub secrets_port: Option<u16>,
    #[arg(long)]
    pub dashboard_port: Option<u16>,
    /// Where process mode keeps keys, secrets, logs and state (one directory per environment).
    #[arg(long, env = "PARITY_DEV_DIR", default_value = ".parity")]
    pub state_dir: PathBuf,
    /// Wipe the environment's keys, secrets and state first (asks for confirmation).
    #[arg(long)]
    pub reset: bool,
    /// Do not ask (for --reset in scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The app to run with the connection variables; everything stops when it exits and
    /// its exit code is parity dev's.
    #[arg(last = true)]
    pub app: Vec<String>,
}

pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(DevAction::Status(s)) => status(s),
        None => up(args.run).await,
    }
}

/// Reads the manifest and picks the environment, validated as the operator validates it.
pub(crate) fn load(
    file: &Path,
    name: Option<&str>,
    namespace: &str,
    mirror: Option<&Path>,
) -> anyhow::Result<(ValidatedSpec, String)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("-f {}", file.display()))?;
    let sources = match mirror {
        Some(p) => crate::manifest::mirror_sources(p)?,
        None => crate::manifest::MirrorSources::default(),
    };
    let envs = crate::manifest::validated_environments(
        &text,
        &file.display().to_string(),
        namespace,
        &sources,
    )?;
    let listed = || {
        envs.iter()
            .map(|e| e.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let env = match name {
        Some(n) => envs.iter().find(|e| e.name == n).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "--name {n}: no such ParityEnvironment in {} (it has: {})",
                file.display(),
                listed()
            )
        })?,
        None => match envs.len() {
            0 => bail!("-f {}: no ParityEnvironment in the file", file.display()),
            1 => envs[0].clone(),
            _ => bail!(
                "-f {} holds several environments ({}): choose one with --name",
                file.display(),
                listed()
            ),
        },
    };
    if !env.profile.process_mode_allowed {
        bail!(
            "environment {}: tier {} cannot run in process mode: its DynamoDB and keys are the real ones (spec.dynamodb.external, AWS KMS). Run a Local or CI environment that mirrors it (spec.mirror.from: {{name: {}}}) with --mirror-source {}",
            env.name,
            env.tier().as_str(),
            env.name,
            file.display()
        );
    }
    Ok((env, text))
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let name = match (&args.env, &args.file) {
        (Some(n), _) => n.clone(),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("-f {}", f.display()))?;
            let doc: Vec<String> = serde_yaml::Deserializer::from_str(&text)
                .filter_map(|d| serde::Deserialize::deserialize(d).ok())
                .filter_map(|v: serde_yaml::Value| {
                    (v.get("kind")?.as_str()? == "ParityEnvironment")
                        .then(|| v.get("metadata")?.get("name")?.as_str().map(str::to_string))
                        .flatten()
                })
                .collect();
            match doc.as_slice() {
                [one] => one.clone(),
                _ => bail!("-f {}: give the environment with --env NAME", f.display()),
            }
        }
        (None, None) => {
            let dirs: Vec<String> = std::fs::read_dir(&args.state_dir)
                .map(|r| {
                    r.filter_map(Result::ok)
                        .filter(|e| e.path().join(files::STATE).is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            match dirs.as_slice() {
                [one] => one.clone(),
                [] => bail!(
                    "no parity dev state under {}: start one with `parity dev -f env.yaml`",
                    args.state_dir.display()
                ),
                _ => bail!(
                    "several environments under {} ({}): choose one with --env NAME",
                    args.state_dir.display(),
                    dirs.join(", ")
                ),
            }
        }
    };
    let dir = args.state_dir.join(&name);
    let path = dir.join(files::STATE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "no state for environment {name} ({}): has `parity dev` run here?",
            path.display()
        )
    })?;
    let s: state::DevState = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a parity dev state file", path.display()))?;
    let running = files::Lock::holder(&dir) == Some(s.pid as i32);
    print!("{}", state::render_status(&s, running));
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The seed of a Seeded environment: --seed-file, PARITY_KEY_SEED, or the seed Secret
/// carried in the manifest file itself (examples/ci.yaml does).
fn key_seed(
    seed_file: Option<&Path>,
    env: &ValidatedSpec,
    manifest: &str,
) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    if env.spec.keys.local.source != KeySource::Seeded {
        return Ok(None);
    }
    if let Some(f) = seed_file {
        let bytes = std::fs::read(f).with_context(|| format!("--seed-file {}", f.display()))?;
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes).to_vec();
        return Ok(Some(Zeroizing::new(trimmed)));
    }
    if let Ok(s) = std::env::var("PARITY_KEY_SEED") {
        return Ok(Some(Zeroizing::new(s.into_bytes())));
    }
    let Some(r) = env.spec.keys.local.seed_secret_ref.as_ref() else {
        return Ok(None);
    };
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let Ok(v) = <serde_yaml::Value as serde::Deserialize>::deserialize(doc) else {
            continue;
        };
        if v.get("kind").and_then(|k| k.as_str()) != Some("Secret")
            || v.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                != Some(r.name.as_str())
        {
            continue;
        }
        if let Some(s) = v
            .get("stringData")
            .and_then(|d| d.get(&r.key))
            .and_then(|s| s.as_str())
        {
            return Ok(Some(Zeroizing::new(s.as_bytes().to_vec())));
        }
        if let Some(s) = v
            .get("data")
            .and_then(|d| d.get(&r.key))
            .and_then(|s| s.as_str())
        {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .with_context(|| format!("Secret {} data.{}: not base64", r.name, r.key))?;
            return Ok(Some(Zeroizing::new(b)));
        }
    }
    Ok(None)
}

/// The environment's endpoints with every in-cluster URL replaced as `urls` says.
fn local_endpoints(env: &ValidatedSpec, urls: &[(String, String)]) -> Endpoints {
    let local = |u: Option<String>| {
        u.map(|u| {
            urls.iter()
                .find(|(from, _)| *from == u)
                .map_or(u.clone(), |(_, to)| to.clone())
        })
    };
    let ep = endpoints(env, env.profile, &BuildContext::new("parity"));
    Endpoints {
        dynamodb: local(ep.dynamodb),
        kms: local(ep.kms),
        dashboard: local(ep.dashboard),
        topology_config_map: None,
        secrets: local(ep.secrets),
    }
}

/// What `prepare_files` reads besides the manifest: `--seed-file` and `--secrets-schema`.
pub struct FileInputs<'a> {
    pub seed_file: Option<&'a Path>,
    pub secrets_schema: Option<&'a Path>,
}

/// The files a Secret or ConfigMap holds in a cluster, under `layout`: the keyring and the
/// credentials (created once), the topology and the generated secrets, with every
/// in-cluster URL replaced as `urls` says. Returns the app's secrets (for its `.env`).
pub fn prepare_files(
    inputs: FileInputs,
    env: &ValidatedSpec,
    file: &Path,
    manifest: &str,
    layout: &Layout,
    urls: &[(String, String)],
    say: fn(&str),
) -> anyhow::Result<BTreeMap<String, Zeroizing<String>>> {
    let p = plan(env, env.profile);
    let seed = key_seed(inputs.seed_file, env, manifest)?;
    if p.kms && files::ensure_keyring(layout, env, seed.as_deref().map(|s| s.as_slice()))? {
        say(&format!(
            "parity dev: created the keyring ({:?} keys) in {}",
            env.spec.keys.local.source,
            layout.keyring_file(&env.name).display()
        ));
    }
    files::ensure_credentials(layout, env)?;
    files::write_topology(layout, &topology_files(env, urls))?;
    let secrets_spec = &env.spec.secrets;
    let (true, SecretsProvider::Local, Some(schema_ref)) = (
        p.components.secrets,
        secrets_spec.provider,
        &secrets_spec.schema,
    ) else {
        return Ok(BTreeMap::new());
    };
    let path = match inputs.secrets_schema {
        Some(p) => p.to_path_buf(),
        None => file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&schema_ref.key),
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "spec.secrets.schema (ConfigMap {} key {}): read {} (give the schema file with --secrets-schema FILE)",
            schema_ref.name, schema_ref.key, path.display()
        )
    })?;
    let schema = crate::secrets::SecretsSchema::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let ep = local_endpoints(env, urls);
    let mut urlmap = BTreeMap::new();
    for (k, v) in [
        ("dynamodb", ep.dynamodb),
        ("kms", ep.kms),
        ("dashboard", ep.dashboard),
    ] {
        if let Some(v) = v {
            urlmap.insert(k.to_string(), v);
        }
    }
    let (report, values) = files::sync_secrets(
        layout,
        env,
        &schema,
        seed.as_deref().map(|s| s.as_slice()),
        &urlmap,
    )?;
    let c = report.condition();
    if !c.ready {
        bail!("secrets ({}): {}", path.display(), c.message);
    }
    if !report.created.is_empty() {
        say(&format!(
            "parity dev: generated secrets {} (kept across restarts)",
            report.created.join(", ")
        ));
    }
    Ok(values)
}

fn confirm_reset(layout: &Layout, env: &str, yes: bool) -> anyhow::Result<()> {
    if !layout.dir.exists() {
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "--reset wipes the keys and secrets of {env} ({}): confirm with --yes",
                layout.dir.display()
            );
        }
        eprint!(
            "Wipe the keys, secrets and data of environment {env} under {}? Data encrypted with these keys cannot be decrypted afterwards. [y/N] ",
            layout.dir.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not reset");
        }
    }
    files::reset(layout)?;
    println!("parity dev: wiped {}", layout.dir.display());
    Ok(())
}

/// The ports: moved when a default is busy (notes say so), an error when a fixed one is.
/// DynamoDB's problem is returned apart: it is not fatal (keys and secrets keep running).
fn choose_ports(
    args: &RunArgs,
    wanted: [bool; 4],
) -> anyhow::Result<(Ports, Vec<String>, Option<String>)> {
    use crate::connection::{
        DASHBOARD_HOST_PORT, DYNAMODB_HOST_PORT, KMS_HOST_PORT, SECRETS_API_HOST_PORT,
    };
    let mut taken = Vec::new();
    let mut notes = Vec::new();
    let mut pick =
        |want: bool, default: u16, fixed: Option<u16>, flag: &'static str, what: &str| {
            if !want {
                return Ok(0);
            }
            let c = ports::choose(
                default,
                fixed,
                flag,
                &taken,
                ports::loopback_free,
                ports::any_loopback_port,
            )?;
            if let Some(from) = c.moved_from {
                notes.push(format!(
                    "{what}: port {from} is busy, using {} (fix it with {flag})",
                    c.port
                ));
            }
            taken.push(c.port);
            Ok::<u16, ports::PortError>(c.port)
        };
    let kms = pick(wanted[0], KMS_HOST_PORT, args.kms_port, "--kms-port", "KMS")?;
    let secrets = pick(
        wanted[2],
        SECRETS_API_HOST_PORT,
        args.secrets_port,
        "--secrets-port",
        "secrets",
    )?;
    let dashboard = pick(
        wanted[3],
        DASHBOARD_HOST_PORT,
        args.dashboard_port,
        "--dashboard-port",
        "dashboard",
    )?;
    let (dynamodb, failure) = match pick(
        wanted[1],
        DYNAMODB_HOST_PORT,
        args.dynamodb_port,
        "--dynamodb-port",
        "DynamoDB",
    ) {
        Ok(p) => (p, None),
        Err(e) => (
            args.dynamodb_port.unwrap_or(DYNAMODB_HOST_PORT),
            Some(e.to_string()),
        ),
    };
    Ok((
        Ports {
            kms,
            dynamodb,
            secrets,
            dashboard,
        },
        notes,
        failure,
    ))
}

fn program(
    layout: &Layout,
    parity: &Path,
    c: &ChildCommand,
    name: &str,
    port: Option<u16>,
) -> Program {
    Program {
        name: name.to_string(),
        path: parity.to_path_buf(),
        args: c.args.clone(),
        env: c.env.clone(),
        log: layout.dir.join(files::LOGS).join(format!("{name}.log")),
        port,
    }
}

/// Runs a service in the background; the receiver gets its first start's outcome.
fn start_service(
    p: Program,
    st: &StateFile,
    shutdown: &watch::Receiver<bool>,
    restarted: Option<mpsc::UnboundedSender<()>>,
    timeout: Duration,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> oneshot::Receiver<Result<(), String>> {
    let (tx, rx) = oneshot::channel();
    st.set(&p.name, |c| {
        c.url = p.port.map(|port| format!("http://127.0.0.1:{port}"));
    });
    tasks.push(tokio::spawn(supervise::supervise(
        p,
        st.clone(),
        shutdown.clone(),
        tx,
        restarted,
        timeout,
    )));
    rx
}

async fn outcome(rx: oneshot::Receiver<Result<(), String>>) -> Result<(), String> {
    rx.await.unwrap_or_else(|_| Err("stopped".into()))
}

/// SIGINT and SIGTERM, listened to from the start: one arriving while the children start
/// (or right after "ready") stops them instead of killing parity dev outright.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listen for SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

async fn up(args: RunArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    // Ctrl-C or SIGTERM at any point (a slow first install, a hung bootstrap) stops the run.
    let mut signals = Signals::new()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = std::sync::Arc::new(shutdown_tx);
    {
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            signals.recv().await;
            let _ = tx.send(true);
        });
    }
    let Some(file) = args.file.clone() else {
        bail!(
            "-f FILE is required: the ParityEnvironment manifest to run (e.g. parity dev -f examples/local.yaml)"
        );
    };
    let (mut env, manifest) = load(
        &file,
        args.name.as_deref(),
        &args.namespace,
        args.mirror_source.as_deref(),
    )?;
    let state_dir = std::path::absolute(&args.state_dir)
        .with_context(|| format!("--state-dir {}", args.state_dir.display()))?;
    let seeds = match &args.seeds {
        Some(d) => {
            let d = std::path::absolute(d)?;
            if !d.is_dir() {
                bail!("--seeds {}: not a directory", d.display());
            }
            // The builders then pass the fixtures to bootstrap and the dashboard, as the
            // ConfigMap volume would.
            env.spec.dynamodb.seed = Some(SeedSpec {
                config_map_ref: LocalObjectRef {
                    name: "seeds".into(),
                },
            });
            Some(d)
        }
        None => {
            if let Some(s) = &env.spec.dynamodb.seed {
                eprintln!(
                    "parity dev: spec.dynamodb.seed names ConfigMap {}: give its fixtures with --seeds DIR to load them (skipped)",
                    s.config_map_ref.name
                );
                env.spec.dynamodb.seed = None;
            }
            None
        }
    };
    let layout = Layout {
        dir: state_dir.join(&env.name),
        seeds,
    };
    if args.reset {
        if let Some(pid) = files::Lock::holder(&layout.dir) {
            bail!(
                "--reset: parity dev is running environment {} (pid {pid}): stop it first",
                env.name
            );
        }
        confirm_reset(&layout, &env.name, args.yes)?;
    }
    files::private_dir(&layout.dir)?;
    files::private_dir(&layout.dir.join(files::LOGS))?;
    let _lock = files::Lock::acquire(&layout.dir, &env.name)?;
    let st = StateFile::new(&layout.dir, &env.name);

    let p = plan(&env, env.profile);
    let emulator = p.dynamodb_pod && args.dynamodb_endpoint.is_none();
    let (ports, notes, port_failure) =
        choose_ports(&args, [p.kms, emulator, p.secrets_api, p.dashboard])?;
    for n in &notes {
        println!("parity dev: {n}");
    }
    // (why, how to fix it)
    let mut dynamodb_failure: Option<(String, String)> =
        port_failure.map(|e| (e, "free the port or leave out --dynamodb-port".to_string()));

    // Keys, credentials, topology and secrets: files first, so a restart finds them.
    let urls = url_map(&env, &ports, args.dynamodb_endpoint.as_deref());
    let inputs = FileInputs {
        seed_file: args.seed_file.as_deref(),
        secrets_schema: args.secrets_schema.as_deref(),
    };
    let app_secrets = prepare_files(inputs, &env, &file, &manifest, &layout, &urls, |m| {
        println!("{m}")
    })?;
    let local_ep = local_endpoints(&env, &urls);
    let read = |secret: String, key: &str| files::read_secret_key(&layout, &env.name, &secret, key);
    let inputs = ConnectionInputs {
        kms_secret_access_key: read(names::kms_credentials(&env.name), KMS_SECRET_ACCESS_KEY_KEY)?,
        secrets_client_secret: read(
            names::secrets_api_credentials(&env.name),
            SECRETS_API_CLIENT_SECRET_KEY,
        )?,
        secrets: app_secrets,
    };
    let set = connection_set(&env, env.profile, &local_ep, inputs);
    let dotenv = layout.dir.join(files::DOTENV);
    files::write_private(&dotenv, set.render(Format::Dotenv).as_bytes())?;

    // Children.
    let parity = std::env::current_exe().context("locate the parity binary")?;
    let children = parity_children(&env, &layout, &ports, args.dynamodb_endpoint.as_deref());
    let child = |c: Component| children.iter().find(|x| x.component == c);
    let mut tasks = Vec::new();
    let mut kms_rx = None;
    if let Some(c) = child(Component::Kms) {
        kms_rx = Some(start_service(
            program(&layout, &parity, c, "kms", Some(ports.kms)),
            &st,
            &shutdown_rx,
            None,
            Duration::from_secs(30),
            &mut tasks,
        ));
    }
    let mut secrets_rx = None;
    if let Some(c) = child(Component::SecretsApi) {
        secrets_rx = Some(start_service(
            program(&layout, &parity, c, "secrets-api", Some(ports.secrets)),
            &st,
            &shutdown_rx,
            None,
            Duration::from_secs(30),
            &mut tasks,
        ));
    }
    let (restart_tx, mut restart_rx) = mpsc::unbounded_channel();
    let mut dynamo_rx = None;
    if p.dynamodb_pod {
        if let Some(url) = &args.dynamodb_endpoint {
            st.set("dynamodb", |c| {
                c.phase = Phase::External;
                c.url = Some(url.clone());
            });
        } else if let Some((why, fix)) = dynamodb_failure.clone() {
            st.set("dynamodb", |c| {
                c.phase = Phase::Failed;
                c.message = Some(format!("{why}; {fix}"));
            });
        } else {
            st.set("dynamodb", |c| {
                c.url = Some(format!("http://127.0.0.1:{}", ports.dynamodb))
            });
            let mut stop = shutdown_rx.clone();
            let installed = tokio::select! {
                r = moto::moto_server(|l| eprintln!("parity dev: {l}")) => r,
                _ = stop.wait_for(|s| *s) => Err(moto::Unavailable {
                    reason: "stopped while installing".into(),
                    fix: "run parity dev again".into(),
                }),
            };
            match installed {
                Ok(bin) => {
                    let prog = Program {
                        name: "dynamodb".into(),
                        path: bin,
                        args: derive::moto_args(ports.dynamodb),
                        env: Vec::new(),
                        log: layout.dir.join(files::LOGS).join("dynamodb.log"),
                        port: Some(ports.dynamodb),
                    };
                    dynamo_rx = Some(start_service(
                        prog,
                        &st,
                        &shutdown_rx,
                        Some(restart_tx.clone()),
                        Duration::from_secs(60),
                        &mut tasks,
                    ));
                }
                Err(u) => {
                    dynamodb_failure = Some((u.reason.clone(), u.fix.clone()));
                    st.set("dynamodb", |c| {
                        c.phase = Phase::Failed;
                        c.message = Some(format!("{}; {}", u.reason, u.fix));
                    });
                }
            }
        }
    }

    let mut kms_ok = true;
    if let Some(rx) = kms_rx.take()
        && let Err(e) = outcome(rx).await
    {
        kms_ok = false;
        eprintln!("parity dev: KMS could not start: {e}");
    }
    if let Some(rx) = secrets_rx.take()
        && let Err(e) = outcome(rx).await
    {
        eprintln!("parity dev: secrets-api could not start: {e}");
    }
    if let Some(rx) = dynamo_rx.take()
        && let Err(e) = outcome(rx).await
    {
        dynamodb_failure = Some((
            format!("the emulator did not start: {e}"),
            format!("see {}", layout.dir.join("logs/dynamodb.log").display()),
        ));
    }
    // Bootstrap: tables and seeds once DynamoDB answers, again whenever the emulator restarts
    // (it keeps data in memory).
    let bootstrap =
        child(Component::Bootstrap).map(|c| program(&layout, &parity, c, "bootstrap", None));
    if let Some(b) = &bootstrap {
        if dynamodb_failure.is_none() && kms_ok {
            let mut sd = shutdown_rx.clone();
            if let Err(e) = supervise::run_once(b, &st, 3, &mut sd).await {
                dynamodb_failure = Some((
                    format!("bootstrap failed: {e}"),
                    "fix the topology or fixtures and restart parity dev".into(),
                ));
            }
        } else {
            st.set("bootstrap", |c| {
                c.phase = Phase::Failed;
                c.message = Some("not run: DynamoDB (or the key service) is not running".into());
            });
        }
        let (b, st2, mut sd) = (b.clone(), st.clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            while restart_rx.recv().await.is_some() {
                eprintln!("parity dev: DynamoDB restarted: bootstrapping tables and seeds again");
                let _ = supervise::run_once(&b, &st2, 3, &mut sd).await;
            }
        }));
    }
    drop(restart_tx);
    if let Some((why, fix)) = &dynamodb_failure {
        eprintln!(
            "parity dev: DynamoDB is not running: {why}\nparity dev:   fix: {fix}\nparity dev:   keys and secrets keep running; restart parity dev once fixed"
        );
    }
    if let Some(c) = child(Component::Dashboard) {
        let mut prog = program(&layout, &parity, c, "dashboard", Some(ports.dashboard));
        if let Some((why, fix)) = &dynamodb_failure {
            prog.env.push((
                "PARITY_DASHBOARD_NOTICE".into(),
                derive::EnvSource::Value(format!("DynamoDB is not running: {why}. Fix: {fix}")),
            ));
        }
        if let Err(e) = outcome(start_service(
            prog,
            &st,
            &shutdown_rx,
            None,
            Duration::from_secs(30),
            &mut tasks,
        ))
        .await
        {
            eprintln!("parity dev: dashboard could not start: {e}");
        }
    }

    let mut stop = shutdown_rx.clone();
    let stopping = *stop.borrow();
    if !stopping {
        print_ready(&env, &set, &dotenv, &layout, t0.elapsed());
        st.update(|s| s.ready = true);
    }
    let code = if args.app.is_empty() || stopping {
        let _ = stop.wait_for(|s| *s).await;
        println!("parity dev: stopping");
        ExitCode::SUCCESS
    } else {
        run_app(&args.app, &set, &mut stop).await?
    };
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    st.update(|s| s.ready = false);
    Ok(code)
}

fn print_ready(
    env: &ValidatedSpec,
    set: &ConnectionSet,
    dotenv: &Path,
    layout: &Layout,
    took: Duration,
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "parity dev: environment {} (tier {}, parity level {}) in process mode\n{}  .env              {}\n  logs              {}",
        env.name,
        env.tier().as_str(),
        env.spec.parity_level,
        set.endpoint_table(),
        dotenv.display(),
        layout.dir.join(files::LOGS).display()
    );
    let _ = writeln!(
        out,
        "parity dev: ready in {:.1}s (Ctrl-C stops everything)",
        took.as_secs_f64()
    );
    let _ = out.flush();
}

/// Runs the app with the connection variables; its exit code (128 + signal when killed).
async fn run_app(
    app: &[String],
    set: &ConnectionSet,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let mut cmd = tokio::process::Command::new(&app[0]);
    cmd.args(&app[1..]);
    for (k, v) in set.vars() {
        cmd.env(k, v.as_str());
    }
    // The app stays in the terminal's process group (it may be interactive).
    supervise::harden(&mut cmd, false);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start the app: {}", app[0]))?;
    let status = tokio::select! {
        s = child.wait() => s?,
        _ = stop.wait_for(|s| *s) => {
            supervise::stop(&mut child, Duration::from_secs(10)).await;
            child.wait().await?
        }
    };
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    println!("parity dev: the app exited with code {code}; stopping");
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
