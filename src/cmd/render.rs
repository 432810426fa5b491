//! `parity render -f env.yaml`: every object the operator would create, from the same pure
//! builders, so users can review before they apply; or (`--format compose`) a Compose file.

use std::path::PathBuf;

use anyhow::Context;

use crate::manifest::{MirrorSources, mirror_sources, validated_environments};
use crate::resources::{BuildContext, DEFAULT_IMAGE, build_all};

/// Print every object the operator would create for the ParityEnvironment(s) in a file.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  parity render -f examples/local.yaml --mirror-source examples/topology.yaml
  parity render -f examples/local-from-staging.yaml --mirror-source examples/staging.yaml
  parity render -f examples/ci.yaml --mirror-source examples/topology.yaml | kubectl diff -f -
  parity render -f examples/local.yaml --mirror-source examples/topology.yaml \\
      --format compose --seeds examples/fixtures > compose.yaml
  docker compose -f compose.yaml --profile level3 up")]
pub struct RenderArgs {
    /// YAML file with one or more ParityEnvironment documents (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Namespace for environments that do not set one.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The operator image the workloads run.
    #[arg(long, env = "PARITY_IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Expose Services on the fixed NodePorts where the tier allows it (kind).
    #[arg(long)]
    pub node_ports: bool,
    /// File with the environment(s) that spec.mirror.from names (e.g. staging.yaml), or the
    /// topology that spec.mirror.configMapRef's ConfigMap holds (e.g. topology.yaml), so a
    /// mirroring environment renders with its source's tables, as the operator would.
    /// Environments in -f itself are sources too.
    #[arg(long)]
    pub mirror_source: Option<PathBuf>,
    /// yaml: the Kubernetes objects. compose: a Compose file with one profile per parity
    /// level; it also writes the keys and secrets under --state-dir, as `parity dev` does.
    #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub format: RenderFormat,
    /// compose: where the keys, credentials and secrets go (one directory per environment).
    #[arg(long, env = "PARITY_DEV_DIR", default_value = ".parity")]
    pub state_dir: PathBuf,
    /// compose: directory of seed fixtures, standing in for spec.dynamodb.seed's ConfigMap.
    #[arg(long)]
    pub seeds: Option<PathBuf>,
    /// compose: the secrets schema file (default: the schema's key next to the manifest).
    #[arg(long)]
    pub secrets_schema: Option<PathBuf>,
    /// compose: file holding the key seed (keys.local.source Seeded).
    #[arg(long, env = "PARITY_KEY_SEED_FILE")]
    pub seed_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Compose,
}

/// Renders the environments in `yaml` as a YAML stream. Errors name the document and field.
/// `sources` (and the environments of `yaml` itself) resolve spec.mirror.
pub fn render_yaml(
    yaml: &str,
    source: &str,
    namespace: &str,
    ctx: &BuildContext,
    sources: &MirrorSources,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for valid in validated_environments(yaml, source, namespace, sources)? {
        for obj in build_all(&valid, valid.profile, ctx) {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&obj.to_value())?);
        }
    }
    Ok(out)
}

pub async fn run(args: RenderArgs) -> anyhow::Result<()> {
    if args.format == RenderFormat::Compose {
        return crate::dev::compose::run(crate::dev::compose::ComposeRequest {
            file: &args.file,
            namespace: &args.namespace,
            image: &args.image,
            mirror_source: args.mirror_source.as_deref(),
            state_dir: &args.state_dir,
            seeds: args.seeds.as_deref(),
            secrets_schema: args.secrets_schema.as_deref(),
            seed_file: args.seed_file.as_deref(),
        });
    }
    let (yaml, source) = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("read stdin")?;
        (s, "<stdin>".to_string())
    } else {
        let s = std::fs::read_to_string(&args.file)
            .with_context(|| format!("read {}", args.file.display()))?;
        (s, args.file.display().to_string())
    };
    let ctx = BuildContext {
        node_ports: args.node_ports,
        ..BuildContext::new(args.image)
    };
    let sources = match &args.mirror_source {
        Some(path) => mirror_sources(path)?,
        None => MirrorSources::default(),
    };
    print!(
        "{}",
        render_yaml(&yaml, &source, &args.namespace, &ctx, &sources)?
    );
    Ok(())
}
