//! The environment's application secrets: the Local provider generates `<env>-secrets` from
//! the schema (created once, new entries added, values kept); the Infisical provider gets an
//! InfisicalSecret that the Infisical operator syncs into `<env>-secrets`, whose values are
//! then checked against the schema. Values never reach logs, events or status.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use serde_json::json;

use super::create_once::{claim_secret, create_once};
use crate::api::{Endpoints, KeySource, SecretsProvider, ValidatedSpec};
use crate::controller::{Context, Error, FIELD_MANAGER, merge_params, seed_secret};
use crate::resources::{Component, Object, names, object_meta};
use crate::verdict::Verdict;
use zeroize::Zeroizing;

use crate::secrets::{
    GenerationMode, InfisicalSecret, InfisicalSource, LocalSecretsProvider, ROLLOUT_ANNOTATION,
    SecretsSchema, build_infisical_secret, new_rollout_key, rollout_hash, validate_synced_secret,
};

fn state(ready: bool, reason: &'static str, message: impl Into<String>) -> Verdict {
    if ready {
        Verdict::ok(reason, message)
    } else {
        Verdict::not(reason, message)
    }
}

/// What the secrets step found: the condition, and the keyed rollout hash of `<env>-secrets`
/// when it exists (for the pod templates of the workloads that read it).
pub struct SecretsOutcome {
    /// SecretsReady.
    pub state: Verdict,
    pub rollout_hash: Option<String>,
}

/// The data key of `<env>-rollout-key`.
const ROLLOUT_KEY_KEY: &str = "key";

/// Label an app's Deployment carries (value: the environment's name) to roll whenever that
/// environment's secrets change.
pub const LABEL_SECRETS_FROM: &str = "parity.dev/secrets-from";

pub async fn reconcile(
    ctx: &Context,
    valid: &ValidatedSpec,
    endpoints: &Endpoints,
) -> Result<SecretsOutcome, Error> {
    let (state, data) = sync(ctx, valid, endpoints).await?;
    let rollout_hash = match data {
        Some(data) => {
            let key = rollout_key(ctx, valid).await?;
            let hash = rollout_hash(key.as_ref(), &data);
            roll_apps(ctx, valid, &hash).await?;
            Some(hash)
        }
        None => None,
    };
    Ok(SecretsOutcome {
        state,
        rollout_hash,
    })
}

/// The per-environment key of the rollout hash: random, created once in `<env>-rollout-key`
/// (readable only by those who may read Secrets, who could read the values anyway).
async fn rollout_key(ctx: &Context, valid: &ValidatedSpec) -> Result<Zeroizing<Vec<u8>>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let name = names::rollout_key(&valid.name);
    let read = |s: Secret| {
        s.data
            .and_then(|mut d| d.remove(ROLLOUT_KEY_KEY))
            .map(|b| Zeroizing::new(b.0))
            .filter(|k| k.len() >= 32)
    };
    if let Some(existing) = secrets.get_opt(&name).await.map_err(Error::Secrets)? {
        claim_secret(ctx, valid, &existing.metadata).await?;
        if let Some(key) = read(existing) {
            return Ok(key);
        }
    }
    let key = new_rollout_key();
    let secret = Secret {
        metadata: object_meta(valid, name.clone(), Component::Keyring),
        data: Some(BTreeMap::from([(
            ROLLOUT_KEY_KEY.to_string(),
            ByteString(key.to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    create_once(ctx, valid, Object::Secret(secret)).await?;
    // Ours, or another replica's if it created the Secret first.
    secrets.get_opt(&name).await.map_err(Error::Secrets)?.and_then(read).ok_or_else(|| {
        Error::keyring(format!(
            "Secret {name} exists without a 32-byte {ROLLOUT_KEY_KEY}: delete it to get a new one"
        ))
    })
}

/// Puts the rollout hash on the pod template of every Deployment labelled
/// `parity.dev/secrets-from=<env>` in the namespace, with a server-side apply that owns only
/// that annotation. Deployments already carrying it are not written.
async fn roll_apps(ctx: &Context, valid: &ValidatedSpec, hash: &str) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let selector = format!("{LABEL_SECRETS_FROM}={}", valid.name);
    let apps = deployments
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::Secrets)?;
    for app in apps {
        let current = app
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ROLLOUT_ANNOTATION));
        if current.map(String::as_str) == Some(hash) {
            continue;
        }
        let name = app.name_any();
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: hash}}}},
        });
        deployments
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(Error::Secrets)?;
        ctx.metrics.wrote("apply");
        tracing::info!(name, namespace = %valid.namespace, "rolled app for changed secrets");
    }
    Ok(())
}

/// Generates or checks `<env>-secrets`; its data when it exists.
async fn sync(
    ctx: &Context,
    valid: &ValidatedSpec,
    endpoints: &Endpoints,
) -> Result<(Verdict, Option<BTreeMap<String, Vec<u8>>>), Error> {
    let Some(schema_ref) = valid.spec.secrets.schema.as_ref() else {
        return Ok((
            state(
                true,
                "NotConfigured",
                "no secrets schema is declared (spec.secrets.schema)",
            ),
            None,
        ));
    };
    let ns = &valid.namespace;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(cm) = cms
        .get_opt(&schema_ref.name)
        .await
        .map_err(Error::Secrets)?
    else {
        return Ok((
            state(
                false,
                "SchemaMissing",
                format!(
                    "spec.secrets.schema: ConfigMap {} not found in namespace {ns}",
                    schema_ref.name
                ),
            ),
            None,
        ));
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(&schema_ref.key)) else {
        return Ok((
            state(
                false,
                "SchemaMissing",
                format!(
                    "spec.secrets.schema: ConfigMap {} has no key {}",
                    schema_ref.name, schema_ref.key
                ),
            ),
            None,
        ));
    };
    let schema = match SecretsSchema::parse(text) {
        Ok(s) => s,
        Err(e) => {
            return Ok((
                state(false, "InvalidSchema", format!("spec.secrets.schema: {e}")),
                None,
            ));
        }
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = names::secrets(&valid.name);

    match valid.spec.secrets.provider {
        SecretsProvider::Local => {
            let existing = secrets.get_opt(&name).await.map_err(Error::Secrets)?;
            if let Some(s) = &existing {
                claim_secret(ctx, valid, &s.metadata).await?;
            }
            let current = existing
                .as_ref()
                .map(crate::secrets::infisical::secret_bytes);
            let seed = match valid.spec.keys.local.source {
                KeySource::Seeded => seed(ctx, valid).await?,
                KeySource::Generated => None,
            };
            let provider = LocalSecretsProvider {
                schema: &schema,
                mode: GenerationMode::from_seed(seed.as_ref().map(|s| s.as_slice())),
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
            let plain = outcome.data.clone();
            let data: BTreeMap<String, ByteString> = outcome
                .data
                .into_iter()
                .map(|(k, v)| (k, ByteString(v)))
                .collect();
            match existing {
                None => {
                    // Created once; a kept Secret, never an orphan (resources::kept_secrets).
                    let meta = object_meta(valid, name.clone(), Component::Keyring);
                    let secret = Secret {
                        metadata: meta,
                        data: Some(data),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    };
                    create_once(ctx, valid, Object::Secret(secret)).await?;
                }
                Some(s) if outcome.report.changed => {
                    let patch = json!({"metadata": {"resourceVersion": s.resource_version()}, "data": data});
                    secrets
                        .patch(&name, &merge_params(), &Patch::Merge(&patch))
                        .await
                        .map_err(Error::Secrets)?;
                    ctx.metrics.wrote("patch");
                }
                Some(_) => {}
            }
            let c = outcome.report.condition();
            Ok((state(c.ready, c.reason, c.message), Some(plain)))
        }
        SecretsProvider::Infisical => {
            let Some(spec) = valid.spec.secrets.infisical.as_ref() else {
                return Ok((
                    state(
                        false,
                        "InvalidSpec",
                        "spec.secrets.infisical is required for provider Infisical",
                    ),
                    None,
                ));
            };
            let source = InfisicalSource::from_spec(&valid.name, spec);
            let mut obj = match build_infisical_secret(&valid.name, ns, &source) {
                Ok(o) => o,
                Err(e) => {
                    return Ok((
                        state(false, "InvalidSpec", format!("spec.secrets.infisical: {e}")),
                        None,
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
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    return Ok((
                        state(
                            false,
                            "InfisicalOperatorMissing",
                            "the InfisicalSecret kind (secrets.infisical.com/v1alpha1) is not installed: install the Infisical operator",
                        ),
                        None,
                    ));
                }
                Err(e) => return Err(Error::Secrets(e)),
            }
            match secrets.get_opt(&name).await.map_err(Error::Secrets)? {
                None => Ok((
                    state(
                        false,
                        "WaitingForSync",
                        format!("waiting for the Infisical operator to sync Secret {name}"),
                    ),
                    None,
                )),
                Some(s) => {
                    let errors = validate_synced_secret(&schema, &s);
                    let st = if errors.is_empty() {
                        state(
                            true,
                            "Synced",
                            format!(
                                "Secret {name} is synced from Infisical and matches the schema"
                            ),
                        )
                    } else {
                        let msg = errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ");
                        state(false, "InvalidValues", format!("Secret {name}: {msg}"))
                    };
                    Ok((st, Some(crate::secrets::infisical::secret_bytes(&s))))
                }
            }
        }
    }
}

async fn seed(ctx: &Context, valid: &ValidatedSpec) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    match valid.spec.keys.local.seed_secret_ref.as_ref() {
        Some(r) => Ok(Some(seed_secret::read(ctx, &valid.namespace, r).await?)),
        None => Ok(None),
    }
}
