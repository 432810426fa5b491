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
use crate::connection::{ConnectionSet, Format};
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
                .await?,
            KMS_SECRET_ACCESS_KEY_KEY,
        ),
        secrets_client_secret: value(
            secrets
                .get_opt(&names::secrets_api_credentials(&valid.name))
                .await?,
            SECRETS_API_CLIENT_SECRET_KEY,
        ),
        secrets: secret_strings(secrets.get_opt(&names::secrets(&valid.name)).await?),
    };
    if !missing_inputs(valid, valid.profile, &inputs).is_empty() {
        return Ok(());
    }
    let desired = connection_secret(
        valid,
        &connection_set(valid, valid.profile, endpoints, inputs),
    );
    let name = names::connection(&valid.name);
    let current = secrets.get_opt(&name).await?;
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
        .await?;
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
    let text = set.render(args.output);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
