//! Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core through
//! tests/browser/dashboard.mjs, one JSON command per line. Needs `make browser-deps`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    pub fn start(url: &str) -> Browser {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let chromium =
            std::env::var("PARITY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists() && dir.join("node_modules/playwright-core").exists(),
            "browser deps missing ({chromium}, tests/browser/node_modules): run `make browser-deps`"
        );
        let mut child = Command::new("node")
            .arg(dir.join("dashboard.mjs"))
            .arg(url)
            .current_dir(&dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    pub fn cmd(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("browser answered {out:?} to {line:?}: {e}"));
        assert_eq!(v["ok"], true, "{line}: {v}");
        v
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
