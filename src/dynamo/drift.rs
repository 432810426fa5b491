//! Drift: how one topology differs from another, as a bounded list of (path, expected,
//! actual). Pure and deterministic, so the operator's status only changes when the drift does.
//!
//! Tables and indexes are matched by name (order in the document does not matter), paths
//! name them: `tables[orders].globalSecondaryIndexes[byCustomer].projection.type`.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::topology::{
    BillingMode, GlobalSecondaryIndex, KeyAttribute, LocalSecondaryIndex, Projection, Table,
    Throughput, Topology,
};

/// At most this many drifts are returned; the last entry then says how many were left out.
pub const MAX_DRIFTS: usize = 100;
/// Rendered values longer than this are cut (a projection can list 100 attributes).
const MAX_VALUE_LEN: usize = 256;

pub const ABSENT: &str = "(absent)";
pub const PRESENT: &str = "present";
pub const NONE: &str = "(none)";
/// Path of the entry that replaces everything past [`MAX_DRIFTS`].
pub const TRUNCATED_PATH: &str = "(truncated)";

/// One difference. `expected` is the source of truth (e.g. staging), `actual` what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    #[schemars(length(max = 600))]
    pub path: String,
    #[schemars(length(max = 260))]
    pub expected: String,
    #[schemars(length(max = 260))]
    pub actual: String,
}

/// Every difference between `expected` and `actual`, in a stable order (expected's order,
/// then extras by name), at most [`MAX_DRIFTS`] entries.
pub fn diff(expected: &Topology, actual: &Topology) -> Vec<Drift> {
    let mut d = Differ::default();
    for e in &expected.tables {
        let path = format!("tables[{}]", e.name);
        match actual.table(&e.name) {
            None => d.push(&path, PRESENT, ABSENT),
            Some(a) => d.table(&path, e, a),
        }
    }
    let declared: BTreeSet<&str> = expected.tables.iter().map(|t| t.name.as_str()).collect();
    let extra: BTreeSet<&str> = actual
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !declared.contains(n))
        .collect();
    for name in extra {
        d.push(&format!("tables[{name}]"), ABSENT, PRESENT);
    }
    d.set(
        "kmsKeyAliases",
        &expected.kms_key_aliases,
        &actual.kms_key_aliases,
    );
    d.set("secretNames", &expected.secret_names, &actual.secret_names);
    d.finish()
}

#[derive(Default)]
struct Differ {
    out: Vec<Drift>,
    dropped: usize,
}

fn cut(s: String) -> String {
    if s.len() <= MAX_VALUE_LEN {
        return s;
    }
    let mut end = MAX_VALUE_LEN - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn key(k: &KeyAttribute) -> String {
    format!("{} ({})", k.name, k.attr_type)
}

fn opt_key(k: Option<&KeyAttribute>) -> String {
    k.map(key).unwrap_or_else(|| NONE.into())
}

fn throughput(t: Option<&Throughput>) -> String {
    t.map(|t| {
        format!(
            "read {}, write {}",
            t.read_capacity_units, t.write_capacity_units
        )
    })
    .unwrap_or_else(|| NONE.into())
}

fn sorted_list(v: &[String]) -> String {
    let s: BTreeSet<&str> = v.iter().map(String::as_str).collect();
    format!("[{}]", s.into_iter().collect::<Vec<_>>().join(", "))
}

impl Differ {
    fn push(&mut self, path: &str, expected: &str, actual: &str) {
        if self.out.len() < MAX_DRIFTS - 1 {
            self.out.push(Drift {
                path: path.to_string(),
                expected: cut(expected.to_string()),
                actual: cut(actual.to_string()),
            });
        } else {
            self.dropped += 1;
        }
    }

    fn field(&mut self, path: &str, expected: String, actual: String) {
        if expected != actual {
            self.push(path, &expected, &actual);
        }
    }

    fn finish(mut self) -> Vec<Drift> {
        if self.dropped > 0 {
            self.out.push(Drift {
                path: TRUNCATED_PATH.into(),
                expected: String::new(),
                actual: format!("{} more differences not shown", self.dropped),
            });
        }
        self.out
    }

    fn set(&mut self, path: &str, expected: &[String], actual: &[String]) {
        let e: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        let a: BTreeSet<&str> = actual.iter().map(String::as_str).collect();
        for missing in e.difference(&a) {
            self.push(&format!("{path}[{missing}]"), PRESENT, ABSENT);
        }
        for extra in a.difference(&e) {
            self.push(&format!("{path}[{extra}]"), ABSENT, PRESENT);
        }
    }

    fn table(&mut self, path: &str, e: &Table, a: &Table) {
        self.field(
            &format!("{path}.partitionKey"),
            key(&e.partition_key),
            key(&a.partition_key),
        );
        self.field(
            &format!("{path}.sortKey"),
            opt_key(e.sort_key.as_ref()),
            opt_key(a.sort_key.as_ref()),
        );
        self.field(
            &format!("{path}.billingMode"),
            e.billing_mode.to_string(),
            a.billing_mode.to_string(),
        );
        // Capacity only means something when both sides are provisioned; a billing mode
        // difference is reported once above rather than once per table and index.
        let both_provisioned = e.billing_mode == BillingMode::Provisioned
            && a.billing_mode == BillingMode::Provisioned;
        if both_provisioned {
            self.field(
                &format!("{path}.provisionedThroughput"),
                throughput(e.provisioned_throughput.as_ref()),
                throughput(a.provisioned_throughput.as_ref()),
            );
        }

        let gpath = format!("{path}.globalSecondaryIndexes");
        self.named(
            &gpath,
            &e.global_secondary_indexes,
            &a.global_secondary_indexes,
            |g| &g.name,
            |d, p, e, a| d.gsi(p, e, a, both_provisioned),
        );
        let lpath = format!("{path}.localSecondaryIndexes");
        self.named(
            &lpath,
            &e.local_secondary_indexes,
            &a.local_secondary_indexes,
            |l| &l.name,
            Differ::lsi,
        );

        self.field(
            &format!("{path}.ttlAttribute"),
            e.ttl_attribute.clone().unwrap_or_else(|| NONE.into()),
            a.ttl_attribute.clone().unwrap_or_else(|| NONE.into()),
        );
        self.field(
            &format!("{path}.streamViewType"),
            e.stream_view_type
                .map(|s| s.to_string())
                .unwrap_or_else(|| NONE.into()),
            a.stream_view_type
                .map(|s| s.to_string())
                .unwrap_or_else(|| NONE.into()),
        );
        self.field(
            &format!("{path}.pointInTimeRecovery"),
            e.point_in_time_recovery.to_string(),
            a.point_in_time_recovery.to_string(),
        );
    }

    fn named<T>(
        &mut self,
        path: &str,
        expected: &[T],
        actual: &[T],
        name: impl Fn(&T) -> &String,
        mut compare: impl FnMut(&mut Differ, &str, &T, &T),
    ) {
        for e in expected {
            let p = format!("{path}[{}]", name(e));
            match actual.iter().find(|a| name(a) == name(e)) {
                None => self.push(&p, PRESENT, ABSENT),
                Some(a) => compare(self, &p, e, a),
            }
        }
        let declared: BTreeSet<&String> = expected.iter().map(&name).collect();
        let extra: BTreeSet<&String> = actual
            .iter()
            .map(&name)
            .filter(|n| !declared.contains(n))
            .collect();
        for n in extra {
            self.push(&format!("{path}[{n}]"), ABSENT, PRESENT);
        }
    }

    fn projection(&mut self, path: &str, e: &Projection, a: &Projection) {
        self.field(
            &format!("{path}.projection.type"),
            e.projection_type.to_string(),
            a.projection_type.to_string(),
        );
        self.field(
            &format!("{path}.projection.nonKeyAttributes"),
            sorted_list(&e.non_key_attributes),
            sorted_list(&a.non_key_attributes),
        );
    }

    fn gsi(
        &mut self,
        path: &str,
        e: &GlobalSecondaryIndex,
        a: &GlobalSecondaryIndex,
        provisioned: bool,
    ) {
        self.field(
            &format!("{path}.partitionKey"),
            key(&e.partition_key),
            key(&a.partition_key),
        );
        self.field(
            &format!("{path}.sortKey"),
            opt_key(e.sort_key.as_ref()),
            opt_key(a.sort_key.as_ref()),
        );
        self.projection(path, &e.projection, &a.projection);
        if provisioned {
            self.field(
                &format!("{path}.provisionedThroughput"),
                throughput(e.provisioned_throughput.as_ref()),
                throughput(a.provisioned_throughput.as_ref()),
            );
        }
    }

    fn lsi(&mut self, path: &str, e: &LocalSecondaryIndex, a: &LocalSecondaryIndex) {
        self.field(
            &format!("{path}.sortKey"),
            key(&e.sort_key),
            key(&a.sort_key),
        );
        self.projection(path, &e.projection, &a.projection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::topology::{ProjectionType, StreamViewType};

    fn base() -> Topology {
        Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: S }
    globalSecondaryIndexes:
      - name: byCustomer
        partitionKey: { name: customerId, type: S }
        projection: { type: INCLUDE, nonKeyAttributes: [total, status] }
      - name: byDate
        partitionKey: { name: day, type: S }
    ttlAttribute: expiresAt
  - name: users
    partitionKey: { name: id, type: S }
kmsKeyAliases: [alias/orders]
secretNames: [A, B]
"#,
        )
        .unwrap()
    }

    #[test]
    fn equal_topologies_have_no_drift_whatever_the_order() {
        let a = base();
        let mut b = base();
        b.tables.reverse();
        b.tables[1].global_secondary_indexes.reverse();
        b.tables[1].global_secondary_indexes[1]
            .projection
            .non_key_attributes
            .reverse();
        b.secret_names.reverse();
        assert_eq!(diff(&a, &b), vec![]);
    }

    #[test]
    fn a_changed_gsi_is_reported_exactly() {
        let mut actual = base();
        actual.tables[0].global_secondary_indexes[0].projection = Projection {
            projection_type: ProjectionType::KeysOnly,
            non_key_attributes: vec![],
        };
        assert_eq!(
            diff(&base(), &actual),
            vec![
                Drift {
                    path: "tables[orders].globalSecondaryIndexes[byCustomer].projection.type"
                        .into(),
                    expected: "INCLUDE".into(),
                    actual: "KEYS_ONLY".into(),
                },
                Drift {
                    path: "tables[orders].globalSecondaryIndexes[byCustomer].projection.nonKeyAttributes".into(),
                    expected: "[status, total]".into(),
                    actual: "[]".into(),
                },
            ]
        );
    }

    #[test]
    fn missing_and_extra_things_are_named() {
        let mut actual = base();
        actual.tables[0].global_secondary_indexes.remove(1);
        actual.tables[0].ttl_attribute = None;
        actual.tables[0].stream_view_type = Some(StreamViewType::NewImage);
        actual.tables.remove(1);
        actual.tables.push(Table {
            name: "zzz".into(),
            ..base().tables[1].clone()
        });
        actual.kms_key_aliases = vec!["alias/other".into()];
        let got: Vec<(String, String, String)> = diff(&base(), &actual)
            .into_iter()
            .map(|d| (d.path, d.expected, d.actual))
            .collect();
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            got,
            vec![
                s(
                    "tables[orders].globalSecondaryIndexes[byDate]",
                    PRESENT,
                    ABSENT
                ),
                s("tables[orders].ttlAttribute", "expiresAt", NONE),
                s("tables[orders].streamViewType", NONE, "NEW_IMAGE"),
                s("tables[users]", PRESENT, ABSENT),
                s("tables[zzz]", ABSENT, PRESENT),
                s("kmsKeyAliases[alias/orders]", PRESENT, ABSENT),
                s("kmsKeyAliases[alias/other]", ABSENT, PRESENT),
            ]
        );
    }

    #[test]
    fn capacity_is_compared_only_between_provisioned_tables() {
        let mut e = base();
        let mut a = base();
        e.tables[1].billing_mode = BillingMode::Provisioned;
        e.tables[1].provisioned_throughput = Some(Throughput {
            read_capacity_units: 5,
            write_capacity_units: 5,
        });
        assert_eq!(
            diff(&e, &a),
            vec![Drift {
                path: "tables[users].billingMode".into(),
                expected: "PROVISIONED".into(),
                actual: "PAY_PER_REQUEST".into()
            }]
        );
        a.tables[1] = e.tables[1].clone();
        a.tables[1].provisioned_throughput = Some(Throughput {
            read_capacity_units: 1,
            write_capacity_units: 5,
        });
        assert_eq!(
            diff(&e, &a),
            vec![Drift {
                path: "tables[users].provisionedThroughput".into(),
                expected: "read 5, write 5".into(),
                actual: "read 1, write 5".into()
            }]
        );
    }

    #[test]
    fn the_list_is_bounded_and_says_how_much_was_left_out() {
        let expected = Topology {
            secret_names: (0..150).map(|i| format!("S{i:03}")).collect(),
            ..Default::default()
        };
        let d = diff(&expected, &Topology::default());
        assert_eq!(d.len(), MAX_DRIFTS);
        assert_eq!(d[0].path, "secretNames[S000]");
        let last = d.last().unwrap();
        assert_eq!(last.path, TRUNCATED_PATH);
        assert_eq!(last.actual, "51 more differences not shown");
        // Deterministic: the same inputs give the same list.
        assert_eq!(d, diff(&expected, &Topology::default()));
    }
}
