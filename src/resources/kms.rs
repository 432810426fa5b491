//! `<env>-kms`: `parity kms`, the KMS-compatible endpoint over the keyring. The only pod that
//! mounts the keyring Secret.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{SecretVolumeSource, Service, Volume, VolumeMount};

use super::meta::{Component, names};
use super::security::{NONROOT_UID, resources};
use super::topology::region;
use super::workload::{
    deployment, env_var, parity_container, pod_template, service, topology_volume,
};
use super::{BuildContext, KEYRING_DIR, KMS_NODE_PORT, KMS_PORT, TOPOLOGY_DIR, TOPOLOGY_FILE};
use crate::api::ValidatedSpec;
use crate::tier::TierProfile;

pub fn kms_deployment(
    env: &ValidatedSpec,
    _profile: &TierProfile,
    ctx: &BuildContext,
) -> Deployment {
    let args = vec![
        "kms".to_string(),
        "--listen".to_string(),
        format!("0.0.0.0:{KMS_PORT}"),
        "--keyring-dir".to_string(),
        KEYRING_DIR.to_string(),
        "--topology".to_string(),
        format!("{TOPOLOGY_DIR}/{TOPOLOGY_FILE}"),
    ];
    let mut container = parity_container(
        ctx,
        "kms",
        args,
        vec![env_var("AWS_REGION", region(env))],
        Some(KMS_PORT),
        resources(("20m", "32Mi"), ("500m", "128Mi")),
    );
    let (topology, topology_mount) = topology_volume(env);
    let keyring = Volume {
        name: "keyring".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::keyring(&env.name)),
            // Group-readable: the pod's fsGroup owns the files, the user is not root.
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    };
    container.volume_mounts = Some(vec![
        VolumeMount {
            name: "keyring".to_string(),
            mount_path: KEYRING_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
        topology_mount,
    ]);
    let template = pod_template(
        env,
        Component::Kms,
        NONROOT_UID,
        container,
        vec![keyring, topology],
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
