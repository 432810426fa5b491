//! Server-rendered pages. Every piece of data goes through [`esc`] (text and attribute
//! values alike); the page's script only ever sets `textContent`. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::view::{DashboardEnvelope, Kind};
use crate::dynamo::topology::Table;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn url_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub struct PageMeta<'a> {
    pub mode: &'a str,
    pub tier: &'a str,
    /// A banner on every page (`parity dev`: a component that is not running, and why).
    pub notice: Option<&'a str>,
}

fn layout(meta: &PageMeta<'_>, title: &str, live_table: Option<&str>, body: &str) -> String {
    let live = live_table
        .map(|t| format!(" data-live-table=\"{}\"", esc(t)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · parity dashboard</title>\
<link rel=\"stylesheet\" href=\"/assets/style.css\">\
<script src=\"/assets/app.js\" defer></script></head>\
<body data-mode=\"{mode}\"{live}>\
<header><a class=\"brand\" href=\"/\">parity dashboard</a>\
<span class=\"badge tier\">tier {tier}</span>\
<span class=\"badge mode mode-{mode}\">decryption {mode}</span>\
<span id=\"live-status\" class=\"badge live\" hidden></span></header>\
{notice}<main>{body}</main></body></html>\n",
        notice = meta
            .notice
            .map(|n| format!("<p class=\"error notice\" role=\"alert\">{}</p>", esc(n)))
            .unwrap_or_default(),
        title = esc(title),
        mode = esc(meta.mode),
        tier = esc(meta.tier),
    )
}

pub struct TableSummary<'a> {
    pub table: &'a Table,
    /// Approximate item count from DescribeTable, when it answered.
    pub items: Option<i64>,
}

pub fn tables_page(meta: &PageMeta<'_>, tables: &[TableSummary<'_>]) -> String {
    let mut body = String::from(
        "<h1>Tables</h1><table class=\"grid\"><thead><tr><th>table</th><th>partition key</th><th>sort key</th><th>items</th><th>live feed</th></tr></thead><tbody>",
    );
    for s in tables {
        let t = s.table;
        let _ = write!(
            body,
            "<tr><td><a href=\"/tables/{href}\">{name}</a></td><td>{pk}</td><td>{sk}</td><td>{items}</td><td>{stream}</td></tr>",
            href = url_param(&t.name),
            name = esc(&t.name),
            pk = esc(&format!(
                "{} ({})",
                t.partition_key.name, t.partition_key.attr_type
            )),
            sk = esc(&t
                .sort_key
                .as_ref()
                .map(|k| format!("{} ({})", k.name, k.attr_type))
                .unwrap_or_default()),
            items = s.items.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            stream = if t.stream_view_type.is_some() {
                "on"
            } else {
                "off"
            },
        );
    }
    body.push_str("</tbody></table>");
    layout(meta, "Tables", None, &body)
}

fn cell(v: Option<&DashboardEnvelope>) -> String {
    match v {
        None => "<td class=\"empty\"></td>".to_string(),
        Some(v) => {
            let kind = match v.kind {
                Kind::Plaintext => "plaintext",
                Kind::Encrypted => "encrypted",
                Kind::Decrypted => "decrypted",
            };
            format!(
                "<td class=\"kind-{kind}\" data-kind=\"{kind}\">{}</td>",
                esc(&v.display())
            )
        }
    }
}

pub struct ItemRow {
    pub label: String,
    pub pk: String,
    pub sk: Option<String>,
    pub attributes: BTreeMap<String, DashboardEnvelope>,
}

pub struct ItemsView<'a> {
    pub table: &'a Table,
    pub rows: Vec<ItemRow>,
    pub filter: Option<&'a str>,
    pub next: Option<String>,
    pub limit: u32,
}

/// Key attributes first, then every other attribute seen on the page, sorted.
pub fn columns(table: &Table, rows: &[ItemRow]) -> Vec<String> {
    let mut cols = vec![table.partition_key.name.clone()];
    if let Some(sk) = &table.sort_key {
        cols.push(sk.name.clone());
    }
    let rest: BTreeSet<&String> = rows
        .iter()
        .flat_map(|r| r.attributes.keys())
        .filter(|k| !cols.contains(k))
        .collect();
    cols.extend(rest.into_iter().cloned());
    cols
}

fn item_href(table: &Table, pk: &str, sk: Option<&str>) -> String {
    let mut href = format!(
        "/tables/{}/item?pk={}",
        url_param(&table.name),
        url_param(pk)
    );
    if let Some(sk) = sk {
        let _ = write!(href, "&sk={}", url_param(sk));
    }
    href
}

pub fn items_page(meta: &PageMeta<'_>, v: &ItemsView<'_>) -> String {
    let t = v.table;
    let cols = columns(t, &v.rows);
    let mut body = format!(
        "<h1>{name}</h1><form class=\"filter\" method=\"get\" action=\"/tables/{href}\">\
<label>{pk} {how} <input name=\"key\" value=\"{filter}\" placeholder=\"partition key\"></label>\
<input type=\"hidden\" name=\"limit\" value=\"{limit}\">\
<button type=\"submit\">filter</button> <a href=\"/tables/{href}\">clear</a></form>",
        name = esc(&t.name),
        href = url_param(&t.name),
        pk = esc(&t.partition_key.name),
        how = if t.partition_key.attr_type.as_str() == "S" {
            "starts with"
        } else {
            "equals"
        },
        filter = esc(v.filter.unwrap_or("")),
        limit = v.limit,
    );
    let _ = write!(
        body,
        "<div class=\"scroll\"><table class=\"grid items\" id=\"items\" data-pk=\"{pk}\" data-sk=\"{sk}\" data-filter=\"{filter}\"><thead><tr>",
        pk = esc(&t.partition_key.name),
        sk = esc(t.sort_key.as_ref().map(|k| k.name.as_str()).unwrap_or("")),
        filter = esc(v.filter.unwrap_or("")),
    );
    for c in &cols {
        let _ = write!(body, "<th data-attr=\"{0}\">{0}</th>", esc(c));
    }
    body.push_str("</tr></thead><tbody>");
    for r in &v.rows {
        let _ = write!(
            body,
            "<tr data-key=\"{key}\"><td><a href=\"{href}\">{pk}</a></td>",
            key = esc(&r.label),
            href = esc(&item_href(t, &r.pk, r.sk.as_deref())),
            pk = esc(&r.pk),
        );
        for c in cols.iter().skip(1) {
            body.push_str(&cell(r.attributes.get(c)));
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table></div>");
    if v.rows.is_empty() {
        body.push_str("<p class=\"none\">No items.</p>");
    }
    if let Some(next) = &v.next {
        let mut href = format!(
            "/tables/{}?limit={}&token={}",
            url_param(&t.name),
            v.limit,
            url_param(next)
        );
        if let Some(f) = v.filter {
            let _ = write!(href, "&key={}", url_param(f));
        }
        let _ = write!(
            body,
            "<p><a class=\"next\" rel=\"next\" href=\"{}\">next page</a></p>",
            esc(&href)
        );
    }
    layout(meta, &t.name, Some(&t.name), &body)
}

pub fn item_page(
    meta: &PageMeta<'_>,
    table: &Table,
    label: &str,
    attributes: &BTreeMap<String, DashboardEnvelope>,
) -> String {
    let mut body = format!(
        "<h1><a href=\"/tables/{href}\">{name}</a> / {label}</h1><table class=\"grid item\"><thead><tr><th>attribute</th><th>type</th><th>kind</th><th>value</th><th>key</th><th>context</th></tr></thead><tbody>",
        href = url_param(&table.name),
        name = esc(&table.name),
        label = esc(label),
    );
    for (name, v) in attributes {
        let kind = serde_json::to_value(v.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_string))
            .unwrap_or_default();
        let key = match (&v.key_id, v.key_version) {
            (Some(id), Some(ver)) => format!("{id} v{ver}"),
            _ => String::new(),
        };
        let ctx = v
            .context
            .as_ref()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr data-attr=\"{n}\"><th>{n}</th><td>{ty}</td><td class=\"kind-{kind}\">{kind}</td><td class=\"value kind-{kind}\">{value}</td><td>{key}</td><td>{ctx}</td></tr>",
            n = esc(name),
            ty = esc(v.ty),
            kind = esc(&kind),
            value = esc(&v.display()),
            key = esc(&key),
            ctx = esc(&ctx),
        );
    }
    body.push_str("</tbody></table>");
    layout(meta, label, None, &body)
}

pub fn error_page(meta: &PageMeta<'_>, status: u16, message: &str) -> String {
    layout(
        meta,
        "Error",
        None,
        &format!(
            "<h1>Error {status}</h1><p class=\"error\">{}</p>",
            esc(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::topology::Topology;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'q'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"
        );
        assert_eq!(url_param("a b/&?é"), "a%20b%2F%26%3F%C3%A9");
    }

    #[test]
    fn item_values_and_names_never_reach_the_page_raw() {
        let topo = Topology::from_yaml_str(
            "tables:\n  - name: orders\n    partitionKey: {name: pk, type: S}\n",
        )
        .unwrap();
        let evil = "<img src=x onerror=alert(1)>";
        let row = ItemRow {
            label: format!("pk={evil}"),
            pk: evil.into(),
            sk: None,
            attributes: [(
                format!("a{evil}"),
                DashboardEnvelope::plaintext("S", serde_json::Value::String(evil.into())),
            )]
            .into(),
        };
        let meta = PageMeta {
            mode: "disabled",
            tier: "ci",
            notice: Some("<b>DynamoDB</b> is down"),
        };
        assert!(
            items_page(
                &meta,
                &ItemsView {
                    table: &topo.tables[0],
                    rows: Vec::new(),
                    filter: None,
                    next: None,
                    limit: 10,
                }
            )
            .contains("&lt;b&gt;DynamoDB&lt;/b&gt; is down")
        );
        let page = items_page(
            &meta,
            &ItemsView {
                table: &topo.tables[0],
                rows: vec![row],
                filter: Some(evil),
                next: Some(evil.into()),
                limit: 10,
            },
        );
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
