//! Writing validated seed items: BatchWriteItem in chunks of 25 (DynamoDB's maximum), a few
//! chunks in flight, unprocessed items retried with capped exponential backoff.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, Select, WriteRequest,
};
use futures::{StreamExt, stream};

use super::fixture::TableSeed;
use super::item::{Item, key_text};
use crate::dynamo::backoff::Backoff;
use crate::dynamo::connect::error_chain;
use crate::dynamo::topology::Table;

/// DynamoDB's BatchWriteItem limit.
pub const BATCH_WRITE_SIZE: usize = 25;
/// DynamoDB's BatchGetItem limit.
const BATCH_GET_SIZE: usize = 100;
/// Attempts per batch before giving up on unprocessed items.
pub const MAX_BATCH_ATTEMPTS: u32 = 10;

/// Which fixture items are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedMode {
    /// Only items whose key is not in the table yet: re-runs write nothing, data the app
    /// changed is kept, and an interrupted load resumes.
    #[default]
    Missing,
    /// Every item, replacing what is there.
    Overwrite,
}

/// What a table's load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub table: String,
    pub total: usize,
    pub written: usize,
    pub already_present: usize,
}

/// Sends `requests` (at most 25) with `send`, which returns the unprocessed ones, until none
/// are left; waits with `backoff` between attempts; fails after `max_attempts`.
pub async fn write_batch_with_retries<F, Fut>(
    mut requests: Vec<WriteRequest>,
    max_attempts: u32,
    mut backoff: Backoff,
    mut send: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<WriteRequest>>>,
{
    let mut attempt = 1;
    loop {
        let unprocessed = send(requests).await?;
        if unprocessed.is_empty() {
            return Ok(());
        }
        if attempt >= max_attempts {
            bail!(
                "{} items still unprocessed after {attempt} attempts (throttled?)",
                unprocessed.len()
            );
        }
        let delay = backoff.next_delay();
        tracing::debug!(
            unprocessed = unprocessed.len(),
            attempt,
            "retrying unprocessed items in {delay:?}"
        );
        tokio::time::sleep(delay).await;
        requests = unprocessed;
        attempt += 1;
    }
}

fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(5))
}

async fn send_batch(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> anyhow::Result<Vec<WriteRequest>> {
    let out = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(|e| anyhow!("BatchWriteItem {table}: {}", error_chain(&e)))?;
    Ok(out
        .unprocessed_items
        .and_then(|mut m| m.remove(table))
        .unwrap_or_default())
}

/// Writes `items` to `table`, `concurrency` batches in flight, logging progress.
pub async fn write_items(
    client: &Client,
    table: &str,
    items: Vec<Item>,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let total = items.len();
    let mut batches = Vec::with_capacity(total.div_ceil(BATCH_WRITE_SIZE));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        let chunk = it
            .by_ref()
            .take(BATCH_WRITE_SIZE)
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        batches.push(chunk);
    }
    let step = (total / 10).max(BATCH_WRITE_SIZE);
    let mut written = 0;
    let mut last_logged = 0;
    let mut results = stream::iter(batches)
        .map(|batch| async move {
            let n = batch.len();
            write_batch_with_retries(batch, MAX_BATCH_ATTEMPTS, retry_backoff(), |reqs| {
                send_batch(client, table, reqs)
            })
            .await
            .map(|()| n)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = results.next().await {
        written += r?;
        if written - last_logged >= step || written == total {
            tracing::info!(
                table,
                written,
                total,
                "seeding {table}: {written}/{total} items"
            );
            last_logged = written;
        }
    }
    Ok(written)
}

/// A key's identity as text, the same for a fixture item and the item read back.
pub fn key_signature(table: &Table, item: &Item) -> String {
    table
        .key_attributes()
        .iter()
        .map(|k| item.get(&k.name).map(key_text).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Which of `items` already exist in the table (by key), with BatchGetItem reading keys only,
/// `concurrency` requests in flight.
pub async fn existing_keys(
    client: &Client,
    table: &Table,
    items: &[Item],
    concurrency: usize,
) -> anyhow::Result<HashSet<String>> {
    let key_names: Vec<&str> = table
        .key_attributes()
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    let names: HashMap<String, String> = key_names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("#k{i}"), n.to_string()))
        .collect();
    let projection = (0..key_names.len())
        .map(|i| format!("#k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (names, projection) = (&names, projection.as_str());
    let chunks = items.chunks(BATCH_GET_SIZE).map(|chunk| {
        chunk
            .iter()
            .map(|item| {
                key_names
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect()
            })
            .collect::<Vec<HashMap<String, AttributeValue>>>()
    });
    let mut found = HashSet::new();
    let mut results = stream::iter(chunks)
        .map(|keys| existing_in_chunk(client, table, keys, projection, names))
        .buffer_unordered(concurrency.max(1));
    while let Some(keys) = results.next().await {
        found.extend(keys?);
    }
    Ok(found)
}

/// The key signatures of those of `keys` (at most 100) that exist, unprocessed keys asked
/// again with backoff.
async fn existing_in_chunk(
    client: &Client,
    table: &Table,
    mut keys: Vec<HashMap<String, AttributeValue>>,
    projection: &str,
    names: &HashMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut backoff = retry_backoff();
    let mut attempt = 1;
    while !keys.is_empty() {
        let req = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut keys)))
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names.clone()))
            .build()?;
        let out = client
            .batch_get_item()
            .request_items(&table.name, req)
            .send()
            .await
            .map_err(|e| anyhow!("BatchGetItem {}: {}", table.name, error_chain(&e)))?;
        if let Some(items) = out.responses.and_then(|mut r| r.remove(&table.name)) {
            found.extend(items.iter().map(|i| key_signature(table, i)));
        }
        keys = out
            .unprocessed_keys
            .and_then(|mut u| u.remove(&table.name))
            .map(|k| k.keys)
            .unwrap_or_default();
        if !keys.is_empty() {
            if attempt >= MAX_BATCH_ATTEMPTS {
                bail!(
                    "BatchGetItem {}: {} keys still unprocessed after {attempt} attempts",
                    table.name,
                    keys.len()
                );
            }
            tokio::time::sleep(backoff.next_delay()).await;
            attempt += 1;
        }
    }
    Ok(found)
}

/// Whether `table` holds no item (a strongly consistent Scan of at most one).
async fn is_empty(client: &Client, table: &str) -> anyhow::Result<bool> {
    let out = client
        .scan()
        .table_name(table)
        .limit(1)
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| anyhow!("Scan {table}: {}", error_chain(&e)))?;
    Ok(out.count == 0 && out.last_evaluated_key.is_none())
}

/// Loads one table's seed items according to `mode`.
pub async fn load_table(
    client: &Client,
    table: &Table,
    seed: TableSeed,
    mode: SeedMode,
    concurrency: usize,
) -> anyhow::Result<LoadReport> {
    let total = seed.items.len();
    let items: Vec<Item> = seed.items.into_iter().map(|s| s.item).collect();
    let items = match mode {
        SeedMode::Overwrite => items,
        // An empty table (a first bootstrap) has none of the keys: one Scan instead of a
        // BatchGetItem per 100 items, work the endpoint would do on top of the writes.
        SeedMode::Missing if is_empty(client, &table.name).await? => items,
        SeedMode::Missing => {
            let existing = existing_keys(client, table, &items, concurrency).await?;
            items
                .into_iter()
                .filter(|i| !existing.contains(&key_signature(table, i)))
                .collect()
        }
    };
    let already_present = total - items.len();
    if items.is_empty() {
        tracing::info!(
            table = %table.name,
            "seeding {}: all {total} items already present",
            table.name
        );
    }
    let written = if items.is_empty() {
        0
    } else {
        write_items(client, &table.name, items, concurrency).await?
    };
    Ok(LoadReport {
        table: table.name.clone(),
        total,
        written,
        already_present,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn req(i: usize) -> WriteRequest {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .item("id", AttributeValue::N(i.to_string()))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_until_none_are_left() {
        let calls = Mutex::new(Vec::new());
        write_batch_with_retries((0..25).map(req).collect(), 6, fast(), |reqs| {
            calls.lock().unwrap().push(reqs.len());
            // The "server" processes half of what it gets each time.
            let back = reqs[reqs.len().div_ceil(2)..].to_vec();
            async move { Ok(back) }
        })
        .await
        .unwrap();
        assert_eq!(*calls.lock().unwrap(), vec![25, 12, 6, 3, 1]);
    }

    #[tokio::test]
    async fn it_gives_up_after_the_attempt_budget_with_a_clear_error() {
        let err = write_batch_with_retries((0..3).map(req).collect(), 4, fast(), |reqs| async {
            Ok(reqs)
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "3 items still unprocessed after 4 attempts (throttled?)"
        );
    }
}
