//! The resolved topology: what apps, mirrors, the bootstrap Job and the dashboard read from
//! the `<env>-topology` ConfigMap (key `topology.yaml`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use super::meta::{Component, names, object_meta};
use super::{
    BuildContext, DASHBOARD_PORT, DYNAMODB_PORT, KMS_PORT, TOPOLOGY_FILE, plan, service_url,
};
use crate::api::{
    Endpoints, InfisicalSpec, KeyProvider, LocalObjectKeyRef, SecretsProvider, TableSpec, Tier,
    ValidatedSpec,
};
use crate::tier::TierProfile;

/// The region DynamoDB Local and the local key service answer for.
pub const LOCAL_REGION: &str = "us-east-1";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    pub environment: String,
    pub namespace: String,
    pub tier: Tier,
    pub parity_level: i32,
    /// Streams enabled on every table (parity level >= 2).
    pub streams: bool,
    pub tables: Vec<TableSpec>,
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
}

/// The key alias of an environment's root key.
pub fn root_key_alias(env: &str) -> String {
    format!("alias/parity/{env}")
}

pub fn topology(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Topology {
    let plan = plan(env, profile);
    let spec = &env.spec;
    let ep = endpoints(env, profile, ctx);
    Topology {
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        tier: spec.tier,
        parity_level: spec.parity_level,
        streams: plan.components.dynamodb && plan.components.streams,
        tables: if plan.components.dynamodb {
            spec.dynamodb.tables.clone()
        } else {
            Vec::new()
        },
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
    }
}

pub fn topology_config_map(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> ConfigMap {
    // A struct of strings, enums and numbers always serializes.
    let yaml = serde_yaml::to_string(&topology(env, profile, ctx)).unwrap_or_default();
    ConfigMap {
        metadata: object_meta(env, names::topology(&env.name), Component::Topology),
        data: Some(BTreeMap::from([(TOPOLOGY_FILE.to_string(), yaml)])),
        ..Default::default()
    }
}
