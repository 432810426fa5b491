//! Pure validation of a ParityEnvironment: the tier rules again (so `parity render` reports
//! them without an API server), plus what CEL cannot check (durations, resolved defaults,
//! references between objects).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::spec::{
    KeyProvider, KeySource, ParityEnvironment, ParityEnvironmentSpec, PersistenceMode, Tier,
};
use crate::tier::{DynamoPlacement, TierProfile, profile};

/// A reason a spec is invalid, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.keys.kms.keyId`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Joins errors into one message for a condition or stderr.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A spec that passed [`validate`], with its tier defaults resolved. The builders take this,
/// never the raw resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    pub name: String,
    pub namespace: String,
    /// Unset only for objects that never reached an API server (`parity render`).
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<Time>,
    pub profile: &'static TierProfile,
    pub spec: ParityEnvironmentSpec,
    /// spec.dynamodb.persistence.mode, or the tier's default.
    pub persistence: PersistenceMode,
    pub ttl: Option<Duration>,
    pub rotation_period: Option<Duration>,
    /// The mirror source's topology with spec.mirror.overrides applied, once the controller
    /// has read the source (`None` before, and for environments that do not mirror).
    pub mirrored: Option<crate::dynamo::topology::Topology>,
    /// The environment is annotated `parity.dev/adopt-existing-secrets=true`: it may take over
    /// create-once Secrets that parity-operator did not make for it.
    pub adopt_existing_secrets: bool,
}

impl ValidatedSpec {
    pub fn tier(&self) -> Tier {
        self.spec.tier
    }

    /// When a CI environment with a ttl expires: creation time + ttl.
    pub fn expires_at(&self) -> Option<Time> {
        let ttl = self.ttl?;
        let created = self.creation_timestamp.as_ref()?;
        let span = jiff::SignedDuration::try_from(ttl).ok()?;
        created.0.checked_add(span).ok().map(Time)
    }
}

/// Validates an environment. Every error names its field and how to fix it.
static EMPTY: Vec<String> = Vec::new();

pub fn validate(env: &ParityEnvironment) -> Result<ValidatedSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = &env.spec;
    let p = profile(spec.tier);
    let tier = spec.tier.as_str();

    let name = env.metadata.name.clone().unwrap_or_default();
    if !is_dns1035_label(&name) || name.len() > 40 {
        errors.push(FieldError::new(
            "metadata.name",
            "must be a DNS-1035 label of at most 40 characters (it prefixes the names of the \
             objects the operator creates): choose a shorter name starting with a letter",
        ));
    }
    let namespace = match env.metadata.namespace.clone() {
        Some(ns) if !ns.is_empty() => ns,
        _ => {
            errors.push(FieldError::new(
                "metadata.namespace",
                "is required: ParityEnvironment is namespaced",
            ));
            String::new()
        }
    };

    if !(0..=3).contains(&spec.parity_level) {
        errors.push(FieldError::new(
            "spec.parityLevel",
            format!("{} is out of range: use 0, 1, 2 or 3", spec.parity_level),
        ));
    }
    let components = p.components(spec.parity_level);

    if spec.dashboard.decryption == super::spec::Decryption::Server
        && !p.dashboard_decryption_allowed
    {
        errors.push(FieldError::new(
            "spec.dashboard.decryption",
            format!("Server is not allowed for tier {tier} (zero-knowledge outside Local): set it to Disabled"),
        ));
    }

    let cidr_lists = [
        (
            "spec.dashboard.trustedProxies",
            &spec.dashboard.trusted_proxies,
        ),
        (
            "spec.dynamodb.external.egressCidrs",
            match &spec.dynamodb.external {
                Some(e) => &e.egress_cidrs,
                None => &EMPTY,
            },
        ),
    ];
    for (field, list) in cidr_lists {
        for (i, c) in list.iter().enumerate() {
            if let Err(reason) = c.parse::<crate::cidr::Cidr>() {
                errors.push(FieldError::new(format!("{field}[{i}]"), reason));
            }
        }
    }

    let ttl = match &spec.ttl {
        None => None,
        Some(_) if !p.ttl_allowed => {
            errors.push(FieldError::new(
                "spec.ttl",
                format!("is not allowed for tier {tier}: remove it or use tier CI"),
            ));
            None
        }
        Some(s) => match parse_duration(s) {
            Ok(d) if d.is_zero() => {
                errors.push(FieldError::new("spec.ttl", "must be longer than 0s"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(FieldError::new("spec.ttl", e));
                None
            }
        },
    };

    let rotation_period = match &spec.keys.rotation.period {
        None => None,
        Some(s) => match parse_duration(s) {
            Ok(d) if d < Duration::from_secs(60) => {
                errors.push(FieldError::new(
                    "spec.keys.rotation.period",
                    "must be at least 1m: rotating faster would churn key versions",
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(FieldError::new("spec.keys.rotation.period", e));
                None
            }
        },
    };
    if spec.keys.rotation.retain_versions < 1 {
        errors.push(FieldError::new(
            "spec.keys.rotation.retainVersions",
            "must be at least 1: the active version must be kept",
        ));
    }

    let keys = &spec.keys;
    if !p.allows_key_provider(keys.provider) {
        errors.push(FieldError::new(
            "spec.keys.provider",
            format!(
                "{:?} is not allowed for tier {tier}: use one of {:?}",
                keys.provider, p.key_providers
            ),
        ));
    }
    match keys.provider {
        KeyProvider::Kms => {
            if keys.kms.as_ref().is_none_or(|k| k.key_id.is_empty()) {
                errors.push(FieldError::new(
                    "spec.keys.kms.keyId",
                    "is required when spec.keys.provider is Kms: set the KMS key id or ARN",
                ));
            }
        }
        KeyProvider::Local => {
            if !p.allows_key_source(keys.local.source) {
                errors.push(FieldError::new(
                    "spec.keys.local.source",
                    format!("{:?} is not allowed for tier {tier}", keys.local.source),
                ));
            }
            if keys.local.source == KeySource::Seeded && keys.local.seed_secret_ref.is_none() {
                errors.push(FieldError::new(
                    "spec.keys.local.seedSecretRef",
                    "is required when spec.keys.local.source is Seeded: reference a Secret key \
                     holding the seed, or use source Generated",
                ));
            }
        }
    }

    let external = spec.dynamodb.external.is_some();
    match p.dynamodb {
        DynamoPlacement::External if components.dynamodb && !external => {
            errors.push(FieldError::new(
                "spec.dynamodb.external",
                format!("is required for tier {tier} (it cannot run DynamoDB Local): set endpoint and region"),
            ));
        }
        DynamoPlacement::InCluster if external => {
            errors.push(FieldError::new(
                "spec.dynamodb.external",
                format!("is not allowed for tier {tier} (it runs DynamoDB Local): remove it"),
            ));
        }
        _ => {}
    }

    if spec.dynamodb.engine == super::spec::DynamoDbEngine::Moto
        && spec.dynamodb.persistence.mode == Some(PersistenceMode::Volume)
    {
        errors.push(FieldError::new(
            "spec.dynamodb.persistence.mode",
            "Volume is not supported by engine Moto (it keeps data in memory only): use InMemory, or engine DynamoDBLocal",
        ));
    }

    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in spec.dynamodb.tables.iter().enumerate() {
        if !seen.insert(t.name.as_str()) {
            errors.push(FieldError::new(
                format!("spec.dynamodb.tables[{i}].name"),
                format!(
                    "duplicate table name {:?}: table names must be unique",
                    t.name
                ),
            ));
        }
        if t.billing_mode == super::spec::BillingMode::Provisioned && t.provisioned.is_none() {
            errors.push(FieldError::new(
                format!("spec.dynamodb.tables[{i}].provisioned"),
                "is required when billingMode is Provisioned",
            ));
        }
        if t.sort_key
            .as_ref()
            .is_some_and(|s| s.name == t.partition_key.name)
        {
            errors.push(FieldError::new(
                format!("spec.dynamodb.tables[{i}].sortKey.name"),
                "must differ from partitionKey.name",
            ));
        }
    }

    if spec.mirror.is_some() && !p.mirror_allowed {
        errors.push(FieldError::new(
            "spec.mirror",
            format!(
                "is not allowed for tier {tier} (Staging is the source others mirror): remove it"
            ),
        ));
    }
    if spec.secrets.provider == super::spec::SecretsProvider::Infisical
        && spec.secrets.infisical.is_none()
    {
        errors.push(FieldError::new(
            "spec.secrets.infisical",
            "is required when spec.secrets.provider is Infisical: set projectSlug and envSlug",
        ));
    }

    if let Some(t) = &spec.topology {
        if !spec.dynamodb.tables.is_empty() {
            errors.push(FieldError::new(
                "spec.topology",
                "and spec.dynamodb.tables both declare tables: keep one (spec.topology also holds indexes, TTL and streams)",
            ));
        }
        if let Err(e) = t.validate() {
            for f in e.errors() {
                errors.push(FieldError::new(
                    format!("spec.topology.{}", f.path),
                    f.message,
                ));
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidatedSpec {
        name,
        namespace,
        uid: env.metadata.uid.clone(),
        generation: env.metadata.generation,
        creation_timestamp: env.metadata.creation_timestamp.clone(),
        profile: p,
        // Moto has no persistence: in memory whatever the tier's default.
        persistence: match (spec.dynamodb.persistence.mode, spec.dynamodb.engine) {
            (Some(mode), _) => mode,
            (None, super::spec::DynamoDbEngine::Moto) => PersistenceMode::InMemory,
            (None, super::spec::DynamoDbEngine::DynamoDBLocal) => p.default_persistence,
        },
        spec: spec.clone(),
        ttl,
        rotation_period,
        mirrored: None,
        adopt_existing_secrets: env
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::resources::ANNOTATION_ADOPT_EXISTING))
            .is_some_and(|v| v == "true"),
    })
}

/// Checks the environment named by spec.mirror.from, once the caller has fetched it
/// (`None`: it does not exist).
pub fn check_mirror_source(
    env: &ValidatedSpec,
    source: Option<&ParityEnvironment>,
) -> Result<(), FieldError> {
    let Some(mirror) = &env.spec.mirror else {
        return Ok(());
    };
    let ns = mirror.from.namespace.as_deref().unwrap_or(&env.namespace);
    match source {
        None => Err(FieldError::new(
            "spec.mirror.from",
            format!(
                "ParityEnvironment {ns}/{} not found: create it or fix the reference",
                mirror.from.name
            ),
        )),
        Some(src) if !profile(src.spec.tier).mirror_source => Err(FieldError::new(
            "spec.mirror.from",
            format!(
                "{ns}/{} has tier {}; only an environment that others may mirror (Staging) can be a source",
                mirror.from.name,
                src.spec.tier.as_str()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Parses `90s`, `15m`, `12h`, `1h30m`, `7d`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 90s, 2h, 1h30m, 7d"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 6 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            match rest.as_bytes().first() {
                Some(b's') => (Duration::from_secs(1), 1),
                Some(b'm') => (Duration::from_secs(60), 1),
                Some(b'h') => (Duration::from_secs(3600), 1),
                Some(b'd') => (Duration::from_secs(86400), 1),
                _ => return Err(bad()),
            }
        };
        rest = &rest[len..];
        total = unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}
