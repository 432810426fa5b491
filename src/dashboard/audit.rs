//! The audit log: one JSON line per read of data (a table page, an item, each decryption,
//! a live-feed subscription), written to stderr by its own writer. It does not go through
//! `tracing`, so no RUST_LOG setting can turn it off. It names who, what and when; never a
//! value.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The `target` field of every audit line, to tell them from log lines on the same stream.
pub const TARGET: &str = "parity::audit";

/// What was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A page of a table's items.
    Table,
    /// One item.
    Item,
    /// One encrypted attribute, through the key service.
    Decrypt,
    /// A live-feed subscription.
    Live,
}

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub who: &'a str,
    pub peer: SocketAddr,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute: Option<&'a str>,
    /// `ok`, or for a decryption `decrypted` / `failed`.
    pub outcome: &'a str,
}

#[derive(Serialize)]
struct Line<'a> {
    target: &'static str,
    time: jiff::Timestamp,
    #[serde(flatten)]
    record: &'a Record<'a>,
}

/// Where audit lines go: stderr, or (in unit tests) a buffer.
#[derive(Clone)]
pub struct AuditLog {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl AuditLog {
    pub fn stderr() -> AuditLog {
        AuditLog::to(Box::new(std::io::stderr()))
    }

    pub fn to(sink: Box<dyn Write + Send>) -> AuditLog {
        AuditLog {
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// Writes one line. A failed write is reported on the log, not to the user: the read
    /// already happened.
    pub fn write(&self, record: &Record<'_>) {
        let line = Line {
            target: TARGET,
            time: jiff::Timestamp::now(),
            record,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "audit line not serialized");
                return;
            }
        };
        text.push('\n');
        // One write per line, under the lock, so concurrent requests never interleave.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sink.write_all(text.as_bytes()).and_then(|_| sink.flush()) {
            tracing::error!(error = %e, "audit line not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_is_one_json_line_with_who_what_and_when() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::to(Box::new(Shared(buf.clone())));
        log.write(&Record {
            who: "alice\n{\"forged\":1}",
            peer: "10.0.0.7:5000".parse().unwrap(),
            action: Action::Decrypt,
            table: Some("customers"),
            key: Some("id=42"),
            attribute: Some("card"),
            outcome: "decrypted",
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["target"], TARGET);
        assert_eq!(v["who"], "alice\n{\"forged\":1}");
        assert_eq!(v["peer"], "10.0.0.7:5000");
        assert_eq!(v["action"], "decrypt");
        assert_eq!(v["table"], "customers");
        assert_eq!(v["attribute"], "card");
        assert_eq!(v["outcome"], "decrypted");
        let when: jiff::Timestamp = v["time"].as_str().unwrap().parse().unwrap();
        assert!(when <= jiff::Timestamp::now());
    }
}
