//! `parity probe URL`: can this pod (or host) open a TCP connection to a URL's host and port?
//! The images carry no shell or curl, so this is how a pod checks a route (the end-to-end
//! tests prove NetworkPolicies with it). Exit 0: connected; 1: refused, timed out or
//! unresolvable; 2: a bad URL.

use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// http://host:port/... (the port defaults to 80 for http, 443 for https).
    pub url: String,
    /// Give up on one attempt after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout_seconds: u64,
    /// Keep trying (a second apart) for this many seconds before saying no: a NetworkPolicy
    /// enforcer learns a new pod's address a moment after the pod starts.
    #[arg(long, default_value_t = 0)]
    pub retry_for_seconds: u64,
}

/// host:port of `url`, or why it is not one (pure).
pub fn target(url: &str) -> Result<(String, u16), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("url {url:?} has no host"))?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        _ => return Err(format!("url {url:?}: give a port or an http(s) scheme")),
    };
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

pub async fn run(args: ProbeArgs) -> ExitCode {
    let (host, port) = match target(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.retry_for_seconds);
    let mut attempt = 1;
    loop {
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        let why =
            match tokio::time::timeout(Duration::from_secs(args.timeout_seconds), connect).await {
                Ok(Ok(_)) => {
                    println!("connected to {host}:{port} (attempt {attempt})");
                    return ExitCode::SUCCESS;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", args.timeout_seconds),
            };
        if tokio::time::Instant::now() >= deadline {
            eprintln!("error: cannot connect to {host}:{port}: {why} ({attempt} attempt(s))");
            return ExitCode::FAILURE;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_the_port_or_the_schemes_default() {
        assert_eq!(
            target("http://dev-kms:8080/healthz"),
            Ok(("dev-kms".into(), 8080))
        );
        assert_eq!(
            target("https://example.com"),
            Ok(("example.com".into(), 443))
        );
        assert_eq!(target("http://[::1]:9"), Ok(("::1".into(), 9)));
        assert!(target("dev-kms").is_err());
        assert!(target("ftp://x").unwrap_err().contains("give a port"));
    }

    #[tokio::test]
    async fn a_listening_port_connects_and_a_closed_one_fails() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let args = |retry_for_seconds| ProbeArgs {
            url: format!("http://127.0.0.1:{port}"),
            timeout_seconds: 2,
            retry_for_seconds,
        };
        assert_eq!(run(args(0)).await, ExitCode::SUCCESS);
        drop(l);
        assert_eq!(run(args(0)).await, ExitCode::FAILURE);
        // Retrying keeps saying no to a closed port, and yes once something listens.
        let started = std::time::Instant::now();
        assert_eq!(run(args(2)).await, ExitCode::FAILURE);
        assert!(started.elapsed() >= Duration::from_secs(2));
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            l
        });
        assert_eq!(run(args(10)).await, ExitCode::SUCCESS);
        late.abort();
    }
}
