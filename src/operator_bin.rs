//! `parity-operator`: the operator alone, as its own executable. It takes the flags of
//! `parity operator`, and links only what the operator reaches: without the key service,
//! the dashboard, `parity dev` and two of the three AWS SDKs the executable is about half
//! the size, and the pages of it an idle operator keeps resident shrink with it
//! (docs/performance.md). The chart runs it; `parity operator` stays for everything else.

use std::process::ExitCode;

use clap::Parser;

use crate::controller::OperatorArgs;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "parity-operator",
    version,
    about = "Reconcile ParityEnvironments (the same flags as `parity operator`)"
)]
pub struct OperatorCli {
    /// Log format for stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PARITY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Runtime worker threads. The operator mostly waits on the API server; each extra
    /// thread costs a stack and, with glibc, a malloc arena of its own.
    #[arg(long, env = "PARITY_WORKER_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// The executable's `main`.
pub fn main() -> ExitCode {
    let cli = OperatorCli::parse();
    crate::telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.worker_threads))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(crate::controller::run(cli.operator)),
        Err(e) => Err(anyhow::Error::new(e).context("start the async runtime")),
    };
    crate::cli::exit(result)
}
