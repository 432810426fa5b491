//! What the environment refers to, read and dereferenced: the source spec.mirror names,
//! evaluated ([`crate::mirror`]). The seed Secret is read where it is needed (a keyring or
//! secrets to derive), by [`crate::controller::seed_secret`].

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::api::{FieldError, ParityEnvironment, ValidatedSpec};
use crate::controller::{Context, Error};
use crate::mirror::{Mirrored, Source, evaluate};

/// Reads what spec.mirror names (a ParityEnvironment or a topology ConfigMap) and evaluates
/// the mirror against it: an unusable source is the inner error.
pub async fn mirror(
    ctx: &Context,
    valid: &ValidatedSpec,
) -> Result<Result<Mirrored, FieldError>, Error> {
    let ns = &valid.namespace;
    let from = valid
        .spec
        .mirror
        .as_ref()
        .map(|m| (&m.from, &m.config_map_ref));
    Ok(match from {
        Some((Some(from), _)) => {
            let src_ns = from.namespace.as_deref().unwrap_or(ns);
            let src = Api::<ParityEnvironment>::namespaced(ctx.client.clone(), src_ns)
                .get_opt(&from.name)
                .await
                .map_err(Error::Fetch)?;
            evaluate(valid, Source::Environment(src.as_ref()))
        }
        Some((None, Some(r))) => {
            let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                .get_opt(&r.name)
                .await
                .map_err(Error::Fetch)?;
            evaluate(valid, Source::ConfigMap(cm.as_ref()))
        }
        _ => evaluate(valid, Source::Environment(None)),
    })
}
