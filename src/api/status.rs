//! `ParityEnvironment.status`: written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
// Used inside the #[x_kube] attribute, which the lint does not see.
use kube::KubeSchema;
#[allow(unused_imports)]
use kube::core::ListMerge;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most drift entries kept in status; the rest are summarised by the InSync condition.
pub const MAX_DRIFT_ENTRIES: usize = 32;
/// Most key versions listed in status.
pub const MAX_KEY_VERSIONS: usize = 100;

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParityEnvironmentStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One per type (a list-map keyed by type, so server-side apply merges by type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Endpoints::is_empty")]
    pub endpoints: Endpoints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysStatus>,
    /// Differences from the mirrored Staging topology (bounded; see the InSync condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub drift: Vec<DriftEntry>,
    /// When a CI environment with a ttl is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// The condition types the operator sets, like a Deployment's: Ready is the CI gate,
/// Progressing and Degraded tell "still converging" from "broken".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    Ready,
    Progressing,
    Degraded,
    KeysReady,
    DynamoDbReady,
    DashboardReady,
    SecretsReady,
    InSync,
}

impl ConditionType {
    pub const ALL: [ConditionType; 8] = [
        ConditionType::Ready,
        ConditionType::Progressing,
        ConditionType::Degraded,
        ConditionType::KeysReady,
        ConditionType::DynamoDbReady,
        ConditionType::DashboardReady,
        ConditionType::SecretsReady,
        ConditionType::InSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
            ConditionType::KeysReady => "KeysReady",
            ConditionType::DynamoDbReady => "DynamoDBReady",
            ConditionType::DashboardReady => "DashboardReady",
            ConditionType::SecretsReady => "SecretsReady",
            ConditionType::InSync => "InSync",
        }
    }

    pub fn parse(s: &str) -> Option<ConditionType> {
        ConditionType::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ConditionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Same shape as metav1.Condition, with bounds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 64))]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase machine-readable reason.
    #[schemars(length(max = 128))]
    pub reason: String,
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Condition {
    pub fn new(
        type_: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Condition {
        let mut message = message.into();
        truncate_utf8(&mut message, 1024);
        Condition {
            type_: type_.as_str().to_string(),
            status,
            reason: reason.chars().take(128).collect(),
            message,
            observed_generation,
            last_transition_time: None,
        }
    }

    pub fn condition_type(&self) -> Option<ConditionType> {
        ConditionType::parse(&self.type_)
    }
}

impl ParityEnvironmentStatus {
    pub fn condition(&self, t: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == t.as_str())
    }

    /// Sets a condition, keeping its lastTransitionTime unless the status changed, so that
    /// re-setting the same state is a no-op (no write on a no-op resync).
    pub fn set_condition(&mut self, mut new: Condition, now: Time) {
        match self.conditions.iter_mut().find(|c| c.type_ == new.type_) {
            Some(old) => {
                new.last_transition_time = if old.status == new.status {
                    old.last_transition_time.clone().or(Some(now))
                } else {
                    Some(now)
                };
                *old = new;
            }
            None => {
                new.last_transition_time = Some(now);
                self.conditions.push(new);
            }
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// DynamoDB endpoint URL the apps use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub dynamodb: Option<String>,
    /// KMS-compatible endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub dashboard: Option<String>,
    /// The ConfigMap holding the resolved topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub topology_config_map: Option<String>,
    /// Infisical-compatible site URL (`parity secrets-api`, parity level 3, provider Local):
    /// point the Infisical SDK's site URL here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub secrets: Option<String>,
}

impl Endpoints {
    pub fn is_empty(&self) -> bool {
        self == &Endpoints::default()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub versions: Vec<KeyVersionStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersionStatus {
    #[schemars(length(max = 128))]
    pub id: String,
    pub created: Time,
    pub state: KeyVersionState,
}

/// A key version's state in status is the keyring's own.
pub use crate::crypto::keyring::VersionState as KeyVersionState;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// What differs, e.g. `table/orders/sortKey`.
    #[schemars(length(max = 255))]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub actual: Option<String>,
}

impl DriftEntry {
    /// One entry, each field cut to the schema's 255 bytes.
    pub fn new(path: &str, expected: &str, actual: &str) -> DriftEntry {
        let cut = |s: &str| {
            let mut s = s.to_string();
            truncate_utf8(&mut s, 255);
            s
        };
        DriftEntry {
            path: cut(path),
            expected: Some(cut(expected)),
            actual: Some(cut(actual)),
        }
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
