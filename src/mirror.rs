//! Mirror evaluation, pure: what mirroring a Staging topology means for one environment. The source is a live
//! Staging environment (spec.mirror.from) or a committed topology in a ConfigMap
//! (spec.mirror.configMapRef). Its tables come from the source (with spec.mirror.overrides)
//! unless the environment declares its own, in which case they are compared with the source
//! and every difference is reported (InSync, status.drift).

use k8s_openapi::api::core::v1::ConfigMap;

use crate::api::{DriftEntry, FieldError, MAX_DRIFT_ENTRIES, ParityEnvironment, ValidatedSpec};
use crate::dynamo::drift::diff;
use crate::dynamo::mirror::resolve;
use crate::dynamo::topology::{Topology, TopologyError};
use crate::resources::declared_topology;
use crate::verdict::Verdict;

#[derive(Clone, Debug, PartialEq)]
pub struct Mirrored {
    /// The source's topology with the overrides applied.
    pub resolved: Option<Topology>,
    /// InSync.
    pub in_sync: Verdict,
    pub drift: Vec<DriftEntry>,
}

/// The source spec.mirror names, as the caller read it (`None`: not found).
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// spec.mirror.from's ParityEnvironment.
    Environment(Option<&'a ParityEnvironment>),
    /// spec.mirror.configMapRef's ConfigMap.
    ConfigMap(Option<&'a ConfigMap>),
    /// A topology file standing in for spec.mirror.configMapRef outside the cluster
    /// (`parity render|dev --mirror-source`), as (file name, topology).
    File(Option<(&'a str, &'a Topology)>),
}

/// The topology in spec.mirror.configMapRef's ConfigMap. Errors name the ConfigMap, the key
/// and where the YAML is wrong, never the data itself (a ConfigMap is not meant for secrets,
/// but a mistaken one could hold them).
pub fn config_map_topology(
    env: &ValidatedSpec,
    cm: Option<&ConfigMap>,
) -> Result<Topology, FieldError> {
    const FIELD: &str = "spec.mirror.configMapRef";
    let Some(r) = env
        .spec
        .mirror
        .as_ref()
        .and_then(|m| m.config_map_ref.as_ref())
    else {
        return Err(FieldError::new(FIELD, "is not set"));
    };
    let (ns, name, key) = (&env.namespace, &r.name, &r.key);
    let Some(cm) = cm else {
        return Err(FieldError::new(
            FIELD,
            format!(
                "ConfigMap {ns}/{name} not found: create it, e.g. kubectl -n {ns} create configmap {name} --from-file={key}=topology.yaml"
            ),
        ));
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(key)) else {
        let mut keys: Vec<&str> = cm
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(cm.binary_data.iter().flat_map(|d| d.keys()))
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        return Err(FieldError::new(
            FIELD,
            format!(
                "ConfigMap {ns}/{name} has no key {key} (its keys: {}): set spec.mirror.configMapRef.key",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            ),
        ));
    };
    Topology::from_document_str(text).map_err(|e| {
        FieldError::new(
            FIELD,
            format!(
                "ConfigMap {ns}/{name} key {key} is not a topology as `parity capture` prints it: {}",
                without_values(&e)
            ),
        )
    })
}

/// A topology error with its field path and position but without the text that serde quotes
/// from the document (`invalid type: string "…"`): only the kind of error is kept, and field
/// names, which are the schema's. Validation errors name fields and limits only.
fn without_values(e: &TopologyError) -> String {
    let TopologyError::Parse(f) = e else {
        return e.to_string();
    };
    let m = f.message.as_str();
    let position = m
        .find(" at line ")
        .map(|i| m[i + 4..].split(',').next().unwrap_or_default().trim_end())
        .filter(|p| p.split_whitespace().count() == 4);
    let kind = if ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|k| m.starts_with(k))
    {
        m.split(',').next().unwrap_or(m)
    } else {
        m.split([':', '`', '"', '\'']).next().unwrap_or(m)
    };
    let kind = kind.split(" (got").next().unwrap_or(kind);
    let kind = kind.split(" at line ").next().unwrap_or(kind).trim();
    match position {
        Some(p) => format!("{}: {kind} ({p})", f.path),
        None => format!("{}: {kind}", f.path),
    }
}

/// The source's label (for messages) and its topology, as declared.
fn source_topology(env: &ValidatedSpec, source: Source) -> Result<(String, Topology), FieldError> {
    match source {
        Source::Environment(src) => {
            crate::api::check_mirror_source(env, src)?;
            let from = env.spec.mirror.as_ref().and_then(|m| m.from.as_ref());
            let label = from.map_or_else(String::new, |f| {
                format!(
                    "{}/{}",
                    f.namespace.as_deref().unwrap_or(&env.namespace),
                    f.name
                )
            });
            let topology = src.map(|s| &s.spec).and_then(declared_topology);
            Ok((label, topology.unwrap_or_default()))
        }
        Source::ConfigMap(cm) => {
            let topology = config_map_topology(env, cm)?;
            let name = env
                .spec
                .mirror
                .as_ref()
                .and_then(|m| m.config_map_ref.as_ref())
                .map_or("", |r| r.name.as_str());
            Ok((format!("ConfigMap {}/{name}", env.namespace), topology))
        }
        Source::File(Some((file, topology))) => Ok((file.to_string(), topology.clone())),
        Source::File(None) => Err(FieldError::new(
            "spec.mirror.configMapRef",
            "names a ConfigMap in the cluster; outside it, the topology file the ConfigMap is made from (e.g. examples/topology.yaml) stands in for it",
        )),
    }
}

/// Evaluates spec.mirror against its source as read. An unusable source or overrides are
/// field errors: the caller changes nothing.
pub fn evaluate(env: &ValidatedSpec, source: Source) -> Result<Mirrored, FieldError> {
    let Some(mirror) = &env.spec.mirror else {
        return Ok(Mirrored {
            resolved: None,
            in_sync: Verdict::ok("NotMirrored", "spec.mirror is not set"),
            drift: Vec::new(),
        });
    };
    let (from, staging) = source_topology(env, source)?;
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
            Verdict::ok(
                "Mirrored",
                format!("{} tables copied from {from}", resolved.tables.len()),
            ),
            Vec::new(),
        ),
        Some(own) => {
            let d = diff(&resolved, &own);
            if d.is_empty() {
                (
                    Verdict::ok("InSync", format!("the declared topology matches {from}")),
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
                    Verdict::not(
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

    /// A Local environment `dev` in namespace `team` with `mirror` (YAML at spec.mirror's
    /// indentation) and `extra` spec lines.
    fn local_mirror(mirror: &str, extra: &str) -> ValidatedSpec {
        let e = penv(&format!(
            r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: dev, namespace: team}}
spec:
  tier: Local
  parityLevel: 2
  mirror:
{mirror}
{extra}
"#
        ));
        validate(&e).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn mirror(extra: &str) -> ValidatedSpec {
        local_mirror(
            "    from: {name: staging}\n    overrides: {billingMode: PAY_PER_REQUEST, tableNamePrefix: dev-}",
            extra,
        )
    }

    #[test]
    fn without_its_own_tables_it_copies_the_source_with_overrides() {
        let m = evaluate(
            &mirror(""),
            Source::Environment(Some(&staging("customerId"))),
        )
        .expect("mirror");
        let t = m.resolved.expect("resolved");
        assert_eq!(t.tables[0].name, "dev-orders");
        assert_eq!(t.tables[0].provisioned_throughput, None);
        assert_eq!(t.tables[0].global_secondary_indexes[0].name, "byCustomer");
        assert_eq!(t.kms_key_aliases, ["alias/orders"]);
        assert!(m.in_sync.ok, "{:?}", m.in_sync);
        assert_eq!(m.in_sync.reason.as_str(), "Mirrored");
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
        let same = evaluate(
            &mirror(own),
            Source::Environment(Some(&staging("customerId"))),
        )
        .expect("mirror");
        assert_eq!(same.in_sync.reason.as_str(), "InSync", "{:?}", same.drift);
        assert!(same.in_sync.ok && same.drift.is_empty());

        // Staging changes the index's key: exactly that difference is reported.
        let drifted = evaluate(
            &mirror(own),
            Source::Environment(Some(&staging("accountId"))),
        )
        .expect("mirror");
        assert!(!drifted.in_sync.ok);
        assert_eq!(drifted.in_sync.reason.as_str(), "Drifted");
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
                .message
                .contains("1 difference(s) from team/staging")
        );
    }

    #[test]
    fn a_missing_or_wrong_source_and_bad_overrides_name_the_field() {
        let err = evaluate(&mirror(""), Source::Environment(None)).expect_err("missing");
        assert_eq!(err.path, "spec.mirror.from");
        assert!(
            err.message.contains("team/staging not found"),
            "{}",
            err.message
        );

        let mut local_source = staging("customerId");
        local_source.spec.tier = crate::api::Tier::Local;
        let err = evaluate(&mirror(""), Source::Environment(Some(&local_source)))
            .expect_err("not staging");
        assert_eq!(err.path, "spec.mirror.from");

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
        let err = evaluate(&env, Source::Environment(Some(&src))).expect_err("too long");
        assert_eq!(err.path, "spec.mirror.overrides");
        assert!(err.message.contains("tables[0].name"), "{}", err.message);
    }

    fn from_config_map(key: Option<&str>) -> ValidatedSpec {
        let key = key.map_or(String::new(), |k| format!(", key: {k}"));
        local_mirror(
            &format!(
                "    configMapRef: {{name: app-topology{key}}}\n    overrides: {{billingMode: PAY_PER_REQUEST}}"
            ),
            "",
        )
    }

    fn config_map(key: &str, text: &str) -> ConfigMap {
        ConfigMap {
            data: Some([(key.to_string(), text.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_config_map_topology_is_mirrored_with_overrides() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/topology.yaml"
        ))
        .expect("example");
        let env = from_config_map(None);
        let m = evaluate(
            &env,
            Source::ConfigMap(Some(&config_map("topology.yaml", &text))),
        )
        .expect("mirror");
        let t = m.resolved.expect("resolved");
        let names: Vec<&str> = t.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["orders", "customers"]);
        assert_eq!(
            t.tables[1].provisioned_throughput, None,
            "PAY_PER_REQUEST override"
        );
        assert_eq!(m.in_sync.reason.as_str(), "Mirrored");
        assert!(
            m.in_sync.message.contains("ConfigMap team/app-topology"),
            "{:?}",
            m.in_sync
        );
    }

    #[test]
    fn a_missing_config_map_or_key_names_both() {
        let env = from_config_map(Some("prod.yaml"));
        let err = evaluate(&env, Source::ConfigMap(None)).expect_err("missing");
        assert_eq!(err.path, "spec.mirror.configMapRef");
        assert!(
            err.message
                .contains("ConfigMap team/app-topology not found"),
            "{}",
            err.message
        );

        let cm = config_map("topology.yaml", "tables: []");
        let err = evaluate(&env, Source::ConfigMap(Some(&cm))).expect_err("no key");
        assert!(
            err.message
                .contains("has no key prod.yaml (its keys: topology.yaml)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn invalid_yaml_gives_the_position_but_not_the_values() {
        let env = from_config_map(None);
        for (text, want) in [
            // A YAML syntax error.
            ("tables:\n  - name: orders\n   bad: [", "line "),
            // A value of the wrong type: the message keeps its kind, drops the value.
            (
                "tables:\n  - name: orders\n    partitionKey: {name: pk, type: SECRET-VALUE}\n",
                "tables[0].partitionKey.type: must be one of S, N, B (line 3 column 19)",
            ),
            (
                "tables: SECRET-VALUE\n",
                "tables: invalid type (line 1 column",
            ),
        ] {
            let err = evaluate(
                &env,
                Source::ConfigMap(Some(&config_map("topology.yaml", text))),
            )
            .expect_err(text);
            assert_eq!(err.path, "spec.mirror.configMapRef");
            assert!(
                err.message
                    .starts_with("ConfigMap team/app-topology key topology.yaml is not a topology"),
                "{}",
                err.message
            );
            assert!(err.message.contains(want), "{want:?} in {}", err.message);
            assert!(!err.message.contains("SECRET-VALUE"), "{}", err.message);
        }
    }

    #[test]
    fn outside_the_cluster_the_topology_file_stands_in_for_the_config_map() {
        let env = from_config_map(None);
        let err = evaluate(&env, Source::File(None)).expect_err("no file");
        assert!(err.message.contains("topology file"), "{}", err.message);
        let t: Topology =
            serde_yaml::from_str("tables: [{name: orders, partitionKey: {name: pk, type: S}}]")
                .expect("topology");
        let m = evaluate(&env, Source::File(Some(("topology.yaml", &t)))).expect("file");
        assert_eq!(m.resolved.expect("resolved").tables[0].name, "orders");
    }
}
