//! secrets.schema.json: a JSON Schema 2020-12 document that declares every secret of an
//! environment (one string property per secret) with a generator hint under the custom
//! keyword `x-parity-generate`. Parsing checks the document against the 2020-12
//! meta-schema, then the parity rules, then that each generator can satisfy its secret's
//! constraints, so a bad schema fails at parse time with the secret and the rule named.
//!
//! Errors never carry secret values: value errors are rendered with jsonschema's masked
//! messages (the value replaced by a placeholder).

use std::collections::BTreeMap;
use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value};

use super::generate::{self, GenerateError, GenerationMode};
pub use super::spec::{ByteEncoding, Generator, SecretSpec, ValueError};

/// The custom keyword holding a secret's generator.
pub const GENERATE_KEYWORD: &str = "x-parity-generate";
/// The only draft accepted in `$schema`.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Bounds that keep one schema cheap to check and its Secret under Kubernetes' 1 MiB.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
pub const MAX_SECRETS: usize = 256;
pub const MAX_GENERATED_LEN: u32 = 4096;
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// A parsed, checked secrets schema.
pub struct SecretsSchema {
    secrets: Vec<SecretSpec>,
    root: Validator,
    required: Vec<String>,
}

impl fmt::Debug for SecretsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsSchema")
            .field("secrets", &self.secrets)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// Why a schema was rejected. Every variant about one secret names it and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("secrets schema is too large: {size} bytes (at most {max})")]
    TooLarge { size: usize, max: usize },
    #[error("secrets schema is not valid JSON at line {line}, column {column}: {reason}")]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("secrets schema must declare \"$schema\": \"{DRAFT_2020_12}\" (found {found})")]
    Draft { found: String },
    #[error(
        "secrets schema is not a valid JSON Schema 2020-12 document at {at}: rule {rule}: {reason}"
    )]
    MetaSchema {
        at: String,
        rule: String,
        reason: String,
    },
    #[error("secrets schema root: {reason}")]
    Root { reason: String },
    #[error("secret {secret:?}: rule name: {reason}")]
    BadName { secret: String, reason: String },
    #[error(
        "secret {secret:?}: rule type: must be {{\"type\": \"string\"}} (Secret values are text)"
    )]
    NotString { secret: String },
    #[error(
        "secret {secret:?}: rule {GENERATE_KEYWORD}: missing (every secret needs a generator hint)"
    )]
    MissingGenerator { secret: String },
    #[error("secret {secret:?}: rule {GENERATE_KEYWORD}: {reason}")]
    BadGenerator { secret: String, reason: String },
    #[error(
        "secret {secret:?}: rule required: listed in \"required\" but not declared in \"properties\""
    )]
    RequiredUndeclared { secret: String },
    #[error("secret {secret:?}: rule {rule}: the schema does not compile: {reason}")]
    Compile {
        secret: String,
        rule: String,
        reason: String,
    },
    #[error(
        "secret {secret:?}: rule {rule}: the {kind} generator cannot produce a value that satisfies it ({reason})"
    )]
    Unsatisfiable {
        secret: String,
        kind: String,
        rule: String,
        reason: String,
    },
}

impl SecretsSchema {
    /// Parses and checks a schema document (the text of secrets.schema.json).
    pub fn parse(text: &str) -> Result<SecretsSchema, SchemaError> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::TooLarge {
                size: text.len(),
                max: MAX_SCHEMA_BYTES,
            });
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| SchemaError::NotJson {
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        SecretsSchema::from_value(&doc)
    }

    /// Checks an already-parsed schema document.
    pub fn from_value(doc: &Value) -> Result<SecretsSchema, SchemaError> {
        let root = doc.as_object().ok_or_else(|| SchemaError::Root {
            reason: "must be a JSON object".into(),
        })?;
        check_draft(root)?;
        // Only after `$schema` is known to be 2020-12: the meta validator needs a known draft.
        if let Err(e) = jsonschema::meta::validate(doc) {
            return Err(SchemaError::MetaSchema {
                at: pointer_or_root(e.instance_path().as_str()),
                rule: e.kind().keyword().to_owned(),
                reason: e.to_string(),
            });
        }
        if root.get("type") != Some(&Value::String("object".into())) {
            return Err(SchemaError::Root {
                reason: "must have \"type\": \"object\" (one property per secret)".into(),
            });
        }
        let props = match root.get("properties") {
            Some(Value::Object(p)) if !p.is_empty() => p,
            _ => {
                return Err(SchemaError::Root {
                    reason: "must declare at least one secret under \"properties\"".into(),
                });
            }
        };
        if props.len() > MAX_SECRETS {
            return Err(SchemaError::Root {
                reason: format!("declares {} secrets (at most {MAX_SECRETS})", props.len()),
            });
        }
        let defs = root.get("$defs").cloned();
        let mut secrets = Vec::with_capacity(props.len());
        for (name, sub) in props {
            secrets.push(parse_secret(name, sub, defs.as_ref())?);
        }
        let required = parse_required(root, props)?;
        let root_validator = compile(doc).map_err(|e| SchemaError::Compile {
            secret: "(root)".into(),
            rule: e.kind().keyword().to_owned(),
            reason: e.to_string(),
        })?;
        for spec in &secrets {
            check_satisfiable(spec)?;
        }
        Ok(SecretsSchema {
            secrets,
            root: root_validator,
            required,
        })
    }

    /// The declared secrets, sorted by name.
    pub fn secrets(&self) -> &[SecretSpec] {
        &self.secrets
    }

    pub fn get(&self, name: &str) -> Option<&SecretSpec> {
        self.secrets
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.secrets[i])
    }

    /// Names listed in the schema's `required`.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Validates a whole Secret's data (for example one synced from Infisical) against the
    /// schema: per-secret rules, `required`, `additionalProperties` and the like. Errors are
    /// sorted by secret name and never contain values.
    pub fn validate_data(&self, data: &BTreeMap<String, Vec<u8>>) -> Vec<ValueError> {
        let mut errors = Vec::new();
        let mut object = Map::new();
        for (key, value) in data {
            match std::str::from_utf8(value) {
                Ok(text) => {
                    object.insert(key.clone(), Value::String(text.to_owned()));
                }
                Err(_) => errors.push(ValueError::new(key, "utf8", "value is not valid UTF-8")),
            }
        }
        let instance = Value::Object(object);
        for e in self.root.iter_errors(&instance) {
            match e.kind() {
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or("?");
                    errors.push(ValueError::new(name, "required", "missing from the Secret"));
                }
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    for name in unexpected {
                        errors.push(ValueError::new(
                            name,
                            e.kind().keyword(),
                            "not declared in the schema",
                        ));
                    }
                }
                _ => {
                    let secret = e
                        .instance_path()
                        .segments()
                        .next()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "(root)".into());
                    errors.push(ValueError::from_validation(&secret, &e));
                }
            }
        }
        errors.sort_by(|a, b| (&a.secret, &a.rule).cmp(&(&b.secret, &b.rule)));
        errors.dedup();
        errors
    }
}

fn pointer_or_root(p: &str) -> String {
    if p.is_empty() { "/".into() } else { p.into() }
}

fn check_draft(root: &Map<String, Value>) -> Result<(), SchemaError> {
    match root.get("$schema") {
        Some(Value::String(s)) if s.trim_end_matches('#') == DRAFT_2020_12 => Ok(()),
        Some(other) => Err(SchemaError::Draft {
            found: other.to_string(),
        }),
        None => Err(SchemaError::Draft {
            found: "nothing".into(),
        }),
    }
}

fn compile(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    // Offline: a schema in a ConfigMap must not make the operator fetch URLs.
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .offline()
        .build(schema)
}

/// Kubernetes Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub fn check_secret_key(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters long".into());
    }
    if name == "." || name == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "character {c:?} is not allowed in a Kubernetes Secret key ([-._a-zA-Z0-9])"
        ));
    }
    Ok(())
}

fn parse_secret(name: &str, sub: &Value, defs: Option<&Value>) -> Result<SecretSpec, SchemaError> {
    check_secret_key(name).map_err(|reason| SchemaError::BadName {
        secret: name.to_owned(),
        reason,
    })?;
    let Some(obj) = sub.as_object() else {
        return Err(SchemaError::NotString {
            secret: name.to_owned(),
        });
    };
    if obj.get("type") != Some(&Value::String("string".into())) {
        return Err(SchemaError::NotString {
            secret: name.to_owned(),
        });
    }
    let hint = obj
        .get(GENERATE_KEYWORD)
        .ok_or_else(|| SchemaError::MissingGenerator {
            secret: name.to_owned(),
        })?;
    let generator: Generator =
        serde_json::from_value(hint.clone()).map_err(|e| SchemaError::BadGenerator {
            secret: name.to_owned(),
            reason: e.to_string(),
        })?;
    check_generator(&generator).map_err(|reason| SchemaError::BadGenerator {
        secret: name.to_owned(),
        reason,
    })?;
    // Compile the property on its own (with the root's $defs so local $refs resolve) so
    // a value can be checked, and generation retried, per secret.
    let mut standalone = obj.clone();
    standalone.insert("$schema".into(), Value::String(DRAFT_2020_12.into()));
    if let Some(defs) = defs {
        standalone
            .entry("$defs".to_owned())
            .or_insert_with(|| defs.clone());
    }
    let validator = compile(&Value::Object(standalone)).map_err(|e| SchemaError::Compile {
        secret: name.to_owned(),
        rule: e.kind().keyword().to_owned(),
        reason: e.to_string(),
    })?;
    Ok(SecretSpec {
        name: name.to_owned(),
        generator,
        description: obj
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        validator,
    })
}

fn check_generator(g: &Generator) -> Result<(), String> {
    match g {
        Generator::RandomBytes { bytes, .. } => {
            if *bytes == 0 || *bytes > MAX_GENERATED_LEN {
                return Err(format!(
                    "randomBytes: \"bytes\" must be 1..={MAX_GENERATED_LEN} (got {bytes})"
                ));
            }
        }
        Generator::Alphanumeric { length } => {
            if *length == 0 || *length > MAX_GENERATED_LEN {
                return Err(format!(
                    "alphanumeric: \"length\" must be 1..={MAX_GENERATED_LEN} (got {length})"
                ));
            }
        }
        Generator::Uuid => {}
        Generator::EndpointUrl { endpoint, template } => {
            if endpoint.is_empty()
                || endpoint.len() > 63
                || !endpoint
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!(
                    "endpointUrl: \"endpoint\" must be a lowercase endpoint name such as \"dynamodb\" or \"kms\" (got {endpoint:?})"
                ));
            }
            if let Some(t) = template {
                if t.len() > MAX_TEMPLATE_LEN {
                    return Err(format!(
                        "endpointUrl: \"template\" is longer than {MAX_TEMPLATE_LEN} characters"
                    ));
                }
                generate::check_template(t).map_err(|e| format!("endpointUrl: {e}"))?;
            }
        }
        Generator::Fixed { value } => {
            if value.len() > MAX_GENERATED_LEN as usize {
                return Err(format!(
                    "fixed: \"value\" is longer than {MAX_GENERATED_LEN} bytes"
                ));
            }
        }
    }
    Ok(())
}

fn parse_required(
    root: &Map<String, Value>,
    props: &Map<String, Value>,
) -> Result<Vec<String>, SchemaError> {
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = root.get("required") {
        for item in items {
            // The meta-schema already guarantees strings here.
            let Some(name) = item.as_str() else { continue };
            if !props.contains_key(name) {
                return Err(SchemaError::RequiredUndeclared {
                    secret: name.to_owned(),
                });
            }
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Proves at parse time that the generator can meet the secret's own rules, with a fixed
/// seed so the check is reproducible. Endpoint URLs depend on the environment, so they are
/// checked when generated instead.
fn check_satisfiable(spec: &SecretSpec) -> Result<(), SchemaError> {
    if matches!(spec.generator, Generator::EndpointUrl { .. }) {
        return Ok(());
    }
    let mode = GenerationMode::Seeded(b"parity-operator/schema-check".to_vec().into());
    match generate::generate_valid(spec, &mode, &BTreeMap::new()) {
        Ok(_) => Ok(()),
        Err(GenerateError::Invalid(errors)) => {
            let first = errors.into_iter().next();
            Err(SchemaError::Unsatisfiable {
                secret: spec.name.clone(),
                kind: spec.generator.kind().into(),
                rule: first.as_ref().map_or("?".into(), |e| e.rule.clone()),
                reason: first.map_or_else(String::new, |e| e.reason),
            })
        }
        Err(other) => Err(SchemaError::Unsatisfiable {
            secret: spec.name.clone(),
            kind: spec.generator.kind().into(),
            rule: GENERATE_KEYWORD.into(),
            reason: other.to_string(),
        }),
    }
}
