//! The `parity` subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "parity",
    version,
    about = "Make laptops and CI behave like staging"
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
    /// Serve Infisical's secrets read API from a Secret (mounted directory or JSON file).
    SecretsApi(Box<crate::secrets::SecretsApiArgs>),
}

/// Runs the chosen subcommand; errors go to stderr with a non-zero exit.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("parity {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::SecretsApi(args) => exit_code(crate::secrets::api::run(*args).await),
    }
}

/// Prints a failed subcommand's error chain on stderr and maps it to a non-zero exit.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
