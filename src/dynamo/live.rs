//! Reading live tables back into the topology model: DescribeTable, DescribeTimeToLive and
//! DescribeContinuousBackups. Used by `parity capture`, `parity diff --against-endpoint` and
//! by bootstrap to plan changes.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    self as ddb, GlobalSecondaryIndexDescription, KeySchemaElement, KeyType, TableDescription,
};

use super::connect::error_chain;
use super::topology::{
    AttributeType, BillingMode, GlobalSecondaryIndex, KeyAttribute, LocalSecondaryIndex,
    Projection, ProjectionType, StreamViewType, Table, Throughput, Topology, limits,
};

/// A live table as far as the endpoint could tell. Settings an endpoint does not support
/// (some emulators lack DescribeTimeToLive or DescribeContinuousBackups) are marked unknown so
/// callers leave them alone instead of "fixing" them on every run.
#[derive(Clone, Debug)]
pub struct LiveTable {
    pub table: Table,
    pub ttl_known: bool,
    pub pitr_known: bool,
}

/// Table names on the endpoint, all pages, at most `limits::MAX_TABLES * 16`.
pub async fn list_tables(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(|e| anyhow!("ListTables: {}", error_chain(&e)))?;
        names.extend(out.table_names().iter().cloned());
        match out.last_evaluated_table_name() {
            Some(last) if names.len() < limits::MAX_TABLES * 16 => start = Some(last.to_string()),
            _ => break,
        }
    }
    Ok(names)
}

/// The raw description, or None when the table does not exist.
pub async fn describe_raw(client: &Client, name: &str) -> anyhow::Result<Option<TableDescription>> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow!("DescribeTable {name}: {}", error_chain(&e))),
    }
}

/// The table's shape with TTL and point-in-time recovery, or None when it does not exist.
pub async fn describe(client: &Client, name: &str) -> anyhow::Result<Option<LiveTable>> {
    let Some(desc) = describe_raw(client, name).await? else {
        return Ok(None);
    };
    let mut table = table_from_description(&desc).with_context(|| format!("table {name}"))?;

    let ttl_known = match client.describe_time_to_live().table_name(name).send().await {
        Ok(out) => {
            table.ttl_attribute = out.time_to_live_description().and_then(|d| {
                let on = matches!(
                    d.time_to_live_status(),
                    Some(ddb::TimeToLiveStatus::Enabled | ddb::TimeToLiveStatus::Enabling)
                );
                on.then(|| d.attribute_name().map(str::to_string)).flatten()
            });
            true
        }
        Err(e) => {
            tracing::warn!(
                table = name,
                "DescribeTimeToLive not available on this endpoint, TTL left as is: {}",
                error_chain(&e)
            );
            false
        }
    };

    let pitr_known = match client
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
    {
        Ok(out) => {
            table.point_in_time_recovery = out
                .continuous_backups_description()
                .and_then(|d| d.point_in_time_recovery_description())
                .and_then(|p| p.point_in_time_recovery_status())
                .is_some_and(|s| *s == ddb::PointInTimeRecoveryStatus::Enabled);
            true
        }
        Err(e) => {
            tracing::warn!(
                table = name,
                "DescribeContinuousBackups not available on this endpoint, point-in-time recovery left as is: {}",
                error_chain(&e)
            );
            false
        }
    };

    Ok(Some(LiveTable {
        table,
        ttl_known,
        pitr_known,
    }))
}

/// Reads the named tables (all tables when `names` is empty) into a topology, in the order
/// given (sorted by name when listing). Missing named tables are an error.
pub async fn capture(client: &Client, names: &[String]) -> anyhow::Result<Topology> {
    let names = if names.is_empty() {
        let mut all = list_tables(client).await?;
        all.sort();
        all
    } else {
        names.to_vec()
    };
    if names.len() > limits::MAX_TABLES {
        bail!(
            "{} tables found; a topology holds at most {}: choose some with --tables",
            names.len(),
            limits::MAX_TABLES
        );
    }
    let mut topology = Topology::default();
    for name in &names {
        match describe(client, name).await? {
            Some(live) => topology.tables.push(live.table),
            None => bail!("table {name} does not exist on the endpoint"),
        }
    }
    Ok(topology)
}

/// The live counterpart of `declared`: the same tables read from the endpoint. What
/// DynamoDB cannot show (aliases, secret names; TTL or backups on emulators without those
/// APIs) is taken from `declared` so it does not show up as drift.
pub async fn live_topology(
    endpoint: &str,
    aws: &super::connect::AwsArgs,
    declared: &Topology,
    all_tables: bool,
) -> anyhow::Result<Topology> {
    let ddb = super::connect::client(endpoint, aws, 3);
    let mut actual = Topology {
        tables: Vec::new(),
        kms_key_aliases: declared.kms_key_aliases.clone(),
        secret_names: declared.secret_names.clone(),
    };
    let mut names: Vec<String> = declared.tables.iter().map(|t| t.name.clone()).collect();
    if all_tables {
        for n in list_tables(&ddb).await? {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    for name in names {
        if let Some(mut live) = describe(&ddb, &name).await? {
            if let Some(want) = declared.table(&name) {
                if !live.ttl_known {
                    live.table.ttl_attribute = want.ttl_attribute.clone();
                }
                if !live.pitr_known {
                    live.table.point_in_time_recovery = want.point_in_time_recovery;
                }
            }
            actual.tables.push(live.table);
        }
    }
    Ok(actual)
}

/// Polls DescribeTable until the table and all its indexes are ACTIVE (after a create or an
/// index change), or it is gone when `gone` is set (after a delete).
pub async fn wait_table(
    client: &Client,
    name: &str,
    gone: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = String::from("not described yet");
    while start.elapsed() < timeout {
        match describe_raw(client, name).await? {
            None if gone => return Ok(()),
            None => last = "not found".into(),
            Some(d) => {
                let status = d
                    .table_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                let busy_index = d.global_secondary_indexes().iter().find(|g| {
                    g.index_status()
                        .is_some_and(|s| *s != ddb::IndexStatus::Active)
                });
                if !gone && status == "ACTIVE" && busy_index.is_none() {
                    return Ok(());
                }
                last = match busy_index {
                    Some(g) => format!(
                        "table {status}, index {} {}",
                        g.index_name().unwrap_or("?"),
                        g.index_status().map(|s| s.as_str()).unwrap_or("?")
                    ),
                    None => format!("table {status}"),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "table {name} did not become {} within {}s (last seen: {last})",
        if gone { "deleted" } else { "ACTIVE" },
        timeout.as_secs()
    )
}

fn key_attribute(
    desc: &TableDescription,
    schema: &[KeySchemaElement],
    kind: KeyType,
) -> anyhow::Result<Option<KeyAttribute>> {
    let Some(el) = schema.iter().find(|k| *k.key_type() == kind) else {
        return Ok(None);
    };
    let name = el.attribute_name();
    let def = desc
        .attribute_definitions()
        .iter()
        .find(|d| d.attribute_name() == name)
        .ok_or_else(|| anyhow!("key attribute {name} has no attribute definition"))?;
    let attr_type: AttributeType = def
        .attribute_type()
        .as_str()
        .parse()
        .map_err(|e| anyhow!("attribute {name}: type {e}"))?;
    Ok(Some(KeyAttribute {
        name: name.to_string(),
        attr_type,
    }))
}

fn projection(p: Option<&ddb::Projection>) -> anyhow::Result<Projection> {
    let Some(p) = p else {
        return Ok(Projection::default());
    };
    let projection_type: ProjectionType = match p.projection_type() {
        Some(t) => t.as_str().parse().map_err(|e| anyhow!("projection {e}"))?,
        None => ProjectionType::All,
    };
    let mut non_key_attributes = p.non_key_attributes().to_vec();
    non_key_attributes.sort();
    Ok(Projection {
        projection_type,
        non_key_attributes,
    })
}

fn throughput(t: Option<&ddb::ProvisionedThroughputDescription>) -> Option<Throughput> {
    let t = t?;
    match (t.read_capacity_units(), t.write_capacity_units()) {
        (Some(r), Some(w)) if r > 0 && w > 0 => Some(Throughput {
            read_capacity_units: r,
            write_capacity_units: w,
        }),
        _ => None,
    }
}

fn gsi(
    desc: &TableDescription,
    g: &GlobalSecondaryIndexDescription,
    provisioned: bool,
) -> anyhow::Result<GlobalSecondaryIndex> {
    let name = g.index_name().unwrap_or_default().to_string();
    let ctx = || format!("global secondary index {name}");
    Ok(GlobalSecondaryIndex {
        partition_key: key_attribute(desc, g.key_schema(), KeyType::Hash)
            .with_context(ctx)?
            .ok_or_else(|| anyhow!("{} has no HASH key", ctx()))?,
        sort_key: key_attribute(desc, g.key_schema(), KeyType::Range).with_context(ctx)?,
        projection: projection(g.projection()).with_context(ctx)?,
        provisioned_throughput: if provisioned {
            throughput(g.provisioned_throughput())
        } else {
            None
        },
        name,
    })
}

/// Pure conversion of DescribeTable's answer (TTL and PITR are separate calls).
pub fn table_from_description(desc: &TableDescription) -> anyhow::Result<Table> {
    let name = desc.table_name().unwrap_or_default().to_string();
    // Emulators differ: some omit BillingModeSummary for provisioned tables, some report 0/0
    // capacity for on-demand ones. Capacity > 0 without an on-demand summary is provisioned.
    let on_demand = desc
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_some_and(|m| *m == ddb::BillingMode::PayPerRequest);
    let table_throughput = throughput(desc.provisioned_throughput());
    let provisioned = !on_demand && table_throughput.is_some();

    let mut global_secondary_indexes = desc
        .global_secondary_indexes()
        .iter()
        .map(|g| gsi(desc, g, provisioned))
        .collect::<anyhow::Result<Vec<_>>>()?;
    global_secondary_indexes.sort_by(|a, b| a.name.cmp(&b.name));

    let mut local_secondary_indexes = desc
        .local_secondary_indexes()
        .iter()
        .map(|l| {
            let name = l.index_name().unwrap_or_default().to_string();
            Ok(LocalSecondaryIndex {
                sort_key: key_attribute(desc, l.key_schema(), KeyType::Range)?
                    .ok_or_else(|| anyhow!("local secondary index {name} has no RANGE key"))?,
                projection: projection(l.projection())?,
                name,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    local_secondary_indexes.sort_by(|a, b| a.name.cmp(&b.name));

    let stream_view_type = match desc.stream_specification() {
        Some(s) if s.stream_enabled() => match s.stream_view_type() {
            Some(v) => Some(
                v.as_str()
                    .parse::<StreamViewType>()
                    .map_err(|e| anyhow!("stream view type {e}"))?,
            ),
            None => None,
        },
        _ => None,
    };

    Ok(Table {
        partition_key: key_attribute(desc, desc.key_schema(), KeyType::Hash)?
            .ok_or_else(|| anyhow!("table {name} has no HASH key"))?,
        sort_key: key_attribute(desc, desc.key_schema(), KeyType::Range)?,
        billing_mode: if provisioned {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        },
        provisioned_throughput: if provisioned { table_throughput } else { None },
        global_secondary_indexes,
        local_secondary_indexes,
        ttl_attribute: None,
        stream_view_type,
        point_in_time_recovery: false,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingModeSummary, ProvisionedThroughputDescription,
        ScalarAttributeType, StreamSpecification,
    };

    fn ks(name: &str, t: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    }

    fn ad(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    }

    #[test]
    fn an_on_demand_description_with_zero_capacity_is_pay_per_request() {
        let desc = TableDescription::builder()
            .table_name("orders")
            .key_schema(ks("pk", KeyType::Hash))
            .key_schema(ks("sk", KeyType::Range))
            .attribute_definitions(ad("pk", ScalarAttributeType::S))
            .attribute_definitions(ad("sk", ScalarAttributeType::N))
            .attribute_definitions(ad("g", ScalarAttributeType::B))
            .billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(ddb::BillingMode::PayPerRequest)
                    .build(),
            )
            .provisioned_throughput(
                ProvisionedThroughputDescription::builder()
                    .read_capacity_units(0)
                    .write_capacity_units(0)
                    .build(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("byG")
                    .key_schema(ks("g", KeyType::Hash))
                    .projection(
                        ddb::Projection::builder()
                            .projection_type(ddb::ProjectionType::Include)
                            .non_key_attributes("b")
                            .non_key_attributes("a")
                            .build(),
                    )
                    .build(),
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(ddb::StreamViewType::KeysOnly)
                    .build()
                    .unwrap(),
            )
            .build();
        let t = table_from_description(&desc).unwrap();
        let expected = Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: sk, type: N }
    globalSecondaryIndexes:
      - name: byG
        partitionKey: { name: g, type: B }
        projection: { type: INCLUDE, nonKeyAttributes: [a, b] }
    streamViewType: KEYS_ONLY
"#,
        )
        .unwrap();
        assert_eq!(t, expected.tables[0]);
    }

    #[test]
    fn a_key_without_attribute_definition_is_an_error_naming_it() {
        let desc = TableDescription::builder()
            .table_name("t1x")
            .key_schema(ks("pk", KeyType::Hash))
            .build();
        let err = format!("{:#}", table_from_description(&desc).unwrap_err());
        assert!(
            err.contains("key attribute pk has no attribute definition"),
            "{err}"
        );
    }
}
