//! `<env>-dynamodb`: the DynamoDB engine on a read-only root filesystem. DynamoDBLocal (Java)
//! runs in memory or on a PersistentVolumeClaim owned by the environment; Moto runs in memory
//! with a restore sidecar.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    Probe, Service, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::bootstrap::bootstrap_container;
use super::meta::{Component, names, object_meta};
use super::security::{DYNAMODB_LOCAL_UID, NONROOT_UID, container_security_context, resources};
use super::workload::{
    container_port, deployment, env_var, http_probe, liveness, pod_template, readiness, service,
    tcp_probe,
};
use super::{BuildContext, DYNAMODB_NODE_PORT, DYNAMODB_PORT};
use crate::api::{DynamoDbEngine, PersistenceMode, ValidatedSpec};
use crate::tier::TierProfile;

const DATA_DIR: &str = "/home/dynamodblocal/data";

/// The claim for Volume persistence; None when in memory.
pub fn dynamodb_pvc(env: &ValidatedSpec, _profile: &TierProfile) -> Option<PersistentVolumeClaim> {
    if env.persistence != PersistenceMode::Volume {
        return None;
    }
    let p = &env.spec.dynamodb.persistence;
    Some(PersistentVolumeClaim {
        metadata: object_meta(env, names::dynamodb_data(&env.name), Component::DynamoDb),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: p.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(p.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn dynamodb_deployment(
    env: &ValidatedSpec,
    _profile: &TierProfile,
    ctx: &BuildContext,
) -> Deployment {
    let volume = env.persistence == PersistenceMode::Volume;
    let (container, uid, volumes) = match env.spec.dynamodb.engine {
        DynamoDbEngine::DynamoDBLocal => dynamodb_local(env, ctx),
        DynamoDbEngine::Moto => moto(env, ctx),
    };
    let mut template = pod_template(env, ctx, Component::DynamoDb, uid, container, volumes, None);
    if env.spec.dynamodb.engine == DynamoDbEngine::Moto {
        // moto keeps tables in memory: a restart loses them. The sidecar shares the pod's
        // network and brings tables and seeds back whenever they are missing.
        let (restore, restore_volumes) = bootstrap_container(
            env,
            ctx,
            "restore",
            format!("http://127.0.0.1:{DYNAMODB_PORT}"),
            &[
                "--restore-every".to_string(),
                MOTO_RESTORE_EVERY.to_string(),
            ],
        );
        if let Some(spec) = template.spec.as_mut() {
            spec.containers.push(restore);
            let vols = spec.volumes.get_or_insert_with(Vec::new);
            for v in restore_volumes {
                if !vols.iter().any(|have| have.name == v.name) {
                    vols.push(v);
                }
            }
        }
    }
    // A ReadWriteOnce volume cannot be attached to the old and the new pod at once.
    deployment(
        env,
        Component::DynamoDb,
        names::dynamodb(&env.name),
        template,
        volume,
    )
}

/// How often engine Moto's restore sidecar checks that the tables are there.
const MOTO_RESTORE_EVERY: &str = "5s";

/// AWS's DynamoDB Local (Java): in memory, or on the environment's claim.
fn dynamodb_local(env: &ValidatedSpec, ctx: &BuildContext) -> (Container, i64, Vec<Volume>) {
    let mut args = vec![
        "-XX:-UsePerfData".to_string(),
        "-XX:MaxRAMPercentage=75".to_string(),
        "-Djava.io.tmpdir=/tmp".to_string(),
        "-Djava.library.path=./DynamoDBLocal_lib".to_string(),
        "-jar".to_string(),
        "DynamoDBLocal.jar".to_string(),
        "-sharedDb".to_string(),
        "-port".to_string(),
        DYNAMODB_PORT.to_string(),
    ];
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if env.persistence == PersistenceMode::Volume {
        args.extend(["-dbPath".to_string(), DATA_DIR.to_string()]);
        volumes.push(Volume {
            name: "data".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::dynamodb_data(&env.name),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "data".to_string(),
            mount_path: DATA_DIR.to_string(),
            ..Default::default()
        });
    } else {
        args.push("-inMemory".to_string());
    }
    let container = Container {
        name: "dynamodb".to_string(),
        image: Some(env.spec.dynamodb.image().to_string()),
        image_pull_policy: ctx.image_pull_policy.clone(),
        command: Some(vec!["java".to_string()]),
        args: Some(args),
        working_dir: Some("/home/dynamodblocal".to_string()),
        ports: Some(vec![container_port(DYNAMODB_PORT)]),
        // DynamoDB Local answers only POSTs with a target; a connection is the best check.
        readiness_probe: Some(readiness(tcp_probe(DYNAMODB_PORT))),
        liveness_probe: Some(Probe {
            // The JVM takes a few seconds to start.
            initial_delay_seconds: Some(15),
            ..liveness(tcp_probe(DYNAMODB_PORT))
        }),
        resources: Some(resources(("100m", "256Mi"), ("1", "768Mi"))),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    (container, DYNAMODB_LOCAL_UID, volumes)
}

/// The open-source moto server (DynamoDB and DynamoDB Streams), in memory. Run as the
/// distroless nonroot user; it writes only under /tmp (HOME too).
fn moto(env: &ValidatedSpec, ctx: &BuildContext) -> (Container, i64, Vec<Volume>) {
    let container = Container {
        name: "dynamodb".to_string(),
        image: Some(env.spec.dynamodb.image().to_string()),
        image_pull_policy: ctx.image_pull_policy.clone(),
        command: Some(vec![MOTO_SERVER.to_string()]),
        args: Some(vec![
            "-H".to_string(),
            "0.0.0.0".to_string(),
            "-p".to_string(),
            DYNAMODB_PORT.to_string(),
        ]),
        env: Some(vec![env_var("HOME", "/tmp")]),
        ports: Some(vec![container_port(DYNAMODB_PORT)]),
        // moto answers GET / with 200 as soon as it serves; a stopped moto times out.
        readiness_probe: Some(readiness(http_probe("/"))),
        liveness_probe: Some(Probe {
            // Python imports take a few seconds on a busy node.
            initial_delay_seconds: Some(10),
            ..liveness(http_probe("/"))
        }),
        resources: Some(resources(("100m", "128Mi"), ("1", "512Mi"))),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    (container, NONROOT_UID, Vec::new())
}

/// Where the moto image (upstream's and hack/testenv's) has its server.
pub const MOTO_SERVER: &str = "/usr/local/bin/moto_server";

pub fn dynamodb_service(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Service {
    service(
        env,
        profile,
        ctx,
        Component::DynamoDb,
        names::dynamodb(&env.name),
        DYNAMODB_PORT,
        DYNAMODB_NODE_PORT,
    )
}
