//! `parity crd`: the ParityEnvironment CRD, or the operator's RBAC rules, as YAML.

/// Print the ParityEnvironment CustomResourceDefinition as YAML.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Print the operator's RBAC rules instead (the chart's files/rbac-rules.yaml): `operator`
    /// (ClusterRole, or a Role per watched namespace) and `leaderElection` (release namespace).
    #[arg(long)]
    pub rbac_rules: bool,
}

pub async fn run(args: CrdArgs) -> anyhow::Result<()> {
    if args.rbac_rules {
        print!("{}", crate::resources::rbac::operator_rules_yaml()?);
    } else {
        print!("{}", crate::api::crd_yaml()?);
    }
    Ok(())
}
