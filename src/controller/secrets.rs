//! The environment's application secrets: the Local provider generates `<env>-secrets` from
//! the schema (created once, new entries added, values kept); the Infisical provider gets an
//! InfisicalSecret that the Infisical operator syncs into `<env>-secrets`, whose values are
//! then checked against the schema. Values never reach logs, events or status.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use serde_json::json;

use super::{Context, Error, FIELD_MANAGER};
use crate::api::{Endpoints, KeySource, SecretsProvider, ValidatedSpec};
use crate::resources::{Component, names, object_meta};
use crate::secrets::{
    GenerationMode, InfisicalSecret, InfisicalSource, LocalSecretsProvider, SecretsSchema,
    build_infisical_secret, validate_synced_secret,
};

/// SecretsReady as (ready, reason, message).
pub type SecretsState = (bool, String, String);

fn state(ready: bool, reason: &str, message: impl Into<String>) -> SecretsState {
    (ready, reason.to_string(), message.into())
}

pub async fn reconcile(
    ctx: &Context,
    valid: &ValidatedSpec,
    endpoints: &Endpoints,
) -> Result<SecretsState, Error> {
    let Some(schema_ref) = valid.spec.secrets.schema.as_ref() else {
        return Ok(state(
            true,
            "NotConfigured",
            "no secrets schema is declared (spec.secrets.schema)",
        ));
    };
    let ns = &valid.namespace;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(cm) = cms.get_opt(&schema_ref.name).await? else {
        return Ok(state(
            false,
            "SchemaMissing",
            format!(
                "spec.secrets.schema: ConfigMap {} not found in namespace {ns}",
                schema_ref.name
            ),
        ));
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(&schema_ref.key)) else {
        return Ok(state(
            false,
            "SchemaMissing",
            format!(
                "spec.secrets.schema: ConfigMap {} has no key {}",
                schema_ref.name, schema_ref.key
            ),
        ));
    };
    let schema = match SecretsSchema::parse(text) {
        Ok(s) => s,
        Err(e) => {
            return Ok(state(
                false,
                "InvalidSchema",
                format!("spec.secrets.schema: {e}"),
            ));
        }
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = names::secrets(&valid.name);

    match valid.spec.secrets.provider {
        SecretsProvider::Local => {
            let existing = secrets.get_opt(&name).await?;
            let current = existing
                .as_ref()
                .map(crate::secrets::infisical::secret_bytes);
            let seed = match valid.spec.keys.local.source {
                KeySource::Seeded => seed(ctx, valid).await?,
                KeySource::Generated => None,
            };
            let provider = LocalSecretsProvider {
                schema: &schema,
                mode: GenerationMode::from_seed(seed.as_deref()),
                prune: false,
            };
            let mut urls = BTreeMap::new();
            for (k, v) in [
                ("dynamodb", &endpoints.dynamodb),
                ("kms", &endpoints.kms),
                ("dashboard", &endpoints.dashboard),
            ] {
                if let Some(v) = v {
                    urls.insert(k.to_string(), v.clone());
                }
            }
            let outcome = provider.reconcile(current.as_ref(), &urls);
            let data: BTreeMap<String, ByteString> = outcome
                .data
                .into_iter()
                .map(|(k, v)| (k, ByteString(v)))
                .collect();
            match existing {
                None => {
                    // Labelled with the keyring component: created once, never an orphan.
                    let meta = object_meta(valid, name.clone(), Component::Keyring);
                    let secret = Secret {
                        metadata: meta,
                        data: Some(data),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    };
                    match secrets
                        .create(
                            &PostParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..Default::default()
                            },
                            &secret,
                        )
                        .await
                    {
                        Ok(_) => ctx.metrics.wrote("create"),
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(s) if outcome.report.changed => {
                    let patch = json!({"metadata": {"resourceVersion": s.resource_version()}, "data": data});
                    secrets
                        .patch(
                            &name,
                            &PatchParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..Default::default()
                            },
                            &Patch::Merge(&patch),
                        )
                        .await?;
                    ctx.metrics.wrote("patch");
                }
                Some(_) => {}
            }
            let c = outcome.report.condition();
            Ok(state(c.ready, c.reason, c.message))
        }
        SecretsProvider::Infisical => {
            let Some(spec) = valid.spec.secrets.infisical.as_ref() else {
                return Ok(state(
                    false,
                    "InvalidSpec",
                    "spec.secrets.infisical is required for provider Infisical",
                ));
            };
            let source = InfisicalSource::from_spec(&valid.name, spec);
            let mut obj = match build_infisical_secret(&valid.name, ns, &source) {
                Ok(o) => o,
                Err(e) => {
                    return Ok(state(
                        false,
                        "InvalidSpec",
                        format!("spec.secrets.infisical: {e}"),
                    ));
                }
            };
            obj.meta_mut().owner_references = Some(vec![crate::resources::owner_reference(valid)]);
            obj.meta_mut().labels = Some(crate::resources::labels(valid, Component::Keyring));
            let api: Api<InfisicalSecret> = Api::namespaced(ctx.client.clone(), ns);
            match api
                .patch(
                    &obj.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&obj),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Ok(state(
                        false,
                        "InfisicalOperatorMissing",
                        "the InfisicalSecret kind (secrets.infisical.com/v1alpha1) is not installed: install the Infisical operator",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            match secrets.get_opt(&name).await? {
                None => Ok(state(
                    false,
                    "WaitingForSync",
                    format!("waiting for the Infisical operator to sync Secret {name}"),
                )),
                Some(s) => {
                    let errors = validate_synced_secret(&schema, &s);
                    if errors.is_empty() {
                        Ok(state(
                            true,
                            "Synced",
                            format!(
                                "Secret {name} is synced from Infisical and matches the schema"
                            ),
                        ))
                    } else {
                        let msg = errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ");
                        Ok(state(
                            false,
                            "InvalidValues",
                            format!("Secret {name}: {msg}"),
                        ))
                    }
                }
            }
        }
    }
}

async fn seed(ctx: &Context, valid: &ValidatedSpec) -> Result<Option<Vec<u8>>, Error> {
    let Some(r) = valid.spec.keys.local.seed_secret_ref.as_ref() else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    Ok(secrets
        .get_opt(&r.name)
        .await?
        .and_then(|s| s.data?.get(&r.key).map(|b| b.0.clone())))
}
