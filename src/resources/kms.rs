//! `<env>-kms`: `parity kms` (docs/kms.md), the KMS-compatible endpoint over the keyring. The
//! only pod that mounts the keyring Secret.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource, Service, Volume,
};

use super::meta::{Component, names};
use super::security::{NONROOT_UID, resources};
use super::topology::region;
use super::workload::{
    deployment, env_var, http_probe, liveness, parity_container, pod_template, read_only_mount,
    readiness, service, topology_volume,
};
use super::{
    ALIASES_FILE, BuildContext, KEYRING_DIR, KMS_ACCESS_KEY_ID_KEY, KMS_CREDENTIALS_DIR,
    KMS_NODE_PORT, KMS_PORT, KMS_SECRET_ACCESS_KEY_KEY, TOPOLOGY_DIR,
};
use crate::api::ValidatedSpec;
use crate::crypto::keyring::KEYRING_SECRET_KEY;
use crate::tier::TierProfile;

/// A read-only Secret volume, group-readable: the pod's fsGroup owns the files and the user
/// is not root.
pub(super) fn secret_volume(name: &str, secret: String, keys: &[&str]) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            items: Some(
                keys.iter()
                    .map(|k| KeyToPath {
                        key: k.to_string(),
                        path: k.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An environment variable from a key of the kms credentials Secret.
pub(super) fn credential_env(env: &ValidatedSpec, name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names::kms_credentials(&env.name),
                key: key.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn kms_deployment(
    env: &ValidatedSpec,
    _profile: &TierProfile,
    ctx: &BuildContext,
) -> Deployment {
    let rotation = &env.spec.keys.rotation;
    let mut args = vec![
        "kms".to_string(),
        format!("--listen=0.0.0.0:{KMS_PORT}"),
        format!("--keyring={KEYRING_DIR}/{KEYRING_SECRET_KEY}"),
        format!("--aliases-file={TOPOLOGY_DIR}/{ALIASES_FILE}"),
        format!("--secret-access-key-file={KMS_CREDENTIALS_DIR}/{KMS_SECRET_ACCESS_KEY_KEY}"),
        format!("--region={}", region(env)),
        format!("--retain-versions={}", rotation.retain_versions),
    ];
    if let Some(period) = env.rotation_period {
        // parity kms reports the period in whole days; shorter periods round up to one.
        let days = period.as_secs().div_ceil(86_400).max(1);
        args.push(format!("--rotation-period-days={days}"));
    }
    let mut container = parity_container(
        ctx,
        "kms",
        args,
        vec![
            credential_env(env, "PARITY_KMS_ACCESS_KEY_ID", KMS_ACCESS_KEY_ID_KEY),
            env_var("AWS_REGION", region(env)),
        ],
        Some(KMS_PORT),
        resources(("20m", "32Mi"), ("500m", "128Mi")),
    );
    container.readiness_probe = Some(readiness(http_probe("/healthz")));
    container.liveness_probe = Some(liveness(http_probe("/healthz")));
    let (topology, topology_mount) = topology_volume(env);
    let keyring = secret_volume("keyring", names::keyring(&env.name), &[KEYRING_SECRET_KEY]);
    let credentials = secret_volume(
        "kms-credentials",
        names::kms_credentials(&env.name),
        &[KMS_SECRET_ACCESS_KEY_KEY],
    );
    container.volume_mounts = Some(vec![
        read_only_mount("keyring", KEYRING_DIR),
        read_only_mount("kms-credentials", KMS_CREDENTIALS_DIR),
        topology_mount,
    ]);
    let template = pod_template(
        env,
        ctx,
        Component::Kms,
        NONROOT_UID,
        container,
        vec![keyring, credentials, topology],
        None,
    );
    deployment(env, Component::Kms, names::kms(&env.name), template, false)
}

pub fn kms_service(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Service {
    service(
        env,
        profile,
        ctx,
        Component::Kms,
        names::kms(&env.name),
        KMS_PORT,
        KMS_NODE_PORT,
    )
}
