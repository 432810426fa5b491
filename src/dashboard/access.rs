//! Who may reach the dashboard and who they are: the Host allow-list (against DNS
//! rebinding), the WebSocket Origin check (against cross-site reads of the live feed) and the
//! trusted proxies whose forwarded-user headers name the person asking.

use std::net::{IpAddr, SocketAddr};

pub use crate::cidr::Cidr;

use axum::http::{HeaderMap, header};

/// Host names every dashboard answers to. IP literals are allowed as well (see
/// [`HostPolicy::allows`]).
pub const DEFAULT_HOSTS: &[&str] = &["localhost"];

/// The Host names a request may carry.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    /// Lower-case names without port; `*` allows any.
    names: Vec<String>,
}

impl HostPolicy {
    pub fn new(extra: &[String]) -> HostPolicy {
        let names = DEFAULT_HOSTS
            .iter()
            .map(|h| h.to_string())
            .chain(extra.iter().map(|h| h.trim().to_ascii_lowercase()))
            .filter(|h| !h.is_empty())
            .collect();
        HostPolicy { names }
    }

    /// Whether `host` (a Host header: `name[:port]`, `[v6]:port`) may be served. An IP
    /// literal always may: DNS rebinding needs the browser to send the attacker's *name*,
    /// and a page loaded from an IP literal is same-origin with this server anyway. So
    /// kubelet probes, Prometheus, ClusterIP and NodePort clients keep working.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.strip_suffix('.').unwrap_or(&name);
        self.names.iter().any(|n| n == "*" || n == name)
    }
}

/// The name part of a Host header value: without port, and without the brackets of an IPv6
/// literal.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(ip, _)| ip).unwrap_or("");
    }
    match host.rsplit_once(':') {
        // More than one colon without brackets is not a valid Host.
        Some((name, _)) if name.contains(':') => "",
        Some((name, _)) => name,
        None => host,
    }
}

/// The Host a request was sent to: the Host header, or the URI's authority (HTTP/2).
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a axum::http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Whether a WebSocket upgrade may proceed: browsers always send Origin on a WebSocket, so
/// one that differs from the Host it was sent to is a page of another site reading the feed.
/// No Origin at all is a non-browser client (no ambient credentials to abuse). `allowed` are
/// further origins (`https://dash.example.com`), for proxies that rewrite Host.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin.map(str::trim) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        // Includes `null` (sandboxed frames, file: pages).
        return false;
    };
    if !matches!(scheme, "http" | "https") || authority.contains('/') {
        return false;
    }
    host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority))
}

/// Headers an authenticating proxy (oauth2-proxy, nginx auth_request, Apache) names the user
/// in, in order of preference.
const USER_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-auth-request-user",
    "x-remote-user",
    "x-forwarded-email",
    "x-auth-request-email",
];

/// Who is asking, for the audit log: the user a trusted proxy forwarded, else `anonymous`.
/// Headers from any other peer are ignored: anyone could send them.
pub fn who(headers: &HeaderMap, peer: SocketAddr, trusted: &[Cidr]) -> String {
    if trusted.iter().any(|c| c.contains(peer.ip())) {
        for name in USER_HEADERS {
            if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                let v = v.trim();
                // Control characters could forge audit lines; they are JSON-escaped anyway.
                if !v.is_empty() && v.len() <= 256 && v.chars().all(|c| !c.is_control()) {
                    return v.to_string();
                }
            }
        }
    }
    "anonymous".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hosts_defaults_ip_literals_and_configured_names() {
        let p = HostPolicy::new(&["Dev-Dashboard.Team.svc".into()]);
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "10.96.0.12:8080",
            "dev-dashboard.team.svc:8080",
            "dev-dashboard.team.svc.",
        ] {
            assert!(p.allows(ok), "{ok} refused");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
            "::1",
            "[::1",
            "dev-dashboard",
        ] {
            assert!(!p.allows(bad), "{bad} allowed");
        }
        assert!(HostPolicy::new(&["*".into()]).allows("anything.example"));
    }

    #[test]
    fn origins_must_match_the_host_or_be_listed() {
        let h = Some("127.0.0.1:8080");
        assert!(origin_allowed(None, h, &[]));
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), h, &[]));
        assert!(origin_allowed(Some("https://127.0.0.1:8080"), h, &[]));
        assert!(!origin_allowed(Some("http://127.0.0.1:3000"), h, &[]));
        assert!(!origin_allowed(Some("http://evil.example"), h, &[]));
        assert!(!origin_allowed(Some("null"), h, &[]));
        assert!(!origin_allowed(Some("http://127.0.0.1:8080"), None, &[]));
        let allowed = ["https://dash.example.com/".to_string()];
        assert!(origin_allowed(
            Some("https://dash.example.com"),
            Some("10.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://dash.example.com"),
            Some("10.0.0.1:8080"),
            &allowed
        ));
    }

    #[test]
    fn forwarded_users_count_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-user", HeaderValue::from_static("alice"));
        let proxy: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let trusted = ["10.0.0.0/24".parse().unwrap()];
        assert_eq!(who(&h, proxy, &trusted), "alice");
        assert_eq!(who(&h, stranger, &trusted), "anonymous");
        assert_eq!(who(&h, proxy, &[]), "anonymous");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-email",
            HeaderValue::from_static("a@example.com"),
        );
        assert_eq!(who(&h, proxy, &trusted), "a@example.com");
        // Control characters could forge audit lines: ignored.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-user",
            HeaderValue::from_bytes(b"mallory\tx").unwrap(),
        );
        assert_eq!(who(&h, proxy, &trusted), "anonymous");
    }
}
