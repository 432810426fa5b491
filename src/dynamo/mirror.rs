//! Mirroring: a Local or CI environment copies a Staging topology and may override only what
//! its tier allows (billing mode, a table name prefix). Everything else (keys, indexes,
//! projections, TTL, streams, aliases, secret names) is copied as is, so code paths match.

// Used inside the #[x_kube] attributes, which the lint does not see.
use kube::KubeSchema;
#[allow(unused_imports)]
use kube::core::Rule;
use serde::{Deserialize, Serialize};

use super::topology::{BillingMode, Table, Throughput, Topology};

/// What a mirroring environment may change. Empty means an exact copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.provisionedThroughput) || (has(self.billingMode) && self.billingMode == 'PROVISIONED')")
        .message("spec.mirror.overrides.provisionedThroughput is only used with billingMode PROVISIONED: set billingMode PROVISIONED or remove it")
        .field_path(".provisionedThroughput"),
)]
pub struct Overrides {
    /// Replaces every table's billing mode (typically PAY_PER_REQUEST for local emulators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<BillingMode>,
    /// Capacities used when switching to PROVISIONED a table (or index) that has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<Throughput>,
    /// Prepended to every table name (e.g. `dev-`), so several environments can share an
    /// endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-zA-Z0-9_.-]*$"))]
    pub table_name_prefix: Option<String>,
}

/// Capacities for tables switched to PROVISIONED without any given: small, like the
/// DynamoDB console's default.
pub const DEFAULT_THROUGHPUT: Throughput = Throughput {
    read_capacity_units: 5,
    write_capacity_units: 5,
};

/// The topology a mirroring environment should have. Pure and total: the result is checked
/// with [`Topology::validate`] like any other (a prefix can push a name past 255 characters).
pub fn resolve(staging: &Topology, overrides: &Overrides) -> Topology {
    let mut out = staging.clone();
    for table in &mut out.tables {
        if let Some(prefix) = &overrides.table_name_prefix {
            table.name = format!("{prefix}{}", table.name);
        }
        if let Some(mode) = overrides.billing_mode {
            set_billing(table, mode, overrides.provisioned_throughput);
        }
    }
    out
}

fn set_billing(table: &mut Table, mode: BillingMode, default: Option<Throughput>) {
    table.billing_mode = mode;
    let fill = |t: Option<Throughput>| match mode {
        BillingMode::PayPerRequest => None,
        BillingMode::Provisioned => Some(t.or(default).unwrap_or(DEFAULT_THROUGHPUT)),
    };
    table.provisioned_throughput = fill(table.provisioned_throughput);
    for g in &mut table.global_secondary_indexes {
        g.provisioned_throughput = fill(g.provisioned_throughput);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging() -> Topology {
        Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    billingMode: PROVISIONED
    provisionedThroughput: { readCapacityUnits: 50, writeCapacityUnits: 20 }
    globalSecondaryIndexes:
      - name: byCustomer
        partitionKey: { name: customerId, type: S }
        provisionedThroughput: { readCapacityUnits: 10, writeCapacityUnits: 10 }
    ttlAttribute: expiresAt
  - name: users
    partitionKey: { name: id, type: S }
    globalSecondaryIndexes:
      - name: byEmail
        partitionKey: { name: email, type: S }
kmsKeyAliases: [alias/orders]
secretNames: [STRIPE_KEY]
"#,
        )
        .unwrap()
    }

    #[test]
    fn no_overrides_is_an_exact_copy() {
        assert_eq!(resolve(&staging(), &Overrides::default()), staging());
    }

    #[test]
    fn prefix_and_on_demand_billing_change_only_names_and_capacity() {
        let o = Overrides {
            billing_mode: Some(BillingMode::PayPerRequest),
            table_name_prefix: Some("dev-".into()),
            ..Default::default()
        };
        let r = resolve(&staging(), &o);
        r.validate().unwrap();
        assert_eq!(r.tables[0].name, "dev-orders");
        assert_eq!(r.tables[1].name, "dev-users");
        assert_eq!(r.tables[0].billing_mode, BillingMode::PayPerRequest);
        assert_eq!(r.tables[0].provisioned_throughput, None);
        assert_eq!(
            r.tables[0].global_secondary_indexes[0].provisioned_throughput,
            None
        );
        // Everything else is the staging shape.
        let mut back = r.clone();
        for (t, s) in back.tables.iter_mut().zip(staging().tables) {
            t.name = s.name.clone();
            t.billing_mode = s.billing_mode;
            t.provisioned_throughput = s.provisioned_throughput;
            for (g, sg) in t
                .global_secondary_indexes
                .iter_mut()
                .zip(s.global_secondary_indexes)
            {
                g.provisioned_throughput = sg.provisioned_throughput;
            }
        }
        assert_eq!(back, staging());
    }

    #[test]
    fn switching_to_provisioned_fills_missing_capacity_and_keeps_given_capacity() {
        let o = Overrides {
            billing_mode: Some(BillingMode::Provisioned),
            provisioned_throughput: Some(Throughput {
                read_capacity_units: 2,
                write_capacity_units: 1,
            }),
            ..Default::default()
        };
        let r = resolve(&staging(), &o);
        r.validate().unwrap();
        assert_eq!(
            r.tables[0]
                .provisioned_throughput
                .unwrap()
                .read_capacity_units,
            50
        );
        let users = &r.tables[1];
        assert_eq!(users.provisioned_throughput, o.provisioned_throughput);
        assert_eq!(
            users.global_secondary_indexes[0].provisioned_throughput,
            o.provisioned_throughput
        );
    }

    #[test]
    fn a_prefix_that_makes_a_name_too_long_fails_validation() {
        let o = Overrides {
            table_name_prefix: Some("x".repeat(250)),
            ..Default::default()
        };
        let err = resolve(&staging(), &o).validate().unwrap_err().to_string();
        assert!(err.contains("tables[0].name: must be 3-255"), "{err}");
    }
}
