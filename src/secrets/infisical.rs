//! The Infisical path: the InfisicalSecret object the Infisical Kubernetes operator watches
//! (it syncs a project/environment/path into `<env>-secrets`), and validation of the Secret
//! it syncs against the schema.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::CustomResource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::schema::{SecretsSchema, ValueError};

/// `secrets.infisical.com/v1alpha1` InfisicalSecret: the fields parity sets. Field names
/// follow the Infisical operator's CRD; see tests/fixtures/infisical-crd.yaml.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "secrets.infisical.com",
    version = "v1alpha1",
    kind = "InfisicalSecret",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct InfisicalSecretSpec {
    #[serde(rename = "hostAPI", default, skip_serializing_if = "Option::is_none")]
    pub host_api: Option<String>,
    pub resync_interval: i64,
    pub authentication: InfisicalAuthentication,
    pub managed_secret_reference: ManagedSecretReference,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfisicalAuthentication {
    pub universal_auth: UniversalAuth,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UniversalAuth {
    pub credentials_ref: SecretReference,
    pub secrets_scope: SecretsScope,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub secret_name: String,
    pub secret_namespace: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub env_slug: String,
    pub secrets_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedSecretReference {
    pub secret_name: String,
    pub secret_namespace: String,
    /// "Owner": the synced Secret is owned by (and deleted with) the InfisicalSecret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
}

/// Which Infisical project to read: by id or by slug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfisicalProject {
    Id(String),
    Slug(String),
}

/// Where an environment's secrets live in Infisical (from the ParityEnvironment spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfisicalSource {
    /// Infisical API base, for example `https://app.infisical.com/api`; None: the operator's default.
    pub host_api: Option<String>,
    pub project: InfisicalProject,
    /// Infisical environment slug, for example "staging".
    pub environment: String,
    /// Folder path, starting with "/".
    pub path: String,
    /// Secret (in the environment's namespace) holding `clientId` and `clientSecret` of a
    /// universal-auth machine identity.
    pub credentials_secret: String,
    /// Seconds between syncs; None: 60.
    pub resync_interval_seconds: Option<i64>,
}

/// A spec value the builder refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secrets.infisical.{field}: {reason}")]
pub struct InfisicalSourceError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> InfisicalSourceError {
    InfisicalSourceError {
        field,
        reason: reason.into(),
    }
}

/// The name of the Secret the InfisicalSecret syncs into (the same one the Local provider
/// writes, so workloads do not care which provider runs).
pub fn managed_secret_name(environment_name: &str) -> String {
    format!("{environment_name}-secrets")
}

/// The Secret (in the environment's namespace) the user creates with the universal-auth
/// `clientId` and `clientSecret` the Infisical operator logs in with.
pub fn credentials_secret_name(environment_name: &str) -> String {
    format!("{environment_name}-infisical-auth")
}

impl InfisicalSource {
    /// From `spec.secrets.infisical`: project by slug, the operator's default host, the
    /// credentials in `<env>-infisical-auth`.
    pub fn from_spec(environment_name: &str, spec: &crate::api::InfisicalSpec) -> InfisicalSource {
        InfisicalSource {
            host_api: None,
            project: InfisicalProject::Slug(spec.project_slug.clone()),
            environment: spec.env_slug.clone(),
            path: spec.secrets_path.clone(),
            credentials_secret: credentials_secret_name(environment_name),
            resync_interval_seconds: None,
        }
    }

    pub fn validate(&self) -> Result<(), InfisicalSourceError> {
        let project = match &self.project {
            InfisicalProject::Id(s) | InfisicalProject::Slug(s) => s,
        };
        if project.is_empty() || project.len() > 128 {
            return Err(bad("project", "must be 1 to 128 characters"));
        }
        if self.environment.is_empty() || self.environment.len() > 64 {
            return Err(bad("environment", "must be 1 to 64 characters"));
        }
        if !self.path.starts_with('/') || self.path.len() > 512 {
            return Err(bad(
                "path",
                "must start with '/' and be at most 512 characters",
            ));
        }
        if self.credentials_secret.is_empty() || self.credentials_secret.len() > 253 {
            return Err(bad("credentialsSecret", "must be a Secret name"));
        }
        if let Some(h) = &self.host_api
            && !(h.starts_with("https://") || h.starts_with("http://"))
        {
            return Err(bad("hostAPI", "must be an http:// or https:// URL"));
        }
        if let Some(r) = self.resync_interval_seconds
            && !(5..=86_400).contains(&r)
        {
            return Err(bad("resyncInterval", "must be 5..=86400 seconds"));
        }
        Ok(())
    }
}

/// Builds the InfisicalSecret `<env>-secrets` in `namespace` that syncs `source` into the
/// Secret `<env>-secrets`. The operator adds its owner reference and applies it with SSA.
pub fn build_infisical_secret(
    environment_name: &str,
    namespace: &str,
    source: &InfisicalSource,
) -> Result<InfisicalSecret, InfisicalSourceError> {
    source.validate()?;
    let (project_id, project_slug) = match &source.project {
        InfisicalProject::Id(id) => (Some(id.clone()), None),
        InfisicalProject::Slug(slug) => (None, Some(slug.clone())),
    };
    let name = managed_secret_name(environment_name);
    let mut obj = InfisicalSecret::new(
        &name,
        InfisicalSecretSpec {
            host_api: source.host_api.clone(),
            resync_interval: source.resync_interval_seconds.unwrap_or(60),
            authentication: InfisicalAuthentication {
                universal_auth: UniversalAuth {
                    credentials_ref: SecretReference {
                        secret_name: source.credentials_secret.clone(),
                        secret_namespace: namespace.to_owned(),
                    },
                    secrets_scope: SecretsScope {
                        project_slug,
                        project_id,
                        env_slug: source.environment.clone(),
                        secrets_path: source.path.clone(),
                        recursive: Some(false),
                    },
                },
            },
            managed_secret_reference: ManagedSecretReference {
                secret_name: name.clone(),
                secret_namespace: namespace.to_owned(),
                creation_policy: Some("Owner".into()),
                secret_type: Some("Opaque".into()),
            },
        },
    );
    obj.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "parity-operator".to_owned(),
            ),
            (
                "parity.dev/environment".to_owned(),
                environment_name.to_owned(),
            ),
        ])),
        ..ObjectMeta::default()
    };
    Ok(obj)
}

/// The bytes of a Secret's `data` (and `stringData`, which wins, as the apiserver merges it).
pub fn secret_bytes(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Validates the Secret the Infisical operator synced against the schema. Errors name the
/// secret and the rule, never a value.
pub fn validate_synced_secret(schema: &SecretsSchema, secret: &Secret) -> Vec<ValueError> {
    schema.validate_data(&secret_bytes(secret))
}
