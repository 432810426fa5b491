//! What bootstrap must do to turn a live table into the declared one. Pure.
//!
//! DynamoDB changes in place: billing mode and capacity, adding or removing a global secondary
//! index (one per UpdateTable), TTL, streams and point-in-time recovery. It cannot change the
//! table's key schema or its local secondary indexes: those need a re-create, which drops the
//! data, so they are reported and only done when explicitly asked for.

use std::fmt;

use super::live::LiveTable;
use super::topology::{BillingMode, GlobalSecondaryIndex, StreamViewType, Table, Throughput};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    CreateTable,
    /// Delete and create again; `reasons` say what cannot change in place.
    Recreate {
        reasons: Vec<String>,
    },
    SetBilling {
        mode: BillingMode,
        throughput: Option<Throughput>,
    },
    SetThroughput(Throughput),
    DeleteIndex(String),
    CreateIndex(GlobalSecondaryIndex),
    SetIndexThroughput {
        index: String,
        throughput: Throughput,
    },
    /// Disable TTL on this attribute (before enabling another one).
    DisableTtl(String),
    EnableTtl(String),
    /// Stream off (also before a view type change: DynamoDB needs off, then on).
    DisableStream,
    EnableStream(StreamViewType),
    SetPointInTimeRecovery(bool),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateTable => f.write_str("create table"),
            Change::Recreate { reasons } => {
                write!(f, "re-create table ({})", reasons.join("; "))
            }
            Change::SetBilling { mode, .. } => write!(f, "set billing mode {mode}"),
            Change::SetThroughput(t) => write!(
                f,
                "set capacity read {} write {}",
                t.read_capacity_units, t.write_capacity_units
            ),
            Change::DeleteIndex(n) => write!(f, "remove global secondary index {n}"),
            Change::CreateIndex(g) => write!(f, "add global secondary index {}", g.name),
            Change::SetIndexThroughput { index, throughput } => write!(
                f,
                "set capacity of index {index} read {} write {}",
                throughput.read_capacity_units, throughput.write_capacity_units
            ),
            Change::DisableTtl(a) => write!(f, "disable TTL on {a}"),
            Change::EnableTtl(a) => write!(f, "enable TTL on {a}"),
            Change::DisableStream => f.write_str("disable stream"),
            Change::EnableStream(v) => write!(f, "enable stream {v}"),
            Change::SetPointInTimeRecovery(on) => write!(
                f,
                "{} point-in-time recovery",
                if *on { "enable" } else { "disable" }
            ),
        }
    }
}

fn key_text(k: Option<&super::topology::KeyAttribute>) -> String {
    k.map(|k| format!("{} ({})", k.name, k.attr_type))
        .unwrap_or_else(|| "(none)".into())
}

/// Changes that need the table dropped: key schema and local secondary indexes.
fn recreate_reasons(desired: &Table, actual: &Table) -> Vec<String> {
    let mut reasons = Vec::new();
    if desired.partition_key != actual.partition_key {
        reasons.push(format!(
            "partitionKey {} -> {}",
            key_text(Some(&actual.partition_key)),
            key_text(Some(&desired.partition_key))
        ));
    }
    if desired.sort_key != actual.sort_key {
        reasons.push(format!(
            "sortKey {} -> {}",
            key_text(actual.sort_key.as_ref()),
            key_text(desired.sort_key.as_ref())
        ));
    }
    let mut want = desired.local_secondary_indexes.clone();
    let mut have = actual.local_secondary_indexes.clone();
    for l in want.iter_mut().chain(have.iter_mut()) {
        l.projection.non_key_attributes.sort();
    }
    want.sort_by(|a, b| a.name.cmp(&b.name));
    have.sort_by(|a, b| a.name.cmp(&b.name));
    if want != have {
        let names = |v: &[super::topology::LocalSecondaryIndex]| {
            v.iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        reasons.push(format!(
            "localSecondaryIndexes [{}] -> [{}] (fixed at creation)",
            names(&have),
            names(&want)
        ));
    }
    reasons
}

fn same_index_shape(a: &GlobalSecondaryIndex, b: &GlobalSecondaryIndex) -> bool {
    let mut pa = a.projection.clone();
    let mut pb = b.projection.clone();
    pa.non_key_attributes.sort();
    pb.non_key_attributes.sort();
    a.partition_key == b.partition_key && a.sort_key == b.sort_key && pa == pb
}

/// The changes, in the order they must be applied, to make `actual` (None: absent) match
/// `desired`. Empty means nothing to do.
pub fn plan_table(desired: &Table, actual: Option<&LiveTable>) -> Vec<Change> {
    let Some(live) = actual else {
        return vec![Change::CreateTable];
    };
    let actual = &live.table;
    let reasons = recreate_reasons(desired, actual);
    if !reasons.is_empty() {
        return vec![Change::Recreate { reasons }];
    }

    let mut changes = Vec::new();
    let provisioned = desired.billing_mode == BillingMode::Provisioned;
    if desired.billing_mode != actual.billing_mode {
        changes.push(Change::SetBilling {
            mode: desired.billing_mode,
            throughput: desired.provisioned_throughput,
        });
    } else if provisioned
        && let Some(t) = desired.provisioned_throughput
        && desired.provisioned_throughput != actual.provisioned_throughput
    {
        changes.push(Change::SetThroughput(t));
    }

    // Deletes first: a replaced index keeps its name, and a freed attribute may be reused
    // with another type by a new index.
    for have in &actual.global_secondary_indexes {
        let keep = desired
            .global_secondary_indexes
            .iter()
            .any(|want| want.name == have.name && same_index_shape(want, have));
        if !keep {
            changes.push(Change::DeleteIndex(have.name.clone()));
        }
    }
    for want in &desired.global_secondary_indexes {
        match actual
            .global_secondary_indexes
            .iter()
            .find(|have| have.name == want.name && same_index_shape(want, have))
        {
            None => changes.push(Change::CreateIndex(want.clone())),
            Some(have) => {
                // After a billing switch the index capacity is set with the switch itself.
                if provisioned
                    && desired.billing_mode == actual.billing_mode
                    && let Some(t) = want.provisioned_throughput
                    && want.provisioned_throughput != have.provisioned_throughput
                {
                    changes.push(Change::SetIndexThroughput {
                        index: want.name.clone(),
                        throughput: t,
                    });
                }
            }
        }
    }

    if live.ttl_known && desired.ttl_attribute != actual.ttl_attribute {
        if let Some(old) = &actual.ttl_attribute {
            changes.push(Change::DisableTtl(old.clone()));
        }
        if let Some(new) = &desired.ttl_attribute {
            changes.push(Change::EnableTtl(new.clone()));
        }
    }

    if desired.stream_view_type != actual.stream_view_type {
        if actual.stream_view_type.is_some() {
            changes.push(Change::DisableStream);
        }
        if let Some(v) = desired.stream_view_type {
            changes.push(Change::EnableStream(v));
        }
    }

    if live.pitr_known && desired.point_in_time_recovery != actual.point_in_time_recovery {
        changes.push(Change::SetPointInTimeRecovery(
            desired.point_in_time_recovery,
        ));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::topology::{Projection, ProjectionType, Topology};

    fn table() -> Table {
        Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: S }
    globalSecondaryIndexes:
      - name: byCustomer
        partitionKey: { name: customerId, type: S }
        projection: { type: INCLUDE, nonKeyAttributes: [b, a] }
      - name: byDay
        partitionKey: { name: day, type: S }
    localSecondaryIndexes:
      - name: byStatus
        sortKey: { name: status, type: S }
    ttlAttribute: expiresAt
    streamViewType: NEW_IMAGE
"#,
        )
        .unwrap()
        .tables
        .remove(0)
    }

    fn live(t: Table) -> LiveTable {
        LiveTable {
            table: t,
            ttl_known: true,
            pitr_known: true,
        }
    }

    #[test]
    fn a_missing_table_is_created_and_an_identical_one_left_alone() {
        assert_eq!(plan_table(&table(), None), vec![Change::CreateTable]);
        let mut same = table();
        // Order of indexes and projected attributes does not matter.
        same.global_secondary_indexes.reverse();
        same.global_secondary_indexes[1]
            .projection
            .non_key_attributes
            .sort();
        assert_eq!(plan_table(&table(), Some(&live(same))), vec![]);
    }

    #[test]
    fn key_schema_and_lsi_changes_need_a_recreate_and_nothing_else() {
        let mut actual = table();
        actual.sort_key = None;
        actual.local_secondary_indexes.clear();
        actual.ttl_attribute = None;
        assert_eq!(
            plan_table(&table(), Some(&live(actual))),
            vec![Change::Recreate {
                reasons: vec![
                    "sortKey (none) -> sk (S)".into(),
                    "localSecondaryIndexes [] -> [byStatus] (fixed at creation)".into()
                ]
            }]
        );
    }

    #[test]
    fn a_changed_index_is_replaced_and_settings_are_updated_in_order() {
        let mut actual = table();
        actual.global_secondary_indexes[0].projection = Projection {
            projection_type: ProjectionType::KeysOnly,
            non_key_attributes: vec![],
        };
        actual.global_secondary_indexes.push(GlobalSecondaryIndex {
            name: "old".into(),
            ..actual.global_secondary_indexes[1].clone()
        });
        actual.ttl_attribute = Some("ttl".into());
        actual.stream_view_type = Some(StreamViewType::KeysOnly);
        actual.point_in_time_recovery = true;
        let want = table();
        assert_eq!(
            plan_table(&want, Some(&live(actual))),
            vec![
                Change::DeleteIndex("byCustomer".into()),
                Change::DeleteIndex("old".into()),
                Change::CreateIndex(want.global_secondary_indexes[0].clone()),
                Change::DisableTtl("ttl".into()),
                Change::EnableTtl("expiresAt".into()),
                Change::DisableStream,
                Change::EnableStream(StreamViewType::NewImage),
                Change::SetPointInTimeRecovery(false),
            ]
        );
    }

    #[test]
    fn settings_the_endpoint_cannot_report_are_left_alone() {
        let mut actual = table();
        actual.ttl_attribute = None;
        actual.point_in_time_recovery = true;
        let l = LiveTable {
            table: actual,
            ttl_known: false,
            pitr_known: false,
        };
        assert_eq!(plan_table(&table(), Some(&l)), vec![]);
    }

    #[test]
    fn billing_and_capacity_changes() {
        let mut want = table();
        want.billing_mode = BillingMode::Provisioned;
        let t = Throughput {
            read_capacity_units: 3,
            write_capacity_units: 4,
        };
        want.provisioned_throughput = Some(t);
        for g in &mut want.global_secondary_indexes {
            g.provisioned_throughput = Some(t);
        }
        assert_eq!(
            plan_table(&want, Some(&live(table()))),
            vec![Change::SetBilling {
                mode: BillingMode::Provisioned,
                throughput: Some(t)
            }]
        );
        let mut have = want.clone();
        have.provisioned_throughput = Some(Throughput {
            read_capacity_units: 1,
            write_capacity_units: 1,
        });
        have.global_secondary_indexes[1].provisioned_throughput = have.provisioned_throughput;
        assert_eq!(
            plan_table(&want, Some(&live(have))),
            vec![
                Change::SetThroughput(t),
                Change::SetIndexThroughput {
                    index: "byDay".into(),
                    throughput: t
                }
            ]
        );
    }
}
