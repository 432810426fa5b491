//! Names, labels and owner references shared by every object of an environment.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::api::ValidatedSpec;

pub const LABEL_ENVIRONMENT: &str = "parity.dev/environment";
pub const LABEL_COMPONENT: &str = "parity.dev/component";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_APP_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "parity-operator";

/// The keyring Secret is created once and never overwritten by apply.
pub const ANNOTATION_CREATE_ONCE: &str = "parity.dev/create-once";
/// The uid of the environment a keyring Secret was made for. The keyring carries no owner
/// reference (garbage collection must never remove key material), so this is how the
/// operator tells its own keyring from a stranger's.
pub const ANNOTATION_ENVIRONMENT_UID: &str = "parity.dev/environment-uid";
/// Set on a keyring kept by deletionPolicy Retain when its environment was deleted: the next
/// environment of the same name adopts it.
pub const ANNOTATION_RETAINED: &str = "parity.dev/retained";
pub use crate::api::ANNOTATION_ADOPT_EXISTING;
/// On an environment: the key id of a keyring that was lost, to accept a new root in its place.
pub const ANNOTATION_REPLACE_LOST_KEYRING: &str = "parity.dev/replace-lost-keyring";
/// spec.keys.deletionPolicy copied onto the keyring Secret (Retain | Delete).
pub const ANNOTATION_DELETION_POLICY: &str = "parity.dev/deletion-policy";
/// The hash of the inputs a bootstrap Job was made from.
pub const ANNOTATION_SPEC_HASH: &str = "parity.dev/spec-hash";

/// What an object is for; also its `parity.dev/component` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Keyring,
    Kms,
    DynamoDb,
    Bootstrap,
    Dashboard,
    Topology,
    NetworkPolicy,
    SecretsApi,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Keyring => "keyring",
            Component::Kms => "kms",
            Component::DynamoDb => "dynamodb",
            Component::Bootstrap => "bootstrap",
            Component::Dashboard => "dashboard",
            Component::Topology => "topology",
            Component::NetworkPolicy => "network-policy",
            Component::SecretsApi => "secrets-api",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        [
            Component::Keyring,
            Component::Kms,
            Component::DynamoDb,
            Component::Bootstrap,
            Component::Dashboard,
            Component::Topology,
            Component::NetworkPolicy,
            Component::SecretsApi,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// Object names, all `<env>-<suffix>`; env names are at most 40 characters so these stay
/// valid DNS-1035 labels.
pub mod names {
    pub fn keyring(env: &str) -> String {
        format!("{env}-keyring")
    }
    pub fn kms_credentials(env: &str) -> String {
        format!("{env}-kms-credentials")
    }
    pub fn kms(env: &str) -> String {
        format!("{env}-kms")
    }
    pub fn dynamodb(env: &str) -> String {
        format!("{env}-dynamodb")
    }
    pub fn dynamodb_data(env: &str) -> String {
        format!("{env}-dynamodb-data")
    }
    pub fn dashboard(env: &str) -> String {
        format!("{env}-dashboard")
    }
    pub fn topology(env: &str) -> String {
        format!("{env}-topology")
    }
    /// The Secret holding the application secrets (Local provider).
    pub fn secrets(env: &str) -> String {
        format!("{env}-secrets")
    }
    /// `parity secrets-api` (the Infisical-compatible endpoint) and its credentials.
    pub fn secrets_api(env: &str) -> String {
        format!("{env}-secrets-api")
    }
    pub fn secrets_api_credentials(env: &str) -> String {
        format!("{env}-secrets-api-credentials")
    }
    /// How apps connect (endpoints, credentials, secrets), for `envFrom`.
    pub fn connection(env: &str) -> String {
        format!("{env}-connection")
    }
    /// The key of the secrets' rollout hash.
    pub fn rollout_key(env: &str) -> String {
        format!("{env}-rollout-key")
    }
    pub fn bootstrap(env: &str, hash: &str) -> String {
        format!("{env}-bootstrap-{hash}")
    }
    pub fn service_account(env: &str, component: super::Component) -> String {
        format!("{env}-{}", component.as_str())
    }
    /// `<env>-kms-ingress`, `<env>-dynamodb-ingress`, ...
    pub fn ingress_policy(env: &str, component: super::Component) -> String {
        format!("{env}-{}-ingress", component.as_str())
    }
    pub fn dashboard_egress_policy(env: &str) -> String {
        format!("{env}-dashboard-egress")
    }
}

/// Labels on every object of the environment.
pub fn labels(env: &ValidatedSpec, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            LABEL_NAME.to_string(),
            format!("parity-{}", component.as_str()),
        ),
        (LABEL_INSTANCE.to_string(), env.name.clone()),
        (
            LABEL_APP_COMPONENT.to_string(),
            component.as_str().to_string(),
        ),
        (LABEL_PART_OF.to_string(), "parity".to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_ENVIRONMENT.to_string(), env.name.clone()),
        (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
    ])
}

/// The stable subset used in selectors (a Deployment's selector is immutable).
pub fn selector_labels(env: &ValidatedSpec, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ENVIRONMENT.to_string(), env.name.clone()),
        (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
    ])
}

pub fn selector(env: &ValidatedSpec, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(env, component)),
        ..Default::default()
    }
}

/// The controller owner reference to the environment: garbage collection removes the object
/// with it.
pub fn owner_reference(env: &ValidatedSpec) -> OwnerReference {
    OwnerReference {
        api_version: "parity.dev/v1alpha1".to_string(),
        kind: "ParityEnvironment".to_string(),
        name: env.name.clone(),
        uid: env.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn object_meta(env: &ValidatedSpec, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(env.namespace.clone()),
        labels: Some(labels(env, component)),
        owner_references: Some(vec![owner_reference(env)]),
        ..Default::default()
    }
}
