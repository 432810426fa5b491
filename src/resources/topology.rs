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
    BillingMode, Endpoints, InfisicalSpec, KeyAttribute, KeyProvider, LocalObjectKeyRef,
    ProvisionedThroughput, SecretsProvider, TableSpec, Tier, ValidatedSpec,
};
use crate::tier::TierProfile;

/// The region DynamoDB Local and the local key service answer for.
pub const LOCAL_REGION: &str = "us-east-1";

/// `topology.yaml`: the resolved topology in the document format `parity bootstrap`,
/// `parity dynamo capture` and mirroring share (src/dynamo/topology.rs): tables, key aliases,
/// secret names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TopologyTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kms_key_aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_names: Vec<String>,
}

/// One table in the topology document (DynamoDB's own spellings for enums).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyTable {
    pub name: String,
    pub partition_key: KeyAttribute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// `NEW_AND_OLD_IMAGES` when streams are on (parity level >= 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<String>,
}

impl TopologyTable {
    fn from_spec(t: &TableSpec, streams: bool) -> TopologyTable {
        TopologyTable {
            name: t.name.clone(),
            partition_key: t.partition_key.clone(),
            sort_key: t.sort_key.clone(),
            billing_mode: match t.billing_mode {
                BillingMode::PayPerRequest => "PAY_PER_REQUEST",
                BillingMode::Provisioned => "PROVISIONED",
            }
            .to_string(),
            provisioned_throughput: t.provisioned.clone(),
            stream_view_type: streams.then(|| "NEW_AND_OLD_IMAGES".to_string()),
        }
    }
}

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

pub fn topology(env: &ValidatedSpec, profile: &TierProfile, _ctx: &BuildContext) -> Topology {
    let c = plan(env, profile).components;
    let streams = c.dynamodb && c.streams;
    Topology {
        tables: if c.dynamodb {
            env.spec
                .dynamodb
                .tables
                .iter()
                .map(|t| TopologyTable::from_spec(t, streams))
                .collect()
        } else {
            Vec::new()
        },
        kms_key_aliases: vec![root_key_alias(&env.name)],
        secret_names: vec![names::secrets(&env.name)],
    }
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
pub(super) fn region(env: &ValidatedSpec) -> String {
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
            format!("{}\n", root_key_alias(&env.name)),
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
