//! Value generation for each generator kind. Seeded mode derives one ChaCha20 stream per
//! secret with HKDF-SHA256(seed, info = secret name), so a CI run with the same seed gets the
//! same values and adding a secret does not shift the others; Random mode reads the OS RNG.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use hkdf::Hkdf;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::spec::{ByteEncoding, Generator, MAX_ATTEMPTS, SecretSpec, ValueError};

/// Domain separation for seeded derivation; bump the version to change every seeded value.
const SEED_SALT: &[u8] = b"parity-operator/secrets/v1";

/// Where randomness comes from.
#[derive(Clone)]
pub enum GenerationMode {
    /// Deterministic from this seed (CI): same seed + same secret name = same value.
    Seeded(Zeroizing<Vec<u8>>),
    /// Fresh values from the operating system's RNG.
    Random,
}

impl GenerationMode {
    /// Seeded when a seed is given (tier CI, `keys.local.source: Seeded`), Random otherwise.
    pub fn from_seed(seed: Option<&[u8]>) -> GenerationMode {
        match seed {
            Some(s) => GenerationMode::Seeded(Zeroizing::new(s.to_vec())),
            None => GenerationMode::Random,
        }
    }
}

impl fmt::Debug for GenerationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerationMode::Seeded(_) => f.write_str("Seeded(<redacted>)"),
            GenerationMode::Random => f.write_str("Random"),
        }
    }
}

/// Why a value could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("secret {secret:?}: endpoint {endpoint:?} is not known in this environment")]
    MissingEndpoint { secret: String, endpoint: String },
    #[error("secret {secret:?}: endpoint {endpoint:?} is not a usable URL: {reason}")]
    BadEndpoint {
        secret: String,
        endpoint: String,
        reason: String,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValueError>),
}

/// The RNG for one secret.
pub fn rng_for(mode: &GenerationMode, secret: &str) -> Box<dyn RngCore> {
    match mode {
        GenerationMode::Seeded(seed) => {
            let hk = Hkdf::<Sha256>::new(Some(SEED_SALT), seed);
            let mut key = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
            hk.expand(secret.as_bytes(), key.as_mut())
                .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
            Box::new(ChaCha20Rng::from_seed(*key))
        }
        GenerationMode::Random => Box::new(OsRng),
    }
}

/// Produces a value for `spec` that satisfies its rules, retrying random kinds (on the same
/// stream, so Seeded stays deterministic) when a `pattern` or `format` rejects a draw.
pub fn generate_valid(
    spec: &SecretSpec,
    mode: &GenerationMode,
    endpoints: &BTreeMap<String, String>,
) -> Result<String, GenerateError> {
    let mut rng = rng_for(mode, &spec.name);
    let attempts = if spec.generator.is_derived() {
        1
    } else {
        MAX_ATTEMPTS
    };
    let mut last = Vec::new();
    for _ in 0..attempts {
        let value = generate_once(&spec.name, &spec.generator, rng.as_mut(), endpoints)?;
        match spec.validate(value.as_bytes()) {
            Ok(()) => return Ok(value),
            Err(errors) => last = errors,
        }
    }
    Err(GenerateError::Invalid(last))
}

/// One draw from a generator, without checking the secret's other rules.
pub fn generate_once(
    secret: &str,
    generator: &Generator,
    rng: &mut dyn RngCore,
    endpoints: &BTreeMap<String, String>,
) -> Result<String, GenerateError> {
    Ok(match generator {
        Generator::RandomBytes { bytes, encoding } => {
            let mut buf = Zeroizing::new(vec![0u8; *bytes as usize]);
            rng.fill_bytes(&mut buf);
            match encoding {
                ByteEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&*buf),
                ByteEncoding::Base64url => {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*buf)
                }
                ByteEncoding::Hex => hex::encode(&*buf),
            }
        }
        Generator::Alphanumeric { length } => Alphanumeric.sample_string(rng, *length as usize),
        Generator::Uuid => {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            b[6] = (b[6] & 0x0f) | 0x40; // version 4
            b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
            let h = hex::encode(b);
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        Generator::EndpointUrl { endpoint, template } => {
            let url = endpoints
                .get(endpoint)
                .ok_or_else(|| GenerateError::MissingEndpoint {
                    secret: secret.to_owned(),
                    endpoint: endpoint.clone(),
                })?;
            let parts = EndpointParts::parse(url).map_err(|reason| GenerateError::BadEndpoint {
                secret: secret.to_owned(),
                endpoint: endpoint.clone(),
                reason,
            })?;
            render_template(template.as_deref().unwrap_or("{url}"), &parts)
        }
        Generator::Fixed { value } => value.clone(),
    })
}

struct EndpointParts {
    url: String,
    scheme: String,
    host: String,
    port: u16,
}

impl EndpointParts {
    fn parse(url: &str) -> Result<EndpointParts, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let scheme = uri
            .scheme_str()
            .ok_or("missing scheme (expected http:// or https://)")?
            .to_owned();
        let host = uri.host().ok_or("missing host")?.to_owned();
        let port = match (uri.port_u16(), scheme.as_str()) {
            (Some(p), _) => p,
            (None, "http") => 80,
            (None, "https") => 443,
            (None, other) => return Err(format!("no port and no default port for {other:?}")),
        };
        Ok(EndpointParts {
            url: url.trim_end_matches('/').to_owned(),
            scheme,
            host,
            port,
        })
    }
}

const PLACEHOLDERS: [&str; 4] = ["url", "scheme", "host", "port"];

/// Checks that every `{...}` in a template is a known placeholder and braces pair up.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!(
                "template has an unmatched '}}' at byte {}",
                t.len() - rest.len() + open
            ));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or("template has an unclosed '{'".to_owned())?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "template placeholder {{{name}}} is unknown (use {{url}}, {{scheme}}, {{host}} or {{port}})"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn render_template(t: &str, p: &EndpointParts) -> String {
    // check_template ran at parse time, so every brace pair is a known placeholder.
    let mut out = String::with_capacity(t.len() + p.url.len());
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match &after[..close] {
            "url" => out.push_str(&p.url),
            "scheme" => out.push_str(&p.scheme),
            "host" => out.push_str(&p.host),
            "port" => out.push_str(&p.port.to_string()),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "dynamodb".to_owned(),
                "http://demo-dynamodb.ns.svc:8000/".to_owned(),
            ),
            ("kms".to_owned(), "https://kms.example".to_owned()),
        ])
    }

    #[test]
    fn endpoint_templates_render_each_placeholder() {
        let g = Generator::EndpointUrl {
            endpoint: "dynamodb".into(),
            template: Some("{scheme}|{host}|{port}|{url}/x".into()),
        };
        let v = generate_once("A", &g, &mut OsRng, &endpoints()).unwrap();
        assert_eq!(
            v,
            "http|demo-dynamodb.ns.svc|8000|http://demo-dynamodb.ns.svc:8000/x"
        );
        let g = Generator::EndpointUrl {
            endpoint: "kms".into(),
            template: Some("{host}:{port}".into()),
        };
        assert_eq!(
            generate_once("A", &g, &mut OsRng, &endpoints()).unwrap(),
            "kms.example:443"
        );
    }

    #[test]
    fn unknown_endpoint_is_named() {
        let g = Generator::EndpointUrl {
            endpoint: "dashboard".into(),
            template: None,
        };
        let e = generate_once("DASH_URL", &g, &mut OsRng, &endpoints()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret \"DASH_URL\": endpoint \"dashboard\" is not known in this environment"
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(check_template("{url}/a").is_ok());
        assert!(check_template("{nope}").unwrap_err().contains("{nope}"));
        assert!(check_template("{url").unwrap_err().contains("unclosed"));
        assert!(check_template("url}").unwrap_err().contains("unmatched"));
    }

    #[test]
    fn seeded_streams_differ_per_secret_and_seed() {
        let a = GenerationMode::Seeded(b"seed-1".to_vec().into());
        let b = GenerationMode::Seeded(b"seed-2".to_vec().into());
        let draw = |m: &GenerationMode, n: &str| rng_for(m, n).next_u64();
        assert_eq!(draw(&a, "X"), draw(&a, "X"));
        assert_ne!(draw(&a, "X"), draw(&a, "Y"));
        assert_ne!(draw(&a, "X"), draw(&b, "X"));
    }

    #[test]
    fn from_seed_picks_the_mode() {
        assert!(matches!(
            GenerationMode::from_seed(None),
            GenerationMode::Random
        ));
        let m = GenerationMode::from_seed(Some(b"s"));
        assert!(matches!(&m, GenerationMode::Seeded(s) if s.as_slice() == b"s"));
    }

    #[test]
    fn seed_is_redacted_in_debug() {
        let m = GenerationMode::Seeded(b"CANARY-seed-material".to_vec().into());
        assert!(!format!("{m:?}").contains("CANARY"));
    }
}
