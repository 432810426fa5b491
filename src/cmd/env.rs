//! `parity env NAME`: how an app connects to an environment in a cluster, read from its
//! `<env>-connection` Secret (which the operator writes: controller/connection.rs).

use std::io::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::connection::{ConnectionSet, Endpoint, Format};
use crate::controller::connection::secret_strings;
use crate::resources::names;

/// Print how an app connects to an environment in a cluster (from its `<env>-connection`
/// Secret): the same variables `parity dev` writes to `.parity/<env>/.env`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  parity env dev -n demo-local                  dotenv with in-cluster URLs
  eval \"$(parity env dev -n demo-local --host -o shell)\"
                                                kind: localhost URLs (kind-config.yaml's ports)
  parity env ci -n ci-1234 -o json >> ci.json   JSON for a CI step")]
pub struct EnvArgs {
    /// The ParityEnvironment.
    pub name: String,
    /// Its namespace (default: the kubeconfig's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Dotenv)]
    pub output: Format,
    /// URLs as seen from the host of a kind cluster (kind-config.yaml's localhost ports)
    /// instead of the in-cluster Service URLs.
    #[arg(long)]
    pub host: bool,
    /// URLs of the NodePorts at this address (a node's IP, or 127.0.0.1 on the node itself),
    /// for clusters without kind's port mapping. Needs an operator run with --node-ports.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "host")]
    pub node_port_host: Option<String>,
}

/// The NodePort of each endpoint's Service (the operator's `--node-ports`).
fn node_port(e: Endpoint) -> u16 {
    let port = match e {
        Endpoint::DynamoDb => crate::resources::DYNAMODB_NODE_PORT,
        Endpoint::Kms => crate::resources::KMS_NODE_PORT,
        Endpoint::Secrets => crate::resources::SECRETS_API_NODE_PORT,
        Endpoint::Dashboard => crate::resources::DASHBOARD_NODE_PORT,
    };
    u16::try_from(port).unwrap_or_default()
}

pub async fn run(args: EnvArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let name = names::connection(&args.name);
    let Some(secret) = secrets.get_opt(&name).await? else {
        anyhow::bail!(
            "Secret {name} not found in namespace {ns}: the operator writes it once the environment's keys and secrets exist (check `parity status {} -n {ns}`)",
            args.name
        );
    };
    let mut set = ConnectionSet::from_vars(secret_strings(Some(secret)));
    if args.host {
        set = set.with_host_urls();
    }
    if let Some(address) = &args.node_port_host {
        set = set.at_host(address, node_port);
    }
    let text = set.render(args.output);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_port_urls_use_the_services_node_ports() {
        let set = ConnectionSet {
            kms: Some("http://dev-kms.team.svc:8080".into()),
            dashboard: Some("http://dev-dashboard.team.svc:8080".into()),
            ..Default::default()
        }
        .at_host("127.0.0.1", node_port);
        assert_eq!(set.kms.as_deref(), Some("http://127.0.0.1:30880"));
        assert_eq!(set.dashboard.as_deref(), Some("http://127.0.0.1:30080"));
        // kind maps exactly these NodePorts to its localhost ports.
        let kind = include_str!("../../kind-config.yaml");
        for e in [
            Endpoint::DynamoDb,
            Endpoint::Kms,
            Endpoint::Secrets,
            Endpoint::Dashboard,
        ] {
            assert!(
                kind.contains(&format!("containerPort: {}", node_port(e))),
                "{e:?}"
            );
        }
    }
}
