//! `parity capture`: reads live tables (DescribeTable, DescribeTimeToLive,
//! DescribeContinuousBackups where the endpoint supports them) and prints a topology YAML,
//! the way a team onboards an existing staging account.

use super::connect::{AwsArgs, WaitPolicy, client, wait_ready};
use super::live::capture;

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// DynamoDB endpoint URL (for AWS itself: https://dynamodb.<region>.amazonaws.com).
    #[arg(long, env = "PARITY_DYNAMODB_ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Only these tables (comma-separated); all tables when absent.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
}

pub async fn run(args: CaptureArgs) -> anyhow::Result<()> {
    // A short wait only: capture is run by people, who want a quick clear error.
    wait_ready(
        &args.endpoint,
        &args.aws,
        &WaitPolicy {
            timeout: std::time::Duration::from_secs(5),
            initial: std::time::Duration::from_millis(200),
            max: std::time::Duration::from_secs(2),
        },
    )
    .await?;
    let ddb = client(&args.endpoint, &args.aws, 3);
    let topology = capture(&ddb, &args.tables).await?;
    if let Err(e) = topology.validate() {
        tracing::warn!("the captured topology does not pass validation, review it: {e}");
    }
    tracing::info!(
        "captured {} table(s) from {}",
        topology.tables.len(),
        args.endpoint
    );
    print!(
        "# Captured from {} by parity capture.\n{}",
        args.endpoint,
        topology.to_yaml()
    );
    Ok(())
}
