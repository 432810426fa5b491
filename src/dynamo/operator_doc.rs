//! Reading the operator's `<env>-topology` ConfigMap document (`topology.yaml`: environment,
//! tier, `tables` as the CRD's `spec.dynamodb.tables`, `streams`, `keys.aliases`, endpoints)
//! as a [`Topology`], so the bootstrap Job works on what the operator mounts today.

use super::topology::{
    AttributeType, BillingMode, FieldError, KeyAttribute, StreamViewType, Table, Throughput,
    Topology, TopologyError,
};
use crate::api;

/// True for the operator's document: it names its environment and endpoints.
pub fn is_operator_document(v: &serde_yaml::Value) -> bool {
    v.get("environment").is_some() && v.get("endpoints").is_some()
}

fn key(k: &api::KeyAttribute) -> KeyAttribute {
    KeyAttribute {
        name: k.name.clone(),
        attr_type: match k.attribute_type {
            api::AttributeType::S => AttributeType::S,
            api::AttributeType::N => AttributeType::N,
            api::AttributeType::B => AttributeType::B,
        },
    }
}

/// A CRD `spec.dynamodb.tables` entry as a topology table; `streams` adds a
/// NEW_AND_OLD_IMAGES stream (parity level 2+, the dashboard's live feed).
pub fn table_from_spec(t: &api::TableSpec, streams: bool) -> Table {
    Table {
        name: t.name.clone(),
        partition_key: key(&t.partition_key),
        sort_key: t.sort_key.as_ref().map(key),
        billing_mode: match t.billing_mode {
            api::BillingMode::PayPerRequest => BillingMode::PayPerRequest,
            api::BillingMode::Provisioned => BillingMode::Provisioned,
        },
        provisioned_throughput: t.provisioned.as_ref().map(|p| Throughput {
            read_capacity_units: p.read_capacity_units,
            write_capacity_units: p.write_capacity_units,
        }),
        global_secondary_indexes: Vec::new(),
        local_secondary_indexes: Vec::new(),
        ttl_attribute: None,
        stream_view_type: streams.then_some(StreamViewType::NewAndOldImages),
        point_in_time_recovery: false,
    }
}

/// Converts the document; `streams: true` (parity level 2+, the dashboard's live feed) means
/// a NEW_AND_OLD_IMAGES stream on every table.
pub fn from_operator_document(v: &serde_yaml::Value) -> Result<Topology, TopologyError> {
    let parse_err =
        |path: String, message: String| TopologyError::Parse(FieldError { path, message });
    let tables: Vec<api::TableSpec> = match v.get("tables") {
        None => Vec::new(),
        Some(t) => serde_path_to_error::deserialize(t.clone())
            .map_err(|e| parse_err(format!("tables{}", e.path()), e.inner().to_string()))?,
    };
    let streams = v
        .get("streams")
        .and_then(serde_yaml::Value::as_bool)
        .unwrap_or(false);
    let aliases: Vec<String> = match v.get("keys").and_then(|k| k.get("aliases")) {
        None => Vec::new(),
        Some(a) => serde_yaml::from_value(a.clone())
            .map_err(|e| parse_err("keys.aliases".into(), e.to_string()))?,
    };
    let topology = Topology {
        tables: tables.iter().map(|t| table_from_spec(t, streams)).collect(),
        kms_key_aliases: aliases,
        secret_names: Vec::new(),
    };
    topology.validate()?;
    Ok(topology)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `parity render -f examples/local.yaml` puts in the ConfigMap.
    const DOC: &str = r#"
environment: dev
namespace: default
tier: Local
parityLevel: 2
streams: true
tables:
- name: orders
  partitionKey: { name: customerId, type: S }
  sortKey: { name: orderId, type: S }
  billingMode: PayPerRequest
- name: customers
  partitionKey: { name: customerId, type: S }
  billingMode: Provisioned
  provisioned: { readCapacityUnits: 2, writeCapacityUnits: 1 }
keys:
  provider: Local
  aliases: [alias/parity/dev]
secrets: { provider: Local, secretName: dev-secrets }
endpoints: { region: us-east-1, dynamodb: "http://dev-dynamodb.default.svc:8000" }
"#;

    #[test]
    fn the_operator_configmap_document_reads_as_a_topology() {
        let t = Topology::from_document_str(DOC).unwrap();
        let expected = Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: customerId, type: S }
    sortKey: { name: orderId, type: S }
    streamViewType: NEW_AND_OLD_IMAGES
  - name: customers
    partitionKey: { name: customerId, type: S }
    billingMode: PROVISIONED
    provisionedThroughput: { readCapacityUnits: 2, writeCapacityUnits: 1 }
    streamViewType: NEW_AND_OLD_IMAGES
kmsKeyAliases: [alias/parity/dev]
"#,
        )
        .unwrap();
        assert_eq!(t, expected);
    }

    #[test]
    fn its_errors_name_the_path() {
        let bad = DOC.replace("{ name: orderId, type: S }", "{ name: orderId, type: Z }");
        let err = Topology::from_document_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("tables[0].sortKey.type: unknown variant `Z`"),
            "{err}"
        );
    }
}
