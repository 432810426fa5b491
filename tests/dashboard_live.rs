//! The live feed end to end: a change written with the SDK reaches WebSocket clients through
//! DynamoDB Streams (moto); a client that stops reading is dropped with a notice while the
//! others keep up; shutdown closes feeds with "service restart" so pages reconnect; the
//! tailer resumes after DynamoDB errors (a proxy cut and restored) without losing a change.

#[allow(unused_assignments)]
mod support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use support::dashboard::{Dashboard, Env};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn wait_tailing(d: &Dashboard, table: &str) {
    let start = Instant::now();
    while !d.output().lines().any(|l| {
        l.contains("live feed: reading the stream") && l.contains(&format!("table={table}"))
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the dashboard never tailed {table}:\n{}",
            d.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(d: &Dashboard, tables: &str) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?tables={tables}", d.addr))
            .await
            .unwrap();
    let hello = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    ws
}

async fn next_json(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(timeout, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return Some(serde_json::from_str(t.as_str()).unwrap());
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("websocket error: {e}"),
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

#[tokio::test]
async fn a_change_written_with_the_sdk_reaches_websocket_clients() {
    let env = Env::start();
    let d = Dashboard::start(&env.args("ci")).await;
    wait_tailing(&d, "orders").await;
    let mut orders = connect(&d, "orders").await;
    let mut customers = connect(&d, "customers").await;

    let written = Instant::now();
    env.ddb()
        .put_item()
        .table_name("orders")
        .item("pk", s("CUSTOMER#9"))
        .item("sk", s("ORDER#live"))
        .item("status", s("<b>new</b>"))
        .send()
        .await
        .unwrap();
    let change = next_json(&mut orders, Duration::from_secs(10))
        .await
        .expect("a change within 10 s");
    let latency = written.elapsed();
    println!("SDK write to WebSocket delivery: {latency:?}");
    assert_eq!(change["type"], "change");
    assert_eq!(change["table"], "orders");
    assert_eq!(change["event"], "INSERT");
    assert_eq!(change["keyLabel"], "pk=CUSTOMER#9, sk=ORDER#live");
    assert_eq!(change["item"]["status"]["value"], "<b>new</b>");
    assert_eq!(change["item"]["status"]["kind"], "plaintext");

    // A client of another table does not get it.
    assert!(
        next_json(&mut customers, Duration::from_millis(800))
            .await
            .is_none()
    );

    // Updates and deletes follow.
    env.ddb()
        .delete_item()
        .table_name("orders")
        .key("pk", s("CUSTOMER#9"))
        .key("sk", s("ORDER#live"))
        .send()
        .await
        .unwrap();
    let change = next_json(&mut orders, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(change["event"], "REMOVE");
    assert!(change["item"].is_null());

    // Shutdown closes the feed with "service restart" (1012), which pages reconnect after.
    let mut d = d;
    let _ = orders.send(Message::Ping(vec![1].into())).await;
    let status = d
        .terminate(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert!(status.success());
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), orders.next()).await {
        if let Message::Close(Some(f)) = m {
            code = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1012));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_with_a_notice_and_others_keep_up() {
    let env = Env::start();
    let mut args = env.args("ci");
    args.extend(["--client-queue".into(), "4".into()]);
    let d = Dashboard::start(&args).await;
    wait_tailing(&d, "customers").await;

    // The slow client: a tiny receive buffer, and it reads nothing for a while.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(d.addr.parse().unwrap()).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws?tables=customers", d.addr),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let hello = next_json(&mut slow, Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["queue"], 4);

    // The fast client reads everything.
    let mut fast = connect(&d, "customers").await;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(m) = next_json(&mut fast, Duration::from_secs(20)).await {
            if m["type"] == "change" {
                ids.push(m["key"]["id"].as_str().unwrap().to_string());
            }
            if m["key"]["id"] == "last" {
                break;
            }
        }
        ids
    });

    let big = "x".repeat(200_000);
    let mut dropped = false;
    let mut writes = 0;
    for i in 0..150 {
        env.ddb()
            .put_item()
            .table_name("customers")
            .item("id", s(&format!("big-{i}")))
            .item("blob", s(&big))
            .send()
            .await
            .unwrap();
        writes += 1;
        if i % 5 == 4 {
            let m = d.get("/metrics").await.text().await.unwrap();
            if m.contains("parity_dashboard_websocket_dropped_clients_total 1") {
                dropped = true;
                break;
            }
        }
    }
    assert!(
        dropped,
        "no client dropped after {writes} large changes:\n{}",
        d.get("/metrics").await.text().await.unwrap()
    );
    env.ddb()
        .put_item()
        .table_name("customers")
        .item("id", s("last"))
        .send()
        .await
        .unwrap();

    // The fast client got every change, in order, ending with the last one.
    let ids = reader.await.unwrap();
    assert_eq!(ids.len(), writes + 1, "{ids:?}");
    assert_eq!(ids.last().map(String::as_str), Some("last"));

    // The slow client, once it reads again: what was queued, then the notice, then close.
    let mut last = None;
    let mut changes = 0;
    let mut close = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "change" {
                    changes += 1;
                }
                last = Some(v);
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
        }
    }
    let last = last.expect("the slow client received something");
    assert_eq!(last["type"], "dropped", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("reconnect"),
        "{last}"
    );
    assert_eq!(close, Some(1013));
    assert!(
        changes < writes,
        "the slow client got {changes} of {writes}: not bounded"
    );
    // Only the slow one was dropped; the server is still serving.
    let m = d.get("/metrics").await.text().await.unwrap();
    assert!(
        m.contains("parity_dashboard_websocket_dropped_clients_total 1\n"),
        "{m}"
    );
    assert_eq!(d.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn the_tailer_resumes_after_dynamodb_errors_without_losing_changes() {
    let env = Env::start();
    let target: std::net::SocketAddr = env
        .moto
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = support::proxy::Proxy::start(target).await;
    let mut args = env.args("ci");
    let i = args
        .iter()
        .position(|a| a == "--dynamodb-endpoint")
        .unwrap();
    args[i + 1] = proxy.url();
    let d = Dashboard::start(&args).await;
    wait_tailing(&d, "orders").await;
    wait_tailing(&d, "customers").await;
    let mut orders = connect(&d, "orders").await;
    let mut customers = connect(&d, "customers").await;
    let put_order = |sk: &str| {
        env.ddb()
            .put_item()
            .table_name("orders")
            .item("pk", s("CUSTOMER#7"))
            .item("sk", s(sk))
            .send()
    };

    // One change through, so the orders reader has a sequence number to resume after.
    put_order("ORDER#before").await.unwrap();
    let c = next_json(&mut orders, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(c["key"]["sk"], "ORDER#before");

    // DynamoDB (Streams) goes away: the tailers see errors (customers before it ever saw a
    // record). A change is written meanwhile, straight to moto.
    let mark = d.output().len();
    proxy.cut();
    support::wait::until(
        "get records failing for both tables",
        Duration::from_secs(30),
        || async {
            let out = d.output();
            let failed: Vec<&str> = out[mark..]
                .lines()
                .filter(|l| l.contains("live feed: get records failed"))
                .collect();
            if ["table=orders", "table=customers"]
                .iter()
                .all(|t| failed.iter().any(|l| l.contains(t)))
            {
                Ok(())
            } else {
                Err(failed.join("\n"))
            }
        },
    )
    .await;
    put_order("ORDER#during").await.unwrap();

    // Back: the change made during the outage arrives, then a later one, each once.
    proxy.restore();
    let restored = Instant::now();
    put_order("ORDER#after").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let c = next_json(&mut orders, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("after {got:?}, nothing more:\n{}", d.output()));
        if got.is_empty() {
            println!(
                "restored to the outage's change delivered: {:?}",
                restored.elapsed()
            );
        }
        got.push(c["key"]["sk"].as_str().unwrap().to_string());
    }
    assert_eq!(got, ["ORDER#during", "ORDER#after"]);
    // The reader that had seen nothing yet is still there too. It resumes from LATEST (it
    // had no sequence number), so write once it says it has.
    support::wait::until(
        "the customers reader resumed",
        Duration::from_secs(30),
        || async {
            let out = d.output();
            if out[mark..].lines().any(|l| {
                l.contains("live feed: resumed reading the shard") && l.contains("table=customers")
            }) {
                Ok(())
            } else {
                Err(out[mark..].to_string())
            }
        },
    )
    .await;
    env.ddb()
        .put_item()
        .table_name("customers")
        .item("id", s("after-outage"))
        .send()
        .await
        .unwrap();
    let c = next_json(&mut customers, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("customers feed lost:\n{}", d.output()));
    assert_eq!(c["key"]["id"], "after-outage");
    // Nothing repeated on orders.
    assert!(
        next_json(&mut orders, Duration::from_millis(800))
            .await
            .is_none()
    );
}
