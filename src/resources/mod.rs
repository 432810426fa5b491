//! Pure builders: (validated environment, tier profile, build context) -> Kubernetes objects.
//! No I/O. One function per object; [`desired`] lists every object of an environment in
//! apply order, each as applied or created once. `parity render` and `parity dev` read the
//! same list as plain objects ([`build_all`]); the controller acts on it.

mod bootstrap;
mod connection;
mod dashboard;
mod dynamodb;
mod keyring;
mod kms;
mod meta;
mod network_policy;
mod object;
pub mod rbac;
mod secrets_api;
mod security;
mod service_account;
mod topology;
mod workload;

pub use bootstrap::{bootstrap_hash, bootstrap_job};
pub use connection::{ConnectionInputs, connection_secret, connection_set, missing_inputs};
pub use dashboard::{dashboard_decrypts, dashboard_deployment, dashboard_service};
pub use dynamodb::{dynamodb_deployment, dynamodb_pvc, dynamodb_service};
pub use keyring::{
    keyring_secret, kms_access_key_id, kms_credentials_secret, kms_credentials_secret_with,
};
pub use kms::{kms_deployment, kms_service};
pub use meta::*;
pub use network_policy::{dashboard_egress_policy, has_ingress_policy, ingress_policy};
pub use object::{Object, OwnedKind};
pub use secrets_api::{
    SECRETS_API_CLIENT_ID_KEY, SECRETS_API_CLIENT_SECRET_KEY, SECRETS_DIR, secrets_api_args,
    secrets_api_client_id, secrets_api_credentials_secret, secrets_api_credentials_secret_with,
    secrets_api_deployment, secrets_api_service,
};
pub use security::{DYNAMODB_LOCAL_UID, NONROOT_UID};
pub use service_account::service_account;
pub use topology::{
    EnvironmentInfo, LOCAL_REGION, Topology, TopologyEndpoints, TopologyKeys, TopologySecrets,
    declared_topology, endpoints, environment_info, region, root_key_alias, topology,
    topology_config_map, topology_data,
};

use k8s_openapi::api::core::v1::Secret;

use crate::api::{KeyProvider, SecretsProvider, ValidatedSpec};
use crate::tier::{Components, DynamoPlacement, TierProfile};

/// Container ports.
pub const KMS_PORT: i32 = 8080;
pub const DYNAMODB_PORT: i32 = 8000;
pub const DASHBOARD_PORT: i32 = 8080;
pub const SECRETS_API_PORT: i32 = 8095;
/// Fixed NodePorts (tier Local with `node_ports`), matched by kind-config.yaml.
pub const DASHBOARD_NODE_PORT: i32 = 30080;
pub const DYNAMODB_NODE_PORT: i32 = 30800;
pub const KMS_NODE_PORT: i32 = 30880;
pub const SECRETS_API_NODE_PORT: i32 = 30895;

/// Where the topology ConfigMap is mounted in every workload.
pub const TOPOLOGY_DIR: &str = "/etc/parity/topology";
pub const TOPOLOGY_FILE: &str = "topology.yaml";
pub const ENVIRONMENT_FILE: &str = "environment.yaml";
pub const ALIASES_FILE: &str = "aliases";
/// Where the keyring Secret is mounted in the kms pod (and nowhere else).
pub const KEYRING_DIR: &str = "/etc/parity/keyring";
/// Where the kms credentials Secret is mounted in the kms pod.
pub const KMS_CREDENTIALS_DIR: &str = "/etc/parity/kms-credentials";
/// Data keys of the `<env>-kms-credentials` Secret: the access key pair requests to
/// `parity kms` are signed with.
pub const KMS_ACCESS_KEY_ID_KEY: &str = "access-key-id";
pub const KMS_SECRET_ACCESS_KEY_KEY: &str = "secret-access-key";
pub const SEED_DIR: &str = "/etc/parity/seed";

/// What the builders need besides the environment: operator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildContext {
    /// The operator's own image, run by the kms, bootstrap and dashboard workloads.
    pub image: String,
    /// e.g. `IfNotPresent`; unset leaves the cluster default.
    pub image_pull_policy: Option<String>,
    /// Secrets every pod the operator creates pulls its images with (a private registry).
    pub image_pull_secrets: Vec<String>,
    /// Expose Services on the fixed NodePorts where the tier allows it (kind on a laptop).
    /// Off by default: two environments would fight over the same ports.
    pub node_ports: bool,
}

impl BuildContext {
    pub fn new(image: impl Into<String>) -> BuildContext {
        BuildContext {
            image: image.into(),
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            node_ports: false,
        }
    }
}

/// The image the operator runs its workloads with unless told otherwise.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/parity-dev/parity-operator:",
    env!("CARGO_PKG_VERSION")
);

/// Which workloads this environment gets: the tier's components at its level, narrowed by
/// the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub components: Components,
    /// The keyring Secret and the `parity kms` key service (keys.provider Local).
    pub kms: bool,
    /// A DynamoDB Local pod and its bootstrap Job.
    pub dynamodb_pod: bool,
    pub dashboard: bool,
    /// `parity secrets-api` over the generated secrets (level 3, provider Local, a schema).
    pub secrets_api: bool,
    /// Components that get an `<env>-<component>-ingress` NetworkPolicy.
    pub ingress_policies: [Option<meta::Component>; 4],
    pub dashboard_egress_policy: bool,
}

pub fn plan(env: &ValidatedSpec, profile: &TierProfile) -> Plan {
    let components = profile.components(env.spec.parity_level);
    let kms = components.keys && env.spec.keys.provider == KeyProvider::Local;
    let dynamodb_pod = components.dynamodb && profile.dynamodb == DynamoPlacement::InCluster;
    let dashboard = components.dashboard && env.spec.dashboard.enabled;
    let secrets = &env.spec.secrets;
    let secrets_api = components.sdk_wire
        && components.secrets
        && secrets.provider == SecretsProvider::Local
        && secrets.schema.is_some();
    Plan {
        components,
        kms,
        dynamodb_pod,
        dashboard,
        secrets_api,
        ingress_policies: [
            (kms, meta::Component::Kms),
            (dynamodb_pod, meta::Component::DynamoDb),
            (secrets_api, meta::Component::SecretsApi),
            (dashboard, meta::Component::Dashboard),
        ]
        .map(|(runs, c)| (runs && has_ingress_policy(env, profile, c)).then_some(c)),
        dashboard_egress_policy: dashboard && profile.isolate_dashboard_from_kms,
    }
}

/// What the controller does with a built object.
// A handful per environment and reconcile, like [`Object`].
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Desired {
    /// Server-side applied on every reconcile.
    Apply(Object),
    /// Made once with data only the controller can make (key material, random credentials);
    /// never applied over, never removed as an orphan.
    CreateOnce(CreateOnce),
}

/// A create-once Secret: its shape (no data) and who gives it its data.
#[derive(Clone, Debug)]
pub enum CreateOnce {
    /// `<env>-keyring`: the keys step generates or derives its key material, adopts a
    /// retained one and rotates it; the finalizer decides its fate.
    Keyring(Secret),
    /// A credentials Secret: `fill(env, secret)` is its data around a fresh random secret.
    Credentials {
        shape: Secret,
        fill: fn(&ValidatedSpec, &str) -> Secret,
    },
}

impl Desired {
    pub fn object(&self) -> Object {
        match self {
            Desired::Apply(o) => o.clone(),
            Desired::CreateOnce(
                CreateOnce::Keyring(s) | CreateOnce::Credentials { shape: s, .. },
            ) => Object::Secret(s.clone()),
        }
    }

    pub fn into_object(self) -> Object {
        match self {
            Desired::Apply(o) => o,
            Desired::CreateOnce(
                CreateOnce::Keyring(s) | CreateOnce::Credentials { shape: s, .. },
            ) => Object::Secret(s),
        }
    }
}

/// Every object of the environment as plain objects (create-once Secrets without data), in
/// [`desired`]'s order.
pub fn build_all(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Vec<Object> {
    desired(env, profile, ctx)
        .into_iter()
        .map(Desired::into_object)
        .collect()
}

/// Every object of the environment, in apply order: identities and policies before pods,
/// configuration before the workloads that mount it, the bootstrap Job after DynamoDB and
/// the dashboard last. The controller gates the bootstrap Job on DynamoDB being available
/// and the dashboard on keys and DynamoDB being ready ([`Object::component`]).
pub fn desired(env: &ValidatedSpec, profile: &TierProfile, ctx: &BuildContext) -> Vec<Desired> {
    let plan = plan(env, profile);
    let mut out = Vec::new();
    let sa_components = [
        (plan.kms, meta::Component::Kms),
        (plan.dynamodb_pod, meta::Component::DynamoDb),
        (plan.dynamodb_pod, meta::Component::Bootstrap),
        (plan.dashboard, meta::Component::Dashboard),
        (plan.secrets_api, meta::Component::SecretsApi),
    ];
    for (wanted, c) in sa_components {
        if wanted {
            out.push(apply(Object::ServiceAccount(service_account(env, c))));
        }
    }
    for c in plan.ingress_policies.into_iter().flatten() {
        out.push(apply(Object::NetworkPolicy(ingress_policy(
            env, profile, ctx, c,
        ))));
    }
    if plan.dashboard_egress_policy {
        out.push(apply(Object::NetworkPolicy(dashboard_egress_policy(
            env, profile,
        ))));
    }
    if plan.kms {
        out.push(Desired::CreateOnce(CreateOnce::Keyring(keyring_secret(
            env,
        ))));
        out.push(Desired::CreateOnce(CreateOnce::Credentials {
            shape: kms_credentials_secret(env),
            fill: kms_credentials_secret_with,
        }));
    }
    if plan.secrets_api {
        out.push(Desired::CreateOnce(CreateOnce::Credentials {
            shape: secrets_api_credentials_secret(env),
            fill: secrets_api_credentials_secret_with,
        }));
    }
    out.push(apply(Object::ConfigMap(topology_config_map(
        env, profile, ctx,
    ))));
    if plan.kms {
        out.push(apply(Object::Deployment(kms_deployment(env, profile, ctx))));
        out.push(apply(Object::Service(kms_service(env, profile, ctx))));
    }
    if plan.dynamodb_pod {
        if let Some(pvc) = dynamodb_pvc(env, profile) {
            out.push(apply(Object::PersistentVolumeClaim(pvc)));
        }
        out.push(apply(Object::Deployment(dynamodb_deployment(
            env, profile, ctx,
        ))));
        out.push(apply(Object::Service(dynamodb_service(env, profile, ctx))));
        out.push(apply(Object::Job(bootstrap_job(env, profile, ctx))));
    }
    if plan.secrets_api {
        out.push(apply(Object::Deployment(secrets_api_deployment(
            env, profile, ctx,
        ))));
        out.push(apply(Object::Service(secrets_api_service(
            env, profile, ctx,
        ))));
    }
    if plan.dashboard {
        out.push(apply(Object::Deployment(dashboard_deployment(
            env, profile, ctx,
        ))));
        out.push(apply(Object::Service(dashboard_service(env, profile, ctx))));
    }
    out
}

/// `Desired::Apply`, to keep [`desired`]'s list readable. [`desired`]'s list readable.
fn apply(o: Object) -> Desired {
    Desired::Apply(o)
}

/// Secrets an environment keeps once it has made them, whatever its spec says later: key
/// material, credentials, the application's secrets and what is derived from them. None is
/// removed as an orphan (the keyring's fate is the finalizer's).
pub fn kept_secrets(env: &str) -> [String; 6] {
    [
        names::keyring(env),
        names::kms_credentials(env),
        names::secrets_api_credentials(env),
        names::secrets(env),
        names::rollout_key(env),
        names::connection(env),
    ]
}

/// Workloads that read `<env>-secrets`: their pod template carries the keyed
/// [`crate::secrets::ROLLOUT_ANNOTATION`], so they roll when the secrets change.
pub const READS_SECRETS: &[meta::Component] = &[meta::Component::SecretsApi];

/// Sets an annotation on a workload's pod template (Deployments and Jobs; others unchanged).
pub fn annotate_pod_template(o: &mut Object, key: &str, value: &str) {
    let template = match o {
        Object::Deployment(d) => &mut d.spec.template,
        Object::Job(j) => match j.spec.as_mut() {
            Some(s) => &mut s.template,
            None => return,
        },
        _ => return,
    };
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), value.to_string());
}

/// Replicas of every workload: zero while suspended (data and keys stay).
fn replicas(env: &ValidatedSpec) -> i32 {
    if env.spec.suspend { 0 } else { 1 }
}

/// `http://<service>.<namespace>.svc:<port>`
fn service_url(env: &ValidatedSpec, service: &str, port: i32) -> String {
    format!("http://{service}.{}.svc:{port}", env.namespace)
}

#[cfg(test)]
mod tests;
