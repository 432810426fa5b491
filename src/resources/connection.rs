//! `<env>-connection`: how an app reaches the environment ([`ConnectionSet`]), built the same
//! way for process mode (`parity dev`, local URLs and files) and cluster mode (in-cluster
//! URLs and the credentials Secrets), so the two worlds differ only in the values.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use zeroize::Zeroizing;

use super::meta::{Component, names, object_meta};
use super::topology::{region, root_key_alias};
use super::{kms_access_key_id, plan, secrets_api_client_id};
use crate::api::{Endpoints, ValidatedSpec};
use crate::connection::ConnectionSet;
use crate::tier::TierProfile;

/// Credentials and values read from where the mode keeps them (Secrets or files).
#[derive(Default)]
pub struct ConnectionInputs {
    /// The secret access key of `parity kms` (the kms credentials).
    pub kms_secret_access_key: Option<Zeroizing<String>>,
    /// The universal-auth client secret of `parity secrets-api`.
    pub secrets_client_secret: Option<Zeroizing<String>>,
    /// The application secrets (`<env>-secrets`).
    pub secrets: BTreeMap<String, Zeroizing<String>>,
}

/// What is still missing before the set is complete (a credentials Secret the controller
/// has not created yet), by name; empty when the set can be written.
pub fn missing_inputs(
    env: &ValidatedSpec,
    profile: &TierProfile,
    i: &ConnectionInputs,
) -> Vec<String> {
    let p = plan(env, profile);
    let mut missing = Vec::new();
    if p.kms && i.kms_secret_access_key.is_none() {
        missing.push(names::kms_credentials(&env.name));
    }
    if p.secrets_api && i.secrets_client_secret.is_none() {
        missing.push(names::secrets_api_credentials(&env.name));
    }
    missing
}

/// The connection set of an environment whose services answer at `urls`.
pub fn connection_set(
    env: &ValidatedSpec,
    profile: &TierProfile,
    urls: &Endpoints,
    inputs: ConnectionInputs,
) -> ConnectionSet {
    let p = plan(env, profile);
    let (access_key_id, secret_access_key) = match inputs.kms_secret_access_key {
        // One key pair signs both: parity kms checks it, DynamoDB Local and moto accept any.
        Some(secret) if p.kms => (Some(kms_access_key_id(env)), Some(secret)),
        // The emulator accepts any credentials, but the SDKs insist on having some.
        _ if p.dynamodb_pod => (
            Some("local".to_string()),
            Some(Zeroizing::new("local".to_string())),
        ),
        // Real AWS (keys.provider Kms): the app brings its own credentials.
        _ => (None, None),
    };
    let kms_key_id = if p.kms {
        Some(root_key_alias(&env.name))
    } else {
        env.spec.keys.kms.as_ref().map(|k| k.key_id.clone())
    };
    ConnectionSet {
        region: region(env),
        dynamodb: urls.dynamodb.clone(),
        kms: urls.kms.clone(),
        kms_key_id,
        access_key_id,
        secret_access_key,
        secrets_site_url: p.secrets_api.then(|| urls.secrets.clone()).flatten(),
        secrets_client_id: p.secrets_api.then(|| secrets_api_client_id(env)),
        secrets_client_secret: p
            .secrets_api
            .then_some(inputs.secrets_client_secret)
            .flatten(),
        dashboard: urls.dashboard.clone(),
        secrets: inputs.secrets,
    }
}

/// The Secret apps load with `envFrom`. Labelled with the keys' component like the other
/// Secrets made from credentials (`<env>-secrets`), and like them kept
/// ([`super::kept_secrets`]), never pruned as an orphan: it is rewritten when its data
/// changes, not re-created each reconcile.
pub fn connection_secret(env: &ValidatedSpec, set: &ConnectionSet) -> Secret {
    let data = set
        .vars()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: object_meta(env, names::connection(&env.name), Component::Keyring),
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ParityEnvironment, validate};
    use crate::resources::{BuildContext, endpoints};

    fn env(yaml_spec: &str) -> ValidatedSpec {
        let yaml = format!(
            "apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\nmetadata: {{name: dev, namespace: team}}\nspec: {yaml_spec}\n"
        );
        let e: ParityEnvironment = serde_yaml::from_str(&yaml).expect("test env");
        validate(&e).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn inputs() -> ConnectionInputs {
        ConnectionInputs {
            kms_secret_access_key: Some(Zeroizing::new("kms-secret".into())),
            secrets_client_secret: Some(Zeroizing::new("client-secret".into())),
            secrets: BTreeMap::from([("API_KEY".into(), Zeroizing::new("v".into()))]),
        }
    }

    #[test]
    fn level_3_local_has_everything_and_the_secret_carries_it() {
        let e = env(
            "{tier: Local, parityLevel: 3, secrets: {schema: {name: s, key: k}}, dashboard: {enabled: true}}",
        );
        let urls = endpoints(&e, e.profile, &BuildContext::new("img"));
        let set = connection_set(&e, e.profile, &urls, inputs());
        assert!(missing_inputs(&e, e.profile, &inputs()).is_empty());
        assert_eq!(set.access_key_id.as_deref(), Some("parity-dev"));
        assert_eq!(set.kms_key_id.as_deref(), Some("alias/parity/dev"));
        assert_eq!(
            set.secrets_site_url.as_deref(),
            Some("http://dev-secrets-api.team.svc:8095")
        );
        let s = connection_secret(&e, &set);
        assert_eq!(s.metadata.name.as_deref(), Some("dev-connection"));
        let data = s.data.unwrap_or_default();
        assert_eq!(data["AWS_SECRET_ACCESS_KEY"].0, b"kms-secret");
        assert_eq!(
            data["INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"].0,
            b"client-secret"
        );
        assert_eq!(data["API_KEY"].0, b"v");
    }

    #[test]
    fn level_0_has_keys_only_and_waits_for_credentials() {
        let e = env("{tier: CI, parityLevel: 0}");
        let urls = endpoints(&e, e.profile, &BuildContext::new("img"));
        let set = connection_set(&e, e.profile, &urls, inputs());
        assert!(set.dynamodb.is_none() && set.secrets_site_url.is_none());
        assert!(set.kms.is_some());
        assert_eq!(
            missing_inputs(&e, e.profile, &ConnectionInputs::default()),
            vec!["dev-kms-credentials".to_string()]
        );
    }
}
