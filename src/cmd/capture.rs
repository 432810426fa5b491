//! `parity capture`: reads live tables (DescribeTable, DescribeTimeToLive,
//! DescribeContinuousBackups where the endpoint supports them) and prints a topology YAML,
//! the way a team onboards an existing staging account.

use crate::dynamo::connect::{AwsArgs, WaitPolicy, client, error_chain, wait_ready};
use crate::dynamo::live::capture;
use crate::dynamo::topology::limits;

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
    /// Also list the customer-managed key aliases (ListAliases) of this KMS-compatible
    /// endpoint into kmsKeyAliases (same region and credentials).
    #[arg(long)]
    pub kms_endpoint: Option<String>,
    /// Secret names to record (comma-separated); DynamoDB cannot tell them.
    #[arg(long, value_delimiter = ',')]
    pub secret_names: Vec<String>,
}

/// Customer-managed aliases (not `alias/aws/...`), sorted, at most the topology's bound.
async fn kms_aliases(endpoint: &str, aws: &AwsArgs) -> anyhow::Result<Vec<String>> {
    let kms = crate::crypto::KmsKeyProvider::client_for(
        endpoint,
        &aws.region,
        &aws.access_key_id,
        aws.secret_access_key.expose(),
    );
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_aliases()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListAliases at {endpoint}: {}", error_chain(&e)))?;
        out.extend(
            page.aliases()
                .iter()
                .filter_map(|a| a.alias_name())
                .filter(|n| !n.starts_with("alias/aws/"))
                .map(str::to_string),
        );
        match page.next_marker() {
            Some(m) if page.truncated() && out.len() < limits::MAX_KMS_KEY_ALIASES => {
                marker = Some(m.to_string())
            }
            _ => break,
        }
    }
    out.sort();
    out.truncate(limits::MAX_KMS_KEY_ALIASES);
    Ok(out)
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
    let mut topology = capture(&ddb, &args.tables).await?;
    if let Some(kms) = &args.kms_endpoint {
        topology.kms_key_aliases = kms_aliases(kms, &args.aws).await?;
    }
    topology.secret_names = args.secret_names.clone();
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
