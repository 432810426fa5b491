//! The `<env>-topology` ConfigMap: the resolved topology (tables, key aliases, secret names)
//! that apps, mirrors and the bootstrap Job read, and the environment's facts and endpoints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use super::meta::{Component, names, object_meta};
use super::{
    ALIASES_FILE, BuildContext, DASHBOARD_PORT, DYNAMODB_PORT, ENVIRONMENT_FILE, KMS_PORT,
    SECRETS_API_PORT, TOPOLOGY_FILE, plan, service_url,
};
use crate::api::{
    Endpoints, InfisicalSpec, KeyProvider, LocalObjectKeyRef, SecretsProvider, Tier, ValidatedSpec,
};
use crate::dynamo::topology::StreamViewType;
use crate::tier::TierProfile;

pub use crate::api::declared_topology;

/// The region DynamoDB Local and the local key service answer for.
pub const LOCAL_REGION: &str = "us-east-1";

/// `topology.yaml` holds the environment's [`Topology`] in the document format
/// `parity bootstrap`, `capture`, `diff` and the dashboard read (src/dynamo/topology.rs).
pub use crate::dynamo::topology::Topology;

/// `environment.yaml`: what the environment is and where its services answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub environment: String,
    pub namespace: String,
    pub tier: Tier,
    pub parity_level: i32,
    /// Streams enabled on every table (parity level >= 2).
    pub streams: bool,
    pub keys: TopologyKeys,
    pub secrets: TopologySecrets,
    pub endpoints: TopologyEndpoints,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyKeys {
    pub provider: KeyProvider,
    /// KMS aliases of the root key, the same in every tier.
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopologySecrets {
    pub provider: SecretsProvider,
    /// The Secret the application secrets land in.
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<LocalObjectKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infisical: Option<InfisicalSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyEndpoints {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// The Infisical-compatible site URL (`parity secrets-api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<String>,
}

/// The key alias of an environment's root key.
pub fn root_key_alias(env: &str) -> String {
    format!("alias/parity/{env}")
}

/// The topology the environment runs: its own declaration, else (mirroring) its source's
/// with the overrides applied; tables only from parity level 1, streams on every table from
/// level 2 (the dashboard's live feed), and the root key alias and the secrets' Secret name
/// always listed.
pub fn topology(env: &ValidatedSpec, profile: &TierProfile, _ctx: &BuildContext) -> Topology {
    let c = plan(env, profile).components;
    let mut t = declared_topology(&env.spec)
        .or_else(|| env.mirrored.clone())
        .unwrap_or_default();
    if !c.dynamodb {
        t.tables.clear();
    }
    if c.dynamodb && c.streams {
        for table in &mut t.tables {
            table
                .stream_view_type
                .get_or_insert(StreamViewType::NewAndOldImages);
        }
    }
    let first = |list: &mut Vec<String>, item: String| {
        list.retain(|a| a != &item);
        list.insert(0, item);
    };
    first(&mut t.kms_key_aliases, root_key_alias(&env.name));
    first(&mut t.secret_names, names::secrets(&env.name));
    t
}

pub fn environment_info(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> EnvironmentInfo {
    let c = plan(env, profile).components;
    let spec = &env.spec;
    let ep = endpoints(env, profile, ctx);
    EnvironmentInfo {
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        tier: spec.tier,
        parity_level: spec.parity_level,
        streams: c.dynamodb && c.streams,
        keys: TopologyKeys {
            provider: spec.keys.provider,
            aliases: vec![root_key_alias(&env.name)],
            kms_key_id: spec.keys.kms.as_ref().map(|k| k.key_id.clone()),
        },
        secrets: TopologySecrets {
            provider: spec.secrets.provider,
            secret_name: names::secrets(&env.name),
            schema: spec.secrets.schema.clone(),
            infisical: spec.secrets.infisical.clone(),
        },
        endpoints: TopologyEndpoints {
            region: region(env),
            dynamodb: ep.dynamodb,
            kms: ep.kms,
            dashboard: ep.dashboard,
            secrets: ep.secrets,
        },
    }
}

/// The region apps use: the external DynamoDB's, the KMS key's, or the local one.
pub fn region(env: &ValidatedSpec) -> String {
    let spec = &env.spec;
    spec.dynamodb
        .external
        .as_ref()
        .map(|e| e.region.clone())
        .or_else(|| spec.keys.kms.as_ref().and_then(|k| k.region.clone()))
        .unwrap_or_else(|| LOCAL_REGION.to_string())
}

/// status.endpoints: in-cluster URLs of what runs, the external ones otherwise.
pub fn endpoints(env: &ValidatedSpec, profile: &TierProfile, _ctx: &BuildContext) -> Endpoints {
    let plan = plan(env, profile);
    let spec = &env.spec;
    let dynamodb = if plan.dynamodb_pod {
        Some(service_url(env, &names::dynamodb(&env.name), DYNAMODB_PORT))
    } else if plan.components.dynamodb {
        spec.dynamodb.external.as_ref().map(|e| e.endpoint.clone())
    } else {
        None
    };
    let kms = if plan.kms {
        Some(service_url(env, &names::kms(&env.name), KMS_PORT))
    } else {
        spec.keys.kms.as_ref().and_then(|k| k.endpoint.clone())
    };
    Endpoints {
        dynamodb,
        kms,
        dashboard: plan
            .dashboard
            .then(|| service_url(env, &names::dashboard(&env.name), DASHBOARD_PORT)),
        topology_config_map: Some(names::topology(&env.name)),
        secrets: plan
            .secrets_api
            .then(|| service_url(env, &names::secrets_api(&env.name), SECRETS_API_PORT)),
    }
}

/// The ConfigMap's data: `topology.yaml`, `environment.yaml` and `aliases` (one KMS alias
/// a line, for `parity kms --aliases-file`).
pub fn topology_data(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> BTreeMap<String, String> {
    // Structs of strings, enums and numbers always serialize.
    BTreeMap::from([
        (
            TOPOLOGY_FILE.to_string(),
            serde_yaml::to_string(&topology(env, profile, ctx)).unwrap_or_default(),
        ),
        (
            ENVIRONMENT_FILE.to_string(),
            serde_yaml::to_string(&environment_info(env, profile, ctx)).unwrap_or_default(),
        ),
        (
            ALIASES_FILE.to_string(),
            // Every alias the topology names resolves to the root key locally, so code that
            // says `alias/orders` in staging works unchanged.
            topology(env, profile, ctx)
                .kms_key_aliases
                .iter()
                .map(|a| format!("{a}\n"))
                .collect(),
        ),
    ])
}

pub fn topology_config_map(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(env, names::topology(&env.name), Component::Topology),
        data: Some(topology_data(env, profile, ctx)),
        ..Default::default()
    }
}
