//! How an app connects to an environment, the same in process mode and cluster mode: one
//! [`ConnectionSet`] feeds `parity dev`'s `.env` and endpoint table, `parity env`, and the
//! `<env>-connection` Secret apps load with `envFrom`. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

pub const DYNAMODB_URL: &str = "AWS_ENDPOINT_URL_DYNAMODB";
pub const KMS_URL: &str = "AWS_ENDPOINT_URL_KMS";
pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const REGION: &str = "AWS_REGION";
/// boto3 and the AWS CLI read the region from here, the other SDKs from AWS_REGION.
pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const KMS_KEY_ID: &str = "PARITY_KMS_KEY_ID";
pub const INFISICAL_SITE_URL: &str = "INFISICAL_SITE_URL";
pub const INFISICAL_CLIENT_ID: &str = "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID";
pub const INFISICAL_CLIENT_SECRET: &str = "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET";
pub const DASHBOARD_URL: &str = "PARITY_DASHBOARD_URL";

/// The localhost ports kind-config.yaml maps to the NodePorts, which `parity dev` also uses
/// by default, so an app's `.env` reads the same in both worlds.
pub const DASHBOARD_HOST_PORT: u16 = 8080;
pub const DYNAMODB_HOST_PORT: u16 = 8000;
pub const KMS_HOST_PORT: u16 = 8880;
pub const SECRETS_API_HOST_PORT: u16 = 8095;

/// Variables whose values are credentials: never printed, only written where asked.
const CREDENTIALS: &[&str] = &[SECRET_ACCESS_KEY, INFISICAL_CLIENT_SECRET];

/// Everything an app needs to reach an environment. Absent parts are left out of every
/// output (an environment at parity level 0 has no DynamoDB endpoint).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionSet {
    pub region: String,
    pub dynamodb: Option<String>,
    pub kms: Option<String>,
    /// A key alias the app encrypts with (e.g. `alias/parity/dev`).
    pub kms_key_id: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Zeroizing<String>>,
    /// The Infisical-compatible site URL (`parity secrets-api`).
    pub secrets_site_url: Option<String>,
    pub secrets_client_id: Option<String>,
    pub secrets_client_secret: Option<Zeroizing<String>>,
    pub dashboard: Option<String>,
    /// The application secrets under the names the schema gives them.
    pub secrets: BTreeMap<String, Zeroizing<String>>,
}

impl fmt::Debug for ConnectionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSet")
            .field("region", &self.region)
            .field("dynamodb", &self.dynamodb)
            .field("kms", &self.kms)
            .field("secrets_site_url", &self.secrets_site_url)
            .field("dashboard", &self.dashboard)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Output formats of `parity env`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `NAME='value'` lines, as `.env` files hold them.
    Dotenv,
    /// One JSON object.
    Json,
    /// `export NAME='value'` lines for `eval "$(parity env ...)"`.
    Shell,
}

/// Which URL a variable holds, for mapping in-cluster URLs to localhost ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    DynamoDb,
    Kms,
    Secrets,
    Dashboard,
}

impl Endpoint {
    pub fn host_port(self) -> u16 {
        match self {
            Endpoint::DynamoDb => DYNAMODB_HOST_PORT,
            Endpoint::Kms => KMS_HOST_PORT,
            Endpoint::Secrets => SECRETS_API_HOST_PORT,
            Endpoint::Dashboard => DASHBOARD_HOST_PORT,
        }
    }
}

impl ConnectionSet {
    /// The variables in a stable order: connection settings first, then the secrets. A
    /// secret named like a connection variable (a schema's `AWS_REGION`) is left out: the
    /// connection says where the app is, the schema only what it stores.
    pub fn vars(&self) -> Vec<(String, Zeroizing<String>)> {
        let mut out: Vec<(String, Zeroizing<String>)> = Vec::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.push((k.to_string(), Zeroizing::new(v.to_string())));
            }
        };
        put(DYNAMODB_URL, self.dynamodb.as_deref());
        put(KMS_URL, self.kms.as_deref());
        put(ACCESS_KEY_ID, self.access_key_id.as_deref());
        put(
            SECRET_ACCESS_KEY,
            self.secret_access_key.as_ref().map(|s| s.as_str()),
        );
        put(REGION, Some(self.region.as_str()));
        put(DEFAULT_REGION, Some(self.region.as_str()));
        put(KMS_KEY_ID, self.kms_key_id.as_deref());
        put(INFISICAL_SITE_URL, self.secrets_site_url.as_deref());
        put(INFISICAL_CLIENT_ID, self.secrets_client_id.as_deref());
        put(
            INFISICAL_CLIENT_SECRET,
            self.secrets_client_secret.as_ref().map(|s| s.as_str()),
        );
        put(DASHBOARD_URL, self.dashboard.as_deref());
        for (k, v) in &self.secrets {
            if !out.iter().any(|(name, _)| name == k) {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    /// Reads a set back from its variables (the `<env>-connection` Secret's data).
    pub fn from_vars(vars: BTreeMap<String, Zeroizing<String>>) -> ConnectionSet {
        let mut vars = vars;
        // Always AWS_REGION's value: not kept apart.
        vars.remove(DEFAULT_REGION);
        let mut take = |k: &str| vars.remove(k).map(|v| v.to_string());
        let mut set = ConnectionSet {
            dynamodb: take(DYNAMODB_URL),
            kms: take(KMS_URL),
            access_key_id: take(ACCESS_KEY_ID),
            secret_access_key: take(SECRET_ACCESS_KEY).map(Zeroizing::new),
            region: take(REGION).unwrap_or_default(),
            kms_key_id: take(KMS_KEY_ID),
            secrets_site_url: take(INFISICAL_SITE_URL),
            secrets_client_id: take(INFISICAL_CLIENT_ID),
            secrets_client_secret: take(INFISICAL_CLIENT_SECRET).map(Zeroizing::new),
            dashboard: take(DASHBOARD_URL),
            secrets: BTreeMap::new(),
        };
        set.secrets = vars;
        set
    }

    fn urls_mut(&mut self) -> [(Endpoint, &mut Option<String>); 4] {
        [
            (Endpoint::DynamoDb, &mut self.dynamodb),
            (Endpoint::Kms, &mut self.kms),
            (Endpoint::Secrets, &mut self.secrets_site_url),
            (Endpoint::Dashboard, &mut self.dashboard),
        ]
    }

    /// The same set as seen from the host of a kind cluster: each in-cluster URL becomes
    /// `http://localhost:<host port>` (kind-config.yaml's extraPortMappings), and secrets
    /// whose value is one of those URLs (schema `endpointUrl` generators) follow.
    pub fn with_host_urls(self) -> ConnectionSet {
        self.at_host("localhost", Endpoint::host_port)
    }

    /// The same set with each in-cluster URL replaced by `http://<host>:<port_of(endpoint)>`
    /// (kind's localhost ports, or a node's NodePorts), secrets holding those URLs following.
    pub fn at_host(mut self, host: &str, port_of: impl Fn(Endpoint) -> u16) -> ConnectionSet {
        let mut moved = Vec::new();
        for (endpoint, url) in self.urls_mut() {
            if let Some(u) = url.as_mut() {
                let host = format!("http://{host}:{}", port_of(endpoint));
                moved.push((std::mem::replace(u, host.clone()), host));
            }
        }
        for value in self.secrets.values_mut() {
            if let Some((_, host)) = moved.iter().find(|(old, _)| old.as_str() == value.as_str()) {
                *value = Zeroizing::new(host.clone());
            }
        }
        self
    }

    /// The endpoints as a table for people: no credentials, no secret values.
    pub fn endpoint_table(&self) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        let url = |u: &Option<String>| u.clone();
        for (what, value) in [
            ("DynamoDB", url(&self.dynamodb)),
            ("KMS", url(&self.kms)),
            ("secrets (Infisical)", url(&self.secrets_site_url)),
            ("dashboard", url(&self.dashboard)),
            ("KMS key", self.kms_key_id.clone()),
            ("region", Some(self.region.clone())),
        ] {
            if let Some(v) = value {
                rows.push((what, v));
            }
        }
        if !self.secrets.is_empty() {
            rows.push((
                "secrets",
                format!(
                    "{} ({} values, in the .env only)",
                    self.secrets.keys().cloned().collect::<Vec<_>>().join(", "),
                    self.secrets.len()
                ),
            ));
        }
        let width = rows.iter().map(|(w, _)| w.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(w, v)| format!("  {w:<width$}  {v}\n"))
            .collect()
    }

    /// The set in `format`. Holds credentials: write it only to the user's terminal or a
    /// private file, never to logs.
    pub fn render(&self, format: Format) -> Zeroizing<String> {
        let vars = self.vars();
        let mut out = Zeroizing::new(String::new());
        match format {
            Format::Dotenv => {
                for (k, v) in &vars {
                    out.push_str(&format!("{k}={}\n", dotenv_quote(v)));
                }
            }
            Format::Shell => {
                for (k, v) in &vars {
                    out.push_str(&format!("export {k}={}\n", shell_quote(v)));
                }
            }
            Format::Json => {
                let map: serde_json::Map<String, serde_json::Value> = vars
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                    .collect();
                // A map of strings always serializes.
                out.push_str(&serde_json::to_string_pretty(&map).unwrap_or_default());
                out.push('\n');
            }
        }
        out
    }

    /// Whether `name` holds a credential or an application secret.
    pub fn is_secret(&self, name: &str) -> bool {
        CREDENTIALS.contains(&name) || self.secrets.contains_key(name)
    }
}

/// A dotenv value both dotenv (Node) and python-dotenv read back unchanged: single quotes
/// (no escapes, no `${}` expansion) when possible, else double quotes with `\\`, `\"`, `\n`
/// escaped (and `$` escaped, which python-dotenv would otherwise expand).
pub fn dotenv_quote(value: &str) -> String {
    if !value.contains('\'') && !value.contains('\n') && !value.contains('\r') {
        return format!("'{value}'");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// POSIX shell single quoting: `'` becomes `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConnectionSet {
        ConnectionSet {
            region: "us-east-1".into(),
            dynamodb: Some("http://dev-dynamodb.team.svc:8000".into()),
            kms: Some("http://dev-kms.team.svc:8080".into()),
            kms_key_id: Some("alias/parity/dev".into()),
            access_key_id: Some("parity-dev".into()),
            secret_access_key: Some(Zeroizing::new("s3cr3t-key".into())),
            secrets_site_url: Some("http://dev-secrets-api.team.svc:8095".into()),
            secrets_client_id: Some("parity-dev".into()),
            secrets_client_secret: Some(Zeroizing::new("client-s3cr3t".into())),
            dashboard: Some("http://dev-dashboard.team.svc:8080".into()),
            secrets: BTreeMap::from([
                (
                    "WEBHOOK_SECRET".into(),
                    Zeroizing::new("ab'c\"d$x\\n".into()),
                ),
                (
                    "DYNAMODB_ENDPOINT".into(),
                    Zeroizing::new("http://dev-dynamodb.team.svc:8000".into()),
                ),
                ("AWS_REGION".into(), Zeroizing::new("eu-west-1".into())),
            ]),
        }
    }

    #[test]
    fn vars_carry_every_name_the_sdks_read_once() {
        let names: Vec<String> = sample().vars().into_iter().map(|(k, _)| k).collect();
        for want in [
            DYNAMODB_URL,
            KMS_URL,
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            REGION,
            DEFAULT_REGION,
            KMS_KEY_ID,
            INFISICAL_SITE_URL,
            INFISICAL_CLIENT_ID,
            INFISICAL_CLIENT_SECRET,
            "WEBHOOK_SECRET",
        ] {
            assert_eq!(names.iter().filter(|n| *n == want).count(), 1, "{want}");
        }
        // The connection's region wins over a schema secret of the same name.
        let region = sample()
            .vars()
            .into_iter()
            .find(|(k, _)| k == REGION)
            .map(|(_, v)| v.to_string());
        assert_eq!(region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn round_trips_through_its_variables() {
        let s = sample();
        let vars: BTreeMap<String, Zeroizing<String>> = s.vars().into_iter().collect();
        let mut back = ConnectionSet::from_vars(vars);
        // The shadowed schema AWS_REGION is not in the variables, so it cannot come back.
        let mut expected = s.clone();
        expected.secrets.remove("AWS_REGION");
        back.secrets.remove("AWS_REGION");
        assert_eq!(back, expected);
    }

    #[test]
    fn dotenv_quoting_reads_back_literally() {
        assert_eq!(dotenv_quote("abc+/="), "'abc+/='");
        assert_eq!(dotenv_quote("$HOME"), "'$HOME'");
        assert_eq!(dotenv_quote("it's"), "\"it's\"");
        assert_eq!(dotenv_quote("a\"b'\\$\nz"), "\"a\\\"b'\\\\\\$\\nz\"");
        assert_eq!(dotenv_quote(""), "''");
        let env = sample().render(Format::Dotenv);
        assert!(env.contains("AWS_ENDPOINT_URL_KMS='http://dev-kms.team.svc:8080'\n"));
        assert!(env.contains("WEBHOOK_SECRET=\"ab'c\\\"d\\$x\\\\n\"\n"));
    }

    #[test]
    fn shell_and_json_outputs() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let sh = sample().render(Format::Shell);
        assert!(sh.contains("export AWS_REGION='us-east-1'\n"));
        let json: serde_json::Value =
            serde_json::from_str(&sample().render(Format::Json)).expect("json");
        assert_eq!(json[KMS_KEY_ID], "alias/parity/dev");
        assert_eq!(json["WEBHOOK_SECRET"], "ab'c\"d$x\\n");
    }

    #[test]
    fn host_urls_follow_kind_config() {
        let h = sample().with_host_urls();
        assert_eq!(h.dynamodb.as_deref(), Some("http://localhost:8000"));
        assert_eq!(h.kms.as_deref(), Some("http://localhost:8880"));
        assert_eq!(h.secrets_site_url.as_deref(), Some("http://localhost:8095"));
        assert_eq!(h.dashboard.as_deref(), Some("http://localhost:8080"));
        assert_eq!(
            h.secrets["DYNAMODB_ENDPOINT"].as_str(),
            "http://localhost:8000"
        );
        let kind = include_str!("../kind-config.yaml");
        for p in [
            DASHBOARD_HOST_PORT,
            DYNAMODB_HOST_PORT,
            KMS_HOST_PORT,
            SECRETS_API_HOST_PORT,
        ] {
            assert!(kind.contains(&format!("hostPort: {p}\n")), "{p}");
        }
    }

    #[test]
    fn the_table_shows_no_values_of_secrets() {
        let t = sample().endpoint_table();
        assert!(t.contains("http://dev-kms.team.svc:8080"));
        assert!(t.contains("WEBHOOK_SECRET"));
        assert!(!t.contains("s3cr3t") && !t.contains("ab'c"), "{t}");
        assert!(sample().is_secret(SECRET_ACCESS_KEY) && sample().is_secret("WEBHOOK_SECRET"));
        assert!(!sample().is_secret(KMS_URL));
    }
}
