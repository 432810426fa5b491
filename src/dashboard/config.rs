//! Flags of `parity dashboard` and the rules that decide, before anything listens, whether the
//! configuration is allowed: decryption only in the Local tier, and only with a key service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::access::Cidr;
use crate::api::{Decryption, Tier};
use crate::duration::parse_duration;
use crate::dynamo::connect::AwsArgs;
use crate::dynamo::seed::FixtureSchema;
use crate::dynamo::seed::fixture::schema_file_table;

/// `--tier`'s spelling of each tier (the operator passes it; the CRD spells them `Local`, `CI`,
/// `Staging`).
pub fn tier_flag(tier: Tier) -> &'static str {
    match tier {
        Tier::Local => "local",
        Tier::Ci => "ci",
        Tier::Staging => "staging",
    }
}

/// `--decryption`'s spelling of each mode.
pub fn decryption_flag(mode: Decryption) -> &'static str {
    match mode {
        Decryption::Server => "server",
        Decryption::Disabled => "disabled",
    }
}

// The flags take the API's own enums, so the dashboard has no copies of them to keep in step.
impl clap::ValueEnum for Tier {
    fn value_variants<'a>() -> &'a [Self] {
        &Tier::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(tier_flag(*self)))
    }
}

impl clap::ValueEnum for Decryption {
    fn value_variants<'a>() -> &'a [Self] {
        &[Decryption::Server, Decryption::Disabled]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let v = clap::builder::PossibleValue::new(decryption_flag(*self));
        Some(match self {
            Decryption::Server => v.help(
                "Decrypt through the environment's KMS-compatible key service (Local tier only)",
            ),
            // `off`: the spelling of earlier releases.
            Decryption::Disabled => v.help("Show envelope metadata only").alias("off"),
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "PARITY_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Topology: the operator's `<env>-topology` document or a plain topology YAML; its
    /// tables are the ones shown.
    #[arg(long, env = "PARITY_TOPOLOGY")]
    pub topology: PathBuf,
    /// DynamoDB endpoint (DynamoDB Local, moto); absent means the AWS endpoint of --region.
    #[arg(long, env = "PARITY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The environment's tier. Decryption is refused outside `local`.
    #[arg(long, env = "PARITY_TIER", value_enum)]
    pub tier: Tier,
    /// `server` decrypts through the key service (Local tier only); `disabled` (alias `off`)
    /// shows envelope metadata only.
    #[arg(long, env = "PARITY_DASHBOARD_DECRYPTION", value_enum, default_value_t = Decryption::Disabled)]
    pub decryption: Decryption,
    /// KMS-compatible endpoint (`parity kms`); required with `--decryption server`.
    #[arg(long, env = "PARITY_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
    /// Directory of seed fixtures whose `<table>.fixture.yaml` context templates rebuild each
    /// field's encryption context; without one a table's context is empty.
    #[arg(long, visible_alias = "seed-dir", env = "PARITY_SEEDS_DIR")]
    pub seeds: Option<PathBuf>,
    /// Prefix the topology's table names carry from mirroring; fixture names may omit it.
    #[arg(long, env = "PARITY_TABLE_PREFIX")]
    pub table_prefix: Option<String>,
    /// Items per page unless the request asks for another size (at most 500).
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// Messages queued per WebSocket client; a client that falls this far behind is dropped
    /// with a notice, so the server's memory stays bounded.
    #[arg(long, default_value_t = 256)]
    pub client_queue: usize,
    /// A banner shown on every page (`parity dev` says here why a component is not running).
    #[arg(long, env = "PARITY_DASHBOARD_NOTICE")]
    pub notice: Option<String>,
    /// How often each stream shard is polled.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub stream_poll: Duration,
    /// Where DynamoDB credentials come from: `static` (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, for emulators), or `default-chain`, the AWS SDK's default
    /// provider chain (IRSA web identity, EKS pod identity, instance profile; Staging).
    #[arg(long, env = "PARITY_AWS_CREDENTIALS", value_enum, default_value_t = CredentialSource::Static)]
    pub aws_credentials: CredentialSource,
    /// Further Host names the dashboard answers to (besides localhost and IP literals);
    /// `*` allows any. Other names get 421, against DNS rebinding.
    #[arg(
        long = "allowed-host",
        env = "PARITY_DASHBOARD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Further origins (`https://dash.example.com`) whose pages may open the live feed,
    /// besides the page's own (Origin equal to Host). For proxies that rewrite Host.
    #[arg(
        long = "allowed-origin",
        env = "PARITY_DASHBOARD_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Networks (CIDR) of the authenticating proxies whose X-Forwarded-User (and
    /// X-Auth-Request-User, X-Remote-User, X-Forwarded-Email) headers name the user in the
    /// audit log. None by default: the headers are ignored and the user is `anonymous`.
    #[arg(
        long = "trusted-proxy",
        env = "PARITY_DASHBOARD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// Live-feed (WebSocket) clients served at once; the next gets 503.
    #[arg(long, default_value_t = 256)]
    pub max_clients: usize,
    /// Largest WebSocket message (and frame) a client may send, in bytes; the page sends
    /// none, so a larger one closes the connection (1009).
    #[arg(long, default_value_t = 4096)]
    pub ws_max_message_bytes: usize,
}

/// Where the dashboard's AWS credentials come from: the tier table decides it.
pub use crate::tier::CredentialSource;

/// Why a configuration is refused. Names the flag and the reason.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--decryption server is only allowed with --tier local (got --tier {0}): outside the Local tier the dashboard is zero-knowledge; use --decryption disabled"
    )]
    DecryptionOutsideLocal(&'static str),
    #[error("--decryption server needs --kms-endpoint (the environment's key service)")]
    MissingKmsEndpoint,
    #[error("--page-size must be 1..=500, got {0}")]
    PageSize(u32),
    #[error("--client-queue must be 1..=65536, got {0}")]
    ClientQueue(usize),
    #[error("--max-clients must be 1..=65536, got {0}")]
    MaxClients(usize),
    #[error("--ws-max-message-bytes must be 16..=1048576, got {0}")]
    WsMaxMessage(usize),
    #[error(
        "--allowed-origin {0:?}: must be scheme://host[:port] with scheme http or https, no path"
    )]
    AllowedOrigin(String),
    #[error(
        "--allowed-host {0:?}: must be a host name without port or scheme (e.g. dash.example.com), or *"
    )]
    AllowedHost(String),
}

pub const MAX_PAGE_SIZE: u32 = 500;

/// Checks the flags that no server may start with. Pure.
pub fn check(args: &DashboardArgs) -> Result<(), ConfigError> {
    check_decryption(args.tier, args.decryption, args.kms_endpoint.as_deref())?;
    if args.page_size == 0 || args.page_size > MAX_PAGE_SIZE {
        return Err(ConfigError::PageSize(args.page_size));
    }
    if args.client_queue == 0 || args.client_queue > 65536 {
        return Err(ConfigError::ClientQueue(args.client_queue));
    }
    if args.max_clients == 0 || args.max_clients > 65536 {
        return Err(ConfigError::MaxClients(args.max_clients));
    }
    if !(16..=1 << 20).contains(&args.ws_max_message_bytes) {
        return Err(ConfigError::WsMaxMessage(args.ws_max_message_bytes));
    }
    if let Some(bad) = args.allowed_hosts.iter().find(|h| {
        let h = h.trim();
        h.is_empty() || (h != "*" && h.contains([':', '/', '*', '@', ' ']))
    }) {
        return Err(ConfigError::AllowedHost(bad.clone()));
    }
    if let Some(bad) = args.allowed_origins.iter().find(|o| !valid_origin(o)) {
        return Err(ConfigError::AllowedOrigin(bad.clone()));
    }
    Ok(())
}

fn valid_origin(o: &str) -> bool {
    let o = o.trim_end_matches('/');
    match o.split_once("://") {
        Some(("http" | "https", authority)) => {
            !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' '])
        }
        _ => false,
    }
}

pub fn check_decryption(
    tier: Tier,
    mode: Decryption,
    kms_endpoint: Option<&str>,
) -> Result<(), ConfigError> {
    if mode != Decryption::Server {
        return Ok(());
    }
    if tier != Tier::Local {
        return Err(ConfigError::DecryptionOutsideLocal(tier_flag(tier)));
    }
    if kms_endpoint.is_none_or(|e| e.trim().is_empty()) {
        return Err(ConfigError::MissingKmsEndpoint);
    }
    Ok(())
}

/// Reads the `<table>.fixture.yaml` schemas of a seeds directory, keyed by table name (with
/// `prefix` added, as bootstrap does). Errors name the file and the reason.
pub fn read_schemas(
    dir: &Path,
    prefix: Option<&str>,
) -> anyhow::Result<BTreeMap<String, FixtureSchema>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--seeds {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let Some(stem) = schema_file_table(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let schema: FixtureSchema =
            serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let table = match prefix {
            Some(p) if !stem.starts_with(p) => format!("{p}{stem}"),
            _ => stem.to_string(),
        };
        out.insert(table, schema);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_decryption_is_refused_outside_local_naming_the_flag() {
        for tier in [Tier::Ci, Tier::Staging] {
            let err = check_decryption(tier, Decryption::Server, Some("http://kms")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("--decryption server"), "{msg}");
            assert!(
                msg.contains(&format!("--tier {}", tier_flag(tier))),
                "{msg}"
            );
        }
        assert_eq!(
            check_decryption(Tier::Local, Decryption::Server, Some("http://kms")),
            Ok(())
        );
        for tier in [Tier::Local, Tier::Ci, Tier::Staging] {
            assert_eq!(check_decryption(tier, Decryption::Disabled, None), Ok(()));
        }
    }

    #[test]
    fn server_decryption_needs_a_key_service() {
        assert_eq!(
            check_decryption(Tier::Local, Decryption::Server, None),
            Err(ConfigError::MissingKmsEndpoint)
        );
        assert_eq!(
            check_decryption(Tier::Local, Decryption::Server, Some(" ")),
            Err(ConfigError::MissingKmsEndpoint)
        );
    }

    #[test]
    fn limits_and_origins_are_checked_naming_the_flag() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: DashboardArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["parity", "--topology", "t.yaml", "--tier", "ci"];
            argv.extend(extra);
            Cli::try_parse_from(argv).map(|c| c.args)
        };
        assert_eq!(check(&parse(&[]).unwrap()), Ok(()));
        for (flags, want) in [
            (
                ["--max-clients", "0"],
                "--max-clients must be 1..=65536, got 0",
            ),
            (
                ["--ws-max-message-bytes", "1"],
                "--ws-max-message-bytes must be",
            ),
            (
                ["--allowed-origin", "dash.example.com"],
                "--allowed-origin \"dash.example.com\"",
            ),
            (["--allowed-origin", "https://a/b"], "--allowed-origin"),
            (
                ["--allowed-host", "dash.example.com:8443"],
                "--allowed-host \"dash.example.com:8443\": must be a host name without port",
            ),
            (
                ["--allowed-host", "http://dash"],
                "--allowed-host \"http://dash\"",
            ),
        ] {
            let err = check(&parse(&flags).unwrap()).unwrap_err().to_string();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
        let ok = parse(&[
            "--allowed-origin",
            "https://dash.example.com/,http://x:8080",
        ])
        .unwrap();
        assert_eq!(check(&ok), Ok(()));
        // A bad network is refused by the parser, naming the flag and the value.
        let err = parse(&["--trusted-proxy", "10.0.0.0/33"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("--trusted-proxy") && err.contains("10.0.0.0/33"),
            "{err}"
        );
        let a = parse(&["--trusted-proxy", "10.0.0.0/8,fd00::/8"]).unwrap();
        assert_eq!(a.trusted_proxies.len(), 2);
    }

    #[test]
    fn off_is_an_alias_of_disabled() {
        use clap::ValueEnum;
        assert_eq!(Decryption::from_str("off", true), Ok(Decryption::Disabled));
    }

    #[test]
    fn schemas_are_read_per_table_with_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("customers.fixture.yaml"),
            "encrypt: [card]\ncontext:\n  id: \"{id}\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("customers.jsonl"), "{}\n").unwrap();
        let s = read_schemas(dir.path(), Some("dev-")).unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), vec!["dev-customers"]);
        assert_eq!(s["dev-customers"].encrypt, vec!["card".to_string()]);
        std::fs::write(dir.path().join("bad.fixture.yaml"), "encrypt: 3\n").unwrap();
        let err = read_schemas(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("bad.fixture.yaml"), "{err}");
    }
}
