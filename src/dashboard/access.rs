//! Who may reach the dashboard and who they are: the Host allow-list (against DNS
//! rebinding), the WebSocket Origin check (against cross-site reads of the live feed) and the
//! trusted proxies whose forwarded-user headers name the person asking.

use std::net::{IpAddr, SocketAddr};

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

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (e.g. 10.0.0.0/8 or fd00::/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
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
    fn cidrs_parse_and_contain() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains(bad) || bad.is_empty(), "{err}");
        }
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
