//! Seed fixture files: reading a directory (a mounted ConfigMap), parsing each file in its
//! format with line numbers, and validating every item against its table before anything is
//! written. Parsing and validation are pure; only [`read_dir`] touches the filesystem.
//!
//! Layout: `<table>.jsonl` / `<table>.ndjson` (JSON Lines), `<table>.json` (an array of
//! objects, or objects one after another as in DynamoDB exports), each item plain JSON or
//! DynamoDB JSON (typed values, also `{"Item": {...}}` export lines), detected per file.
//! An optional sidecar `<table>.fixture.yaml` ([`FixtureSchema`]) marks encrypted fields.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::item::{self, Item, MAX_ITEM_BYTES};
use crate::dynamo::topology::{AttributeType, KeyAttribute, Table, Topology};

/// At most this many problems are collected (the summary must stay readable and bounded).
pub const MAX_ERRORS: usize = 100;

/// How items in a file are written. Detected when not given in the sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ItemFormat {
    /// Plain JSON values: string S, number N, bool, null, array L, object M.
    Plain,
    /// DynamoDB JSON: `{"S": "x"}`, `{"N": "1"}`, ...
    Dynamodb,
}

/// The sidecar `<table>.fixture.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixtureSchema {
    /// Item format; detected from the first item when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ItemFormat>,
    /// Top-level attributes (S, N or B) stored encrypted, as a binary envelope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt: Vec<String>,
    /// Encryption context template: values may use `{table}`, `{attribute}` and any key
    /// attribute of the table (e.g. `{pk}`), which apps can rebuild when they decrypt.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

/// A problem with a fixture, at a file and (when it is about one item) a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Every problem found in the fixtures; the run writes nothing when there is any.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FixtureErrors {
    pub errors: Vec<FixtureError>,
    /// Problems past [`MAX_ERRORS`], counted but not kept.
    pub more: usize,
}

impl fmt::Display for FixtureErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: std::collections::BTreeSet<&str> =
            self.errors.iter().map(|e| e.file.as_str()).collect();
        let total = self.errors.len() + self.more;
        write!(
            f,
            "seed fixtures rejected, nothing was written: {total} problem{} in {} file{}",
            if total == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        if self.more > 0 {
            write!(f, "\n  ... and {} more", self.more)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Errors {
    errors: Vec<FixtureError>,
    more: usize,
}

impl Errors {
    fn push(&mut self, file: &str, line: Option<usize>, reason: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FixtureError {
                file: file.to_string(),
                line,
                reason: reason.into(),
            });
        } else {
            self.more += 1;
        }
    }
}

/// File order, then file-wide problems before line ones, then by line (stable).
fn sort_errors(errors: &mut [FixtureError]) {
    errors.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
}

/// One item and the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedItem {
    pub line: usize,
    pub item: Item,
}

/// The validated fixtures of one table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSeed {
    pub table: String,
    pub file: String,
    pub schema: FixtureSchema,
    pub items: Vec<SeedItem>,
}

const DATA_EXTENSIONS: &[&str] = &[".jsonl", ".ndjson", ".json"];
const SIDECAR_EXTENSIONS: &[&str] = &[".fixture.yaml", ".fixture.yml"];

/// The table a `<table>.fixture.yaml` schema file is for; None for any other file name.
pub fn schema_file_table(file_name: &str) -> Option<&str> {
    strip_any(file_name, SIDECAR_EXTENSIONS)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The elements of a top-level JSON array with their start offsets, one element at a time
/// through serde_json's stream (its byte_offset says where each ends). None when `text` is
/// not one well-formed array: the caller then parses it whole for serde_json's own error.
fn array_elements(text: &str) -> Option<Vec<(usize, Value)>> {
    // JSON's whitespace only: anything else between elements is a syntax error.
    let skip_ws = |from: usize| {
        from + text[from..].len()
            - text[from..]
                .trim_start_matches([' ', '\t', '\n', '\r'])
                .len()
    };
    let mut pos = skip_ws(0);
    if !text[pos..].starts_with('[') {
        return None;
    }
    pos = skip_ws(pos + 1);
    let mut out = Vec::new();
    if !text[pos..].starts_with(']') {
        loop {
            let mut stream = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<Value>();
            out.push((pos, stream.next()?.ok()?));
            pos = skip_ws(pos + stream.byte_offset());
            match text[pos..].chars().next()? {
                ',' => pos = skip_ws(pos + 1),
                ']' => break,
                _ => return None,
            }
        }
    }
    (skip_ws(pos + 1) == text.len()).then_some(out)
}

/// Raw JSON values of a file with their line numbers; syntax errors are reported per line
/// (JSON Lines: every bad line; other files: the first error, as parsing cannot resync).
fn raw_values(file: &str, text: &str, errors: &mut Errors) -> Vec<(usize, Value)> {
    let lines_format = file.ends_with(".jsonl") || file.ends_with(".ndjson");
    let trimmed = text.trim_start();
    if lines_format {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) => out.push((i + 1, v)),
                Err(e) => errors.push(file, Some(i + 1), format!("invalid JSON: {e}")),
            }
        }
        return out;
    }
    if trimmed.starts_with('[') {
        if let Some(values) = array_elements(text) {
            return values
                .into_iter()
                .map(|(offset, v)| (line_of(text, offset), v))
                .collect();
        }
        return match serde_json::from_str::<Value>(text) {
            Err(e) => {
                errors.push(file, Some(e.line()), format!("invalid JSON: {e}"));
                Vec::new()
            }
            // Valid JSON the walk above could not follow: say so rather than drop items.
            Ok(_) => {
                errors.push(
                    file,
                    None,
                    "could not locate the elements of the top-level array",
                );
                Vec::new()
            }
        };
    }
    // Objects one after another (pretty or one per line, as DynamoDB exports write them).
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(v)) => {
                let skip = text[before..]
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(0);
                out.push((line_of(text, before + skip), v));
            }
            Some(Err(e)) => {
                errors.push(file, Some(e.line()), format!("invalid JSON: {e}"));
                break;
            }
        }
    }
    out
}

fn describe_key(table: &Table, k: &KeyAttribute) -> &'static str {
    if table.partition_key.name == k.name {
        "partition key"
    } else {
        "sort key"
    }
}

/// "sort key of index byStatus": the first index that uses the attribute as a key.
fn index_role(table: &Table, attr: &str) -> String {
    for g in &table.global_secondary_indexes {
        if g.partition_key.name == attr {
            return format!("partition key of index {}", g.name);
        }
        if g.sort_key.as_ref().is_some_and(|k| k.name == attr) {
            return format!("sort key of index {}", g.name);
        }
    }
    for l in &table.local_secondary_indexes {
        if l.sort_key.name == attr {
            return format!("sort key of index {}", l.name);
        }
    }
    "an index key".into()
}

fn check_key_value(
    name: &str,
    want: AttributeType,
    v: &AttributeValue,
    role: &str,
) -> Result<(), String> {
    let got = item::type_name(v);
    if got != want.as_str() {
        return Err(format!(
            "wrong key type: attribute {name:?} ({role}) must be {want}, got {got}"
        ));
    }
    let empty = match v {
        AttributeValue::S(s) => s.is_empty(),
        AttributeValue::B(b) => b.as_ref().is_empty(),
        _ => false,
    };
    if empty {
        return Err(format!("key attribute {name:?} ({role}) must not be empty"));
    }
    if let AttributeValue::S(s) | AttributeValue::N(s) = v
        && s.len() > 2048
    {
        return Err(format!(
            "key attribute {name:?} ({role}) is longer than 2048 bytes"
        ));
    }
    Ok(())
}

/// Plain JSON cannot say "binary": a B key is given as a base64 string.
fn coerce_plain_binary_keys(table: &Table, item: &mut Item) -> Result<(), String> {
    let defs = table.attribute_definitions();
    for k in defs.iter().filter(|k| k.attr_type == AttributeType::B) {
        if let Some(AttributeValue::S(s)) = item.get(&k.name) {
            let bytes = B64.decode(s).map_err(|_| {
                format!(
                    "key attribute {:?} is B: in plain JSON give it as a base64 string",
                    k.name
                )
            })?;
            item.insert(k.name.clone(), AttributeValue::B(Blob::new(bytes)));
        }
    }
    Ok(())
}

/// Checks the sidecar against the table: encrypted fields must not be keys of the table or
/// of an index, context placeholders must be known.
fn check_schema(table: &Table, schema: &FixtureSchema, file: &str, errors: &mut Errors) {
    let defs = table.attribute_definitions();
    for (i, attr) in schema.encrypt.iter().enumerate() {
        if table.key_attributes().iter().any(|k| &k.name == attr) {
            errors.push(
                file,
                None,
                format!("encrypt[{i}]: {attr:?} is a key attribute of table {}; keys cannot be encrypted", table.name),
            );
        } else if defs.iter().any(|k| &k.name == attr) {
            errors.push(
                file,
                None,
                format!("encrypt[{i}]: {attr:?} is an index key attribute of table {}; it cannot be encrypted", table.name),
            );
        }
    }
    if schema.encrypt.is_empty() && !schema.context.is_empty() {
        errors.push(file, None, "context is set but encrypt lists no attribute");
    }
    let keys: Vec<&str> = table
        .key_attributes()
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    for (k, template) in &schema.context {
        if let Err(p) = placeholders(template)
            .into_iter()
            .try_for_each(|p| match p {
                Ok(name) if name == "table" || name == "attribute" || keys.contains(&name) => {
                    Ok(())
                }
                Ok(name) => Err(format!("unknown placeholder {{{name}}}")),
                Err(e) => Err(e),
            })
        {
            errors.push(
                file,
                None,
                format!(
                    "context.{k}: {p}; use {{table}}, {{attribute}} or a key attribute ({})",
                    keys.join(", ")
                ),
            );
        }
    }
}

/// The `{name}` placeholders of a template, in order.
fn placeholders(template: &str) -> Vec<Result<&str, String>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(Ok(&after[..end]));
                rest = &after[end + 1..];
            }
            None => {
                out.push(Err("unclosed {".to_string()));
                break;
            }
        }
    }
    out
}

/// Fills a context template for one attribute of one item.
pub fn render_context(
    schema: &FixtureSchema,
    table: &str,
    attribute: &str,
    item: &Item,
) -> BTreeMap<String, String> {
    schema
        .context
        .iter()
        .map(|(k, template)| {
            let mut out = String::new();
            let mut rest = template.as_str();
            while let Some(start) = rest.find('{') {
                out.push_str(&rest[..start]);
                let after = &rest[start + 1..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                match name {
                    "table" => out.push_str(table),
                    "attribute" => out.push_str(attribute),
                    key => out.push_str(&item.get(key).map(item::key_text).unwrap_or_default()),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            (k.clone(), out)
        })
        .collect()
}

/// Parses and validates one data file for `table`. Pure.
pub fn parse_file(
    file: &str,
    text: &str,
    table: &Table,
    schema: &FixtureSchema,
    errors_out: &mut Vec<FixtureError>,
) -> Vec<SeedItem> {
    let mut errors = Errors::default();
    let items = parse_into(file, text, table, schema, &mut errors);
    sort_errors(&mut errors.errors);
    errors_out.extend(errors.errors);
    items
}

fn parse_into(
    file: &str,
    text: &str,
    table: &Table,
    schema: &FixtureSchema,
    errors: &mut Errors,
) -> Vec<SeedItem> {
    check_schema(table, schema, file, errors);
    let raw = raw_values(file, text, errors);
    let format =
        schema
            .format
            .unwrap_or_else(|| match raw.first().and_then(|(_, v)| v.as_object()) {
                Some(o)
                    if item::looks_typed(o)
                        || (o.len() == 1 && o.get("Item").and_then(Value::as_object).is_some()) =>
                {
                    ItemFormat::Dynamodb
                }
                _ => ItemFormat::Plain,
            });
    let defs = table.attribute_definitions();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::with_capacity(raw.len());
    for (line, v) in raw {
        let Some(obj) = v.as_object() else {
            errors.push(file, Some(line), "expected a JSON object (one item)");
            continue;
        };
        let mut it = match format {
            ItemFormat::Plain => item::item_from_plain(obj),
            ItemFormat::Dynamodb => match item::item_from_typed_hiding(obj, &schema.encrypt) {
                Ok(i) => i,
                Err(e) => {
                    errors.push(file, Some(line), e);
                    continue;
                }
            },
        };
        if format == ItemFormat::Plain
            && let Err(e) = coerce_plain_binary_keys(table, &mut it)
        {
            errors.push(file, Some(line), e);
            continue;
        }
        let mut bad = false;
        for k in table.key_attributes() {
            let role = format!("{} of table {}", describe_key(table, k), table.name);
            match it.get(&k.name) {
                None => {
                    errors.push(
                        file,
                        Some(line),
                        format!("missing key attribute {:?} ({role})", k.name),
                    );
                    bad = true;
                }
                Some(v) => {
                    if let Err(e) = check_key_value(&k.name, k.attr_type, v, &role) {
                        errors.push(file, Some(line), e);
                        bad = true;
                    }
                }
            }
        }
        // Index keys are optional (sparse indexes) but must have the declared type.
        for k in defs
            .iter()
            .filter(|d| !table.key_attributes().iter().any(|t| t.name == d.name))
        {
            if let Some(v) = it.get(&k.name)
                && let Err(e) =
                    check_key_value(&k.name, k.attr_type, v, &index_role(table, &k.name))
            {
                errors.push(file, Some(line), e);
                bad = true;
            }
        }
        for attr in &schema.encrypt {
            if let Some(v) = it.get(attr)
                && !matches!(
                    v,
                    AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)
                )
            {
                errors.push(
                    file,
                    Some(line),
                    format!(
                        "attribute {attr:?} is marked encrypted but is {}; only S, N or B can be encrypted",
                        item::type_name(v)
                    ),
                );
                bad = true;
            }
        }
        let size = item::item_size(&it);
        if size > MAX_ITEM_BYTES {
            errors.push(
                file,
                Some(line),
                format!(
                    "item is {size} bytes, over DynamoDB's 400 KB ({MAX_ITEM_BYTES} bytes) limit"
                ),
            );
            bad = true;
        }
        if bad {
            continue;
        }
        let key_text = |hide: bool| {
            table
                .key_attributes()
                .iter()
                .map(|k| match it.get(&k.name).map(item::key_text) {
                    // A key marked encrypted is already an error (check_schema); its value
                    // stays out of this one too.
                    Some(_) if hide && schema.encrypt.contains(&k.name) => {
                        format!("{}=(not shown: marked encrypted)", k.name)
                    }
                    v => format!("{}={:?}", k.name, v.unwrap_or_default()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let key = key_text(false);
        if let Some(first) = seen.get(&key) {
            errors.push(
                file,
                Some(line),
                format!("duplicate key ({}), first on line {first}", key_text(true)),
            );
            continue;
        }
        seen.insert(key, line);
        items.push(SeedItem { line, item: it });
    }
    items
}

/// The table a data file seeds: `<table>.<ext>`, where `<table>` is a declared name or a
/// declared name without `table_prefix` (seed files keep staging's names when mirrored).
fn table_for<'a>(
    stem: &str,
    topology: &'a Topology,
    table_prefix: Option<&str>,
) -> Option<&'a Table> {
    topology.table(stem).or_else(|| {
        let prefix = table_prefix?;
        topology.table(&format!("{prefix}{stem}"))
    })
}

fn strip_any<'a>(name: &'a str, exts: &[&str]) -> Option<&'a str> {
    exts.iter().find_map(|e| name.strip_suffix(e))
}

/// Reads every fixture in `dir` (ignoring dot entries, such as a ConfigMap volume's `..data`),
/// validates all of them, and returns them per table, or every problem found.
pub fn read_dir(
    dir: &Path,
    topology: &Topology,
    table_prefix: Option<&str>,
) -> Result<Vec<TableSeed>, FixtureErrors> {
    let mut errors = Errors::default();
    let dir_name = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(
                &dir_name,
                None,
                format!("cannot read the seeds directory: {e}"),
            );
            return Err(FixtureErrors {
                errors: errors.errors,
                more: 0,
            });
        }
    };
    let mut data_files = Vec::new();
    let mut sidecars = BTreeMap::new();
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        // Follows symlinks: ConfigMap volume files are links into `..data/`.
        if !std::fs::metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            continue;
        }
        if let Some(stem) = schema_file_table(&name) {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    serde_path_to_error::deserialize::<_, FixtureSchema>(
                        serde_yaml::Deserializer::from_str(&t),
                    )
                    .map_err(|e| {
                        let p = e.path().to_string();
                        if p.is_empty() || p == "." {
                            e.inner().to_string()
                        } else {
                            format!("{p}: {}", e.inner())
                        }
                    })
                });
            match parsed {
                Ok(s) => {
                    sidecars.insert(stem.to_string(), (name.clone(), s));
                }
                Err(e) => errors.push(&name, None, e),
            }
        } else if let Some(stem) = strip_any(&name, DATA_EXTENSIONS) {
            data_files.push((stem.to_string(), name.clone(), path));
        } else {
            errors.push(
                &name,
                None,
                "not a fixture: expected <table>.jsonl, .ndjson, .json or <table>.fixture.yaml",
            );
        }
    }

    let mut seeds: Vec<TableSeed> = Vec::new();
    let mut stems_with_data = BTreeMap::new();
    for (stem, name, path) in data_files {
        let Some(table) = table_for(&stem, topology, table_prefix) else {
            let declared: Vec<&str> = topology.tables.iter().map(|t| t.name.as_str()).collect();
            errors.push(
                &name,
                None,
                format!(
                    "no table {stem:?} in the topology (declared: {})",
                    declared.join(", ")
                ),
            );
            continue;
        };
        if let Some(other) = stems_with_data.insert(table.name.clone(), name.clone()) {
            errors.push(
                &name,
                None,
                format!(
                    "table {} already seeded by {other}; use one file per table",
                    table.name
                ),
            );
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(&name, None, format!("cannot read: {e}"));
                continue;
            }
        };
        let schema = sidecars.remove(&stem).map(|(_, s)| s).unwrap_or_default();
        let items = parse_into(&name, &text, table, &schema, &mut errors);
        seeds.push(TableSeed {
            table: table.name.clone(),
            file: name,
            schema,
            items,
        });
    }
    for (_, (name, _)) in sidecars {
        errors.push(
            &name,
            None,
            "fixture schema without a data file of the same table",
        );
    }
    sort_errors(&mut errors.errors);
    if errors.errors.is_empty() {
        Ok(seeds)
    } else {
        Err(FixtureErrors {
            errors: errors.errors,
            more: errors.more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Topology::from_yaml_str(
            r#"
tables:
  - name: orders
    partitionKey: { name: pk, type: S }
    sortKey: { name: n, type: N }
    globalSecondaryIndexes:
      - name: byBlob
        partitionKey: { name: blob, type: B }
"#,
        )
        .unwrap()
        .tables
        .remove(0)
    }

    fn parse(file: &str, text: &str) -> (Vec<SeedItem>, Vec<String>) {
        let mut errors = Vec::new();
        let items = parse_file(file, text, &table(), &FixtureSchema::default(), &mut errors);
        (items, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn json_lines_errors_carry_file_line_and_reason() {
        let text = [
            r#"{"pk": "a", "n": 1}"#,
            r#"{"pk": "b"}"#,
            r#"{"pk": 7, "n": 2}"#,
            "",
            r#"{"pk": "c", "n": 3, "blob": "!!"}"#,
            r#"{"pk": "d", "n": 4,"#,
            r#"{"pk": "a", "n": 1}"#,
            r#"[1]"#,
            &format!(
                r#"{{"pk": "big", "n": 5, "data": "{}"}}"#,
                "x".repeat(410_000)
            ),
            r#"{"pk": "", "n": 6}"#,
        ]
        .join("\n");
        let (items, errors) = parse("orders.jsonl", &text);
        assert_eq!(items.len(), 1);
        assert_eq!(
            errors,
            vec![
                "orders.jsonl:2: missing key attribute \"n\" (sort key of table orders)",
                "orders.jsonl:3: wrong key type: attribute \"pk\" (partition key of table orders) must be S, got N",
                "orders.jsonl:5: key attribute \"blob\" is B: in plain JSON give it as a base64 string",
                "orders.jsonl:6: invalid JSON: EOF while parsing a value at line 1 column 19",
                "orders.jsonl:7: duplicate key (pk=\"a\", n=\"1\"), first on line 1",
                "orders.jsonl:8: expected a JSON object (one item)",
                "orders.jsonl:9: item is 410012 bytes, over DynamoDB's 400 KB (409600 bytes) limit",
                "orders.jsonl:10: key attribute \"pk\" (partition key of table orders) must not be empty",
            ]
        );
    }

    #[test]
    fn array_items_get_the_line_they_start_on() {
        let text = "[\n  {\"pk\": \"a\", \"n\": 1},\n  {\n    \"pk\": \"b\",\n    \"note\": \"[,{\\\"\"\n  },\n  {\"pk\": \"c\", \"n\": \"3\"}\n]\n";
        let (items, errors) = parse("orders.json", text);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].line, 2);
        assert_eq!(
            errors,
            vec![
                "orders.json:3: missing key attribute \"n\" (sort key of table orders)",
                "orders.json:7: wrong key type: attribute \"n\" (sort key of table orders) must be N, got S",
            ]
        );
    }

    #[test]
    fn dynamodb_json_is_detected_including_export_lines() {
        let text = "{\"Item\": {\"pk\": {\"S\": \"a\"}, \"n\": {\"N\": \"1\"}, \"blob\": {\"B\": \"AAE=\"}}}\n{\"Item\": {\"pk\": {\"S\": \"b\"}, \"n\": {\"S\": \"2\"}}}\n";
        let (items, errors) = parse("orders.json", text);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].item.get("blob"),
            Some(&AttributeValue::B(Blob::new(vec![0, 1])))
        );
        assert_eq!(
            errors,
            vec![
                "orders.json:2: wrong key type: attribute \"n\" (sort key of table orders) must be N, got S"
            ]
        );
    }

    #[test]
    fn encryption_schema_is_checked_against_the_table() {
        let schema = FixtureSchema {
            format: None,
            encrypt: vec!["pk".into(), "blob".into(), "secret".into()],
            context: [
                ("t".to_string(), "{table}/{attribute}/{pk}".to_string()),
                ("x".to_string(), "{nope}".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let mut errors = Vec::new();
        let items = parse_file(
            "orders.jsonl",
            r#"{"pk": "a", "n": 1, "secret": {"nested": true}}"#,
            &table(),
            &schema,
            &mut errors,
        );
        assert!(items.is_empty());
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            vec![
                "orders.jsonl: encrypt[0]: \"pk\" is a key attribute of table orders; keys cannot be encrypted",
                "orders.jsonl: encrypt[1]: \"blob\" is an index key attribute of table orders; it cannot be encrypted",
                "orders.jsonl: context.x: unknown placeholder {nope}; use {table}, {attribute} or a key attribute (pk, n)",
                "orders.jsonl:1: attribute \"secret\" is marked encrypted but is M; only S, N or B can be encrypted",
            ]
        );
    }

    /// Every error path an encrypted field's value can reach: the error names the file, the
    /// item's line and the field, and never quotes the plaintext.
    #[test]
    fn errors_about_encrypted_fields_never_quote_their_values() {
        const CANARY: &str = "CANARY-7f3a9";
        let big = format!("{CANARY}{}", "x".repeat(410_000));
        let typed = |secret: &str| {
            format!(r#"{{"pk": {{"S": "a"}}, "n": {{"N": "1"}}, "secret": {secret}}}"#)
        };
        // (case, the data line, the field the error must name; None: about the whole item)
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            (
                "N not a number",
                typed(&format!(r#"{{"N": "{CANARY}"}}"#)),
                Some("secret"),
            ),
            (
                "B not base64",
                typed(&format!(r#"{{"B": "{CANARY}!"}}"#)),
                Some("secret"),
            ),
            (
                "S not a string",
                typed(&format!(r#"{{"S": ["{CANARY}"]}}"#)),
                Some("secret"),
            ),
            (
                "SS duplicate",
                typed(&format!(r#"{{"SS": ["{CANARY}", "{CANARY}"]}}"#)),
                Some("secret"),
            ),
            (
                "NS not numbers",
                typed(&format!(r#"{{"NS": ["{CANARY}"]}}"#)),
                Some("secret"),
            ),
            (
                "NS duplicate",
                typed(r#"{"NS": ["1", "1"]}"#),
                Some("secret"),
            ),
            (
                "nested N",
                typed(&format!(r#"{{"M": {{"x": {{"N": "{CANARY}"}}}}}}"#)),
                Some("secret"),
            ),
            (
                "listed N",
                typed(&format!(r#"{{"L": [{{"N": "{CANARY}"}}]}}"#)),
                Some("secret"),
            ),
            (
                "unknown type",
                typed(&format!(r#"{{"X": "{CANARY}"}}"#)),
                Some("secret"),
            ),
            (
                "not encryptable",
                typed(&format!(r#"{{"SS": ["{CANARY}"]}}"#)),
                Some("secret"),
            ),
            (
                "plain map",
                format!(r#"{{"pk": "a", "n": 1, "secret": {{"v": "{CANARY}"}}}}"#),
                Some("secret"),
            ),
            (
                "invalid JSON",
                format!(r#"{{"pk": "a", "n": 1, "secret": "{CANARY}\q"}}"#),
                None,
            ),
            (
                "oversized",
                format!(r#"{{"pk": "a", "n": 1, "secret": "{big}"}}"#),
                None,
            ),
        ];
        let schema = FixtureSchema {
            encrypt: vec!["secret".into()],
            ..Default::default()
        };
        for (case, data, field) in cases {
            // Line 1 is a good item in the same format (detected from the first item), so
            // the bad one is on line 2 of the file.
            let good = if data.starts_with(r#"{"pk": {"#) {
                r#"{"pk": {"S": "z"}, "n": {"N": "0"}}"#
            } else {
                r#"{"pk": "z", "n": 0}"#
            };
            let text = format!("{good}\n{data}\n");
            let mut errors = Vec::new();
            parse_file("orders.jsonl", &text, &table(), &schema, &mut errors);
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(shown.len(), 1, "{case}: {shown:?}");
            assert!(
                shown[0].starts_with("orders.jsonl:2: "),
                "{case}: {shown:?}"
            );
            if let Some(f) = field {
                assert!(shown[0].contains(&format!("{f:?}")), "{case}: {shown:?}");
            }
            assert!(
                !shown[0].contains(CANARY),
                "{case} leaks the value: {shown:?}"
            );
        }

        // A key marked encrypted is refused, and a duplicate of it does not quote it either.
        let schema = FixtureSchema {
            encrypt: vec!["pk".into()],
            ..Default::default()
        };
        let line = format!(r#"{{"pk": "{CANARY}", "n": 1}}"#);
        let mut errors = Vec::new();
        parse_file(
            "orders.jsonl",
            &format!("{line}\n{line}\n"),
            &table(),
            &schema,
            &mut errors,
        );
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "orders.jsonl: encrypt[0]: \"pk\" is a key attribute of table orders; keys cannot be encrypted",
                "orders.jsonl:2: duplicate key (pk=(not shown: marked encrypted), n=\"1\"), first on line 1",
            ]
        );
    }

    /// Values of fields that are not encrypted are still quoted: they help fix the file.
    #[test]
    fn errors_about_plain_fields_still_quote_their_values() {
        let mut errors = Vec::new();
        parse_file(
            "orders.jsonl",
            r#"{"pk": {"S": "a"}, "n": {"N": "1"}, "note": {"N": "twelve"}}"#,
            &table(),
            &FixtureSchema::default(),
            &mut errors,
        );
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["orders.jsonl:1: attribute \"note\": N value \"twelve\" is not a number"]
        );
    }

    #[test]
    fn context_templates_render_key_values() {
        let schema = FixtureSchema {
            context: [(
                "aad".to_string(),
                "{table}:{attribute}:{pk}#{n}".to_string(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let item: Item = [
            ("pk".to_string(), AttributeValue::S("u1".into())),
            ("n".to_string(), AttributeValue::N("7".into())),
        ]
        .into_iter()
        .collect();
        let ctx = render_context(&schema, "orders", "ssn", &item);
        assert_eq!(ctx.get("aad").map(String::as_str), Some("orders:ssn:u1#7"));
    }
}
