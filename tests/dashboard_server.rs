//! `parity dashboard` as a process against moto (DynamoDB + Streams) and `parity kms`:
//! listing, pagination, the key filter, decryption only in the Local tier (audited, never
//! logged), metadata only when decryption is off, escaping, health/readiness/metrics and
//! graceful shutdown.

#[allow(unused_assignments)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::dashboard::{
    CANARY, Dashboard, Env, ORDERS, XSS_NAME, XSS_VALUE, audit_lines, run_to_exit,
};

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
    let mut args = env.server_args();
    // The test client is the "proxy" here.
    args.extend(["--trusted-proxy".into(), "127.0.0.1/32".into()]);
    let d = Dashboard::start(&args).await;

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
    let audits = support::wait::until("bob's audit line", Duration::from_secs(10), || async {
        let audits = audit_lines(&d.output());
        if audits
            .iter()
            .any(|a| a["who"] == "bob" && a["action"] == "decrypt")
        {
            Ok(audits)
        } else {
            Err(audits)
        }
    })
    .await;
    let decrypts: Vec<&Value> = audits.iter().filter(|a| a["action"] == "decrypt").collect();
    assert!(
        decrypts.iter().any(|a| a["who"] == "alice@example.com"
            && a["peer"].as_str().unwrap().starts_with("127.0.0.1:")
            && a["table"] == "customers"
            && a["key"] == "id=42"
            && a["attribute"] == "card"
            && a["outcome"] == "decrypted"),
        "{audits:?}"
    );
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
        // Reads are audited; no decryption is.
        assert!(
            !audit_lines(&d.output())
                .iter()
                .any(|a| a["action"] == "decrypt"),
            "{}",
            d.output()
        );
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

#[tokio::test]
async fn audit_lines_are_written_with_rust_log_off_and_never_hold_the_plaintext() {
    let env = Env::start();
    let mut args = env.server_args();
    args.extend(["--trusted-proxy".into(), "127.0.0.1/32".into()]);
    let d = Dashboard::start_silent(&args).await;
    let item: Value = d
        .get_as("/api/tables/customers/item?pk=42", "carol@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["attributes"]["card"]["value"], CANARY, "{item}");
    assert_eq!(
        d.get_as("/api/tables/orders/items?limit=5", "carol@example.com")
            .await
            .status(),
        200
    );
    let audits = support::wait::until("three audit lines", Duration::from_secs(10), || async {
        let audits = audit_lines(&d.output());
        if audits.len() >= 3 {
            Ok(audits)
        } else {
            Err(d.output())
        }
    })
    .await;
    let what: Vec<(&str, &str)> = audits
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["table"].as_str().unwrap()))
        .collect();
    assert_eq!(
        what,
        [
            ("item", "customers"),
            ("decrypt", "customers"),
            ("table", "orders")
        ],
        "{audits:?}"
    );
    for a in &audits {
        assert_eq!(a["who"], "carol@example.com", "{a}");
        // When: an RFC 3339 time.
        let t: jiff::Timestamp = a["time"].as_str().unwrap().parse().unwrap();
        assert!(t <= jiff::Timestamp::now());
    }
    assert_eq!(audits[1]["attribute"], "card");
    assert_eq!(audits[1]["outcome"], "decrypted");
    // RUST_LOG=off: nothing but audit lines, and never the value.
    let out = d.output();
    assert!(
        out.lines()
            .all(|l| l.contains("\"target\":\"parity::audit\"")),
        "{out}"
    );
    assert!(!out.contains("canary-d45b"), "{out}");
}

/// `who` of the first item read in `d`'s audit log.
async fn item_auditee(d: &Dashboard) -> String {
    support::wait::until("an item audit line", Duration::from_secs(10), || async {
        match audit_lines(&d.output())
            .into_iter()
            .find(|a| a["action"] == "item")
        {
            Some(a) => Ok(a["who"].as_str().unwrap().to_string()),
            None => Err(d.output()),
        }
    })
    .await
}

#[tokio::test]
async fn forwarded_users_are_believed_only_from_trusted_proxies() {
    let env = Env::start();
    // No trusted proxy (the default): the header is anyone's to send, so it is ignored.
    let d = Dashboard::start(&env.args("ci")).await;
    assert_eq!(
        d.get_as("/api/tables/customers/item?pk=42", "mallory")
            .await
            .status(),
        200
    );
    let who = item_auditee(&d).await;
    assert_eq!(who, "anonymous");
    // Trusted networks that do not hold the peer: still ignored.
    let mut args = env.args("ci");
    args.extend(["--trusted-proxy".into(), "10.0.0.0/8".into()]);
    let d = Dashboard::start(&args).await;
    d.get_as("/api/tables/customers/item?pk=42", "mallory")
        .await;
    let who = item_auditee(&d).await;
    assert_eq!(who, "anonymous");
    // From a trusted proxy (loopback here): the proxy's user.
    let mut args = env.args("ci");
    args.extend(["--trusted-proxy".into(), "127.0.0.0/8,::1".into()]);
    let d = Dashboard::start(&args).await;
    d.get_with(
        "/api/tables/customers/item?pk=42",
        &[("X-Forwarded-Email", "dora@example.com")],
    )
    .await;
    let who = item_auditee(&d).await;
    assert_eq!(who, "dora@example.com");
}

#[tokio::test]
async fn unknown_hosts_get_421_and_cross_site_websockets_403() {
    let env = Env::start();
    let mut args = env.args("ci");
    args.extend(["--allowed-host".into(), "dash.example.com".into()]);
    let d = Dashboard::start(&args).await;
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    // DNS rebinding: the attacker's name, resolving here, is refused on every path.
    for path in [
        "/",
        "/api/tables",
        "/api/tables/customers/item?pk=42",
        "/ws",
    ] {
        for host in [
            "evil.example",
            &format!("evil.example:{port}"),
            "localhost.evil.example",
        ] {
            let r = d.get_with(path, &[("Host", host)]).await;
            assert_eq!(r.status(), 421, "{path} Host {host}");
            let body: Value = r.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().starts_with("Host:"),
                "{body}"
            );
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "dash.example.com".to_string(),
        "DASH.example.com:443".to_string(),
        // A Service's ClusterIP, a kubelet probe to the pod IP.
        "10.96.0.10:8080".to_string(),
    ] {
        assert_eq!(
            d.get_with("/api/tables", &[("Host", &host)]).await.status(),
            200,
            "Host {host}"
        );
    }

    // WebSockets: the page's own origin and non-browser clients are served; a page of another
    // origin is refused before the upgrade.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws = |origin: Option<String>| {
        let mut req = format!("ws://{}/ws", d.addr).into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    assert!(ws(None).await.is_ok());
    assert!(ws(Some(format!("http://{}", d.addr))).await.is_ok());
    for origin in [
        "http://evil.example".to_string(),
        format!("http://localhost:{port}"),
        "http://127.0.0.1:1".to_string(),
        "null".to_string(),
    ] {
        match ws(Some(origin.clone())).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "Origin {origin}")
            }
            other => panic!("Origin {origin}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
}

#[tokio::test]
async fn the_live_feed_caps_clients_and_the_size_of_what_they_send() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let env = Env::start();
    let mut args = env.args("ci");
    args.extend([
        "--max-clients".into(),
        "2".into(),
        "--ws-max-message-bytes".into(),
        "1024".into(),
    ]);
    let d = Dashboard::start(&args).await;
    let url = format!("ws://{}/ws", d.addr);
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            let body = String::from_utf8(r.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("--max-clients"), "{body}");
        }
        other => panic!("a third client: {:?}", other.map(|(_, r)| r.status())),
    }
    // A place comes free when a client leaves.
    drop(b);
    let (mut c, _) = support::wait::until("a free place", Duration::from_secs(10), || async {
        tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    // A small message is ignored; the connection stays up (a ping is answered).
    let hello = a.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("hello"));
    a.send(Message::text("x".repeat(100))).await.unwrap();
    a.send(Message::Ping(b"still there".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        match tokio::time::timeout(Duration::from_secs(10), a.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => break p,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no pong: {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"still there");
    // One over the limit closes the connection with 1009.
    let hello = c.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("hello"));
    c.send(Message::text("x".repeat(2048))).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), c.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Size, "{close:?}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let env = Env::start();
    let mut d = Dashboard::start(&env.server_args()).await;
    // Hold the key service still, so the item request hangs in its Decrypt call.
    let kms_pid = env.kms.pid().to_string();
    let signal = |sig: &str, pid: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP", &kms_pid);
    let url = format!("{}/api/tables/customers/item?pk=42", d.url);
    let request = tokio::spawn(async move {
        let r = reqwest::get(url).await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    // In flight: the item was read (its audit line), its decryption waits on the key service.
    support::wait::until(
        "the item request in flight",
        Duration::from_secs(20),
        || async {
            if audit_lines(&d.output())
                .iter()
                .any(|a| a["action"] == "item")
            {
                Ok(())
            } else {
                Err(d.output())
            }
        },
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status();
    support::wait::until(
        "the dashboard shutting down",
        Duration::from_secs(10),
        || async {
            if d.output().contains("shutting down") {
                Ok(())
            } else {
                Err(d.output())
            }
        },
    )
    .await;
    // It must not have answered yet, nor exited.
    assert!(
        !request.is_finished(),
        "answered while the key service was stopped"
    );
    signal("-CONT", &kms_pid);
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .expect("the in-flight request finished")
        .unwrap()
        .expect("a response");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attributes"]["card"]["kind"], "decrypted", "{body}");
    let exit = d
        .terminate(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert!(exit.success(), "{exit}\n{}", d.output());
}
