//! The least an HTTP server can do on this machine: answer every request with a fixed
//! 200 from a blocking thread per connection, no parsing beyond finding each request's end.
//! bench/kms_peers.py measures it beside the key services as the round-trip floor of the
//! machine (kernel loopback, wake-ups and wrk), which no server's throughput at one
//! connection can beat. Built with plain `rustc -O` (std only).
//!   usage: floor_server PORT
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = [0u8; 16384];
    let mut pending = Vec::new();
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        // Requests without a body (GET): each ends with an empty line.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            conn.write_all(RESPONSE)?;
        }
    }
}

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8080".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    for conn in listener.incoming() {
        let conn = conn?;
        std::thread::spawn(move || serve(conn));
    }
    Ok(())
}
