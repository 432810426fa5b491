//! Shared shape of the pods and Deployments the builders make.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, LocalObjectReference,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Component, labels, names, object_meta, selector};
use super::security::{container_security_context, pod_security_context, tmp_volume};
use super::{BuildContext, SEED_DIR, TOPOLOGY_DIR, replicas};
use crate::api::ValidatedSpec;

/// A container running the operator image with a `parity` subcommand.
pub(super) fn parity_container(
    ctx: &BuildContext,
    name: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    port: Option<i32>,
    resources: ResourceRequirements,
) -> Container {
    Container {
        name: name.to_string(),
        image: Some(ctx.image.clone()),
        image_pull_policy: ctx.image_pull_policy.clone(),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        ports: port.map(|p| vec![container_port(p)]),
        readiness_probe: port.map(|p| readiness(tcp_probe(p))),
        liveness_probe: port.map(|p| liveness(tcp_probe(p))),
        resources: Some(resources),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

pub(super) fn container_port(port: i32) -> ContainerPort {
    ContainerPort {
        name: Some("http".to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// A probe that connects to `port` (timings from [`readiness`] or [`liveness`]). A stopped
/// process still accepts connections (the kernel completes the handshake), so prefer
/// [`http_probe`] wherever the server answers HTTP.
pub(super) fn tcp_probe(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Readiness notices a server that stopped answering within two periods (10 s) and takes it
/// out of its Service; the operator then reports which component and why.
pub(super) fn readiness(probe: Probe) -> Probe {
    Probe {
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        failure_threshold: Some(2),
        ..probe
    }
}

/// Liveness restarts a container only after a minute without an answer: a process paused for
/// a while (SIGSTOP, a debugger, a starved node) comes back with its in-memory data (moto's
/// tables) instead of being restarted empty.
pub(super) fn liveness(probe: Probe) -> Probe {
    Probe {
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(6),
        ..probe
    }
}

pub(super) fn env_var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub(super) fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// An HTTP GET probe on the container's `http` port (timings from [`readiness`] or
/// [`liveness`]).
pub(super) fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// spec.dynamodb.seed's ConfigMap at [`SEED_DIR`], read-only (fixtures and their schemas).
pub(super) fn seed_volume(env: &ValidatedSpec) -> Option<(Volume, VolumeMount)> {
    let seed = env.spec.dynamodb.seed.as_ref()?;
    Some((
        Volume {
            name: "seed".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: seed.config_map_ref.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        read_only_mount("seed", SEED_DIR),
    ))
}

/// The topology ConfigMap, mounted read-only.
pub(super) fn topology_volume(env: &ValidatedSpec) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "topology".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::topology(&env.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        read_only_mount("topology", TOPOLOGY_DIR),
    )
}

/// A restricted pod: its own ServiceAccount without a token, a writable /tmp, read-only root.
pub(super) fn pod_template(
    env: &ValidatedSpec,
    ctx: &BuildContext,
    component: Component,
    uid: i64,
    mut container: Container,
    mut volumes: Vec<Volume>,
    restart_policy: Option<&str>,
) -> PodTemplateSpec {
    let (tmp, tmp_mount) = tmp_volume();
    volumes.push(tmp);
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(tmp_mount);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(env, component)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names::service_account(&env.name, component)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(pod_security_context(uid)),
            containers: vec![container],
            volumes: Some(volumes),
            restart_policy: restart_policy.map(str::to_string),
            image_pull_secrets: (!ctx.image_pull_secrets.is_empty()).then(|| {
                ctx.image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            ..Default::default()
        }),
    }
}

pub(super) fn deployment(
    env: &ValidatedSpec,
    component: Component,
    name: String,
    template: PodTemplateSpec,
    recreate: bool,
) -> Deployment {
    Deployment {
        metadata: object_meta(env, name, component),
        spec: DeploymentSpec {
            replicas: Some(replicas(env)),
            selector: selector(env, component),
            template,
            revision_history_limit: Some(2),
            strategy: recreate.then(|| DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A Service in front of one component; a NodePort on `node_port` when the operator exposes
/// node ports and the tier allows them.
pub(super) fn service(
    env: &ValidatedSpec,
    profile: &crate::tier::TierProfile,
    ctx: &BuildContext,
    component: Component,
    name: String,
    port: i32,
    node_port: i32,
) -> k8s_openapi::api::core::v1::Service {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    let exposed = ctx.node_ports && profile.node_ports_allowed;
    Service {
        metadata: object_meta(env, name, component),
        spec: Some(ServiceSpec {
            type_: Some(if exposed { "NodePort" } else { "ClusterIP" }.to_string()),
            selector: Some(super::meta::selector_labels(env, component)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port,
                target_port: Some(IntOrString::String("http".to_string())),
                protocol: Some("TCP".to_string()),
                node_port: exposed.then_some(node_port),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
