//! The `parity` command line: every subcommand and the exit code of its result. Each
//! subcommand's arguments and entry point live in src/cmd/ or, for the long-running
//! workloads, next to the code they configure.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "parity",
    version,
    about = "Make laptops and CI behave like staging",
    after_help = "Examples:
  parity dev -f examples/local.yaml --mirror-source examples/topology.yaml -- npm test
                                      process mode: the environment as local processes, then the app
  parity render -f examples/local.yaml --mirror-source examples/topology.yaml
                                      every object the operator would create
  parity status dev -n demo-local     an environment's objects and why it is not Ready
  parity env dev -n demo-local -o shell
                                      how an app connects (export lines)
  parity completion bash > /etc/bash_completion.d/parity

As a kubectl plugin: put a link named kubectl-parity to this binary on PATH
(ln -s \"$(command -v parity)\" ~/.local/bin/kubectl-parity), then `kubectl parity status dev`."
)]
pub struct Cli {
    /// Log format for stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PARITY_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version.
    Version,
    /// Print the ParityEnvironment CRD (or the operator's RBAC rules) as YAML.
    Crd(crate::cmd::crd::CrdArgs),
    /// Print every object the operator would create for a ParityEnvironment file.
    Render(crate::cmd::render::RenderArgs),
    /// Run the operator: reconcile ParityEnvironments.
    Operator(Box<crate::controller::OperatorArgs>),
    /// Show an environment, its objects and conditions as a tree, and why it is not Ready.
    Status(crate::cmd::status::StatusArgs),
    /// Serve the AWS KMS API (TrentService) over keyring files.
    Kms(Box<crate::kms::KmsArgs>),
    /// Serve Infisical's secrets read API from a Secret (mounted directory or JSON file).
    SecretsApi(Box<crate::secrets::SecretsApiArgs>),
    /// Wait for DynamoDB, create/update the declared tables, load seed fixtures.
    Bootstrap(crate::dynamo::bootstrap::BootstrapArgs),
    /// Compare a topology with a reference file or live endpoint (exit 1 on drift).
    Diff(crate::cmd::diff::DiffArgs),
    /// Read live tables into a topology YAML on stdout.
    Capture(crate::cmd::capture::CaptureArgs),
    /// Re-wrap the data keys of a table's encrypted attributes to the key's active version.
    Rewrap(crate::dynamo::rewrap::RewrapArgs),
    /// Serve the dashboard: tables, items, envelope metadata (decrypted in Local), live feed.
    Dashboard(Box<crate::dashboard::DashboardArgs>),
    /// Check that a TCP connection to a URL's host and port opens (exit 0) or not (exit 1).
    Probe(crate::cmd::probe::ProbeArgs),
    /// Run an environment as local processes (process mode: no Docker, no cluster) and
    /// connect an app to it (`.parity/<env>/.env`, or `parity dev -f env.yaml -- CMD`).
    Dev(Box<crate::dev::DevArgs>),
    /// Print how an app connects to an environment in a cluster (its `<env>-connection`
    /// Secret) as dotenv, JSON or shell exports.
    Env(crate::cmd::env::EnvArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses the command line. Run as `kubectl-parity` (kubectl's plugin convention), help and
/// errors say `kubectl parity`.
pub fn parse() -> Cli {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let as_plugin = std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-parity"));
    let mut cmd = Cli::command();
    if as_plugin {
        cmd = cmd.bin_name("kubectl parity");
    }
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Runs the chosen subcommand; errors go to stderr with a non-zero exit.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Completion { shell } => {
            // Into a buffer: clap_complete panics when stdout is closed early (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "parity", &mut script);
            exit(std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Into::into))
        }
        Command::Version => {
            println!("parity {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Crd(args) => exit(crate::cmd::crd::run(args).await),
        Command::Render(args) => exit(crate::cmd::render::run(args).await),
        Command::Operator(args) => exit(crate::controller::run(*args).await),
        Command::Status(args) => match crate::cmd::status::run(args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Kms(args) => exit(crate::kms::run(*args).await),
        Command::SecretsApi(args) => exit(crate::secrets::api::run(*args).await),
        Command::Bootstrap(args) => match crate::dynamo::bootstrap::run(args).await {
            Err(e) if e.is::<crate::dynamo::bootstrap::InvalidInput>() => {
                eprintln!("error: {e:#}");
                ExitCode::from(crate::dynamo::bootstrap::INVALID_INPUT_EXIT)
            }
            other => exit(other),
        },
        Command::Capture(args) => exit(crate::cmd::capture::run(args).await),
        Command::Rewrap(args) => exit(crate::dynamo::rewrap::run(args).await),
        Command::Dashboard(args) => exit(crate::dashboard::run(*args).await),
        Command::Probe(args) => crate::cmd::probe::run(args).await,
        Command::Env(args) => exit(crate::cmd::env::run(args).await),
        // dev: the app's exit code after `--`; 3 from `dev status` when nothing runs.
        Command::Dev(args) => match crate::dev::run(*args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        // diff: 0 equal, 1 different, 2 error (CI gates tell drift from a broken run).
        Command::Diff(args) => match crate::cmd::diff::run(args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Maps a subcommand's result to the exit code, printing the error chain on stderr.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
