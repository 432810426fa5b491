//! The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core,
//! tests/browser/dashboard.mjs): seeded items show; an item written with the SDK appears
//! without a reload within 2 s, also after a server restart (the page reconnects); the
//! encrypted field is shown encrypted with decryption off and decrypted in server mode; the
//! XSS item's script never runs. Screenshots go under the cargo target directory.
//! Needs `make browser-deps` (chromium + npm ci in tests/browser).

#[allow(unused_assignments)]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use support::browser::Browser;
use support::dashboard::{CANARY, Dashboard, Env};

fn screenshot_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("dashboard-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_tailing(d: &Dashboard, table: &str) {
    let start = Instant::now();
    while !d.output().lines().any(|l| {
        l.contains("live feed: reading the stream") && l.contains(&format!("table={table}"))
    }) {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", d.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn put_customer(env: &Env, id: &str) {
    env.ddb()
        .put_item()
        .table_name("customers")
        .item("id", AttributeValue::S(id.into()))
        .item("email", AttributeValue::S(format!("{id}@example.com")))
        .send()
        .await
        .unwrap();
}

fn texts(v: &Value) -> String {
    v["bodyText"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn the_page_shows_items_updates_live_and_decrypts_only_in_server_mode() {
    let env = Env::start();
    let shots = screenshot_dir();

    // Decryption off: the encrypted field is shown as encrypted, no plaintext on the page.
    {
        let mut args = env.args("local");
        args.extend(["--decryption".into(), "off".into()]);
        let d = Dashboard::start(&args).await;
        let mut b = Browser::start(&d.url);
        let page = b.cmd("open /tables/customers");
        let card = &page["card"];
        assert_eq!(card["kind"], "encrypted", "{page}");
        assert!(
            card["text"]
                .as_str()
                .unwrap()
                .starts_with("encrypted (key "),
            "{page}"
        );
        assert!(!texts(&page).contains("canary-d45b"));
        let path = shots.join("dashboard-disabled.png");
        b.cmd(&format!("screenshot {}", path.display()));
        println!("screenshot (decryption off): {}", path.display());
    }

    // Server mode (Local tier), on a fixed port so a restart keeps the page's URL.
    let port = support::moto::free_port();
    let mut args = env.server_args();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    let d = Dashboard::start(&args).await;
    wait_tailing(&d, "customers").await;
    let mut b = Browser::start(&d.url);
    let page = b.cmd("open /tables/customers");
    let rows: Vec<&str> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        rows.contains(&"id=42") && rows.contains(&"id=xss"),
        "{page}"
    );
    assert_eq!(page["card"]["kind"], "decrypted", "{page}");
    assert_eq!(page["card"]["text"], CANARY);
    // The XSS item is shown as text, and none of its script ran.
    assert!(
        texts(&page).contains("<script>window.__xss = 1</script>"),
        "{page}"
    );
    assert!(page["xss"].is_null(), "injected script ran: {page}");
    assert_eq!(
        page["scripts"], 1,
        "only the dashboard's own script: {page}"
    );
    assert_eq!(b.cmd("waitlive 10000")["live"], true);

    // A write with the SDK shows up without reload within 2 s.
    put_customer(&env, "live-1").await;
    let seen = b.cmd("waitrow id=live-1 2000");
    assert_eq!(seen["found"], true, "not shown within 2 s: {seen}");
    println!("SDK write visible in the page after {} ms", seen["ms"]);
    assert!(seen["xss"].is_null());

    // The server restarts; the page reconnects by itself and keeps updating.
    let mut d = d;
    assert!(d.terminate(Duration::from_secs(10)).unwrap().success());
    let d = Dashboard::start(&args).await;
    wait_tailing(&d, "customers").await;
    let live = b.cmd("waitlive 15000");
    assert_eq!(live["live"], true, "page did not reconnect: {live}");
    put_customer(&env, "live-2").await;
    let seen = b.cmd("waitrow id=live-2 2000");
    assert_eq!(seen["found"], true, "not shown after reconnect: {seen}");

    let path = shots.join("dashboard-server.png");
    b.cmd(&format!("screenshot {}", path.display()));
    println!(
        "screenshot (server mode, after live updates): {}",
        path.display()
    );
    assert!(std::fs::metadata(&path).unwrap().len() > 10_000);
    let end = b.cmd("quit");
    assert_eq!(end["consoleErrors"], serde_json::json!([]), "{end}");
    drop(b);

    // Decryptions by the browser were audited without the value.
    let out = d.output();
    assert!(!out.contains("canary-d45b"), "{out}");
}
