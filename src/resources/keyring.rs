use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::meta::{
    ANNOTATION_CREATE_ONCE, ANNOTATION_DELETION_POLICY, ANNOTATION_ENVIRONMENT_UID, Component,
    names, object_meta,
};
use crate::api::{DeletionPolicy, ValidatedSpec};

/// The keyring Secret's shape without key material: the controller creates it once with the
/// generated keys and never applies over it. It has no owner reference: a garbage collector
/// deleting it (a foreground deletion while the operator is down) would lose every envelope
/// written under a Generated root. The environment's finalizer deletes it under
/// deletionPolicy Delete; the uid annotation ties it to its environment.
pub fn keyring_secret(env: &ValidatedSpec) -> Secret {
    let mut metadata = object_meta(env, names::keyring(&env.name), Component::Keyring);
    metadata.owner_references = None;
    let policy = match env.spec.keys.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    metadata.annotations = Some(BTreeMap::from([
        (ANNOTATION_CREATE_ONCE.to_string(), "true".to_string()),
        (ANNOTATION_DELETION_POLICY.to_string(), policy.to_string()),
        (
            ANNOTATION_ENVIRONMENT_UID.to_string(),
            env.uid.clone().unwrap_or_default(),
        ),
    ]));
    Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// The access key pair requests to `parity kms` are signed with (SigV4), created once by the
/// controller (data keys `access-key-id`, `secret-access-key`). Mounted by the kms pod, and by
/// the dashboard only where the tier allows decryption.
pub fn kms_credentials_secret(env: &ValidatedSpec) -> Secret {
    create_once_secret(env, names::kms_credentials(&env.name))
}

/// An empty Secret, listed as [`super::CreateOnce::Credentials`] (the annotation says so to
/// people): the controller fills it with random credentials once and never applies over it;
/// it is kept ([`super::kept_secrets`]), never an orphan.
pub(super) fn create_once_secret(env: &ValidatedSpec, name: String) -> Secret {
    let mut metadata = object_meta(env, name, Component::Keyring);
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_CREATE_ONCE.to_string(),
        "true".to_string(),
    )]));
    Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// The access key id requests to `parity kms` are signed with. Not a secret.
pub fn kms_access_key_id(env: &ValidatedSpec) -> String {
    format!("parity-{}", env.name)
}

/// [`kms_credentials_secret`] with its data, for the controller to create once.
/// `secret_access_key` must come from a CSPRNG (e.g. 32 random bytes, hex-encoded); it is a
/// credential, so the returned Secret must never be logged.
pub fn kms_credentials_secret_with(env: &ValidatedSpec, secret_access_key: &str) -> Secret {
    use k8s_openapi::ByteString;

    use super::{KMS_ACCESS_KEY_ID_KEY, KMS_SECRET_ACCESS_KEY_KEY};
    let mut secret = kms_credentials_secret(env);
    secret.data = Some(BTreeMap::from([
        (
            KMS_ACCESS_KEY_ID_KEY.to_string(),
            ByteString(kms_access_key_id(env).into_bytes()),
        ),
        (
            KMS_SECRET_ACCESS_KEY_KEY.to_string(),
            ByteString(secret_access_key.as_bytes().to_vec()),
        ),
    ]));
    secret
}
