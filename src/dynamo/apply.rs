//! Carrying out a table plan against DynamoDB: the only place that creates, updates or
//! deletes tables. Each step waits until the table (and its indexes) are ACTIVE again, since
//! DynamoDB refuses a second change while one is in progress.

use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    self as ddb, AttributeDefinition, CreateGlobalSecondaryIndexAction,
    DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType,
    LocalSecondaryIndex, PointInTimeRecoverySpecification, ProvisionedThroughput,
    StreamSpecification, TimeToLiveSpecification, UpdateGlobalSecondaryIndexAction,
};

use super::connect::error_chain;
use super::live::wait_table;
use super::plan::Change;
use super::topology::{self as topo, BillingMode, Table, Throughput};

fn err<E>(what: &str, table: &str, e: aws_sdk_dynamodb::error::SdkError<E>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow!("{what} {table}: {}", error_chain(&e))
}

fn key_schema(
    pk: &topo::KeyAttribute,
    sk: Option<&topo::KeyAttribute>,
) -> anyhow::Result<Vec<KeySchemaElement>> {
    let mut out = vec![
        KeySchemaElement::builder()
            .attribute_name(&pk.name)
            .key_type(KeyType::Hash)
            .build()?,
    ];
    if let Some(sk) = sk {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(&sk.name)
                .key_type(KeyType::Range)
                .build()?,
        );
    }
    Ok(out)
}

fn attribute_definitions(t: &Table) -> anyhow::Result<Vec<AttributeDefinition>> {
    t.attribute_definitions()
        .iter()
        .map(|k| {
            Ok(AttributeDefinition::builder()
                .attribute_name(&k.name)
                .attribute_type(ddb::ScalarAttributeType::from(k.attr_type.as_str()))
                .build()?)
        })
        .collect()
}

/// The table's current definitions plus the new index's keys. DynamoDB needs the new keys;
/// moto replaces the table's definitions with whatever is sent, so the rest must be there too.
async fn index_attribute_definitions(
    client: &Client,
    table: &str,
    g: &topo::GlobalSecondaryIndex,
) -> anyhow::Result<Vec<AttributeDefinition>> {
    let mut defs: Vec<AttributeDefinition> = super::live::describe_raw(client, table)
        .await?
        .map(|d| d.attribute_definitions().to_vec())
        .unwrap_or_default();
    for k in std::iter::once(&g.partition_key).chain(g.sort_key.as_ref()) {
        if !defs.iter().any(|d| d.attribute_name() == k.name) {
            defs.push(
                AttributeDefinition::builder()
                    .attribute_name(&k.name)
                    .attribute_type(ddb::ScalarAttributeType::from(k.attr_type.as_str()))
                    .build()?,
            );
        }
    }
    Ok(defs)
}

fn throughput(t: &Throughput) -> anyhow::Result<ProvisionedThroughput> {
    Ok(ProvisionedThroughput::builder()
        .read_capacity_units(t.read_capacity_units)
        .write_capacity_units(t.write_capacity_units)
        .build()?)
}

fn projection(p: &topo::Projection) -> ddb::Projection {
    ddb::Projection::builder()
        .projection_type(ddb::ProjectionType::from(p.projection_type.as_str()))
        .set_non_key_attributes(
            (!p.non_key_attributes.is_empty()).then(|| p.non_key_attributes.clone()),
        )
        .build()
}

fn gsi(g: &topo::GlobalSecondaryIndex) -> anyhow::Result<ddb::GlobalSecondaryIndex> {
    Ok(ddb::GlobalSecondaryIndex::builder()
        .index_name(&g.name)
        .set_key_schema(Some(key_schema(&g.partition_key, g.sort_key.as_ref())?))
        .projection(projection(&g.projection))
        .set_provisioned_throughput(
            g.provisioned_throughput
                .as_ref()
                .map(throughput)
                .transpose()?,
        )
        .build()?)
}

fn billing(mode: BillingMode) -> ddb::BillingMode {
    ddb::BillingMode::from(mode.as_str())
}

/// Applies `changes` to table `t` in order, waiting for ACTIVE between steps.
pub async fn apply(
    client: &Client,
    t: &Table,
    changes: &[Change],
    timeout: Duration,
) -> anyhow::Result<()> {
    for change in changes {
        tracing::info!(table = %t.name, "table {}: {change}", t.name);
        apply_one(client, t, change, timeout)
            .await
            .with_context(|| format!("table {}: {change}", t.name))?;
    }
    Ok(())
}

async fn apply_one(
    client: &Client,
    t: &Table,
    change: &Change,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = t.name.as_str();
    match change {
        Change::CreateTable => create(client, t, timeout).await?,
        Change::Recreate { .. } => {
            client
                .delete_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| err("DeleteTable", name, e))?;
            wait_table(client, name, true, timeout).await?;
            create(client, t, timeout).await?;
        }
        Change::SetBilling {
            mode,
            throughput: tp,
        } => {
            let mut req = client
                .update_table()
                .table_name(name)
                .billing_mode(billing(*mode));
            if *mode == BillingMode::Provisioned {
                req = req.set_provisioned_throughput(tp.as_ref().map(throughput).transpose()?);
                // Switching to provisioned needs capacity for every existing index too.
                for g in &t.global_secondary_indexes {
                    if let Some(gt) = &g.provisioned_throughput {
                        req = req.global_secondary_index_updates(
                            GlobalSecondaryIndexUpdate::builder()
                                .update(
                                    UpdateGlobalSecondaryIndexAction::builder()
                                        .index_name(&g.name)
                                        .provisioned_throughput(throughput(gt)?)
                                        .build()?,
                                )
                                .build(),
                        );
                    }
                }
            }
            req.send().await.map_err(|e| err("UpdateTable", name, e))?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::SetThroughput(tp) => {
            client
                .update_table()
                .table_name(name)
                .provisioned_throughput(throughput(tp)?)
                .send()
                .await
                .map_err(|e| err("UpdateTable", name, e))?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::SetIndexThroughput {
            index,
            throughput: tp,
        } => {
            client
                .update_table()
                .table_name(name)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .update(
                            UpdateGlobalSecondaryIndexAction::builder()
                                .index_name(index)
                                .provisioned_throughput(throughput(tp)?)
                                .build()?,
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err("UpdateTable", name, e))?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::DeleteIndex(index) => {
            client
                .update_table()
                .table_name(name)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .delete(
                            DeleteGlobalSecondaryIndexAction::builder()
                                .index_name(index)
                                .build()?,
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err("UpdateTable", name, e))?;
            wait_index_gone(client, name, index, timeout).await?;
        }
        Change::CreateIndex(g) => {
            let action = CreateGlobalSecondaryIndexAction::builder()
                .index_name(&g.name)
                .set_key_schema(Some(key_schema(&g.partition_key, g.sort_key.as_ref())?))
                .projection(projection(&g.projection))
                .set_provisioned_throughput(
                    g.provisioned_throughput
                        .as_ref()
                        .map(throughput)
                        .transpose()?,
                )
                .build()?;
            client
                .update_table()
                .table_name(name)
                .set_attribute_definitions(Some(
                    index_attribute_definitions(client, name, g).await?,
                ))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(action).build(),
                )
                .send()
                .await
                .map_err(|e| err("UpdateTable", name, e))?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::DisableTtl(attr) => set_ttl(client, name, attr, false).await?,
        Change::EnableTtl(attr) => set_ttl(client, name, attr, true).await?,
        Change::DisableStream => {
            set_stream(client, name, None).await?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::EnableStream(v) => {
            set_stream(client, name, Some(*v)).await?;
            wait_table(client, name, false, timeout).await?;
        }
        Change::SetPointInTimeRecovery(on) => set_pitr(client, name, *on).await?,
    }
    Ok(())
}

async fn create(client: &Client, t: &Table, timeout: Duration) -> anyhow::Result<()> {
    let name = t.name.as_str();
    let stream = match t.stream_view_type {
        Some(v) => Some(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(v.as_str()))
                .build()?,
        ),
        None => None,
    };
    let lsis = t
        .local_secondary_indexes
        .iter()
        .map(|l| {
            Ok(LocalSecondaryIndex::builder()
                .index_name(&l.name)
                .set_key_schema(Some(key_schema(&t.partition_key, Some(&l.sort_key))?))
                .projection(projection(&l.projection))
                .build()?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let gsis = t
        .global_secondary_indexes
        .iter()
        .map(gsi)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let created = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&t.partition_key, t.sort_key.as_ref())?))
        .set_attribute_definitions(Some(attribute_definitions(t)?))
        .billing_mode(billing(t.billing_mode))
        .set_provisioned_throughput(
            t.provisioned_throughput
                .as_ref()
                .map(throughput)
                .transpose()?,
        )
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .set_local_secondary_indexes((!lsis.is_empty()).then_some(lsis))
        .set_stream_specification(stream)
        .send()
        .await;
    match created {
        Ok(_) => {}
        // Another bootstrap made it meanwhile (engine Moto's restore sidecar and the bootstrap
        // Job start together): it is there, which is what we wanted.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            tracing::info!(
                table = name,
                "table {name}: created concurrently by another bootstrap"
            );
        }
        Err(e) => return Err(err("CreateTable", name, e)),
    }
    wait_table(client, name, false, timeout).await?;
    if let Some(attr) = &t.ttl_attribute {
        set_ttl(client, name, attr, true).await?;
    }
    if t.point_in_time_recovery {
        set_pitr(client, name, true).await?;
    }
    Ok(())
}

async fn set_ttl(client: &Client, name: &str, attr: &str, on: bool) -> anyhow::Result<()> {
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(attr)
                .enabled(on)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| err("UpdateTimeToLive", name, e))?;
    Ok(())
}

async fn set_stream(
    client: &Client,
    name: &str,
    view: Option<topo::StreamViewType>,
) -> anyhow::Result<()> {
    let mut spec = StreamSpecification::builder().stream_enabled(view.is_some());
    if let Some(v) = view {
        spec = spec.stream_view_type(ddb::StreamViewType::from(v.as_str()));
    }
    client
        .update_table()
        .table_name(name)
        .stream_specification(spec.build()?)
        .send()
        .await
        .map_err(|e| err("UpdateTable", name, e))?;
    Ok(())
}

async fn set_pitr(client: &Client, name: &str, on: bool) -> anyhow::Result<()> {
    let result = client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(on)
                .build()?,
        )
        .send()
        .await;
    if let Err(e) = result {
        // DynamoDB Local has no backups; the setting only matters in a real account, so an
        // emulator that cannot do it must not block a local environment.
        tracing::warn!(
            table = name,
            "point-in-time recovery not set (endpoint does not support UpdateContinuousBackups?): {}",
            error_chain(&e)
        );
    }
    Ok(())
}

async fn wait_index_gone(
    client: &Client,
    table: &str,
    index: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        let desc = super::live::describe_raw(client, table).await?;
        let present = desc.as_ref().is_some_and(|d| {
            d.global_secondary_indexes()
                .iter()
                .any(|g| g.index_name() == Some(index))
        });
        if !present {
            return wait_table(client, table, false, timeout).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!(
        "index {index} of table {table} was not removed within {}s",
        timeout.as_secs()
    )
}
