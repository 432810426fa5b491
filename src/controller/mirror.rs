//! Pure: what mirroring a Staging environment means for one environment. Its tables come
//! from the source (with spec.mirror.overrides) unless it declares its own, in which case
//! they are compared with the source and every difference is reported (InSync, status.drift).

use crate::api::{DriftEntry, FieldError, MAX_DRIFT_ENTRIES, ParityEnvironment, ValidatedSpec};
use crate::dynamo::drift::diff;
use crate::dynamo::mirror::resolve;
use crate::dynamo::topology::Topology;
use crate::resources::declared_topology;

/// InSync as (in sync, reason, message).
pub type SyncState = (bool, String, String);

#[derive(Clone, Debug, PartialEq)]
pub struct Mirrored {
    /// The source's topology with the overrides applied.
    pub resolved: Option<Topology>,
    pub in_sync: SyncState,
    pub drift: Vec<DriftEntry>,
}

fn state(ok: bool, reason: &str, message: String) -> SyncState {
    (ok, reason.to_string(), message)
}

/// Evaluates spec.mirror against the source as read from the API (`None`: not found).
/// An unusable source or overrides are field errors: the caller changes nothing.
pub fn evaluate(
    env: &ValidatedSpec,
    source: Option<&ParityEnvironment>,
) -> Result<Mirrored, FieldError> {
    let Some(mirror) = &env.spec.mirror else {
        return Ok(Mirrored {
            resolved: None,
            in_sync: state(true, "NotMirrored", "spec.mirror is not set".into()),
            drift: Vec::new(),
        });
    };
    crate::api::check_mirror_source(env, source)?;
    let src = source.map(|s| &s.spec);
    let from = format!(
        "{}/{}",
        mirror.from.namespace.as_deref().unwrap_or(&env.namespace),
        mirror.from.name
    );
    let staging = src.and_then(declared_topology).unwrap_or_default();
    let resolved = resolve(&staging, &mirror.overrides);
    if let Err(e) = resolved.validate() {
        let detail = e
            .errors()
            .iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(FieldError::new(
            "spec.mirror.overrides",
            format!("the topology of {from} with these overrides is invalid: {detail}"),
        ));
    }
    let (in_sync, drift) = match declared_topology(&env.spec) {
        None => (
            state(
                true,
                "Mirrored",
                format!("{} tables copied from {from}", resolved.tables.len()),
            ),
            Vec::new(),
        ),
        Some(own) => {
            let d = diff(&resolved, &own);
            if d.is_empty() {
                (
                    state(
                        true,
                        "InSync",
                        format!("the declared topology matches {from}"),
                    ),
                    Vec::new(),
                )
            } else {
                let first = &d[0];
                let count = d
                    .iter()
                    .filter(|x| x.path != crate::dynamo::drift::TRUNCATED_PATH)
                    .count();
                let more = if d.len() > MAX_DRIFT_ENTRIES {
                    format!(" (status.drift lists the first {MAX_DRIFT_ENTRIES})")
                } else {
                    String::new()
                };
                (
                    state(
                        false,
                        "Drifted",
                        format!(
                            "{count} difference(s) from {from}{more}; first: {}: expected {}, actual {}",
                            first.path, first.expected, first.actual
                        ),
                    ),
                    d.iter()
                        .take(MAX_DRIFT_ENTRIES)
                        .map(|x| DriftEntry::new(&x.path, &x.expected, &x.actual))
                        .collect(),
                )
            }
        }
    };
    Ok(Mirrored {
        resolved: Some(resolved),
        in_sync,
        drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate;

    fn penv(yaml: &str) -> ParityEnvironment {
        let mut e: ParityEnvironment = serde_yaml::from_str(yaml).expect("parse");
        e.metadata.uid = Some("u".into());
        e
    }

    fn staging(gsi_key: &str) -> ParityEnvironment {
        penv(&format!(
            r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: staging, namespace: team}}
spec:
  tier: Staging
  keys: {{provider: Kms, kms: {{keyId: "alias/app", region: eu-west-1}}}}
  dynamodb: {{external: {{endpoint: "https://dynamodb.eu-west-1.amazonaws.com", region: eu-west-1}}}}
  topology:
    tables:
      - name: orders
        partitionKey: {{name: pk, type: S}}
        billingMode: PROVISIONED
        provisionedThroughput: {{readCapacityUnits: 50, writeCapacityUnits: 20}}
        globalSecondaryIndexes:
          - name: byCustomer
            partitionKey: {{name: {gsi_key}, type: S}}
            provisionedThroughput: {{readCapacityUnits: 5, writeCapacityUnits: 5}}
    kmsKeyAliases: [alias/orders]
"#
        ))
    }

    fn mirror(extra: &str) -> ValidatedSpec {
        let e = penv(&format!(
            r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: dev, namespace: team}}
spec:
  tier: Local
  parityLevel: 2
  mirror:
    from: {{name: staging}}
    overrides: {{billingMode: PAY_PER_REQUEST, tableNamePrefix: dev-}}
{extra}
"#
        ));
        validate(&e).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn without_its_own_tables_it_copies_the_source_with_overrides() {
        let m = evaluate(&mirror(""), Some(&staging("customerId"))).expect("mirror");
        let t = m.resolved.expect("resolved");
        assert_eq!(t.tables[0].name, "dev-orders");
        assert_eq!(t.tables[0].provisioned_throughput, None);
        assert_eq!(t.tables[0].global_secondary_indexes[0].name, "byCustomer");
        assert_eq!(t.kms_key_aliases, ["alias/orders"]);
        assert!(m.in_sync.0, "{:?}", m.in_sync);
        assert_eq!(m.in_sync.1, "Mirrored");
        assert!(m.drift.is_empty());
    }

    #[test]
    fn its_own_tables_are_compared_and_each_difference_listed() {
        let own = r#"  topology:
    tables:
      - name: dev-orders
        partitionKey: {name: pk, type: S}
        globalSecondaryIndexes:
          - name: byCustomer
            partitionKey: {name: customerId, type: S}
    kmsKeyAliases: [alias/orders]"#;
        let same = evaluate(&mirror(own), Some(&staging("customerId"))).expect("mirror");
        assert_eq!(same.in_sync.1, "InSync", "{:?}", same.drift);
        assert!(same.in_sync.0 && same.drift.is_empty());

        // Staging changes the index's key: exactly that difference is reported.
        let drifted = evaluate(&mirror(own), Some(&staging("accountId"))).expect("mirror");
        assert!(!drifted.in_sync.0);
        assert_eq!(drifted.in_sync.1, "Drifted");
        assert_eq!(
            drifted.drift,
            [DriftEntry::new(
                "tables[dev-orders].globalSecondaryIndexes[byCustomer].partitionKey",
                "accountId (S)",
                "customerId (S)"
            )]
        );
        assert!(
            drifted
                .in_sync
                .2
                .contains("1 difference(s) from team/staging")
        );
    }

    #[test]
    fn a_missing_or_wrong_source_and_bad_overrides_name_the_field() {
        let err = evaluate(&mirror(""), None).expect_err("missing");
        assert_eq!(err.field, "spec.mirror.from");
        assert!(
            err.reason.contains("team/staging not found"),
            "{}",
            err.reason
        );

        let mut local_source = staging("customerId");
        local_source.spec.tier = crate::api::Tier::Local;
        let err = evaluate(&mirror(""), Some(&local_source)).expect_err("not staging");
        assert_eq!(err.field, "spec.mirror.from");

        let long = mirror("").spec.mirror.map(|mut m| {
            m.overrides.table_name_prefix = Some("p".repeat(64));
            m
        });
        let mut env = mirror("");
        env.spec.mirror = long;
        let mut src = staging("customerId");
        if let Some(t) = src.spec.topology.as_mut() {
            t.tables[0].name = "o".repeat(250);
        }
        let err = evaluate(&env, Some(&src)).expect_err("too long");
        assert_eq!(err.field, "spec.mirror.overrides");
        assert!(err.reason.contains("tables[0].name"), "{}", err.reason);
    }
}
