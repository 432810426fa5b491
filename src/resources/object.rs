//! One built object of any kind the operator owns, and the list of those kinds: the one
//! place they are named. Watches, RBAC, orphan removal and `parity status` go through
//! [`OwnedKind::ALL`].

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

/// Declares [`Object`] (one variant per owned kind, holding the typed object) and
/// [`OwnedKind`] (the kind alone) from one list, so the two cannot disagree.
macro_rules! owned_kinds {
    ($($kind:ident),* $(,)?) => {
        // A handful per environment and reconcile; boxing would only make matching clumsier.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $($kind($kind),)*
        }

        /// The kinds an environment can own.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum OwnedKind {
            $($kind,)*
        }

        impl OwnedKind {
            pub const ALL: &'static [OwnedKind] = &[$(OwnedKind::$kind,)*];

            pub fn api_resource(self) -> ApiResource {
                match self {
                    $(OwnedKind::$kind => ApiResource::erase::<$kind>(&()),)*
                }
            }

            /// `"Deployment"`, ...
            pub fn kind(self) -> &'static str {
                match self {
                    $(OwnedKind::$kind => <$kind as k8s_openapi::Resource>::KIND,)*
                }
            }

            /// The API group (`""` for the core group).
            pub fn group(self) -> &'static str {
                match self {
                    $(OwnedKind::$kind => <$kind as k8s_openapi::Resource>::GROUP,)*
                }
            }

            /// `"deployments"`, ...
            pub fn plural(self) -> &'static str {
                match self {
                    $(OwnedKind::$kind => <$kind as k8s_openapi::Resource>::URL_PATH_SEGMENT,)*
                }
            }
        }

        impl Object {
            pub fn owned_kind(&self) -> OwnedKind {
                match self {
                    $(Object::$kind(_) => OwnedKind::$kind,)*
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(o) => o.meta(),)*
                }
            }

            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$kind(o) => o.meta_mut(),)*
                }
            }

            /// The object as JSON with apiVersion and kind, as server-side apply wants it.
            pub fn to_value(&self) -> serde_json::Value {
                // k8s-openapi's Serialize writes apiVersion and kind, and these types cannot fail.
                match self {
                    $(Object::$kind(o) => serde_json::to_value(o).unwrap_or_default(),)*
                }
            }
        }
    };
}

owned_kinds!(
    ServiceAccount,
    NetworkPolicy,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    Deployment,
    Service,
    Job,
);

impl Object {
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn kind(&self) -> &'static str {
        self.owned_kind().kind()
    }

    /// The `parity.dev/component` label.
    pub fn component(&self) -> Option<Component> {
        self.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_COMPONENT))
            .and_then(|c| Component::parse(c))
    }

    pub fn api_resource(&self) -> ApiResource {
        self.owned_kind().api_resource()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owned_kind_names_its_group_and_plural() {
        let ar = OwnedKind::NetworkPolicy.api_resource();
        assert_eq!(
            (
                ar.group.as_str(),
                ar.api_version.as_str(),
                ar.plural.as_str()
            ),
            (
                "networking.k8s.io",
                "networking.k8s.io/v1",
                "networkpolicies"
            )
        );
        assert_eq!(OwnedKind::ALL.len(), 8);
        for k in OwnedKind::ALL {
            let ar = k.api_resource();
            assert_eq!(
                (ar.kind.as_str(), ar.group.as_str(), ar.plural.as_str()),
                (k.kind(), k.group(), k.plural())
            );
        }
        assert_eq!(
            OwnedKind::PersistentVolumeClaim.plural(),
            "persistentvolumeclaims"
        );
        assert_eq!(OwnedKind::Deployment.group(), "apps");
    }
}
