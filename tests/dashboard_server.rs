//! `parity dashboard` as a process against moto (DynamoDB + Streams) and `parity kms`:
//! listing, pagination, the key filter, decryption only in the Local tier (audited, never
//! logged), metadata only when decryption is off, escaping, health/readiness/metrics and
//! graceful shutdown.

#[allow(unused_assignments)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::dashboard::{CANARY, Dashboard, Env, ORDERS, XSS_NAME, XSS_VALUE, run_to_exit};

#[test]
fn tests_run_our_own_binary() {
    let bin = env!("CARGO_BIN_EXE_parity");
    println!("parity binary under test: {bin}");
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        assert!(bin.starts_with(&dir), "{bin} is not under {dir}");
    }
}

#[tokio::test]
async fn tables_are_listed_and_items_paginate_without_gaps_or_repeats() {
    let env = Env::start();
    let d = Dashboard::start(&env.args("ci")).await;

    let tables = d.json("/api/tables").await;
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "customers"]);
    assert_eq!(tables["decryption"], "disabled");
    let html = d.get("/").await.text().await.unwrap();
    assert!(html.contains("href=\"/tables/orders\""), "{html}");

    let mut seen = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/api/tables/orders/items?limit=10&token={t}"),
            None => "/api/tables/orders/items?limit=10".into(),
        };
        let page = d.json(&path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 10);
        for it in items {
            assert!(
                seen.insert(it["key"].as_str().unwrap().to_string()),
                "item repeated: {it}"
            );
            assert_eq!(it["attributes"]["status"]["kind"], "plaintext");
        }
        pages += 1;
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen.len(), ORDERS, "{seen:?}");
    assert!(pages >= 3, "25 items in pages of 10 took {pages} pages");

    // The HTML page links to the next page with the token.
    let html = d.get("/tables/orders?limit=10").await.text().await.unwrap();
    assert!(html.contains("rel=\"next\""), "{html}");
    assert_eq!(html.matches("<tr data-key=").count(), 10);

    // A forged token is refused, naming the parameter.
    let r = d
        .get("/api/tables/orders/items?token=bm90LWEtdG9rZW4")
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("token:"),
        "{body}"
    );
    // Unknown table: 404.
    assert_eq!(d.get("/api/tables/nope/items").await.status(), 404);
}

#[tokio::test]
async fn the_key_filter_keeps_only_matching_partition_keys() {
    let env = Env::start();
    let d = Dashboard::start(&env.args("staging")).await;
    let page = d
        .json("/api/tables/orders/items?key=CUSTOMER%232&limit=100")
        .await;
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("pk=CUSTOMER#2, ")),
        "{keys:?}"
    );
    // Small pages with a filter still end and still find every match.
    let mut found = 0;
    let mut token = String::new();
    for _ in 0..30 {
        let page = d
            .json(&format!(
                "/api/tables/orders/items?key=CUSTOMER%234&limit=2&token={token}"
            ))
            .await;
        found += page["items"].as_array().unwrap().len();
        match page["nextToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(found, 5);
    let html = d
        .get("/tables/orders?key=CUSTOMER%231")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<tr data-key=").count(), 5, "{html}");
    assert!(html.contains("value=\"CUSTOMER#1\""));
}

#[tokio::test]
async fn server_mode_in_local_decrypts_through_the_key_service_and_audits_without_the_value() {
    let env = Env::start();
    let d = Dashboard::start(&env.server_args()).await;

    let item = d
        .get_as("/api/tables/customers/item?pk=42", "alice@example.com")
        .await;
    assert_eq!(item.status(), 200);
    let item: Value = item.json().await.unwrap();
    let card = &item["attributes"]["card"];
    assert_eq!(card["kind"], "decrypted", "{item}");
    assert_eq!(card["value"], CANARY);
    assert_eq!(card["context"]["id"], "42");
    assert_eq!(item["attributes"]["email"]["kind"], "plaintext");

    // The HTML item page shows it too (this is the feature in Local).
    let html = d
        .get_as("/tables/customers/item?pk=42", "bob")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(CANARY));
    assert!(html.contains("kind-decrypted"));

    // One audit line per decryption: who, table, key, attribute; the key service was used.
    // The server writes it and a capture thread reads it: wait for the later one to arrive.
    support::wait::until("bob's audit line", Duration::from_secs(10), || async {
        let out = d.output();
        if out
            .lines()
            .any(|l| l.contains("parity::audit") && l.contains("\"bob (via "))
        {
            Ok(())
        } else {
            Err("not captured yet".to_string())
        }
    })
    .await;
    let out = d.output();
    let audits: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("parity::audit"))
        .collect();
    assert!(
        audits
            .iter()
            .any(|l| l.contains("\"alice@example.com (via 127.0.0.1:")
                && l.contains("table=\"customers\"")
                && l.contains("key=\"id=42\"")
                && l.contains("attribute=\"card\"")
                && l.contains("outcome=\"decrypted\"")),
        "{out}"
    );
    assert!(audits.iter().any(|l| l.contains("\"bob (via ")), "{out}");
    assert!(env.kms.output().contains("Decrypt"), "{}", env.kms.output());

    // The plaintext is nowhere else: not in logs (debug level), not in metrics.
    let metrics = d.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("parity_dashboard_decryptions_total{outcome=\"decrypted\"}"),
        "{metrics}"
    );
    for (who, text) in [
        ("dashboard", d.output()),
        ("kms", env.kms.output()),
        ("metrics", metrics),
    ] {
        assert!(
            !text.contains("canary-d45b"),
            "{who} shows the plaintext:\n{text}"
        );
    }
}

#[tokio::test]
async fn disabled_mode_shows_envelope_metadata_only() {
    let env = Env::start();
    for mode in ["disabled", "off"] {
        let mut args = env.args("local");
        args.extend(["--decryption".into(), mode.into()]);
        let d = Dashboard::start(&args).await;
        let item = d.json("/api/tables/customers/item?pk=42").await;
        let card = &item["attributes"]["card"];
        assert_eq!(card["kind"], "encrypted", "{item}");
        assert_eq!(card["type"], "B");
        assert!(
            card["keyId"].as_str().unwrap().contains(':')
                || !card["keyId"].as_str().unwrap().is_empty()
        );
        assert!(card.get("value").is_none(), "{card}");
        let list = d
            .get("/api/tables/customers/items")
            .await
            .text()
            .await
            .unwrap();
        let page = d.get("/tables/customers").await.text().await.unwrap();
        let detail = d
            .get("/tables/customers/item?pk=42")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("kind-encrypted"), "{page}");
        for text in [&list, &page, &detail, &d.output()] {
            assert!(
                !text.contains("canary-d45b"),
                "plaintext shown with {mode}:\n{text}"
            );
        }
        assert!(!d.output().contains("parity::audit"), "{}", d.output());
    }
    // No key service was asked for a decryption.
    assert!(!env.kms.output().contains("TrentService.Decrypt"));
}

#[test]
fn server_decryption_is_refused_outside_the_local_tier() {
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("t.yaml");
    std::fs::write(&topology, support::dashboard::TOPOLOGY).unwrap();
    for tier in ["ci", "staging"] {
        let (code, out) = run_to_exit(&[
            "--topology".into(),
            topology.display().to_string(),
            "--dynamodb-endpoint".into(),
            "http://127.0.0.1:9".into(),
            "--tier".into(),
            tier.into(),
            "--decryption".into(),
            "server".into(),
            "--kms-endpoint".into(),
            "http://127.0.0.1:9".into(),
        ]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!(
                "error: --decryption server is only allowed with --tier local (got --tier {tier})"
            )),
            "{out}"
        );
        assert!(!out.contains("listening"), "{out}");
    }
    // In local, server mode without a key service is refused too.
    let (code, out) = run_to_exit(&[
        "--topology".into(),
        topology.display().to_string(),
        "--tier".into(),
        "local".into(),
        "--decryption".into(),
        "server".into(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("--decryption server needs --kms-endpoint"),
        "{out}"
    );
}

#[tokio::test]
async fn html_and_script_in_items_are_escaped_everywhere() {
    let env = Env::start();
    let d = Dashboard::start(&env.server_args()).await;
    for path in ["/tables/customers", "/tables/customers/item?pk=xss"] {
        let html = d.get(path).await.text().await.unwrap();
        assert!(!html.contains("<script>window"), "{path}: {html}");
        assert!(!html.contains("<img src=x"), "{path}: {html}");
        assert!(!html.contains("<b onmouseover"), "{path}: {html}");
        assert!(
            html.contains("&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;img src=x onerror=&quot;window.__xss = 2&quot;&gt;"),
            "{path}: {html}"
        );
        assert!(
            html.contains("note&lt;b onmouseover=&quot;window.__xss=3&quot;&gt;"),
            "{path}"
        );
    }
    // The JSON API returns the value as data.
    let item = d.json("/api/tables/customers/item?pk=xss").await;
    assert_eq!(item["attributes"]["email"]["value"], XSS_VALUE);
    assert!(item["attributes"].get(XSS_NAME).is_some());
    // A filter echoed back into the form is escaped too.
    let html = d
        .get("/tables/customers?key=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    // And the page forbids inline script outright.
    let r = d.get("/tables/customers").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

#[tokio::test]
async fn readiness_waits_for_dynamodb_and_sigterm_shuts_down_cleanly() {
    let port = support::moto::free_port();
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("t.yaml");
    std::fs::write(&topology, support::dashboard::TOPOLOGY).unwrap();
    let mut d = Dashboard::spawn(&[
        "--topology".into(),
        topology.display().to_string(),
        "--dynamodb-endpoint".into(),
        format!("http://127.0.0.1:{port}"),
        "--tier".into(),
        "ci".into(),
    ]);
    assert_eq!(d.get("/healthz").await.status(), 200);
    assert_eq!(d.get("/readyz").await.status(), 503);
    // DynamoDB comes up on that port: the dashboard becomes ready on its own.
    let bin = support::moto::python_bin().join("moto_server");
    let mut moto = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = support::wait::until("dashboard ready", Duration::from_secs(30), || async {
        match reqwest::get(format!("{}/readyz", d.url)).await {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    ready.await;
    let metrics = d.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("parity_dashboard_http_requests_total{route=\"/readyz\",status=\"503\"}"),
        "{metrics}"
    );
    let status = d
        .terminate(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}\n{}", d.output());
    assert!(d.output().contains("shutting down"));
    let _ = moto.kill();
    let _ = moto.wait();
}
