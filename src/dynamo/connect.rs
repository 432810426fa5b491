//! Talking to a DynamoDB endpoint (DynamoDB Local, moto, or AWS): a client with static
//! credentials and an explicit endpoint, and waiting for the endpoint with backoff.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use super::backoff::{Backoff, human};

/// An SDK error as one line: each cause's message, outermost first, without the Debug dump
/// that `DisplayErrorContext` appends (too noisy for a log line per attempt).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A value that must not appear in Debug output or logs (clap's Args derive Debug).
#[derive(Clone, Default)]
pub struct Redacted(String);

impl Redacted {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_string()))
    }
}

/// Region and static credentials. Emulators accept any; for a real account the operator
/// passes them from a Secret through the environment.
#[derive(Clone, Debug, clap::Args)]
pub struct AwsArgs {
    /// Region to sign requests for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Access key id (emulators accept any value).
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        default_value = "local",
        hide_env_values = true
    )]
    pub access_key_id: String,
    /// Secret access key (emulators accept any value). Never logged.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "local",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub secret_access_key: Redacted,
    /// Optional session token. Never logged.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub session_token: Option<Redacted>,
}

impl Default for AwsArgs {
    fn default() -> Self {
        AwsArgs {
            region: "us-east-1".into(),
            access_key_id: "local".into(),
            secret_access_key: Redacted("local".into()),
            session_token: None,
        }
    }
}

/// A client for `endpoint`. `max_attempts` is the SDK's own retry budget per call
/// (throttling, 5xx); 1 disables it, as the readiness probe does its own backoff.
pub fn client(endpoint: &str, aws: &AwsArgs, max_attempts: u32) -> Client {
    let creds = Credentials::new(
        aws.access_key_id.clone(),
        aws.secret_access_key.expose().to_string(),
        aws.session_token.as_ref().map(|t| t.expose().to_string()),
        None,
        "parity-static",
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// How long to wait for the endpoint and how fast to retry.
#[derive(Clone, Debug)]
pub struct WaitPolicy {
    pub timeout: Duration,
    pub initial: Duration,
    pub max: Duration,
}

/// Polls ListTables until the endpoint answers, logging one line per failed attempt with the
/// attempt number, the error and the next delay; fails after `policy.timeout`.
pub async fn wait_ready(endpoint: &str, aws: &AwsArgs, policy: &WaitPolicy) -> anyhow::Result<()> {
    let probe = client(endpoint, aws, 1);
    let start = Instant::now();
    let mut backoff = Backoff::new(policy.initial, policy.max);
    let mut attempt = 1u32;
    loop {
        match probe.list_tables().limit(1).send().await {
            Ok(_) => {
                tracing::info!(
                    endpoint,
                    attempt,
                    "DynamoDB at {endpoint} is ready (attempt {attempt}, after {})",
                    human(start.elapsed())
                );
                return Ok(());
            }
            Err(e) => {
                let err = error_chain(&e);
                let delay = backoff.next_delay();
                if start.elapsed() + delay > policy.timeout {
                    bail!(
                        "DynamoDB at {endpoint} did not answer within {} ({attempt} attempts); last error: {err}",
                        human(policy.timeout)
                    );
                }
                tracing::info!(
                    endpoint,
                    attempt,
                    next_retry_ms = delay.as_millis() as u64,
                    "waiting for DynamoDB at {endpoint}: attempt {attempt} failed, next retry in {}: {err}",
                    human(delay)
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_never_shows_in_debug_output() {
        let aws = AwsArgs {
            secret_access_key: Redacted("canary-secret-7f3a".into()),
            session_token: Some(Redacted("canary-token-91b2".into())),
            ..AwsArgs::default()
        };
        let dbg = format!("{aws:?}");
        assert!(!dbg.contains("canary"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
