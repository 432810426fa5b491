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
}

/// Runs the chosen subcommand; errors go to stderr with a non-zero exit.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("parity {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
