//! `parity diff`: how a topology differs from a reference (another file, or the live tables
//! on an endpoint), as a readable table or JSON; exit 0 when equal, 1 when they differ, 2 on
//! error, so CI can gate on it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::dynamo::connect::AwsArgs;
use crate::dynamo::drift::{Drift, diff};
use crate::dynamo::live::live_topology;
use crate::dynamo::mirror::{Overrides, resolve};
use crate::dynamo::topology::{BillingMode, Topology};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The topology to check: topology YAML/JSON or a ParityEnvironment with spec.topology.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Reference topology file (e.g. staging.yaml): the expected side.
    #[arg(
        long,
        required_unless_present = "against_endpoint",
        conflicts_with = "against_endpoint"
    )]
    pub against: Option<PathBuf>,
    /// Compare -f (then the expected side) with the live tables of this DynamoDB endpoint.
    #[arg(long)]
    pub against_endpoint: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Mirroring override applied to the expected side: table name prefix.
    #[arg(long)]
    pub table_prefix: Option<String>,
    /// Mirroring override applied to the expected side: billing mode.
    #[arg(long, value_parser = |s: &str| s.parse::<BillingMode>())]
    pub billing_mode: Option<BillingMode>,
    /// With --against-endpoint, also report live tables the file does not declare.
    #[arg(long)]
    pub all_tables: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

fn load(path: &Path) -> anyhow::Result<Topology> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Topology::from_document_str(&text).with_context(|| format!("{}", path.display()))
}

/// Renders drifts as aligned columns.
pub fn render_table(drifts: &[Drift], expected_label: &str, actual_label: &str) -> String {
    let headers = (
        "PATH",
        expected_label.to_uppercase(),
        actual_label.to_uppercase(),
    );
    let w0 = drifts
        .iter()
        .map(|d| d.path.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let w1 = drifts
        .iter()
        .map(|d| d.expected.len())
        .max()
        .unwrap_or(0)
        .max(headers.1.len());
    let mut out = format!("{:w0$}  {:w1$}  {}\n", headers.0, headers.1, headers.2);
    for d in drifts {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {}\n",
            d.path, d.expected, d.actual
        ));
    }
    out
}

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let file = load(&args.file)?;
    let overrides = Overrides {
        billing_mode: args.billing_mode,
        provisioned_throughput: None,
        table_name_prefix: args.table_prefix.clone(),
    };
    let (expected, actual, labels) = match (&args.against, &args.against_endpoint) {
        (Some(reference), _) => {
            let reference = resolve(&load(reference)?, &overrides);
            (reference, file, ("expected", "actual"))
        }
        (None, Some(endpoint)) => {
            let declared = resolve(&file, &overrides);
            let live = live_topology(endpoint, &args.aws, &declared, args.all_tables).await?;
            (declared, live, ("declared", "live"))
        }
        (None, None) => anyhow::bail!("give --against FILE or --against-endpoint URL"),
    };
    let drifts = diff(&expected, &actual);
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({ "equal": drifts.is_empty(), "drifts": drifts });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Table if drifts.is_empty() => {
            println!(
                "no differences ({} table(s) compared)",
                expected.tables.len()
            );
        }
        OutputFormat::Table => {
            print!("{}", render_table(&drifts, labels.0, labels.1));
            println!("{} difference(s)", drifts.len());
        }
    }
    Ok(if drifts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns() {
        let d = vec![
            Drift {
                path: "tables[a].ttlAttribute".into(),
                expected: "x".into(),
                actual: "(none)".into(),
            },
            Drift {
                path: "tables[b]".into(),
                expected: "present".into(),
                actual: "(absent)".into(),
            },
        ];
        assert_eq!(
            render_table(&d, "expected", "actual"),
            "PATH                    EXPECTED  ACTUAL\n\
             tables[a].ttlAttribute  x         (none)\n\
             tables[b]               present   (absent)\n"
        );
    }
}
