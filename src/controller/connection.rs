//! The `<env>-connection` Secret (what an app needs to connect, for `envFrom`) and
//! `parity env`, which prints it. The set is the one `parity dev` writes to `.env`
//! ([`crate::connection::ConnectionSet`]); only the URLs differ.

use std::collections::BTreeMap;
use std::io::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource as _};
use zeroize::Zeroizing;

use super::{Context, Error, FIELD_MANAGER};
use crate::api::{Endpoints, ValidatedSpec};
use crate::connection::{ConnectionSet, Endpoint, Format};
use crate::resources::{
    ConnectionInputs, KMS_SECRET_ACCESS_KEY_KEY, Object, SECRETS_API_CLIENT_SECRET_KEY,
    connection_secret, connection_set, missing_inputs, names,
};

/// Writes `<env>-connection` when its data differs from what is stored. Until the
/// credentials Secrets exist (they are created later in the same reconcile) it writes
/// nothing: their creation triggers the next reconcile.
pub async fn reconcile(
    ctx: &Context,
    valid: &ValidatedSpec,
    endpoints: &Endpoints,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let value = |s: Option<Secret>, key: &str| {
        s.and_then(|s| s.data?.remove(key))
            .and_then(|b| String::from_utf8(b.0).ok())
            .map(Zeroizing::new)
    };
    let inputs = ConnectionInputs {
        kms_secret_access_key: value(
            secrets
                .get_opt(&names::kms_credentials(&valid.name))
                .await
                .map_err(Error::Secrets)?,
            KMS_SECRET_ACCESS_KEY_KEY,
        ),
        secrets_client_secret: value(
            secrets
                .get_opt(&names::secrets_api_credentials(&valid.name))
                .await
                .map_err(Error::Secrets)?,
            SECRETS_API_CLIENT_SECRET_KEY,
        ),
        secrets: secret_strings(
            secrets
                .get_opt(&names::secrets(&valid.name))
                .await
                .map_err(Error::Secrets)?,
        ),
    };
    if !missing_inputs(valid, valid.profile, &inputs).is_empty() {
        return Ok(());
    }
    let desired = connection_secret(
        valid,
        &connection_set(valid, valid.profile, endpoints, inputs),
    );
    let name = names::connection(&valid.name);
    let current = secrets.get_opt(&name).await.map_err(Error::Secrets)?;
    if current.is_some_and(|c| c.data == desired.data && c.meta().labels == desired.metadata.labels)
    {
        return Ok(());
    }
    let obj = Object::Secret(desired).to_dynamic();
    secrets
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(Error::Secrets)?;
    ctx.metrics.wrote("apply");
    tracing::info!(name, namespace = %valid.namespace, "wrote connection Secret");
    Ok(())
}

/// A Secret's data as UTF-8 strings (values that are not text are left out: they cannot be
/// environment variables).
fn secret_strings(s: Option<Secret>) -> BTreeMap<String, Zeroizing<String>> {
    s.and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, Zeroizing::new(v))))
        .collect()
}

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
