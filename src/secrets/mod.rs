//! Secrets: the secrets.schema.json format, the LocalSecretsProvider that generates and keeps
//! `<env>-secrets`, the rollout annotation, the InfisicalSecret builder, and
//! `parity secrets-api` (Infisical's read API served locally). See docs/secrets.md.
//!
//! Everything but `api` and `store` is pure; nothing here logs, formats or `Debug`s a value.

pub mod api;
pub mod generate;
pub mod infisical;
pub mod provider;
pub mod rollout;
pub mod schema;
pub mod spec;
pub mod store;

pub use api::SecretsApiArgs;
pub use generate::{GenerateError, GenerationMode};
pub use infisical::{
    InfisicalProject, InfisicalSecret, InfisicalSource, InfisicalSourceError,
    build_infisical_secret, credentials_secret_name, managed_secret_name, validate_synced_secret,
};
pub use provider::{LocalSecretsProvider, ReconcileOutcome, SecretsCondition, SecretsReport};
pub use rollout::{ROLLOUT_ANNOTATION, derive_rollout_key, new_rollout_key, rollout_hash};
pub use schema::{Generator, SchemaError, SecretsSchema, ValueError};
