//! `ParityEnvironment.spec`: what a user declares. Bounds on every string, list and map keep
//! the API server's CEL cost estimate small; the CEL rules live next to the fields they guard
//! so each message can name the field and the fix.

// Used inside the #[x_kube] attributes, which the lint does not see.
#[allow(unused_imports)]
use kube::core::{ListMerge, Rule};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::formats::{
    AWS_REGION, DATA_KEY, DNS_LABEL, DNS_SUBDOMAIN, HTTP_URL, IMAGE, KMS_KEY_ID, SECRETS_PATH,
    SLUG, VOLUME_SIZE,
};
use super::status::ParityEnvironmentStatus;
/// The tier table's vocabulary, part of the spec.
pub use crate::tier::{KeyProvider, KeySource, PersistenceMode, Tier};

/// The DynamoDB Local image used when `spec.dynamodb.image` is not set. Only referenced:
/// the jar is not open source, so nothing here downloads it.
pub const DEFAULT_DYNAMODB_IMAGE: &str = "amazon/dynamodb-local:2.5.2";
/// The moto server image used for engine Moto when `spec.dynamodb.image` is not set (the
/// name of the upstream image; hack/testenv builds one of that name from PyPI).
pub const DEFAULT_MOTO_IMAGE: &str = "docker.io/motoserver/moto:5.2.5";

/// Go-style duration (`90s`, `15m`, `12h`, `1h30m`) plus whole days (`7d`): the grammar of
/// [`crate::duration::parse_duration`], which the controller and `validate()` use.
pub const DURATION_PATTERN: &str = crate::duration::PATTERN;

/// CEL for "a duration (`spec.ttl`, `spec.keys.rotation.period`) of at least `min`", `min`
/// a Go duration literal. CEL's `duration()` reads Go durations, which have no days, so `d`
/// is read as `h` first: exact for any minimum up to 1h (a nonzero day count still reads as
/// at least 1h, and zero days are zero either way). Guarded by the duration pattern so a
/// malformed value gets the pattern's message rather than an evaluation error.
fn duration_at_least(min: &str) -> String {
    format!(
        "!self.matches('{DURATION_PATTERN}') || duration(self.replace('d', 'h')) >= duration('{min}')"
    )
}

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "parity.dev",
    version = "v1alpha1",
    kind = "ParityEnvironment",
    plural = "parityenvironments",
    singular = "parityenvironment",
    shortname = "penv",
    category = "parity",
    namespaced,
    status = "ParityEnvironmentStatus",
    derive = "PartialEq",
    doc = "A development, CI or staging environment that mirrors staging: DynamoDB, a key hierarchy, secrets and a dashboard.",
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Level", type_ = "integer", json_path = ".spec.parityLevel"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "In-Sync",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InSync\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // `kubectl get penv -o wide` only (priority 1): why it is (not) Ready, when a CI
    // environment's ttl deletes it, and where its dashboard is.
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    // A string: kubectl prints a future `date` as <invalid>.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt", priority = 1),
    printcolumn(
        name = "Dashboard",
        type_ = "string",
        json_path = ".status.endpoints.dashboard",
        priority = 1
    ),
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label of at most 40 characters (it prefixes the names of the objects the operator creates): choose a shorter name starting with a letter")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.dashboard) || !has(self.dashboard.decryption) || self.dashboard.decryption != 'Server' || self.tier == 'Local'")
        .message("spec.dashboard.decryption: Server is allowed only when spec.tier is Local (zero-knowledge outside Local): set decryption to Disabled")
        .field_path(".dashboard.decryption"),
    validation = Rule::new("!has(self.ttl) || self.tier == 'CI'")
        .message("spec.ttl is allowed only when spec.tier is CI: remove spec.ttl or use tier CI")
        .field_path(".ttl"),
    validation = Rule::new("self.tier != 'Staging' || self.parityLevel < 1 || (has(self.dynamodb) && has(self.dynamodb.external))")
        .message("spec.dynamodb.external is required when spec.tier is Staging and parityLevel >= 1 (Staging cannot run DynamoDB Local): set spec.dynamodb.external.endpoint and region")
        .field_path(".dynamodb"),
    validation = Rule::new("self.tier == 'Staging' || !has(self.dynamodb) || !has(self.dynamodb.external)")
        .message("spec.dynamodb.external is allowed only when spec.tier is Staging (Local and CI run DynamoDB Local): remove spec.dynamodb.external")
        .field_path(".dynamodb.external"),
    validation = Rule::new("self.tier != 'Staging' || (has(self.keys) && has(self.keys.provider) && self.keys.provider == 'Kms')")
        .message("spec.keys.provider must be Kms when spec.tier is Staging (staging holds no local root key): set spec.keys.provider to Kms and spec.keys.kms.keyId")
        .field_path(".keys.provider"),
    validation = Rule::new("!has(self.topology) || !has(self.dynamodb) || !has(self.dynamodb.tables) || size(self.dynamodb.tables) == 0")
        .message("spec.topology and spec.dynamodb.tables both declare tables: keep one (spec.topology also holds indexes, TTL and streams)")
        .field_path(".topology"),
    validation = Rule::new("self.tier != 'Staging' || !has(self.mirror)")
        .message("spec.mirror is not allowed when spec.tier is Staging (Staging is the source that others mirror): remove spec.mirror")
        .field_path(".mirror"),
    validation = Rule::new("self.tier != 'Staging' || !has(self.dynamodb) || !has(self.dynamodb.seed)")
        .message("spec.dynamodb.seed is not allowed when spec.tier is Staging (the operator never writes to an external DynamoDB): remove spec.dynamodb.seed")
        .field_path(".dynamodb.seed"),
)]
pub struct ParityEnvironmentSpec {
    /// Which kind of environment this is; decides what may run and what is cut off.
    /// Immutable after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.tier is immutable: delete the environment and create it again with the new tier"))]
    pub tier: Tier,

    /// 0 = keys + secrets; 1 = + DynamoDB with tables; 2 = + streams and the dashboard;
    /// 3 = the KMS and secrets SDK paths exercised over their real wire protocols.
    #[serde(default = "default_parity_level")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3").message("spec.parityLevel must be between 0 and 3: 0 keys+secrets, 1 +DynamoDB, 2 +streams and dashboard, 3 +SDK wire protocols"))]
    pub parity_level: i32,

    /// Copy the topology (tables, key aliases, secret names) of a Staging environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSpec>,

    /// The data tier in full (tables with keys, indexes, TTL and streams; KMS key aliases;
    /// secret names), as `parity capture` writes it. Instead of spec.dynamodb.tables. A
    /// mirroring environment that declares one keeps it and reports how it differs from
    /// its source (condition InSync, status.drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<crate::dynamo::topology::Topology>,

    /// DynamoDB: DynamoDB Local in the cluster (Local, CI) or an external endpoint (Staging).
    #[serde(default)]
    pub dynamodb: DynamoDbSpec,

    /// The key hierarchy's root: a local keyring or an AWS KMS key.
    #[serde(default)]
    pub keys: KeysSpec,

    /// Application secrets: generated locally or synced from Infisical.
    #[serde(default)]
    pub secrets: SecretsSpec,

    /// The internal data dashboard.
    #[serde(default)]
    pub dashboard: DashboardSpec,

    /// CI only: the environment is deleted this long after creation (e.g. `2h`, `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new(duration_at_least("1ms")).message("spec.ttl must be longer than 0s: the environment would be deleted at once"))]
    pub ttl: Option<String>,

    /// Scale every workload to zero, keeping data and keys.
    #[serde(default)]
    pub suspend: bool,

    /// Who may connect to the environment's pods.
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: NetworkSpec,
}

/// What an environment itself declares about its data tier: spec.topology, or the deprecated
/// spec.dynamodb.tables read as a topology's tables, or nothing.
pub fn declared_topology(
    spec: &ParityEnvironmentSpec,
) -> Option<crate::dynamo::topology::Topology> {
    if let Some(t) = &spec.topology {
        return Some(t.clone());
    }
    (!spec.dynamodb.tables.is_empty()).then(|| crate::dynamo::topology::Topology {
        tables: spec.dynamodb.tables.clone(),
        ..Default::default()
    })
}

impl ParityEnvironmentSpec {
    /// Fields that still work but are on their way out, each with what to use instead.
    pub fn deprecations(&self) -> Vec<super::FieldError> {
        let mut out = Vec::new();
        if !self.dynamodb.tables.is_empty() {
            out.push(super::FieldError::new(
                "spec.dynamodb.tables",
                "is deprecated: move the tables to spec.topology.tables (the same fields; spec.topology also holds key aliases and secret names)",
            ));
        }
        out
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Namespace (default): NetworkPolicies let only pods of the environment's namespace
    /// connect to DynamoDB, the key service, secrets-api and the dashboard (and any client
    /// to a NodePort'd Service, when the operator runs with NodePorts). Any: no such policy;
    /// outside Local the key service still refuses dashboards.
    #[serde(default)]
    pub ingress: IngressMode,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum IngressMode {
    #[default]
    Namespace,
    Any,
}

fn default_parity_level() -> i32 {
    1
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.from) != has(self.configMapRef)")
        .message("spec.mirror: set exactly one of spec.mirror.from (a live Staging environment) and spec.mirror.configMapRef (a committed topology, as `parity capture` prints it)"),
)]
pub struct MirrorSpec {
    /// The Staging ParityEnvironment to copy the topology from. Exactly one of from and
    /// configMapRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectRef>,
    /// A ConfigMap in this namespace holding a topology as `parity capture` prints it
    /// (e.g. `kubectl create configmap app-topology --from-file=topology.yaml`): mirrors a
    /// committed topology, no live Staging environment needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<TopologyConfigMapRef>,
    /// What this environment changes in the copy (billing mode, a table name prefix);
    /// everything else is copied as is.
    #[serde(default, skip_serializing_if = "is_default")]
    pub overrides: crate::dynamo::mirror::Overrides,
}

/// The key of spec.mirror.configMapRef when none is given.
pub const DEFAULT_TOPOLOGY_KEY: &str = "topology.yaml";

/// A topology ConfigMap in the environment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyConfigMapRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// The data key holding the topology YAML.
    #[serde(default = "default_topology_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub key: String,
}

fn default_topology_key() -> String {
    DEFAULT_TOPOLOGY_KEY.to_string()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    v == &T::default()
}

/// A reference to a ParityEnvironment, in this namespace unless `namespace` is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub namespace: Option<String>,
}

/// A key of a Secret or ConfigMap in the environment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectKeyRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub key: String,
}

/// A ConfigMap in the environment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.engine) || self.engine != 'Moto' || !has(self.persistence) || !has(self.persistence.mode) || self.persistence.mode != 'Volume'")
        .message("spec.dynamodb.persistence.mode Volume is not supported by engine Moto (it keeps data in memory only): use InMemory, or engine DynamoDBLocal")
        .field_path(".persistence.mode"),
)]
pub struct DynamoDbSpec {
    /// What serves the DynamoDB API in the cluster: DynamoDBLocal (AWS's DynamoDB Local, not
    /// open source, only referenced) or Moto (the open-source moto server; in memory only).
    #[serde(default)]
    pub engine: DynamoDbEngine,

    /// The engine's image (pinned tag or digest); unset means the engine's pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = IMAGE))]
    pub image: Option<String>,

    /// Where DynamoDB keeps its data.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Deprecated: declare tables in spec.topology.tables, which has the same table type.
    /// Tables listed here are read as spec.topology's (unique by name).
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tables: Vec<crate::dynamo::topology::Table>,

    /// Fixtures loaded after the tables exist: a ConfigMap with one `<table>.json` per table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<SeedSpec>,

    /// Staging only: the DynamoDB to use instead of a DynamoDB Local pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDynamoDb>,
}

impl DynamoDbSpec {
    /// spec.dynamodb.image, or the engine's default.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(match self.engine {
            DynamoDbEngine::DynamoDBLocal => DEFAULT_DYNAMODB_IMAGE,
            DynamoDbEngine::Moto => DEFAULT_MOTO_IMAGE,
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DynamoDbEngine {
    /// amazon/dynamodb-local: in memory or on a volume.
    #[default]
    DynamoDBLocal,
    /// moto server (DynamoDB and DynamoDB Streams): in memory only; a restore sidecar
    /// re-creates tables and seeds when it restarts empty.
    Moto,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// InMemory or Volume. Unset means the tier's default (Local: Volume, CI: InMemory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PersistenceMode>,
    /// Size of the volume (Volume mode), e.g. `1Gi`.
    #[serde(default = "default_volume_size")]
    #[schemars(length(max = 32), regex(pattern = VOLUME_SIZE))]
    pub size: String,
    /// StorageClass of the volume; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub storage_class_name: Option<String>,
}

impl Default for PersistenceSpec {
    fn default() -> Self {
        PersistenceSpec {
            mode: None,
            size: default_volume_size(),
            storage_class_name: None,
        }
    }
}

fn default_volume_size() -> String {
    "1Gi".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedSpec {
    /// ConfigMap holding the fixtures.
    pub config_map_ref: LocalObjectRef,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDynamoDb {
    /// e.g. `https://dynamodb.eu-west-1.amazonaws.com`.
    #[schemars(length(min = 1, max = 255), regex(pattern = HTTP_URL))]
    pub endpoint: String,
    #[schemars(length(min = 1, max = 32), regex(pattern = AWS_REGION))]
    pub region: String,
    /// Networks (CIDR) the dashboard may reach DynamoDB on, e.g. the addresses of a DynamoDB
    /// VPC endpoint (and of STS's, with IRSA). Without them the dashboard's egress is any
    /// address on the endpoint's port, which an IP rule cannot tell from AWS KMS's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c) || isIP(c))").message("spec.dynamodb.external.egressCidrs: each entry must be an IP network such as 10.0.0.0/16 (or one address)"))]
    pub egress_cidrs: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'Kms' || (has(self.kms) && self.kms.keyId != '')")
        .message("spec.keys.kms.keyId is required when spec.keys.provider is Kms: set the KMS key id or ARN")
        .field_path(".kms"),
    validation = Rule::new("self.provider != 'Local' || !has(self.local) || !has(self.local.source) || self.local.source != 'Seeded' || has(self.local.seedSecretRef)")
        .message("spec.keys.local.seedSecretRef is required when spec.keys.local.source is Seeded: reference a Secret key holding the seed, or use source Generated")
        .field_path(".local.seedSecretRef"),
)]
pub struct KeysSpec {
    #[serde(default)]
    pub provider: KeyProvider,
    /// The local keyring (provider Local).
    #[serde(default)]
    pub local: LocalKeysSpec,
    /// The AWS KMS key (provider Kms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsSpec>,
    #[serde(default)]
    pub rotation: RotationSpec,
    /// Retain keeps the keyring Secret when the environment is deleted, so re-creating it finds
    /// the same keys; Delete removes it with the environment.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalKeysSpec {
    /// Generated: random root key created once. Seeded: derived deterministically from the
    /// seed Secret (reproducible CI runs).
    #[serde(default)]
    pub source: KeySource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_secret_ref: Option<LocalObjectKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsSpec {
    /// Key id, ARN or alias of the root KMS key (`alias/app`, `arn:aws:kms:...:key/...`, a key
    /// id).
    #[schemars(length(min = 1, max = 2048), regex(pattern = KMS_KEY_ID))]
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), regex(pattern = AWS_REGION))]
    pub region: Option<String>,
    /// A KMS-compatible endpoint instead of AWS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = HTTP_URL))]
    pub endpoint: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// How often a new key-encryption version is made, e.g. `720h` or `30d`; unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new(duration_at_least("1m")).message("spec.keys.rotation.period must be at least 1m: rotating faster would churn key versions"))]
    pub period: Option<String>,
    /// How many key versions stay usable for decryption (>= 1).
    #[serde(default = "default_retain_versions")]
    #[schemars(range(max = 100))]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.keys.rotation.retainVersions must be at least 1: the active version must be kept"))]
    pub retain_versions: i32,
}

impl Default for RotationSpec {
    fn default() -> Self {
        RotationSpec {
            period: None,
            retain_versions: default_retain_versions(),
        }
    }
}

fn default_retain_versions() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'Infisical' || has(self.infisical)")
        .message("spec.secrets.infisical is required when spec.secrets.provider is Infisical: set projectSlug and envSlug")
        .field_path(".infisical"),
)]
pub struct SecretsSpec {
    #[serde(default)]
    pub provider: SecretsProvider,
    /// The secrets.schema.json that names and types the secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<LocalObjectKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infisical: Option<InfisicalSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SecretsProvider {
    #[default]
    Local,
    Infisical,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfisicalSpec {
    #[schemars(length(min = 1, max = 63), regex(pattern = SLUG))]
    pub project_slug: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = SLUG))]
    pub env_slug: String,
    #[serde(default = "default_secrets_path")]
    #[schemars(length(min = 1, max = 255), regex(pattern = SECRETS_PATH))]
    pub secrets_path: String,
}

fn default_secrets_path() -> String {
    "/".to_string()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSpec {
    /// Run the dashboard (from parityLevel 2).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Server: the dashboard decrypts fields through the key service (tier Local only).
    /// Disabled: it shows ciphertext only and holds no key material. (Not `Off`: YAML 1.1
    /// readers such as kubectl turn an unquoted Off into false.)
    #[serde(default)]
    pub decryption: Decryption,
    /// Host names (an Ingress's, say) the dashboard answers to besides localhost, IP
    /// addresses and its Service's DNS names; requests for other names get 421 (DNS
    /// rebinding). `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^(\*|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")
        )
    )]
    pub allowed_hosts: Vec<String>,
    /// Networks (CIDR) of the authenticating proxies whose X-Forwarded-User header names the
    /// user in the dashboard's audit log. Empty: the header is ignored (`anonymous`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c) || isIP(c))").message("spec.dashboard.trustedProxies: each entry must be an IP network such as 10.0.0.0/8 (or one address)"))]
    pub trusted_proxies: Vec<String>,
}

impl Default for DashboardSpec {
    fn default() -> Self {
        DashboardSpec {
            enabled: true,
            decryption: Decryption::Disabled,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Decryption {
    Server,
    #[default]
    Disabled,
}
