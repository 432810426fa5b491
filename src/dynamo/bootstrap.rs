//! `parity bootstrap`: the bootstrap Job's command. Validates the topology and every seed
//! fixture first, waits for DynamoDB, brings each declared table to its declared shape
//! (create, or update in place what DynamoDB allows), then loads the seeds. Nothing is
//! changed when a table would need a re-create and `--recreate` was not given. A second run
//! changes nothing and says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use super::apply::apply;
use super::connect::{AwsArgs, Redacted, WaitPolicy, client, wait_ready};
use super::live::describe;
use super::plan::{Change, plan_table};
use super::seed::encrypt::{encrypt_seeds, files_needing_encryption};
use super::seed::fixture::read_dir;
use super::seed::load::{SeedMode, load_table};
use super::seed::{FieldEncryptor, TableSeed, kms_encryptor};
use super::topology::Topology;
use crate::duration::parse_duration;

/// The exit code for invalid input (topology, fixtures): retrying cannot help, so the
/// bootstrap Job's pod failure policy fails the Job at once on it.
pub const INVALID_INPUT_EXIT: u8 = 3;

/// The topology or a seed fixture is invalid (the message names file:line:reason).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct InvalidInput(anyhow::Error);

#[derive(Debug, Clone, clap::Args)]
pub struct BootstrapArgs {
    /// DynamoDB endpoint URL, e.g. http://penv-dynamodb:8000.
    #[arg(long, env = "PARITY_DYNAMODB_ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Topology file: a topology YAML/JSON, or a ParityEnvironment with spec.topology.
    #[arg(long, short = 'f', env = "PARITY_TOPOLOGY")]
    pub topology: PathBuf,
    /// Directory of seed fixtures (a mounted ConfigMap): <table>.jsonl|.ndjson|.json and
    /// optional <table>.fixture.yaml.
    #[arg(long, visible_alias = "seed-dir", env = "PARITY_SEEDS_DIR")]
    pub seeds: Option<PathBuf>,
    /// Which seed items are written.
    #[arg(long, value_enum, default_value_t = SeedMode::Missing, env = "PARITY_SEED_MODE")]
    pub seed_mode: SeedMode,
    /// Prefix the topology's table names carry from mirroring; seed files may omit it.
    #[arg(long, env = "PARITY_TABLE_PREFIX")]
    pub table_prefix: Option<String>,
    /// Drop and re-create tables whose key schema or local indexes changed (deletes their data).
    #[arg(long, env = "PARITY_RECREATE")]
    pub recreate: bool,
    /// Give up waiting for the endpoint after this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// First retry delay while waiting for the endpoint (doubles each attempt).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub initial_backoff: Duration,
    /// Longest delay between attempts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// How long one table change may take to become ACTIVE.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub table_timeout: Duration,
    /// Seed requests (BatchGetItem, BatchWriteItem) and encryptions in flight. 16 reaches
    /// moto's ceiling (docs/performance.md); throttled items come back unprocessed and are
    /// resent with backoff, so a busier endpoint slows the load instead of failing it.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// KMS-compatible endpoint (`parity kms`, AWS KMS) for fields fixtures mark encrypted.
    #[arg(long, env = "PARITY_KMS_ENDPOINT", requires = "kms_key_id")]
    pub kms_endpoint: Option<String>,
    /// Keep running and bootstrap again whenever a table of the topology is missing, checking
    /// this often: an in-memory emulator (moto) that restarted comes back with its tables
    /// and seeds (the restore sidecar of engine Moto).
    #[arg(long, value_parser = parse_duration)]
    pub restore_every: Option<Duration>,
    /// Key id, ARN or alias (e.g. alias/orders) that wraps the seed data keys.
    #[arg(long, env = "PARITY_KMS_KEY_ID", requires = "kms_endpoint")]
    pub kms_key_id: Option<String>,
    /// Access key id for the key service (default: --access-key-id).
    #[arg(long, env = "PARITY_KMS_ACCESS_KEY_ID", hide_env_values = true)]
    pub kms_access_key_id: Option<String>,
    /// Secret access key for the key service (default: --secret-access-key). Never logged.
    #[arg(long, env = "PARITY_KMS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub kms_secret_access_key: Option<Redacted>,
}

/// The outcome, for the final log line and for callers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// "table: change" for each change made.
    pub changes: Vec<String>,
    pub items_written: usize,
    pub items_present: usize,
    pub fields_encrypted: usize,
}

impl Summary {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty() && self.items_written == 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_noop() {
            f.write_str("no changes")?;
        } else {
            write!(f, "{} table change(s)", self.changes.len())?;
            if self.items_written > 0 {
                write!(f, ", {} seed item(s) written", self.items_written)?;
            }
        }
        if self.items_present > 0 {
            write!(f, " ({} seed item(s) already present)", self.items_present)?;
        }
        Ok(())
    }
}

/// The command: with `--kms-endpoint`, encrypted fixture fields go through the envelope and
/// that key service.
pub async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let encryptor = match (&args.kms_endpoint, &args.kms_key_id) {
        (Some(endpoint), Some(key_id)) => Some(kms_encryptor(
            endpoint,
            &args.aws.region,
            args.kms_access_key_id
                .as_deref()
                .unwrap_or(&args.aws.access_key_id),
            args.kms_secret_access_key
                .as_ref()
                .unwrap_or(&args.aws.secret_access_key)
                .expose(),
            key_id,
        )),
        _ => None,
    };
    let Some(every) = args.restore_every else {
        return run_with(args, encryptor).await.map(|_| ());
    };
    loop {
        match run_with(args.clone(), encryptor.clone()).await {
            Ok(_) => {
                wait_for_missing_table(&args, every).await;
                tracing::warn!(
                    "a table of the topology is missing (the emulator restarted empty?): restoring tables and seeds"
                );
            }
            Err(e) => {
                // The key service may still be starting; a bad fixture stays bad (the
                // bootstrap Job reports that). Either way, try again in a while.
                tracing::error!("bootstrap failed: {e:#}");
                tokio::time::sleep(every * 6).await;
            }
        }
    }
}

/// Returns once a table of the topology is gone, checking every `every`.
async fn wait_for_missing_table(args: &BootstrapArgs, every: Duration) {
    let names: Vec<String> = std::fs::read_to_string(&args.topology)
        .ok()
        .and_then(|t| Topology::from_document_str(&t).ok())
        .map(|t| t.tables.into_iter().map(|t| t.name).collect())
        .unwrap_or_default();
    let ddb = client(&args.endpoint, &args.aws, 1);
    loop {
        tokio::time::sleep(every).await;
        for name in &names {
            // Unreachable is not missing: the emulator may be restarting; look again later.
            if let Ok(None) = describe(&ddb, name).await {
                return;
            }
        }
    }
}

/// Bootstrap with an encryptor for fields that fixture schemas mark encrypted (the operator
/// passes the environment's key service; without one such fixtures are an error).
pub async fn run_with(
    args: BootstrapArgs,
    encryptor: Option<Arc<dyn FieldEncryptor>>,
) -> anyhow::Result<Summary> {
    let invalid = |e: anyhow::Error| anyhow::Error::new(InvalidInput(e));
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("reading topology {}", args.topology.display()))?;
    let topology = Topology::from_document_str(&text)
        .with_context(|| format!("topology {}", args.topology.display()))
        .map_err(invalid)?;
    tracing::info!(
        tables = topology.tables.len(),
        "topology {}: {} table(s)",
        args.topology.display(),
        topology.tables.len()
    );

    // Every fixture is validated before DynamoDB is touched, so a bad one changes nothing.
    let mut seeds: Vec<TableSeed> = match &args.seeds {
        Some(dir) => {
            let seeds = read_dir(dir, &topology, args.table_prefix.as_deref())
                .map_err(|e| invalid(e.into()))?;
            let items: usize = seeds.iter().map(|s| s.items.len()).sum();
            tracing::info!(
                "seed fixtures valid: {items} item(s) for {} table(s)",
                seeds.len()
            );
            seeds
        }
        None => Vec::new(),
    };
    let needs = files_needing_encryption(&seeds);
    if !needs.is_empty() && encryptor.is_none() {
        return Err(invalid(anyhow::anyhow!(
            "fixtures {} mark fields encrypted, but no key service is configured (--kms-endpoint, --kms-key-id); nothing was changed",
            needs.join(", ")
        )));
    }

    wait_ready(
        &args.endpoint,
        &args.aws,
        &WaitPolicy {
            timeout: args.wait_timeout,
            initial: args.initial_backoff,
            max: args.max_backoff,
        },
    )
    .await?;
    let ddb = client(&args.endpoint, &args.aws, 5);

    let mut plans = Vec::new();
    for table in &topology.tables {
        let live = describe(&ddb, &table.name).await?;
        plans.push((table, plan_table(table, live.as_ref())));
    }
    let blocked: Vec<String> = plans
        .iter()
        .flat_map(|(t, changes)| {
            changes.iter().filter_map(move |c| match c {
                Change::Recreate { reasons } => {
                    Some(format!("table {}: {}", t.name, reasons.join("; ")))
                }
                _ => None,
            })
        })
        .collect();
    if !blocked.is_empty() && !args.recreate {
        bail!(
            "{} table(s) cannot be changed in place (key schema and local indexes are fixed at creation):\n  {}\nRe-creating deletes their data: re-run with --recreate to do it. Nothing was changed.",
            blocked.len(),
            blocked.join("\n  ")
        );
    }

    let mut summary = Summary::default();
    for (table, changes) in &plans {
        if changes.is_empty() {
            tracing::info!(table = %table.name, "table {}: up to date", table.name);
            continue;
        }
        if changes.iter().any(|c| matches!(c, Change::Recreate { .. })) {
            tracing::warn!(
                table = %table.name,
                "table {}: dropping and re-creating (--recreate); its data is deleted",
                table.name
            );
        }
        apply(&ddb, table, changes, args.table_timeout).await?;
        summary
            .changes
            .extend(changes.iter().map(|c| format!("{}: {c}", table.name)));
    }

    if !seeds.is_empty() {
        summary.fields_encrypted =
            encrypt_seeds(&mut seeds, encryptor.as_deref(), args.concurrency).await?;
        for seed in seeds {
            let Some(table) = topology.table(&seed.table) else {
                continue;
            };
            let report = load_table(&ddb, table, seed, args.seed_mode, args.concurrency).await?;
            summary.items_written += report.written;
            summary.items_present += report.already_present;
        }
    }

    tracing::info!("bootstrap complete: {summary}");
    println!("bootstrap complete: {summary}");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags take the project's one duration grammar (src/duration.rs), the one the CRD
    /// uses too: compounds and days work, a unit-less number is refused with the reason.
    #[test]
    fn duration_flags_use_the_shared_grammar() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BootstrapArgs,
        }
        let parse = |timeout: &str| {
            <Cli as clap::Parser>::try_parse_from([
                "bootstrap",
                "--endpoint",
                "http://127.0.0.1:1",
                "-f",
                "t.yaml",
                "--wait-timeout",
                timeout,
            ])
        };
        let cli = parse("1h30m").expect("1h30m parses");
        assert_eq!(cli.args.wait_timeout, Duration::from_secs(5400));
        assert_eq!(cli.args.initial_backoff, Duration::from_millis(200));
        let err = parse("30")
            .err()
            .expect("a bare number is refused")
            .to_string();
        assert!(
            err.contains("--wait-timeout") && err.contains("\"30\" is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn the_summary_says_no_changes_when_there_were_none() {
        let s = Summary {
            items_present: 3,
            ..Default::default()
        };
        assert_eq!(s.to_string(), "no changes (3 seed item(s) already present)");
        let s = Summary {
            changes: vec!["orders: create table".into()],
            items_written: 2,
            ..Default::default()
        };
        assert_eq!(s.to_string(), "1 table change(s), 2 seed item(s) written");
    }
}
