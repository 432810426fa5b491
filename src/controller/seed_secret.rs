//! The Secret that spec.keys.local.seedSecretRef names. Whoever may create a
//! ParityEnvironment in a namespace could otherwise make the operator (which reads every
//! Secret) derive a readable keyring and secrets from any Secret there: a confused deputy.
//! So a Secret serves as a seed only if its owner labelled it `parity.dev/seed=true`, and a
//! missing Secret reads exactly like an unlabelled one, so status cannot be used to probe
//! which Secrets exist.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use zeroize::Zeroizing;

use super::{Context, Error};
use crate::api::LocalObjectKeyRef;

/// The label a Secret's owner sets to let environments in its namespace use it as a seed.
pub const LABEL_SEED: &str = "parity.dev/seed";

/// Why a seed cannot be used. Messages name the reference, never the value or its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedUnusable {
    #[error(
        "spec.keys.local.seedSecretRef: Secret {0} is not usable as a seed: it must exist in this \
         namespace and carry the label {LABEL_SEED}=true (set by whoever owns it)"
    )]
    NotOptedIn(String),
    #[error("spec.keys.local.seedSecretRef: Secret {name} has no key {key}")]
    NoKey { name: String, key: String },
}

/// The seed bytes in `secret` (as read for `r`; `None`: not found), if its owner opted in.
pub fn seed_bytes<'a>(
    secret: Option<&'a Secret>,
    r: &LocalObjectKeyRef,
) -> Result<&'a [u8], SeedUnusable> {
    let secret = secret
        .filter(|s| s.labels().get(LABEL_SEED).is_some_and(|v| v == "true"))
        .ok_or_else(|| SeedUnusable::NotOptedIn(r.name.clone()))?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.as_slice())
        .ok_or_else(|| SeedUnusable::NoKey {
            name: r.name.clone(),
            key: r.key.clone(),
        })
}

/// Reads the seed that `r` names in `namespace`; an unusable one is the user's to fix.
pub async fn read(
    ctx: &Context,
    namespace: &str,
    r: &LocalObjectKeyRef,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets.get_opt(&r.name).await.map_err(Error::Fetch)?;
    seed_bytes(secret.as_ref(), r)
        .map(|b| Zeroizing::new(b.to_vec()))
        .map_err(|e| Error::keyring(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(labels: &[(&str, &str)], data: &[(&str, &[u8])]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("seed".into());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        );
        s
    }

    fn r() -> LocalObjectKeyRef {
        LocalObjectKeyRef {
            name: "seed".into(),
            key: "seed".into(),
        }
    }

    #[test]
    fn only_a_labelled_secret_is_a_seed() {
        let ok = secret(&[(LABEL_SEED, "true")], &[("seed", b"0123456789abcdef")]);
        assert_eq!(seed_bytes(Some(&ok), &r()), Ok(&b"0123456789abcdef"[..]));
        for s in [
            secret(&[], &[("seed", b"0123456789abcdef")]),
            secret(&[(LABEL_SEED, "false")], &[("seed", b"0123456789abcdef")]),
        ] {
            assert_eq!(
                seed_bytes(Some(&s), &r()),
                Err(SeedUnusable::NotOptedIn("seed".into()))
            );
        }
    }

    #[test]
    fn a_missing_secret_reads_like_an_unlabelled_one() {
        let unlabelled = secret(&[], &[("seed", b"0123456789abcdef")]);
        let missing = seed_bytes(None, &r()).unwrap_err().to_string();
        assert_eq!(
            missing,
            seed_bytes(Some(&unlabelled), &r()).unwrap_err().to_string()
        );
        assert!(
            missing.contains("spec.keys.local.seedSecretRef"),
            "{missing}"
        );
        assert!(missing.contains(LABEL_SEED), "{missing}");
        let no_key = secret(&[(LABEL_SEED, "true")], &[("other", b"x")]);
        assert_eq!(
            seed_bytes(Some(&no_key), &r()),
            Err(SeedUnusable::NoKey {
                name: "seed".into(),
                key: "seed".into()
            })
        );
    }
}
