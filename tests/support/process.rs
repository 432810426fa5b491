//! A server process started by a test: its stdout and stderr captured line by line (ANSI
//! colours removed; canary tests search the text), and its address read from the
//! `<what> listening ... addr=HOST:PORT` line it logs once bound.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collects everything the child writes to its piped stdout and stderr.
pub fn capture(child: &mut Child) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().expect("piped stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped stderr")),
    ] {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&strip_ansi(&line));
                o.push('\n');
            }
        });
    }
    output
}

/// Waits (30 s at most) for the line containing `listening` and returns its `addr=` value;
/// panics with the output so far if the child exits first or never says it.
pub fn wait_listening(child: &mut Child, output: &Mutex<String>, listening: &str) -> String {
    let start = Instant::now();
    loop {
        let text = output.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.contains(listening)) {
            return line
                .split("addr=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .expect("addr in the listening line")
                .to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{listening}: the process exited with {status}:\n{text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no \"{listening}\" within 30s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
