//! `<env>-bootstrap-<hash>`: `parity bootstrap` waits for DynamoDB and creates the tables of
//! the topology. The name carries a hash of the Job's spec, so a changed table list (or
//! image) makes a new Job instead of an update the API server would refuse (a Job's pod
//! template is immutable).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{Container, Volume};
use sha2::{Digest, Sha256};

use super::kms::credential_env;
use super::meta::{ANNOTATION_SPEC_HASH, Component, names, object_meta};
use super::security::{NONROOT_UID, resources};
use super::topology::{region, root_key_alias, topology_data};
use super::workload::{env_var, parity_container, pod_template, seed_volume, topology_volume};
use super::{
    BuildContext, DYNAMODB_PORT, KMS_ACCESS_KEY_ID_KEY, KMS_PORT, KMS_SECRET_ACCESS_KEY_KEY,
    SEED_DIR, TOPOLOGY_DIR, TOPOLOGY_FILE, plan, service_url,
};
use crate::api::ValidatedSpec;
use crate::tier::TierProfile;

/// A `parity bootstrap` container against `endpoint`, with the volumes it mounts: the
/// topology, the seed fixtures, and (keys provider Local) the environment's key service for
/// fields the fixtures mark encrypted. The bootstrap Job and engine Moto's restore sidecar
/// both run it.
pub(super) fn bootstrap_container(
    env: &ValidatedSpec,
    ctx: &BuildContext,
    name: &str,
    endpoint: String,
    extra_args: &[String],
) -> (Container, Vec<Volume>) {
    let mut args = vec![
        "bootstrap".to_string(),
        "--endpoint".to_string(),
        endpoint,
        "--region".to_string(),
        region(env),
        "--topology".to_string(),
        format!("{TOPOLOGY_DIR}/{TOPOLOGY_FILE}"),
    ];
    args.extend_from_slice(extra_args);
    let (topology, topology_mount) = topology_volume(env);
    let mut volumes = vec![topology];
    let mut mounts = vec![topology_mount];
    // DynamoDB Local and moto accept any credentials, but the SDK insists on having some.
    let mut envs = vec![
        env_var("AWS_ACCESS_KEY_ID", "local"),
        env_var("AWS_SECRET_ACCESS_KEY", "local"),
        env_var("AWS_REGION", region(env)),
    ];
    if let Some((seed, seed_mount)) = seed_volume(env) {
        args.extend(["--seeds".to_string(), SEED_DIR.to_string()]);
        volumes.push(seed);
        mounts.push(seed_mount);
        // Fields the fixtures mark encrypted are sealed under the environment's own key
        // hierarchy, through its key service, as the app would do it.
        if plan(env, env.profile).kms {
            args.extend([
                "--kms-endpoint".to_string(),
                service_url(env, &names::kms(&env.name), KMS_PORT),
                "--kms-key-id".to_string(),
                root_key_alias(&env.name),
            ]);
            envs.push(credential_env(
                env,
                "PARITY_KMS_ACCESS_KEY_ID",
                KMS_ACCESS_KEY_ID_KEY,
            ));
            envs.push(credential_env(
                env,
                "PARITY_KMS_SECRET_ACCESS_KEY",
                KMS_SECRET_ACCESS_KEY_KEY,
            ));
        }
    }
    let mut container = parity_container(
        ctx,
        name,
        args,
        envs,
        None,
        resources(("20m", "32Mi"), ("500m", "128Mi")),
    );
    container.volume_mounts = Some(mounts);
    // A failed run's last log lines (the fixture's file:line:reason) become the container's
    // termination message, which the operator reads into the environment's conditions.
    container.termination_message_policy = Some("FallbackToLogsOnError".to_string());
    (container, volumes)
}

fn job_spec(env: &ValidatedSpec, ctx: &BuildContext) -> JobSpec {
    let (container, volumes) = bootstrap_container(
        env,
        ctx,
        "bootstrap",
        service_url(env, &names::dynamodb(&env.name), DYNAMODB_PORT),
        &[],
    );
    JobSpec {
        backoff_limit: Some(6),
        // Invalid fixtures (exit 3) fail the same way on every retry: fail the Job at once.
        pod_failure_policy: Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".to_string(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some("bootstrap".to_string()),
                    operator: "In".to_string(),
                    values: vec![i32::from(crate::dynamo::bootstrap::INVALID_INPUT_EXIT)],
                }),
                ..Default::default()
            }],
        }),
        template: pod_template(
            env,
            ctx,
            Component::Bootstrap,
            NONROOT_UID,
            container,
            volumes,
            Some("Never"),
        ),
        ..Default::default()
    }
}

/// First 10 hex digits of the SHA-256 of the Job's spec (without `suspend`, which may change)
/// and of the topology it reads (the tables).
pub fn bootstrap_hash(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&job_spec(env, ctx)).unwrap_or_default());
    h.update(serde_json::to_vec(&topology_data(env, profile, ctx)).unwrap_or_default());
    hex::encode(&h.finalize()[..5])
}

pub fn bootstrap_job(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Job {
    let hash = bootstrap_hash(env, profile, ctx);
    let mut metadata = object_meta(
        env,
        names::bootstrap(&env.name, &hash),
        Component::Bootstrap,
    );
    metadata.annotations = Some(BTreeMap::from([(ANNOTATION_SPEC_HASH.to_string(), hash)]));
    let mut spec = job_spec(env, ctx);
    spec.suspend = Some(env.spec.suspend);
    Job {
        metadata,
        spec: Some(spec),
        ..Default::default()
    }
}
