//! `<env>-dashboard`: `parity dashboard`. It never mounts the keyring. Where the tier forbids
//! decryption it is not even told where the key service is (and a NetworkPolicy cuts the
//! route), so zero knowledge holds by construction.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use super::kms::credential_env;
use super::meta::{Component, names};
use super::security::{NONROOT_UID, resources};
use super::topology::region;
use super::workload::{
    deployment, env_var, parity_container, pod_template, seed_volume, service, topology_volume,
};
use super::{
    BuildContext, DASHBOARD_NODE_PORT, DASHBOARD_PORT, KMS_ACCESS_KEY_ID_KEY,
    KMS_SECRET_ACCESS_KEY_KEY, SEED_DIR, TOPOLOGY_DIR, TOPOLOGY_FILE, endpoints, plan,
};
use crate::api::{Decryption, ValidatedSpec};
use crate::dashboard::config::{CredentialSource, decryption_flag, tier_flag};
use crate::tier::TierProfile;

/// Whether this environment's dashboard decrypts: asked for, and allowed by the tier.
pub fn dashboard_decrypts(env: &ValidatedSpec, profile: &TierProfile) -> bool {
    profile.dashboard_decryption_allowed && env.spec.dashboard.decryption == Decryption::Server
}

pub fn dashboard_deployment(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> Deployment {
    let ep = endpoints(env, profile, ctx);
    let decrypts = dashboard_decrypts(env, profile);
    let mut args = vec![
        "dashboard".to_string(),
        "--listen".to_string(),
        format!("0.0.0.0:{DASHBOARD_PORT}"),
        "--topology".to_string(),
        format!("{TOPOLOGY_DIR}/{TOPOLOGY_FILE}"),
        "--region".to_string(),
        region(env),
        // The binary refuses `--decryption server` outside local on its own too.
        "--tier".to_string(),
        tier_flag(env.tier()).to_string(),
    ];
    if let Some(dynamodb) = &ep.dynamodb {
        args.extend(["--dynamodb-endpoint".to_string(), dynamodb.clone()]);
    }
    args.extend([
        "--decryption".to_string(),
        decryption_flag(if decrypts {
            Decryption::Server
        } else {
            Decryption::Disabled
        })
        .to_string(),
    ]);
    if decrypts && let Some(kms) = &ep.kms {
        args.extend(["--kms-endpoint".to_string(), kms.clone()]);
    }
    args.extend([
        "--aws-credentials".to_string(),
        profile.dashboard_credentials.as_str().to_string(),
    ]);
    // The Service's DNS names (DNS rebinding protection refuses unknown Hosts), then the
    // spec's. In the environment, not the arguments: `parity dev` reuses the arguments
    // and has no Service.
    let service = names::dashboard(&env.name);
    let ns = &env.namespace;
    let hosts: Vec<String> = [
        service.clone(),
        format!("{service}.{ns}"),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
    ]
    .into_iter()
    .chain(env.spec.dashboard.allowed_hosts.iter().cloned())
    .collect();
    let mut envs = vec![
        env_var("AWS_REGION", region(env)),
        env_var("PARITY_DASHBOARD_ALLOWED_HOSTS", hosts.join(",")),
    ];
    if !env.spec.dashboard.trusted_proxies.is_empty() {
        envs.push(env_var(
            "PARITY_DASHBOARD_TRUSTED_PROXIES",
            env.spec.dashboard.trusted_proxies.join(","),
        ));
    }
    if profile.dashboard_credentials == CredentialSource::DefaultChain {
        // No static keys: the SDK's chain finds the pod's identity (IRSA's web identity
        // token, EKS pod identity) on its own.
    } else if decrypts && plan(env, profile).kms {
        // Signs calls to the key service (and DynamoDB Local, which accepts any key).
        envs.push(credential_env(
            env,
            "AWS_ACCESS_KEY_ID",
            KMS_ACCESS_KEY_ID_KEY,
        ));
        envs.push(credential_env(
            env,
            "AWS_SECRET_ACCESS_KEY",
            KMS_SECRET_ACCESS_KEY_KEY,
        ));
    } else if plan(env, profile).dynamodb_pod {
        // DynamoDB Local accepts any credentials, but the SDK insists on having some.
        envs.push(env_var("AWS_ACCESS_KEY_ID", "local"));
        envs.push(env_var("AWS_SECRET_ACCESS_KEY", "local"));
    }
    let mut container = parity_container(
        ctx,
        "dashboard",
        args,
        envs,
        Some(DASHBOARD_PORT),
        resources(("20m", "64Mi"), ("500m", "256Mi")),
    );
    let (topology, topology_mount) = topology_volume(env);
    let mut volumes = vec![topology];
    let mut mounts = vec![topology_mount];
    // The fixture schemas' context templates rebuild each field's encryption context; only a
    // decrypting dashboard needs them.
    if decrypts && let Some((seed, seed_mount)) = seed_volume(env) {
        container
            .args
            .get_or_insert_with(Vec::new)
            .extend(["--seeds".to_string(), SEED_DIR.to_string()]);
        volumes.push(seed);
        mounts.push(seed_mount);
    }
    container.volume_mounts = Some(mounts);
    let template = pod_template(
        env,
        ctx,
        Component::Dashboard,
        NONROOT_UID,
        container,
        volumes,
        None,
    );
    deployment(
        env,
        Component::Dashboard,
        names::dashboard(&env.name),
        template,
        false,
    )
}

pub fn dashboard_service(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> Service {
    service(
        env,
        profile,
        ctx,
        Component::Dashboard,
        names::dashboard(&env.name),
        DASHBOARD_PORT,
        DASHBOARD_NODE_PORT,
    )
}
