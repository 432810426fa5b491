//! One declared secret: how its value is generated and the rules a value must meet, plus the
//! error a value that breaks them gets. Shared by `schema` (which parses them) and `generate`
//! (which produces values), below both.

use std::fmt;

use jsonschema::{ValidationError, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rejection-sampling attempts when a generator must also match a `pattern` or `format`.
pub(crate) const MAX_ATTEMPTS: usize = 64;

/// How a secret's value is produced.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Generator {
    /// `bytes` random bytes, encoded as text.
    RandomBytes {
        bytes: u32,
        #[serde(default)]
        encoding: ByteEncoding,
    },
    /// `length` characters from `[A-Za-z0-9]`, uniformly.
    Alphanumeric { length: u32 },
    /// A random (version 4) UUID in its hyphenated lowercase form.
    Uuid,
    /// A URL built from one of the environment's endpoints (not secret, recomputed each
    /// reconcile so it follows the endpoint). Placeholders: `{url}` `{scheme}` `{host}` `{port}`.
    EndpointUrl {
        endpoint: String,
        #[serde(default)]
        template: Option<String>,
    },
    /// A fixed, non-secret value (kept in sync with the schema).
    Fixed { value: String },
}

// Fixed values are declared non-secret, but Debug stays uniform: kinds and sizes only.
impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generator::RandomBytes { bytes, encoding } => f
                .debug_struct("RandomBytes")
                .field("bytes", bytes)
                .field("encoding", encoding)
                .finish(),
            Generator::Alphanumeric { length } => f
                .debug_struct("Alphanumeric")
                .field("length", length)
                .finish(),
            Generator::Uuid => f.write_str("Uuid"),
            Generator::EndpointUrl { endpoint, template } => f
                .debug_struct("EndpointUrl")
                .field("endpoint", endpoint)
                .field("template", template)
                .finish(),
            Generator::Fixed { value } => {
                f.debug_struct("Fixed").field("len", &value.len()).finish()
            }
        }
    }
}

impl Generator {
    /// Derived values (endpoint URLs, fixed values) follow the schema and the environment;
    /// every other kind is generated once and then kept.
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            Generator::EndpointUrl { .. } | Generator::Fixed { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Generator::RandomBytes { .. } => "randomBytes",
            Generator::Alphanumeric { .. } => "alphanumeric",
            Generator::Uuid => "uuid",
            Generator::EndpointUrl { .. } => "endpointUrl",
            Generator::Fixed { .. } => "fixed",
        }
    }
}

/// Text encoding of random bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ByteEncoding {
    /// Standard alphabet with padding (RFC 4648 section 4).
    #[default]
    Base64,
    /// URL-safe alphabet without padding (RFC 4648 section 5).
    Base64url,
    /// Lowercase hexadecimal.
    Hex,
}

/// One declared secret.
pub struct SecretSpec {
    pub name: String,
    pub generator: Generator,
    pub description: Option<String>,
    pub(super) validator: Validator,
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec")
            .field("name", &self.name)
            .field("generator", &self.generator)
            .finish_non_exhaustive()
    }
}

impl SecretSpec {
    /// Checks one value against this secret's rules.
    pub fn validate(&self, value: &[u8]) -> Result<(), Vec<ValueError>> {
        let Ok(text) = std::str::from_utf8(value) else {
            return Err(vec![ValueError::new(
                &self.name,
                "utf8",
                "value is not valid UTF-8",
            )]);
        };
        let instance = Value::String(text.to_owned());
        let errors: Vec<ValueError> = self
            .validator
            .iter_errors(&instance)
            .map(|e| ValueError::from_validation(&self.name, &e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A value that breaks its secret's rules. Names the secret and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {secret:?}: rule {rule}: {reason}")]
pub struct ValueError {
    pub secret: String,
    pub rule: String,
    pub reason: String,
}

impl ValueError {
    pub(crate) fn new(secret: &str, rule: &str, reason: &str) -> ValueError {
        ValueError {
            secret: secret.to_owned(),
            rule: rule.to_owned(),
            reason: reason.to_owned(),
        }
    }

    pub(super) fn from_validation(secret: &str, e: &ValidationError<'_>) -> ValueError {
        ValueError {
            secret: secret.to_owned(),
            rule: e.kind().keyword().to_owned(),
            reason: e.masked_with("value").to_string(),
        }
    }
}
