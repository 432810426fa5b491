//! The declared shape of an environment's data tier: DynamoDB tables with their keys,
//! indexes, TTL and streams, plus the KMS key aliases and secret names apps expect.
//!
//! Pure: parsing (with errors that name the field path) and validation. The same type is
//! embedded in the CRD (`JsonSchema`), written to the `<env>-topology` ConfigMap, produced by
//! `parity capture` and consumed by `parity bootstrap` and `parity diff`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

// Used inside the #[x_kube] attributes, which the lint does not see.
use kube::KubeSchema;
#[allow(unused_imports)]
use kube::core::{ListMerge, Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::formats::{KMS_ALIAS, SECRET_NAME, TABLE_NAME};

/// Bounds shared by the schema attributes and [`Topology::validate`] (input that bypasses the
/// API server, e.g. a file given to `parity bootstrap`, gets the same limits).
pub mod limits {
    pub const MAX_TABLES: usize = 64;
    /// DynamoDB's own quota per table.
    pub const MAX_GSIS: usize = 20;
    /// DynamoDB's own quota per table.
    pub const MAX_LSIS: usize = 5;
    /// DynamoDB's limit on projected non-key attributes across all indexes of a table.
    pub const MAX_NON_KEY_ATTRIBUTES: usize = 100;
    pub const MAX_KMS_KEY_ALIASES: usize = 64;
    pub const MAX_SECRET_NAMES: usize = 128;
    pub const MAX_NAME_LEN: usize = 255;
    pub const MAX_ALIAS_LEN: usize = 256;
    pub const MAX_SECRET_NAME_LEN: usize = 128;
    pub const MAX_CAPACITY_UNITS: i64 = 1_000_000;
}
use limits::*;

/// Declares a closed set of string values with an error that lists the allowed values, a
/// JSON schema `enum`, and `as_str` for the AWS wire names.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            fn allowed() -> String {
                [$($wire),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(format!("must be one of {} (got {other:?})", Self::allowed())),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": [$($wire),+] })
            }
        }
    };
}

string_enum! {
    /// DynamoDB scalar types allowed for key attributes.
    AttributeType { S = "S", N = "N", B = "B" }
}

string_enum! {
    #[derive(Default)]
    BillingMode {
        #[default]
        PayPerRequest = "PAY_PER_REQUEST",
        Provisioned = "PROVISIONED",
    }
}

string_enum! {
    #[derive(Default)]
    ProjectionType {
        #[default]
        All = "ALL",
        KeysOnly = "KEYS_ONLY",
        Include = "INCLUDE",
    }
}

string_enum! {
    StreamViewType {
        NewImage = "NEW_IMAGE",
        OldImage = "OLD_IMAGE",
        NewAndOldImages = "NEW_AND_OLD_IMAGES",
        KeysOnly = "KEYS_ONLY",
    }
}

/// The data tier of one environment. The CEL rules here and on [`Table`],
/// [`GlobalSecondaryIndex`] and [`Projection`] are [`Topology::validate`]'s checks again, for
/// the API server (`spec.topology`); both run on the cases of tests/fixtures/admission_cases.yaml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// DynamoDB tables (unique by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tables: Vec<Table>,
    /// KMS key aliases the apps use (e.g. `alias/orders`), unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 7, max = 256), regex(pattern = KMS_ALIAS)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(a, !a.startsWith('alias/aws/'))")
            .message("spec.topology.kmsKeyAliases: the alias/aws/ prefix is reserved for AWS managed keys: choose another alias name"),
    )]
    pub kms_key_aliases: Vec<String>,
    /// Names of the secrets the apps read, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(min = 1, max = 128), regex(pattern = SECRET_NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub secret_names: Vec<String>,
}

/// CEL: every key attribute of the table and its indexes that shares a name with another has
/// its type (DynamoDB has one AttributeDefinition per name). Pairwise over the key schemas
/// rather than over one concatenated list (CEL cannot join lists of differently typed
/// objects), and in three rules, [`KeyTypes`], because the API server's cost estimate of one
/// rule doing it all is over its per-rule budget with 64 tables of 20 global indexes.
enum KeyTypes {
    /// Global index keys against the table's keys, and local index sort keys against all.
    AgainstTable,
    /// Global index partition keys against every global index key.
    GlobalPartitionKeys,
    /// Global index sort keys against every global index key.
    GlobalSortKeys,
}

fn one_type_per_key_attribute(part: KeyTypes) -> String {
    let same = |a: &str, b: &str| format!("({a}.name != {b}.name || {a}.type == {b}.type)");
    let gsis = "self.globalSecondaryIndexes";
    let against_gsis = |a: &str| {
        format!(
            "{gsis}.all(h, {} && (!has(h.sortKey) || {}))",
            same(a, "h.partitionKey"),
            same(a, "h.sortKey")
        )
    };
    match part {
        KeyTypes::AgainstTable => format!(
            "(!has({gsis}) || {gsis}.all(g, {} && (!has(self.sortKey) || {}) \
             && (!has(g.sortKey) || ({} && (!has(self.sortKey) || {}))))) \
             && (!has(self.localSecondaryIndexes) || self.localSecondaryIndexes.all(l, \
             (!has(self.sortKey) || {}) && self.localSecondaryIndexes.all(m, {}) \
             && (!has({gsis}) || {gsis}.all(g, {} && (!has(g.sortKey) || {})))))",
            same("g.partitionKey", "self.partitionKey"),
            same("g.partitionKey", "self.sortKey"),
            same("g.sortKey", "self.partitionKey"),
            same("g.sortKey", "self.sortKey"),
            same("l.sortKey", "self.sortKey"),
            same("l.sortKey", "m.sortKey"),
            same("l.sortKey", "g.partitionKey"),
            same("l.sortKey", "g.sortKey"),
        ),
        KeyTypes::GlobalPartitionKeys => format!(
            "!has({gsis}) || {gsis}.all(g, {})",
            against_gsis("g.partitionKey")
        ),
        KeyTypes::GlobalSortKeys => format!(
            "!has({gsis}) || {gsis}.all(g, !has(g.sortKey) || {})",
            against_gsis("g.sortKey")
        ),
    }
}

/// The message of the three [`KeyTypes`] rules.
const KEY_TYPES_MESSAGE: &str = "a key attribute is declared with two types: an attribute has one type in all key schemas of the table and its indexes";

/// One DynamoDB table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.sortKey) || self.sortKey.name != self.partitionKey.name")
        .message("sortKey.name must differ from the partition key: rename one of them")
        .field_path(".sortKey.name"),
    validation = Rule::new("has(self.billingMode) && self.billingMode == 'PROVISIONED' ? has(self.provisionedThroughput) : !has(self.provisionedThroughput)")
        .message("provisionedThroughput is required when billingMode is PROVISIONED and only allowed then: set or remove it, or change billingMode")
        .field_path(".provisionedThroughput"),
    validation = Rule::new("!has(self.globalSecondaryIndexes) || self.globalSecondaryIndexes.all(g, has(g.provisionedThroughput) == (has(self.billingMode) && self.billingMode == 'PROVISIONED'))")
        .message("globalSecondaryIndexes[].provisionedThroughput is required when the table's billingMode is PROVISIONED and only allowed then")
        .field_path(".globalSecondaryIndexes"),
    validation = Rule::new("!has(self.localSecondaryIndexes) || size(self.localSecondaryIndexes) == 0 || has(self.sortKey)")
        .message("localSecondaryIndexes need a table with a sortKey: add sortKey or use a global index")
        .field_path(".localSecondaryIndexes"),
    validation = Rule::new("!has(self.localSecondaryIndexes) || self.localSecondaryIndexes.all(l, l.sortKey.name != self.partitionKey.name)")
        .message("localSecondaryIndexes[].sortKey.name must differ from the table's partition key")
        .field_path(".localSecondaryIndexes"),
    validation = Rule::new("(has(self.globalSecondaryIndexes) ? self.globalSecondaryIndexes.map(g, g.name) : []).all(n, !has(self.localSecondaryIndexes) || !self.localSecondaryIndexes.exists(l, l.name == n))")
        .message("duplicate index name: global and local index names of a table must be unique"),
    validation = Rule::new(one_type_per_key_attribute(KeyTypes::AgainstTable)).message(KEY_TYPES_MESSAGE),
    validation = Rule::new(one_type_per_key_attribute(KeyTypes::GlobalPartitionKeys)).message(KEY_TYPES_MESSAGE),
    validation = Rule::new(one_type_per_key_attribute(KeyTypes::GlobalSortKeys)).message(KEY_TYPES_MESSAGE),
    validation = Rule::new("(has(self.globalSecondaryIndexes) ? self.globalSecondaryIndexes.map(g, has(g.projection) && has(g.projection.nonKeyAttributes) ? size(g.projection.nonKeyAttributes) : 0).sum() : 0) + (has(self.localSecondaryIndexes) ? self.localSecondaryIndexes.map(l, has(l.projection) && has(l.projection.nonKeyAttributes) ? size(l.projection.nonKeyAttributes) : 0).sum() : 0) <= 100")
        .message("at most 100 projected nonKeyAttributes across all indexes of a table (DynamoDB's limit)"),
)]
pub struct Table {
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME))]
    pub name: String,
    pub partition_key: KeyAttribute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,
    #[serde(default)]
    pub billing_mode: BillingMode,
    /// Required with billingMode PROVISIONED, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<Throughput>,
    /// Unique by name within the table, also across the local indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    /// Fixed at table creation: changing them needs a re-create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub local_secondary_indexes: Vec<LocalSecondaryIndex>,
    /// Attribute holding the expiry time (epoch seconds); absent means TTL disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub ttl_attribute: Option<String>,
    /// Stream view type; absent means no stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<StreamViewType>,
    /// Point-in-time recovery (continuous backups).
    #[serde(default, skip_serializing_if = "is_false")]
    pub point_in_time_recovery: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyAttribute {
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: AttributeType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Throughput {
    #[schemars(range(min = 1, max = 1000000))]
    pub read_capacity_units: i64,
    #[schemars(range(min = 1, max = 1000000))]
    pub write_capacity_units: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.sortKey) || self.sortKey.name != self.partitionKey.name")
        .message("sortKey.name must differ from the index's partition key")
        .field_path(".sortKey.name"),
)]
pub struct GlobalSecondaryIndex {
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME))]
    pub name: String,
    pub partition_key: KeyAttribute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,
    #[serde(default)]
    pub projection: Projection,
    /// Required when the table's billingMode is PROVISIONED, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<Throughput>,
}

/// Shares the table's partition key; only the sort key differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalSecondaryIndex {
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME))]
    pub name: String,
    pub sort_key: KeyAttribute,
    #[serde(default)]
    pub projection: Projection,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("(has(self.type) && self.type == 'INCLUDE') == (has(self.nonKeyAttributes) && size(self.nonKeyAttributes) > 0)")
        .message("projection.nonKeyAttributes is required (at least one) when type is INCLUDE and only allowed then")
        .field_path(".nonKeyAttributes"),
)]
pub struct Projection {
    #[serde(rename = "type", default)]
    pub projection_type: ProjectionType,
    /// Only with type INCLUDE; unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 255)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub non_key_attributes: Vec<String>,
}

pub use crate::field_error::FieldError;

/// Why a topology document was rejected: a parse error or every validation problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{0}")]
    Parse(FieldError),
    #[error("invalid topology: {}", crate::field_error::describe(.0))]
    Invalid(Vec<FieldError>),
}

impl TopologyError {
    /// Every problem, one per entry (a parse error is one).
    pub fn errors(&self) -> Vec<FieldError> {
        match self {
            TopologyError::Parse(e) => vec![e.clone()],
            TopologyError::Invalid(v) => v.clone(),
        }
    }
}

/// Validation stops collecting after this many problems so a huge bad document cannot make
/// an unbounded error (which also ends up in a status condition).
const MAX_ERRORS: usize = 50;

impl Topology {
    /// Parses YAML (or JSON, a subset) and validates it. Errors name the field path.
    pub fn from_yaml_str(text: &str) -> Result<Topology, TopologyError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let topology: Topology = serde_path_to_error::deserialize(de).map_err(|e| {
            TopologyError::Parse(FieldError {
                path: path_or_root(&e.path().to_string()),
                message: strip_yaml_path(&e.inner().to_string()),
            })
        })?;
        topology.validate()?;
        Ok(topology)
    }

    /// Parses a document that is a plain topology or a ParityEnvironment (anything with
    /// `kind: ParityEnvironment`), whose `spec.topology` is taken.
    pub fn from_document_str(text: &str) -> Result<Topology, TopologyError> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            TopologyError::Parse(FieldError {
                path: "(document)".into(),
                message: e.to_string(),
            })
        })?;
        let is_env = value
            .get("kind")
            .and_then(serde_yaml::Value::as_str)
            .is_some_and(|k| k == "ParityEnvironment");
        if !is_env {
            return Topology::from_yaml_str(text);
        }
        let inner = value
            .get("spec")
            .and_then(|s| s.get("topology"))
            .cloned()
            .ok_or_else(|| {
                TopologyError::Parse(FieldError {
                    path: "spec.topology".into(),
                    message: "missing: this ParityEnvironment declares no topology".into(),
                })
            })?;
        let topology: Topology = serde_path_to_error::deserialize(inner).map_err(|e| {
            TopologyError::Parse(FieldError {
                path: format!("spec.topology.{}", e.path())
                    .trim_end_matches(".")
                    .into(),
                message: e.inner().to_string(),
            })
        })?;
        topology.validate().map_err(|e| match e {
            TopologyError::Invalid(v) => TopologyError::Invalid(
                v.into_iter()
                    .map(|f| FieldError {
                        path: format!("spec.topology.{}", f.path),
                        message: f.message,
                    })
                    .collect(),
            ),
            other => other,
        })?;
        Ok(topology)
    }

    /// YAML with the fields in declaration order (stable output for capture and ConfigMaps).
    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings, numbers and enums cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Every problem in the topology, with the field path; stops after 50.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut v = Validator::default();
        v.topology(self);
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(TopologyError::Invalid(v.errors))
        }
    }
}

/// serde_yaml starts its messages with its own (coarser) path; ours is already in front.
fn strip_yaml_path(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((head, rest))
            if !head.is_empty()
                && head.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'[' | b']' | b'_')
                }) =>
        {
            rest.to_string()
        }
        _ => msg.to_string(),
    }
}

fn path_or_root(p: &str) -> String {
    if p.is_empty() || p == "." {
        "(document)".into()
    } else {
        p.into()
    }
}

impl Table {
    /// The table's key attributes and every index key attribute, with their types, in
    /// first-declared order (the AttributeDefinitions DynamoDB wants).
    pub fn attribute_definitions(&self) -> Vec<KeyAttribute> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let keys = std::iter::once(&self.partition_key)
            .chain(self.sort_key.as_ref())
            .chain(
                self.global_secondary_indexes
                    .iter()
                    .flat_map(|g| std::iter::once(&g.partition_key).chain(g.sort_key.as_ref())),
            )
            .chain(self.local_secondary_indexes.iter().map(|l| &l.sort_key));
        for k in keys {
            if seen.insert(k.name.clone()) {
                out.push(k.clone());
            }
        }
        out
    }

    /// The primary key attributes (partition, then sort).
    pub fn key_attributes(&self) -> Vec<&KeyAttribute> {
        std::iter::once(&self.partition_key)
            .chain(self.sort_key.as_ref())
            .collect()
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

fn valid_resource_name(s: &str) -> bool {
    (3..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FieldError {
                path: path.into(),
                message: message.into(),
            });
        }
    }

    fn topology(&mut self, t: &Topology) {
        if t.tables.len() > MAX_TABLES {
            self.err(
                "tables",
                format!("at most {MAX_TABLES} tables (got {})", t.tables.len()),
            );
        }
        let mut names = BTreeMap::new();
        for (i, table) in t.tables.iter().enumerate() {
            let path = format!("tables[{i}]");
            if let Some(first) = names.insert(table.name.as_str(), i) {
                self.err(
                    format!("{path}.name"),
                    format!(
                        "duplicate table name {:?} (also tables[{first}])",
                        table.name
                    ),
                );
            }
            self.table(&path, table);
        }

        if t.kms_key_aliases.len() > MAX_KMS_KEY_ALIASES {
            self.err(
                "kmsKeyAliases",
                format!("at most {MAX_KMS_KEY_ALIASES} aliases"),
            );
        }
        let mut aliases = BTreeSet::new();
        for (i, a) in t.kms_key_aliases.iter().enumerate() {
            let path = format!("kmsKeyAliases[{i}]");
            let body = a.strip_prefix("alias/").unwrap_or("");
            if body.is_empty()
                || a.len() > MAX_ALIAS_LEN
                || !body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
            {
                self.err(
                    path,
                    format!(
                        "must be alias/<name> with letters, digits, / _ - (max {MAX_ALIAS_LEN} chars), got {a:?}"
                    ),
                );
            } else if body.starts_with("aws/") {
                self.err(
                    path,
                    "the alias/aws/ prefix is reserved for AWS managed keys",
                );
            } else if !aliases.insert(a.as_str()) {
                self.err(path, format!("duplicate alias {a:?}"));
            }
        }

        if t.secret_names.len() > MAX_SECRET_NAMES {
            self.err("secretNames", format!("at most {MAX_SECRET_NAMES} names"));
        }
        let mut secrets = BTreeSet::new();
        for (i, s) in t.secret_names.iter().enumerate() {
            let path = format!("secretNames[{i}]");
            if s.is_empty()
                || s.len() > MAX_SECRET_NAME_LEN
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
            {
                self.err(
                    path,
                    format!("must be 1-{MAX_SECRET_NAME_LEN} letters, digits, _ . - /, got {s:?}"),
                );
            } else if !secrets.insert(s.as_str()) {
                self.err(path, format!("duplicate secret name {s:?}"));
            }
        }
    }

    fn key(
        &mut self,
        path: &str,
        k: &KeyAttribute,
        types: &mut BTreeMap<String, (AttributeType, String)>,
    ) {
        if k.name.is_empty() || k.name.len() > MAX_NAME_LEN {
            self.err(
                format!("{path}.name"),
                format!("must be 1-{MAX_NAME_LEN} bytes"),
            );
            return;
        }
        match types.get(&k.name) {
            Some((t, first)) if *t != k.attr_type => self.err(
                format!("{path}.type"),
                format!(
                    "attribute {:?} is declared {} at {first}; an attribute has one type in all key schemas",
                    k.name, t
                ),
            ),
            Some(_) => {}
            None => {
                types.insert(k.name.clone(), (k.attr_type, path.to_string()));
            }
        }
    }

    fn throughput(&mut self, path: &str, billing: BillingMode, t: Option<&Throughput>) {
        match (billing, t) {
            (BillingMode::Provisioned, None) => self.err(
                format!("{path}.provisionedThroughput"),
                "required when billingMode is PROVISIONED",
            ),
            (BillingMode::PayPerRequest, Some(_)) => self.err(
                format!("{path}.provisionedThroughput"),
                "only allowed when billingMode is PROVISIONED",
            ),
            (_, Some(t)) => {
                for (field, v) in [
                    ("readCapacityUnits", t.read_capacity_units),
                    ("writeCapacityUnits", t.write_capacity_units),
                ] {
                    if !(1..=MAX_CAPACITY_UNITS).contains(&v) {
                        self.err(
                            format!("{path}.provisionedThroughput.{field}"),
                            format!("must be between 1 and {MAX_CAPACITY_UNITS} (got {v})"),
                        );
                    }
                }
            }
            (BillingMode::PayPerRequest, None) => {}
        }
    }

    fn projection(&mut self, path: &str, p: &Projection) -> usize {
        let path = format!("{path}.projection");
        match p.projection_type {
            ProjectionType::Include => {
                if p.non_key_attributes.is_empty() {
                    self.err(
                        format!("{path}.nonKeyAttributes"),
                        "required (at least one) when type is INCLUDE",
                    );
                }
            }
            other => {
                if !p.non_key_attributes.is_empty() {
                    self.err(
                        format!("{path}.nonKeyAttributes"),
                        format!("only allowed when type is INCLUDE (type is {other})"),
                    );
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, a) in p.non_key_attributes.iter().enumerate() {
            if a.is_empty() || a.len() > MAX_NAME_LEN {
                self.err(
                    format!("{path}.nonKeyAttributes[{i}]"),
                    format!("must be 1-{MAX_NAME_LEN} bytes"),
                );
            } else if !seen.insert(a) {
                self.err(
                    format!("{path}.nonKeyAttributes[{i}]"),
                    format!("duplicate attribute {a:?}"),
                );
            }
        }
        p.non_key_attributes.len()
    }

    fn table(&mut self, path: &str, t: &Table) {
        if !valid_resource_name(&t.name) {
            self.err(
                format!("{path}.name"),
                format!(
                    "must be 3-255 characters of letters, digits, _ . - (got {:?})",
                    t.name
                ),
            );
        }
        let mut types = BTreeMap::new();
        self.key(
            &format!("{path}.partitionKey"),
            &t.partition_key,
            &mut types,
        );
        if let Some(sk) = &t.sort_key {
            if sk.name == t.partition_key.name {
                self.err(
                    format!("{path}.sortKey.name"),
                    "must differ from the partition key",
                );
            } else {
                self.key(&format!("{path}.sortKey"), sk, &mut types);
            }
        }
        self.throughput(path, t.billing_mode, t.provisioned_throughput.as_ref());

        let mut index_names: BTreeMap<&str, String> = BTreeMap::new();
        let mut projected = 0;
        if t.global_secondary_indexes.len() > MAX_GSIS {
            self.err(
                format!("{path}.globalSecondaryIndexes"),
                format!("at most {MAX_GSIS} per table"),
            );
        }
        for (i, g) in t.global_secondary_indexes.iter().enumerate() {
            let gp = format!("{path}.globalSecondaryIndexes[{i}]");
            self.index_name(&gp, &g.name, &mut index_names);
            self.key(&format!("{gp}.partitionKey"), &g.partition_key, &mut types);
            if let Some(sk) = &g.sort_key {
                if sk.name == g.partition_key.name {
                    self.err(
                        format!("{gp}.sortKey.name"),
                        "must differ from the partition key",
                    );
                } else {
                    self.key(&format!("{gp}.sortKey"), sk, &mut types);
                }
            }
            projected += self.projection(&gp, &g.projection);
            self.throughput(&gp, t.billing_mode, g.provisioned_throughput.as_ref());
        }

        if t.local_secondary_indexes.len() > MAX_LSIS {
            self.err(
                format!("{path}.localSecondaryIndexes"),
                format!("at most {MAX_LSIS} per table"),
            );
        }
        if !t.local_secondary_indexes.is_empty() && t.sort_key.is_none() {
            self.err(
                format!("{path}.localSecondaryIndexes"),
                "need a table with a sortKey",
            );
        }
        for (i, l) in t.local_secondary_indexes.iter().enumerate() {
            let lp = format!("{path}.localSecondaryIndexes[{i}]");
            self.index_name(&lp, &l.name, &mut index_names);
            if l.sort_key.name == t.partition_key.name {
                self.err(
                    format!("{lp}.sortKey.name"),
                    "must differ from the table's partition key",
                );
            } else {
                self.key(&format!("{lp}.sortKey"), &l.sort_key, &mut types);
            }
            projected += self.projection(&lp, &l.projection);
        }
        if projected > MAX_NON_KEY_ATTRIBUTES {
            self.err(
                path.to_string(),
                format!(
                    "at most {MAX_NON_KEY_ATTRIBUTES} projected nonKeyAttributes across all indexes (got {projected})"
                ),
            );
        }

        if let Some(ttl) = &t.ttl_attribute
            && (ttl.is_empty() || ttl.len() > MAX_NAME_LEN)
        {
            self.err(
                format!("{path}.ttlAttribute"),
                format!("must be 1-{MAX_NAME_LEN} bytes"),
            );
        }
    }

    fn index_name<'a>(&mut self, path: &str, name: &'a str, seen: &mut BTreeMap<&'a str, String>) {
        if !valid_resource_name(name) {
            self.err(
                format!("{path}.name"),
                format!("must be 3-255 characters of letters, digits, _ . - (got {name:?})"),
            );
        }
        if let Some(first) = seen.get(name) {
            self.err(
                format!("{path}.name"),
                format!("duplicate index name {name:?} (also {first})"),
            );
        } else {
            seen.insert(name, path.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: S }
    globalSecondaryIndexes:
      - name: byCustomer
        partitionKey: { name: customerId, type: S }
        sortKey: { name: createdAt, type: N }
        projection: { type: INCLUDE, nonKeyAttributes: [total] }
    localSecondaryIndexes:
      - name: byStatus
        sortKey: { name: status, type: S }
        projection: { type: KEYS_ONLY }
    ttlAttribute: expiresAt
    streamViewType: NEW_AND_OLD_IMAGES
  - name: users
    partitionKey: { name: id, type: S }
    billingMode: PROVISIONED
    provisionedThroughput: { readCapacityUnits: 5, writeCapacityUnits: 5 }
kmsKeyAliases: [alias/orders]
secretNames: [STRIPE_KEY]
"#;

    #[test]
    fn parses_a_full_topology_and_round_trips_through_yaml() {
        let t = Topology::from_yaml_str(GOOD).unwrap();
        assert_eq!(t.tables.len(), 2);
        let orders = &t.tables[0];
        assert_eq!(orders.billing_mode, BillingMode::PayPerRequest);
        assert_eq!(
            orders.global_secondary_indexes[0]
                .projection
                .projection_type,
            ProjectionType::Include
        );
        assert_eq!(
            orders.stream_view_type,
            Some(StreamViewType::NewAndOldImages)
        );
        let again = Topology::from_yaml_str(&t.to_yaml()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn a_bad_enum_value_names_its_path_and_the_allowed_values() {
        let doc = GOOD.replace(
            "{ name: customerId, type: S }",
            "{ name: customerId, type: X }",
        );
        let err = Topology::from_yaml_str(&doc).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "tables[0].globalSecondaryIndexes[0].partitionKey.type: must be one of S, N, B (got \"X\")"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let doc = GOOD.replace("ttlAttribute:", "ttlAtribute:");
        let err = Topology::from_yaml_str(&doc).unwrap_err().to_string();
        assert!(
            err.starts_with("tables[0].ttlAtribute: unknown field `ttlAtribute`, expected one of"),
            "{err}"
        );
        assert!(err.ends_with("at line 15 column 5"), "{err}");
    }

    fn invalid(doc: &str) -> Vec<String> {
        match Topology::from_yaml_str(doc) {
            Err(TopologyError::Invalid(v)) => v.iter().map(ToString::to_string).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let doc = r#"
tables:
  - name: ab
    partitionKey: { name: pk, type: S }
    billingMode: PROVISIONED
    globalSecondaryIndexes:
      - name: g1
        partitionKey: { name: pk, type: N }
        projection: { type: ALL, nonKeyAttributes: [x] }
    localSecondaryIndexes:
      - name: l1x
        sortKey: { name: s, type: S }
  - name: ab
    partitionKey: { name: id, type: S }
    provisionedThroughput: { readCapacityUnits: 0, writeCapacityUnits: 1 }
kmsKeyAliases: [orders, alias/aws/x]
secretNames: ["bad name"]
"#;
        let errs = invalid(doc);
        let expect = [
            "tables[0].name: must be 3-255 characters",
            "tables[0].provisionedThroughput: required when billingMode is PROVISIONED",
            "tables[0].globalSecondaryIndexes[0].name: must be 3-255",
            "tables[0].globalSecondaryIndexes[0].partitionKey.type: attribute \"pk\" is declared S at tables[0].partitionKey",
            "tables[0].globalSecondaryIndexes[0].projection.nonKeyAttributes: only allowed when type is INCLUDE",
            "tables[0].globalSecondaryIndexes[0].provisionedThroughput: required",
            "tables[0].localSecondaryIndexes: need a table with a sortKey",
            "tables[1].name: duplicate table name",
            "tables[1].name: must be 3-255",
            "tables[1].provisionedThroughput: only allowed when billingMode is PROVISIONED",
            "kmsKeyAliases[0]: must be alias/<name>",
            "kmsKeyAliases[1]: the alias/aws/ prefix is reserved",
            "secretNames[0]: must be 1-128",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|got| got.starts_with(e)),
                "missing {e:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    }

    #[test]
    fn a_parity_environment_document_yields_its_spec_topology() {
        let doc = format!(
            "apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\nmetadata: {{name: s}}\nspec:\n  tier: Staging\n  topology:\n{}",
            GOOD.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        let t = Topology::from_document_str(&doc).unwrap();
        assert_eq!(t, Topology::from_yaml_str(GOOD).unwrap());

        let bad = doc.replace("type: KEYS_ONLY", "type: SOME");
        let err = Topology::from_document_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("spec.topology.tables[0].localSecondaryIndexes[0].projection.type: must be one of ALL, KEYS_ONLY, INCLUDE"),
            "{err}"
        );
    }

    #[test]
    fn attribute_definitions_cover_every_key_once() {
        let t = Topology::from_yaml_str(GOOD).unwrap();
        let names: Vec<_> = t.tables[0]
            .attribute_definitions()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["pk", "sk", "customerId", "createdAt", "status"]);
    }

    #[test]
    fn the_json_schema_carries_bounds_and_enums() {
        let schema = serde_json::to_value(schemars::schema_for!(Topology)).unwrap();
        let text = schema.to_string();
        assert!(text.contains(r#""maxItems":64"#), "{text}");
        assert!(text.contains(r#""enum":["S","N","B"]"#), "{text}");
        assert!(text.contains(r#""maxLength":255"#), "{text}");
    }
}

#[cfg(test)]
mod crd_embedding {
    use kube::CustomResourceExt;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// A stand-in for the ParityEnvironment spec: the topology must embed in a CRD as a
    /// structural schema (no `anyOf` with null, no `additionalProperties: false` next to
    /// `properties`, every object typed).
    #[derive(kube::CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
    #[kube(group = "test.parity.dev", version = "v1", kind = "Holder", namespaced)]
    struct HolderSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topology: Option<super::Topology>,
    }

    #[test]
    fn the_topology_schema_is_structural_inside_a_crd() {
        let crd = serde_json::to_value(Holder::crd()).unwrap();
        let text = crd.to_string();
        for forbidden in [
            "\"anyOf\"",
            "\"oneOf\"",
            "\"$ref\"",
            "\"additionalProperties\":false",
            "\"type\":\"null\"",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} in {text}");
        }
        let tables = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["topology"]["properties"]["tables"];
        assert_eq!(tables["maxItems"], 64, "{tables}");
        assert_eq!(
            tables["items"]["properties"]["partitionKey"]["properties"]["type"]["enum"],
            serde_json::json!(["S", "N", "B"])
        );
    }
}
