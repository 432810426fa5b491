//! The `<env>-connection` Secret (what an app needs to connect, for `envFrom`; `parity env`,
//! src/cmd/env.rs, prints it). The set is the one `parity dev` writes to `.env`
//! ([`crate::connection::ConnectionSet`]); only the URLs differ.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Resource as _;
use kube::api::{Api, Patch, PatchParams};
use zeroize::Zeroizing;

use super::{Context, Error, FIELD_MANAGER};
use crate::api::{Endpoints, ValidatedSpec};
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
pub(crate) fn secret_strings(s: Option<Secret>) -> BTreeMap<String, Zeroizing<String>> {
    s.and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, Zeroizing::new(v))))
        .collect()
}
