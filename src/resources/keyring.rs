use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::meta::{
    ANNOTATION_CREATE_ONCE, ANNOTATION_DELETION_POLICY, Component, names, object_meta,
};
use crate::api::{DeletionPolicy, ValidatedSpec};

/// The keyring Secret's shape without key material: the controller creates it once with the
/// generated keys and never applies over it. Deleted with the environment only under
/// deletionPolicy Delete (see the annotation).
pub fn keyring_secret(env: &ValidatedSpec) -> Secret {
    let mut metadata = object_meta(env, names::keyring(&env.name), Component::Keyring);
    let policy = match env.spec.keys.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    metadata.annotations = Some(BTreeMap::from([
        (ANNOTATION_CREATE_ONCE.to_string(), "true".to_string()),
        (ANNOTATION_DELETION_POLICY.to_string(), policy.to_string()),
    ]));
    Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}
