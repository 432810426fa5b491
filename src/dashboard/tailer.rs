//! Tails the DynamoDB Streams of the shown tables and publishes each change to the hub.
//! Shards present at start are read from LATEST (the page already shows what came before);
//! shards that appear later are read from TRIM_HORIZON so no change between them is lost.
//! The feed shows encrypted attributes as envelope metadata only: decryption happens (and is
//! audited) when someone opens the item.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use serde_json::json;

use super::dynamo::key_label;
use super::hub::Hub;
use super::metrics::Metrics;
use super::view::classify_item;
use crate::dynamo::connect::error_chain;
use crate::dynamo::topology::Table;

/// How often the shard list is refreshed (to find child shards after a split).
const DESCRIBE_EVERY: Duration = Duration::from_secs(5);

/// A stream attribute value as the DynamoDB SDK's type (same wire shape, another crate).
pub fn convert(v: StreamValue) -> AttributeValue {
    match v {
        StreamValue::S(s) => AttributeValue::S(s),
        StreamValue::N(n) => AttributeValue::N(n),
        StreamValue::B(b) => AttributeValue::B(Blob::new(b.into_inner())),
        StreamValue::Bool(b) => AttributeValue::Bool(b),
        StreamValue::Null(b) => AttributeValue::Null(b),
        StreamValue::Ss(v) => AttributeValue::Ss(v),
        StreamValue::Ns(v) => AttributeValue::Ns(v),
        StreamValue::Bs(v) => {
            AttributeValue::Bs(v.into_iter().map(|b| Blob::new(b.into_inner())).collect())
        }
        StreamValue::L(l) => AttributeValue::L(l.into_iter().map(convert).collect()),
        StreamValue::M(m) => {
            AttributeValue::M(m.into_iter().map(|(k, v)| (k, convert(v))).collect())
        }
        _ => AttributeValue::Null(true),
    }
}

pub fn convert_item(m: HashMap<String, StreamValue>) -> HashMap<String, AttributeValue> {
    m.into_iter().map(|(k, v)| (k, convert(v))).collect()
}

/// Milliseconds since the Unix epoch (with fractions), stamped on each message so clients
/// (and the benchmark) can measure delivery latency.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The message every client of `table` receives for one change.
pub fn change_message(
    table: &Table,
    event: &str,
    keys: HashMap<String, AttributeValue>,
    new_image: Option<HashMap<String, AttributeValue>>,
) -> String {
    let label = key_label(table, &keys);
    let key: BTreeMap<String, serde_json::Value> = keys
        .iter()
        .map(|(k, v)| (k.clone(), super::view::to_json(v)))
        .collect();
    json!({
        "type": "change",
        "table": table.name,
        "event": event,
        "key": key,
        "keyLabel": label,
        "item": new_image.as_ref().map(classify_item),
        "sentAt": now_ms(),
    })
    .to_string()
}

struct ShardReader {
    shard_id: String,
    /// None after an error: the next poll asks for a new one.
    iterator: Option<String>,
    last_sequence: Option<String>,
    /// The shard ended (split); its children come from describe.
    closed: bool,
    /// After failed re-opens: not before then (doubling to [`MAX_REOPEN_DELAY`]), so an
    /// outage costs a few calls and log lines, not one per poll.
    reopen_at: Option<(Instant, Duration)>,
}

const MAX_REOPEN_DELAY: Duration = Duration::from_secs(2);

pub struct Tailer {
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub poll: Duration,
}

impl Tailer {
    /// Tails every table that declares a stream, until the task is dropped.
    pub fn spawn(self: Arc<Self>, tables: Vec<Table>) -> Vec<tokio::task::JoinHandle<()>> {
        tables
            .into_iter()
            .filter(|t| t.stream_view_type.is_some())
            .map(|t| {
                let me = self.clone();
                tokio::spawn(async move { me.tail_table(t).await })
            })
            .collect()
    }

    async fn stream_arn(&self, table: &str) -> Option<String> {
        let mut warned = false;
        loop {
            match self.ddb.describe_table().table_name(table).send().await {
                Ok(out) => {
                    if let Some(arn) = out.table.and_then(|t| t.latest_stream_arn) {
                        tracing::info!(table, "live feed: tailing the table's stream");
                        return Some(arn);
                    }
                    if !warned {
                        tracing::warn!(table, "live feed: the table has no stream yet; retrying");
                    }
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(table, error = %error_chain(&e), "live feed: describe table failed; retrying");
                    }
                }
            }
            warned = true;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn tail_table(&self, table: Table) {
        let Some(arn) = self.stream_arn(&table.name).await else {
            return;
        };
        let mut readers: Vec<ShardReader> = Vec::new();
        let mut known: HashSet<String> = HashSet::new();
        let mut first = true;
        let mut last_describe: Option<Instant> = None;
        loop {
            if last_describe.is_none_or(|t| t.elapsed() >= DESCRIBE_EVERY) {
                last_describe = Some(Instant::now());
                match self.streams.describe_stream().stream_arn(&arn).send().await {
                    Ok(out) => {
                        let shards = out
                            .stream_description
                            .and_then(|d| d.shards)
                            .unwrap_or_default();
                        for s in shards {
                            let Some(id) = s.shard_id else { continue };
                            if known.insert(id.clone()) {
                                let kind = if first {
                                    ShardIteratorType::Latest
                                } else {
                                    ShardIteratorType::TrimHorizon
                                };
                                let iterator = self.iterator(&arn, &id, kind, None).await;
                                readers.push(ShardReader {
                                    shard_id: id,
                                    iterator,
                                    last_sequence: None,
                                    closed: false,
                                    reopen_at: None,
                                });
                            }
                        }
                        if first {
                            tracing::info!(
                                table = %table.name,
                                shards = readers.iter().filter(|r| r.iterator.is_some()).count(),
                                "live feed: reading the stream"
                            );
                        }
                        first = false;
                    }
                    Err(e) => {
                        tracing::warn!(table = %table.name, error = %error_chain(&e), "live feed: describe stream failed");
                    }
                }
            }
            let mut behind = false;
            for r in readers.iter_mut() {
                behind |= self.poll_shard(&arn, &table, r).await >= self.batch();
            }
            // Only ended shards go. A reader whose iterator was lost to an error stays: it
            // is known to describe, which would never hand it out again.
            readers.retain(|r| !r.closed);
            // A full batch means more is waiting: read on at once instead of sleeping.
            if !behind {
                tokio::time::sleep(self.poll).await;
            }
        }
    }

    /// Records per GetRecords: at most a client queue's worth, so one batch never overflows
    /// a client that had kept up (a client is dropped for lagging, not for a burst).
    fn batch(&self) -> usize {
        self.hub.capacity().min(1000)
    }

    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> Option<String> {
        match self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out.shard_iterator,
            Err(e) => {
                tracing::warn!(shard, error = %error_chain(&e), "live feed: get shard iterator failed");
                None
            }
        }
    }

    /// Reads one batch of the shard and publishes it; returns the number of records.
    async fn poll_shard(&self, arn: &str, table: &Table, r: &mut ShardReader) -> usize {
        let Some(it) = r.iterator.clone() else {
            if let Some((at, _)) = r.reopen_at
                && Instant::now() < at
            {
                return 0;
            }
            // Lost the iterator after an error: resume after the last record seen (or, with
            // none seen yet, from now: the shard was read from LATEST anyway).
            r.iterator = match r.last_sequence.clone() {
                Some(seq) => {
                    self.iterator(
                        arn,
                        &r.shard_id,
                        ShardIteratorType::AfterSequenceNumber,
                        Some(&seq),
                    )
                    .await
                }
                None => {
                    self.iterator(arn, &r.shard_id, ShardIteratorType::Latest, None)
                        .await
                }
            };
            if r.iterator.is_some() {
                tracing::info!(table = %table.name, shard = %r.shard_id, after = ?r.last_sequence, "live feed: resumed reading the shard");
            }
            r.reopen_at = match (&r.iterator, r.reopen_at) {
                (Some(_), _) => None,
                (None, prev) => {
                    let delay = prev
                        .map(|(_, d)| (d * 2).min(MAX_REOPEN_DELAY))
                        .unwrap_or(self.poll);
                    Some((Instant::now() + delay, delay))
                }
            };
            return 0;
        };
        let limit = self.batch() as i32;
        match self
            .streams
            .get_records()
            .shard_iterator(it)
            .limit(limit)
            .send()
            .await
        {
            Ok(out) => {
                let records = out.records.unwrap_or_default();
                let n = records.len();
                for rec in records {
                    let event = rec
                        .event_name
                        .as_ref()
                        .map(|e| e.as_str().to_string())
                        .unwrap_or_else(|| "UNKNOWN".into());
                    let Some(d) = rec.dynamodb else { continue };
                    if let Some(seq) = d.sequence_number.clone() {
                        r.last_sequence = Some(seq);
                    }
                    let keys = convert_item(d.keys.unwrap_or_default());
                    let new_image = d.new_image.map(convert_item);
                    let msg = change_message(table, &event, keys, new_image);
                    self.metrics.changes.inc();
                    let dropped = self.hub.publish(&table.name, msg.into());
                    if dropped > 0 {
                        self.metrics.dropped_clients.inc_by(dropped as u64);
                        tracing::warn!(dropped, "live feed: dropped slow WebSocket clients");
                    }
                }
                // None: the shard is closed (split); its children come from describe.
                r.iterator = out.next_shard_iterator;
                r.closed = r.iterator.is_none();
                n
            }
            Err(e) => {
                tracing::warn!(table = %table.name, shard = %r.shard_id, error = %error_chain(&e), "live feed: get records failed");
                r.iterator = None;
                0
            }
        }
    }
}
