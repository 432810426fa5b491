//! `parity`: one binary for the operator and every workload it runs.
//! Thin on purpose: parse the command line, start tracing once, dispatch.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = parity_operator::cli::parse();
    parity_operator::telemetry::init(cli.log_format);
    parity_operator::cli::run(cli).await
}
