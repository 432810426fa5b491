//! LocalSecretsProvider: computes the data of the `<env>-secrets` Secret from the schema and
//! what the Secret holds now. Pure: the operator reads the Secret, calls `reconcile`, and
//! applies `data` when `report.changed` is set.
//!
//! Generated values are created once and kept across reconciles (rotating them is an explicit
//! act, not a side effect of a schema edit). Derived values (endpoint URLs, fixed values)
//! follow the schema and the environment. Keys no longer in the schema are kept and reported
//! unless pruning is asked for.

use std::collections::BTreeMap;
use std::fmt;

use super::generate::{GenerateError, GenerationMode, generate_valid};
use super::schema::{SecretsSchema, ValueError};

/// Settings for one environment's local secrets.
#[derive(Debug)]
pub struct LocalSecretsProvider<'a> {
    pub schema: &'a SecretsSchema,
    pub mode: GenerationMode,
    /// Delete keys that the schema no longer declares (otherwise they are kept and reported).
    pub prune: bool,
}

/// The new Secret data and what happened to each key.
pub struct ReconcileOutcome {
    pub data: BTreeMap<String, Vec<u8>>,
    pub report: SecretsReport,
}

impl fmt::Debug for ReconcileOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcileOutcome")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("report", &self.report)
            .finish()
    }
}

/// Per-key outcome of a reconcile; names only, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsReport {
    /// Generated now (the key was absent).
    pub created: Vec<String>,
    /// Existing value kept as is.
    pub kept: Vec<String>,
    /// Derived value (endpointUrl, fixed) that changed to follow the schema or environment.
    pub updated: Vec<String>,
    /// In the Secret but not in the schema, kept because pruning was not asked for.
    pub undeclared: Vec<String>,
    /// In the Secret but not in the schema, removed because pruning was asked for.
    pub pruned: Vec<String>,
    /// Existing values that no longer satisfy the schema (kept; fix or delete the key).
    pub invalid: Vec<ValueError>,
    /// Secrets that could not be produced (for example an unknown endpoint).
    pub failed: Vec<GenerateError>,
    /// Whether `data` differs from the Secret's current data (or there was no Secret).
    pub changed: bool,
}

/// A summary for the SecretsReady condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsCondition {
    pub ready: bool,
    /// CamelCase reason for the condition.
    pub reason: &'static str,
    pub message: String,
}

impl SecretsReport {
    /// SecretsReady: False when a secret could not be produced or a kept value is invalid.
    /// Messages name secrets and rules only.
    pub fn condition(&self) -> SecretsCondition {
        if !self.failed.is_empty() {
            return SecretsCondition {
                ready: false,
                reason: "GenerationFailed",
                message: join(self.failed.iter().map(ToString::to_string)),
            };
        }
        if !self.invalid.is_empty() {
            return SecretsCondition {
                ready: false,
                reason: "InvalidValues",
                message: join(self.invalid.iter().map(ToString::to_string)),
            };
        }
        let mut message = format!(
            "{} secrets: {} created, {} kept, {} updated",
            self.created.len() + self.kept.len() + self.updated.len(),
            self.created.len(),
            self.kept.len(),
            self.updated.len()
        );
        if !self.pruned.is_empty() {
            message.push_str(&format!("; pruned: {}", self.pruned.join(", ")));
        }
        if !self.undeclared.is_empty() {
            message.push_str(&format!(
                "; kept keys not in the schema (set prune to remove them): {}",
                self.undeclared.join(", ")
            ));
            return SecretsCondition {
                ready: true,
                reason: "UndeclaredKeysKept",
                message,
            };
        }
        SecretsCondition {
            ready: true,
            reason: "SecretsReady",
            message,
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join("; ")
}

impl LocalSecretsProvider<'_> {
    /// Computes the Secret's new data from its current data (`None`: no Secret yet) and the
    /// environment's endpoints (name -> URL, for example "dynamodb" -> "http://env-dynamodb:8000").
    pub fn reconcile(
        &self,
        existing: Option<&BTreeMap<String, Vec<u8>>>,
        endpoints: &BTreeMap<String, String>,
    ) -> ReconcileOutcome {
        let empty = BTreeMap::new();
        let current = existing.unwrap_or(&empty);
        let mut data = BTreeMap::new();
        let mut report = SecretsReport::default();

        for spec in self.schema.secrets() {
            let name = &spec.name;
            let old = current.get(name);
            if spec.generator.is_derived() {
                match generate_valid(spec, &self.mode, endpoints) {
                    Ok(value) => {
                        let value = value.into_bytes();
                        match old {
                            Some(o) if *o == value => report.kept.push(name.clone()),
                            Some(_) => report.updated.push(name.clone()),
                            None => report.created.push(name.clone()),
                        }
                        data.insert(name.clone(), value);
                    }
                    Err(e) => {
                        // Keep what is there so a missing endpoint does not break running apps.
                        if let Some(o) = old {
                            data.insert(name.clone(), o.clone());
                        }
                        report.failed.push(e);
                    }
                }
                continue;
            }
            match old {
                Some(o) => {
                    if let Err(errors) = spec.validate(o) {
                        report.invalid.extend(errors);
                    }
                    report.kept.push(name.clone());
                    data.insert(name.clone(), o.clone());
                }
                None => match generate_valid(spec, &self.mode, endpoints) {
                    Ok(value) => {
                        report.created.push(name.clone());
                        data.insert(name.clone(), value.into_bytes());
                    }
                    Err(e) => report.failed.push(e),
                },
            }
        }

        for (key, value) in current {
            if self.schema.get(key).is_some() {
                continue;
            }
            if self.prune {
                report.pruned.push(key.clone());
            } else {
                report.undeclared.push(key.clone());
                data.insert(key.clone(), value.clone());
            }
        }
        report.changed = existing != Some(&data);
        ReconcileOutcome { data, report }
    }
}
