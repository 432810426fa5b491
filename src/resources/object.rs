//! One built object of any kind the operator owns.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};

use super::meta::{Component, LABEL_COMPONENT};

// A handful per environment and reconcile; boxing would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    NetworkPolicy(NetworkPolicy),
    Secret(Secret),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Deployment(Deployment),
    Service(Service),
    Job(Job),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::ServiceAccount($o) => $e,
            Object::NetworkPolicy($o) => $e,
            Object::Secret($o) => $e,
            Object::ConfigMap($o) => $e,
            Object::PersistentVolumeClaim($o) => $e,
            Object::Deployment($o) => $e,
            Object::Service($o) => $e,
            Object::Job($o) => $e,
        }
    };
}

/// The kinds an environment can own, for watches and RBAC: (group, version, kind, plural).
pub const OWNED_KINDS: [(&str, &str, &str, &str); 8] = [
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("apps", "v1", "Deployment", "deployments"),
    ("", "v1", "Service", "services"),
    ("batch", "v1", "Job", "jobs"),
];

impl Object {
    pub fn meta(&self) -> &ObjectMeta {
        each!(self, o => o.meta())
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => o.meta_mut())
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn kind(&self) -> &'static str {
        self.api_resource_static().2
    }

    /// The `parity.dev/component` label.
    pub fn component(&self) -> Option<Component> {
        self.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_COMPONENT))
            .and_then(|c| Component::parse(c))
    }

    fn api_resource_static(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        let i = match self {
            Object::ServiceAccount(_) => 0,
            Object::NetworkPolicy(_) => 1,
            Object::Secret(_) => 2,
            Object::ConfigMap(_) => 3,
            Object::PersistentVolumeClaim(_) => 4,
            Object::Deployment(_) => 5,
            Object::Service(_) => 6,
            Object::Job(_) => 7,
        };
        OWNED_KINDS[i]
    }

    pub fn api_resource(&self) -> ApiResource {
        each!(self, o => api_resource_of(o))
    }

    /// The object as JSON with apiVersion and kind, as server-side apply wants it.
    pub fn to_value(&self) -> serde_json::Value {
        // k8s-openapi's Serialize writes apiVersion and kind, and these types cannot fail.
        each!(self, o => serde_json::to_value(o).unwrap_or_default())
    }

    pub fn to_dynamic(&self) -> DynamicObject {
        let ar = self.api_resource();
        let mut obj = DynamicObject::new(self.name(), &ar);
        obj.metadata = self.meta().clone();
        let mut data = self.to_value();
        if let Some(map) = data.as_object_mut() {
            for k in ["apiVersion", "kind", "metadata"] {
                map.remove(k);
            }
        }
        obj.data = data;
        obj
    }
}

fn api_resource_of<K: Resource<DynamicType = ()>>(_: &K) -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The ApiResource of an owned kind by name (`"Deployment"`, ...), for dynamic list/delete.
pub fn owned_api_resource(kind: &str) -> Option<ApiResource> {
    OWNED_KINDS
        .iter()
        .find(|(_, _, k, _)| *k == kind)
        .map(|(group, version, kind, plural)| ApiResource {
            group: (*group).into(),
            version: (*version).into(),
            api_version: if group.is_empty() {
                (*version).into()
            } else {
                format!("{group}/{version}")
            },
            kind: (*kind).into(),
            plural: (*plural).into(),
        })
}
