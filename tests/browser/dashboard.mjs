// Drives headless Chromium (Debian's, never a downloaded build) against `parity dashboard`
// for tests/dashboard_browser.rs. Usage: node dashboard.mjs <base-url>
// Reads one command per line on stdin and answers each with one JSON line on stdout:
//   open <path>                 load a page; report rows, the `card` cell of id=42, the XSS probe
//   waitrow <key> <timeout-ms>  wait (no reload) until a row with data-key=<key> exists
//   waitlive <timeout-ms>       wait until the live-feed badge says "live"
//   screenshot <path>           full-page PNG
//   quit
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
  console.error("usage: node dashboard.mjs <base-url>");
  process.exit(2);
}
const executablePath = process.env.PARITY_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("dialog", async (d) => {
  consoleErrors.push("dialog opened: " + d.message());
  await d.dismiss();
});

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function snapshot() {
  return page.evaluate(() => {
    const grid = document.getElementById("items");
    const rows = grid ? Array.from(grid.tBodies[0].rows).map((r) => r.dataset.key) : [];
    let card = null;
    if (grid) {
      const cols = Array.from(grid.tHead.rows[0].cells).map((c) => c.dataset.attr);
      const i = cols.indexOf("card");
      const row = Array.from(grid.tBodies[0].rows).find((r) => r.dataset.key === "id=42");
      if (i >= 0 && row && row.cells[i]) card = { kind: row.cells[i].dataset.kind || "", text: row.cells[i].textContent };
    }
    const status = document.getElementById("live-status");
    return {
      title: document.title,
      rows,
      card,
      xss: window.__xss === undefined ? null : window.__xss,
      scripts: document.scripts.length,
      bodyText: document.body.innerText,
      live: status && !status.hidden ? status.textContent : null,
    };
  });
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [cmd, ...rest] = line.trim().split(" ");
  try {
    if (cmd === "open") {
      await page.goto(base + rest[0], { waitUntil: "load" });
      say({ ok: true, ...(await snapshot()), consoleErrors });
    } else if (cmd === "waitrow") {
      const key = rest[0];
      const timeout = Number(rest[1] || 2000);
      const start = Date.now();
      try {
        await page.waitForFunction(
          (k) => Array.from(document.querySelectorAll("#items tbody tr")).some((r) => r.dataset.key === k),
          key,
          { timeout, polling: 20 },
        );
        say({ ok: true, found: true, ms: Date.now() - start, ...(await snapshot()) });
      } catch (e) {
        say({ ok: true, found: false, ms: Date.now() - start, ...(await snapshot()) });
      }
    } else if (cmd === "waitlive") {
      const timeout = Number(rest[0] || 10000);
      const start = Date.now();
      try {
        await page.waitForFunction(() => {
          const s = document.getElementById("live-status");
          return s && !s.hidden && s.textContent === "live";
        }, null, { timeout, polling: 50 });
        say({ ok: true, live: true, ms: Date.now() - start });
      } catch (e) {
        say({ ok: true, live: false, ms: Date.now() - start, ...(await snapshot()) });
      }
    } else if (cmd === "screenshot") {
      await page.screenshot({ path: rest[0], fullPage: true });
      say({ ok: true, path: rest[0] });
    } else if (cmd === "quit") {
      say({ ok: true, consoleErrors });
      break;
    } else {
      say({ ok: false, error: "unknown command " + cmd });
    }
  } catch (e) {
    say({ ok: false, error: String(e) });
  }
}
await browser.close();
