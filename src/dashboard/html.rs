//! Server-rendered pages, from tinytemplate templates: every value a template prints is
//! HTML-escaped unless the template says `| unescaped` (only the layout's `body`, itself a
//! rendered template), and `| url` percent-encodes a path or query part. The page's script
//! only ever sets `textContent`. Pure.

use std::collections::{BTreeMap, BTreeSet};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;
use tinytemplate::TinyTemplate;

use super::view::{DashboardEnvelope, Kind};
use crate::dynamo::topology::Table;

/// RFC 3986's unreserved characters stay as they are; everything else is percent-encoded.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query parameter value.
fn url_part(s: &str) -> String {
    utf8_percent_encode(s, URL_PART).to_string()
}

const LAYOUT: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · parity dashboard</title>\
<link rel=\"stylesheet\" href=\"/assets/style.css\">\
<script src=\"/assets/app.js\" defer></script></head>\
<body data-mode=\"{mode}\"{{ if live_table }} data-live-table=\"{live_table}\"{{ endif }}>\
<header><a class=\"brand\" href=\"/\">parity dashboard</a>\
<span class=\"badge tier\">tier {tier}</span>\
<span class=\"badge mode mode-{mode}\">decryption {mode}</span>\
<span id=\"live-status\" class=\"badge live\" hidden></span></header>\
{{ if banner }}<p class=\"error notice\" role=\"alert\">{banner}</p>{{ endif }}\
<main>{body | unescaped}</main></body></html>\n";

const TABLES: &str = "<h1>Tables</h1><table class=\"grid\"><thead><tr><th>table</th>\
<th>partition key</th><th>sort key</th><th>items</th><th>live feed</th></tr></thead><tbody>\
{{ for t in tables }}<tr><td><a href=\"/tables/{t.name | url}\">{t.name}</a></td>\
<td>{t.pk}</td><td>{t.sk}</td><td>{t.items}</td>\
<td>{{ if t.stream }}on{{ else }}off{{ endif }}</td></tr>{{ endfor }}</tbody></table>";

const ITEMS: &str = "<h1>{name}</h1>\
<form class=\"filter\" method=\"get\" action=\"/tables/{name | url}\">\
<label>{pk} {how} <input name=\"key\" value=\"{filter}\" placeholder=\"partition key\"></label>\
<input type=\"hidden\" name=\"limit\" value=\"{limit}\">\
<button type=\"submit\">filter</button> <a href=\"/tables/{name | url}\">clear</a></form>\
<div class=\"scroll\"><table class=\"grid items\" id=\"items\" data-pk=\"{pk}\" \
data-sk=\"{sk}\" data-filter=\"{filter}\"><thead><tr>\
{{ for c in columns }}<th data-attr=\"{c}\">{c}</th>{{ endfor }}</tr></thead><tbody>\
{{ for r in rows }}<tr data-key=\"{r.label}\"><td><a href=\"{r.href}\">{r.pk}</a></td>\
{{ for c in r.cells }}{{ if c }}<td class=\"kind-{c.kind}\" data-kind=\"{c.kind}\">{c.text}</td>\
{{ else }}<td class=\"empty\"></td>{{ endif }}{{ endfor }}</tr>{{ endfor }}\
</tbody></table></div>\
{{ if not rows }}<p class=\"none\">No items.</p>{{ endif }}\
{{ if next }}<p><a class=\"next\" rel=\"next\" href=\"{next}\">next page</a></p>{{ endif }}";

const ITEM: &str = "<h1><a href=\"/tables/{name | url}\">{name}</a> / {label}</h1>\
<table class=\"grid item\"><thead><tr><th>attribute</th><th>type</th><th>kind</th>\
<th>value</th><th>key</th><th>context</th></tr></thead><tbody>\
{{ for a in attributes }}<tr data-attr=\"{a.name}\"><th>{a.name}</th><td>{a.ty}</td>\
<td class=\"kind-{a.kind}\">{a.kind}</td><td class=\"value kind-{a.kind}\">{a.value}</td>\
<td>{a.key}</td><td>{a.context}</td></tr>{{ endfor }}</tbody></table>";

const ERROR: &str = "<h1>Error {status}</h1><p class=\"error\">{message}</p>";

fn url_formatter(v: &Value, out: &mut String) -> tinytemplate::error::Result<()> {
    match v {
        Value::String(s) => {
            out.push_str(&url_part(s));
            Ok(())
        }
        other => tinytemplate::format(other, out),
    }
}

/// The compiled templates. A template that does not compile is left out, so rendering it
/// fails and [`render`] says so on the page (the unit tests render every one).
fn templates() -> TinyTemplate<'static> {
    let mut t = TinyTemplate::new();
    t.add_formatter("url", url_formatter);
    for (name, text) in [
        ("layout", LAYOUT),
        ("tables", TABLES),
        ("items", ITEMS),
        ("item", ITEM),
        ("error", ERROR),
    ] {
        if let Err(e) = t.add_template(name, text) {
            tracing::error!(template = name, error = %e, "dashboard template does not compile");
        }
    }
    t
}

thread_local! {
    // TinyTemplate's formatters are not Sync: one compiled set per worker thread.
    static TEMPLATES: TinyTemplate<'static> = templates();
}

fn render<C: Serialize>(name: &str, ctx: &C) -> String {
    TEMPLATES.with(|t| t.render(name, ctx)).unwrap_or_else(|e| {
        tracing::error!(template = name, error = %e, "dashboard page not rendered");
        let mut out = String::from("<p class=\"error\">this page could not be rendered: ");
        tinytemplate::escape(&e.to_string(), &mut out);
        out.push_str("</p>");
        out
    })
}

pub struct PageMeta<'a> {
    pub mode: &'a str,
    pub tier: &'a str,
    /// A banner on every page (`parity dev`: a component that is not running, and why).
    pub notice: Option<&'a str>,
}

#[derive(Serialize)]
struct Layout<'a> {
    title: &'a str,
    mode: &'a str,
    tier: &'a str,
    /// Not `notice`: tinytemplate takes an `if` path that starts with `not` as a negation.
    banner: Option<&'a str>,
    live_table: Option<&'a str>,
    body: String,
}

fn layout(meta: &PageMeta<'_>, title: &str, live_table: Option<&str>, body: String) -> String {
    render(
        "layout",
        &Layout {
            title,
            mode: meta.mode,
            tier: meta.tier,
            banner: meta.notice,
            live_table,
            body,
        },
    )
}

pub struct TableSummary<'a> {
    pub table: &'a Table,
    /// Approximate item count from DescribeTable, when it answered.
    pub items: Option<i64>,
}

#[derive(Serialize)]
struct TableRow<'a> {
    name: &'a str,
    pk: String,
    sk: String,
    items: String,
    stream: bool,
}

pub fn tables_page(meta: &PageMeta<'_>, tables: &[TableSummary<'_>]) -> String {
    let tables: Vec<TableRow<'_>> = tables
        .iter()
        .map(|s| {
            let t = s.table;
            TableRow {
                name: &t.name,
                pk: format!("{} ({})", t.partition_key.name, t.partition_key.attr_type),
                sk: t
                    .sort_key
                    .as_ref()
                    .map(|k| format!("{} ({})", k.name, k.attr_type))
                    .unwrap_or_default(),
                items: s.items.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
                stream: t.stream_view_type.is_some(),
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Ctx<'a> {
        tables: Vec<TableRow<'a>>,
    }
    layout(meta, "Tables", None, render("tables", &Ctx { tables }))
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
    let mut href = format!("/tables/{}/item?pk={}", url_part(&table.name), url_part(pk));
    if let Some(sk) = sk {
        href.push_str("&sk=");
        href.push_str(&url_part(sk));
    }
    href
}

#[derive(Serialize)]
struct Cell {
    kind: Kind,
    text: String,
}

#[derive(Serialize)]
struct Row<'a> {
    label: &'a str,
    href: String,
    pk: &'a str,
    /// One per column after the first; None: the item has no such attribute.
    cells: Vec<Option<Cell>>,
}

#[derive(Serialize)]
struct ItemsCtx<'a> {
    name: &'a str,
    pk: &'a str,
    sk: &'a str,
    how: &'a str,
    filter: &'a str,
    limit: u32,
    columns: &'a [String],
    rows: Vec<Row<'a>>,
    next: Option<String>,
}

pub fn items_page(meta: &PageMeta<'_>, v: &ItemsView<'_>) -> String {
    let t = v.table;
    let cols = columns(t, &v.rows);
    let rows = v
        .rows
        .iter()
        .map(|r| Row {
            label: &r.label,
            href: item_href(t, &r.pk, r.sk.as_deref()),
            pk: &r.pk,
            cells: cols
                .iter()
                .skip(1)
                .map(|c| {
                    r.attributes.get(c).map(|a| Cell {
                        kind: a.kind,
                        text: a.display(),
                    })
                })
                .collect(),
        })
        .collect();
    let next = v.next.as_ref().map(|next| {
        let mut href = format!(
            "/tables/{}?limit={}&token={}",
            url_part(&t.name),
            v.limit,
            url_part(next)
        );
        if let Some(f) = v.filter {
            href.push_str("&key=");
            href.push_str(&url_part(f));
        }
        href
    });
    let body = render(
        "items",
        &ItemsCtx {
            name: &t.name,
            pk: &t.partition_key.name,
            sk: t.sort_key.as_ref().map(|k| k.name.as_str()).unwrap_or(""),
            how: if t.partition_key.attr_type.as_str() == "S" {
                "starts with"
            } else {
                "equals"
            },
            filter: v.filter.unwrap_or(""),
            limit: v.limit,
            columns: &cols,
            rows,
            next,
        },
    );
    layout(meta, &t.name, Some(&t.name), body)
}

#[derive(Serialize)]
struct AttributeRow<'a> {
    name: &'a str,
    ty: &'a str,
    kind: Kind,
    value: String,
    key: String,
    context: String,
}

pub fn item_page(
    meta: &PageMeta<'_>,
    table: &Table,
    label: &str,
    attributes: &BTreeMap<String, DashboardEnvelope>,
) -> String {
    let attributes: Vec<AttributeRow<'_>> = attributes
        .iter()
        .map(|(name, v)| AttributeRow {
            name,
            ty: v.ty,
            kind: v.kind,
            value: v.display(),
            key: match (&v.key_id, v.key_version) {
                (Some(id), Some(ver)) => format!("{id} v{ver}"),
                _ => String::new(),
            },
            context: v
                .context
                .as_ref()
                .map(|c| {
                    c.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        })
        .collect();
    #[derive(Serialize)]
    struct Ctx<'a> {
        name: &'a str,
        label: &'a str,
        attributes: Vec<AttributeRow<'a>>,
    }
    let body = render(
        "item",
        &Ctx {
            name: &table.name,
            label,
            attributes,
        },
    );
    layout(meta, label, None, body)
}

pub fn error_page(meta: &PageMeta<'_>, status: u16, message: &str) -> String {
    #[derive(Serialize)]
    struct Ctx<'a> {
        status: u16,
        message: &'a str,
    }
    layout(
        meta,
        "Error",
        None,
        render("error", &Ctx { status, message }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::topology::Topology;

    #[test]
    fn escaping_covers_text_and_attributes() {
        let meta = PageMeta {
            mode: "disabled",
            tier: "ci",
            notice: None,
        };
        let page = error_page(&meta, 404, r#"<script>alert("x")</script> & 'q'"#);
        assert!(
            page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"),
            "{page}"
        );
        assert_eq!(url_part("a b/&?é-_.~"), "a%20b%2F%26%3F%C3%A9-_.~");
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

    /// Every template compiles and renders: a broken one would show the fallback message.
    #[test]
    fn every_page_renders_from_its_template() {
        let topo = Topology::from_yaml_str(
            "tables:\n  - name: orders.v1\n    partitionKey: {name: pk, type: S}\n    sortKey: {name: n, type: N}\n    streamViewType: NEW_IMAGE\n",
        )
        .unwrap();
        let t = &topo.tables[0];
        let meta = PageMeta {
            mode: "server",
            tier: "local",
            notice: None,
        };
        let attrs: BTreeMap<String, DashboardEnvelope> = [(
            "note".to_string(),
            DashboardEnvelope::plaintext("S", serde_json::Value::String("hi".into())),
        )]
        .into();
        let tables = tables_page(
            &meta,
            &[TableSummary {
                table: t,
                items: Some(3),
            }],
        );
        assert!(
            tables.contains(
                "<tr><td><a href=\"/tables/orders.v1\">orders.v1</a></td><td>pk (S)</td><td>n (N)</td><td>3</td><td>on</td></tr>"
            ),
            "{tables}"
        );
        let items = items_page(
            &meta,
            &ItemsView {
                table: t,
                rows: vec![ItemRow {
                    label: "pk=a, n=1".into(),
                    pk: "a b".into(),
                    sk: Some("1".into()),
                    attributes: attrs.clone(),
                }],
                filter: None,
                next: Some("t&1".into()),
                limit: 5,
            },
        );
        assert!(
            items.contains(
                "<tr data-key=\"pk=a, n=1\"><td><a href=\"/tables/orders.v1/item?pk=a%20b&amp;sk=1\">a b</a></td><td class=\"empty\"></td><td class=\"kind-plaintext\" data-kind=\"plaintext\">hi</td></tr>"
            ),
            "{items}"
        );
        assert!(items.contains("href=\"/tables/orders.v1?limit=5&amp;token=t%261\""));
        assert!(items.contains(" data-live-table=\"orders.v1\">"), "{items}");
        assert!(!items.contains("No items."));
        let item = item_page(&meta, t, "pk=a", &attrs);
        assert!(
            item.contains("<tr data-attr=\"note\"><th>note</th><td>S</td><td class=\"kind-plaintext\">plaintext</td>"),
            "{item}"
        );
        for page in [tables, items, item, error_page(&meta, 500, "boom")] {
            assert!(!page.contains("could not be rendered"), "{page}");
            assert!(page.starts_with("<!doctype html>\n") && page.ends_with("</html>\n"));
        }
    }
}
