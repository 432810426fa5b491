//! Pure validation of a ParityEnvironment: the tier rules again (so `parity render` reports
//! them without an API server), plus what CEL cannot check (durations, resolved defaults,
//! references between objects).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::spec::{
    KeyProvider, KeySource, ParityEnvironment, ParityEnvironmentSpec, PersistenceMode, Tier,
};
use crate::duration::parse_duration;
use crate::tier::{DynamoPlacement, TierProfile, profile};

pub use crate::field_error::{FieldError, describe};

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

    if !spec.dynamodb.tables.is_empty() {
        // The deprecated place for tables gets the same checks as spec.topology's.
        let t = crate::dynamo::topology::Topology {
            tables: spec.dynamodb.tables.clone(),
            ..Default::default()
        };
        topology_errors(&t, "spec.dynamodb.", &mut errors);
    }

    if spec.dynamodb.seed.is_some() && p.dynamodb == DynamoPlacement::External {
        errors.push(FieldError::new(
            "spec.dynamodb.seed",
            format!(
                "is not allowed for tier {tier} (the operator never writes to an external DynamoDB): remove it"
            ),
        ));
    }
    check_formats(spec, &mut errors);

    if let Some(o) = spec.mirror.as_ref().map(|m| &m.overrides)
        && o.provisioned_throughput.is_some()
        && o.billing_mode != Some(crate::dynamo::topology::BillingMode::Provisioned)
    {
        errors.push(FieldError::new(
            "spec.mirror.overrides.provisionedThroughput",
            "is only used with billingMode PROVISIONED: set billingMode PROVISIONED or remove it",
        ));
    }
    if let Some(m) = &spec.mirror
        && m.from.is_some() == m.config_map_ref.is_some()
    {
        errors.push(FieldError::new(
            "spec.mirror",
            "set exactly one of spec.mirror.from (a live Staging environment) and spec.mirror.configMapRef (a committed topology, as `parity capture` prints it)",
        ));
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
        topology_errors(t, "spec.topology.", &mut errors);
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
            .and_then(|a| a.get(ANNOTATION_ADOPT_EXISTING))
            .is_some_and(|v| v == "true"),
    })
}

/// [`Topology::validate`](crate::dynamo::topology::Topology::validate)'s problems, at their
/// path under `prefix`.
fn topology_errors(
    t: &crate::dynamo::topology::Topology,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Err(e) = t.validate() {
        for f in e.errors() {
            errors.push(FieldError::new(format!("{prefix}{}", f.path), f.message));
        }
    }
}

/// Checks the environment named by spec.mirror.from, once the caller has fetched it
/// (`None`: it does not exist). Across namespaces the source must list the mirror's namespace
/// in its `parity.dev/mirror-allowed-namespaces` annotation: the operator can read every
/// namespace, whoever creates a mirror may not. A missing source reads exactly like one that
/// did not opt in, so the condition says nothing about what exists in other namespaces.
pub fn check_mirror_source(
    env: &ValidatedSpec,
    source: Option<&ParityEnvironment>,
) -> Result<(), FieldError> {
    let Some(from) = env.spec.mirror.as_ref().and_then(|m| m.from.as_ref()) else {
        return Ok(());
    };
    let ns = from.namespace.as_deref().unwrap_or(&env.namespace);
    let name = &from.name;
    if ns != env.namespace && !source.is_some_and(|s| allows_mirrors_from(s, &env.namespace)) {
        return Err(FieldError::new(
            "spec.mirror.from",
            format!(
                "ParityEnvironment {ns}/{name} is not available to namespace {}: it must exist and list \
                 {} in its annotation {ANNOTATION_MIRROR_ALLOWED_NAMESPACES}",
                env.namespace, env.namespace
            ),
        ));
    }
    match source {
        None => Err(FieldError::new(
            "spec.mirror.from",
            format!("ParityEnvironment {ns}/{name} not found: create it or fix the reference"),
        )),
        Some(src) if !profile(src.spec.tier).mirror_source => Err(FieldError::new(
            "spec.mirror.from",
            format!(
                "{ns}/{name} has tier {}; only an environment that others may mirror (Staging) can be a source",
                src.spec.tier.as_str()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// On an environment: `"true"` lets it take over create-once Secrets (the keyring included)
/// that parity-operator did not make for it.
pub const ANNOTATION_ADOPT_EXISTING: &str = "parity.dev/adopt-existing-secrets";

/// Annotation on a mirror source: the namespaces (comma-separated, or `*`) whose environments
/// may mirror it. Its own namespace always may.
pub const ANNOTATION_MIRROR_ALLOWED_NAMESPACES: &str = "parity.dev/mirror-allowed-namespaces";

fn allows_mirrors_from(source: &ParityEnvironment, namespace: &str) -> bool {
    source
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_MIRROR_ALLOWED_NAMESPACES))
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|n| n == "*" || n == namespace)
        })
}

/// The string formats the CRD schema also enforces (the same constants, see `formats`), for
/// specs that never passed an API server (`parity render`, `parity dev`).
fn check_formats(spec: &ParityEnvironmentSpec, errors: &mut Vec<FieldError>) {
    use super::formats::*;
    let s = spec;
    fn key_ref(r: Option<&super::spec::LocalObjectKeyRef>) -> (Option<&str>, Option<&str>) {
        (r.map(|r| r.name.as_str()), r.map(|r| r.key.as_str()))
    }
    let (seed_name, seed_key) = key_ref(s.keys.local.seed_secret_ref.as_ref());
    let (schema_name, schema_key) = key_ref(s.secrets.schema.as_ref());
    let kms = s.keys.kms.as_ref();
    let external = s.dynamodb.external.as_ref();
    let infisical = s.secrets.infisical.as_ref();
    let mirror = s.mirror.as_ref().and_then(|m| m.from.as_ref());
    let topology_ref = s.mirror.as_ref().and_then(|m| m.config_map_ref.as_ref());
    let subdomain = "a DNS-1123 subdomain (lower-case letters, digits, - and .)";
    let data_key = "a data key (letters, digits, - _ .)";
    let checks: Vec<(String, Option<&str>, &str, &str)> = vec![
        (
            "spec.keys.kms.keyId".into(),
            kms.map(|k| k.key_id.as_str()),
            KMS_KEY_ID,
            "alias/<name>, a key or alias ARN, or a key id",
        ),
        (
            "spec.keys.kms.region".into(),
            kms.and_then(|k| k.region.as_deref()),
            AWS_REGION,
            "an AWS region such as eu-west-1",
        ),
        (
            "spec.keys.kms.endpoint".into(),
            kms.and_then(|k| k.endpoint.as_deref()),
            HTTP_URL,
            "an http(s) URL",
        ),
        (
            "spec.keys.local.seedSecretRef.name".into(),
            seed_name,
            DNS_SUBDOMAIN,
            subdomain,
        ),
        (
            "spec.keys.local.seedSecretRef.key".into(),
            seed_key,
            DATA_KEY,
            data_key,
        ),
        (
            "spec.secrets.schema.name".into(),
            schema_name,
            DNS_SUBDOMAIN,
            subdomain,
        ),
        (
            "spec.secrets.schema.key".into(),
            schema_key,
            DATA_KEY,
            data_key,
        ),
        (
            "spec.secrets.infisical.projectSlug".into(),
            infisical.map(|i| i.project_slug.as_str()),
            SLUG,
            "a slug (lower-case letters, digits, - _)",
        ),
        (
            "spec.secrets.infisical.envSlug".into(),
            infisical.map(|i| i.env_slug.as_str()),
            SLUG,
            "a slug (lower-case letters, digits, - _)",
        ),
        (
            "spec.secrets.infisical.secretsPath".into(),
            infisical.map(|i| i.secrets_path.as_str()),
            SECRETS_PATH,
            "a path starting with /",
        ),
        (
            "spec.dynamodb.seed.configMapRef.name".into(),
            s.dynamodb
                .seed
                .as_ref()
                .map(|r| r.config_map_ref.name.as_str()),
            DNS_SUBDOMAIN,
            subdomain,
        ),
        (
            "spec.dynamodb.image".into(),
            s.dynamodb.image.as_deref(),
            IMAGE,
            "an image reference (no spaces)",
        ),
        (
            "spec.dynamodb.persistence.size".into(),
            Some(s.dynamodb.persistence.size.as_str()),
            VOLUME_SIZE,
            "a size such as 512Mi or 1Gi",
        ),
        (
            "spec.dynamodb.persistence.storageClassName".into(),
            s.dynamodb.persistence.storage_class_name.as_deref(),
            DNS_SUBDOMAIN,
            subdomain,
        ),
        (
            "spec.dynamodb.external.endpoint".into(),
            external.map(|e| e.endpoint.as_str()),
            HTTP_URL,
            "an http(s) URL",
        ),
        (
            "spec.dynamodb.external.region".into(),
            external.map(|e| e.region.as_str()),
            AWS_REGION,
            "an AWS region such as eu-west-1",
        ),
        (
            "spec.mirror.from.name".into(),
            mirror.map(|m| m.name.as_str()),
            DNS_LABEL,
            "a DNS-1123 label",
        ),
        (
            "spec.mirror.from.namespace".into(),
            mirror.and_then(|m| m.namespace.as_deref()),
            DNS_LABEL,
            "a DNS-1123 label",
        ),
        (
            "spec.mirror.configMapRef.name".into(),
            topology_ref.map(|r| r.name.as_str()),
            DNS_SUBDOMAIN,
            subdomain,
        ),
        (
            "spec.mirror.configMapRef.key".into(),
            topology_ref.map(|r| r.key.as_str()),
            DATA_KEY,
            data_key,
        ),
    ]
    .into_iter()
    .collect();
    for (field, value, pattern, what) in checks {
        if let Some(v) = value
            && !matches(pattern, v)
        {
            errors.push(FieldError::new(field, format!("{v:?} is not {what}")));
        }
    }
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
