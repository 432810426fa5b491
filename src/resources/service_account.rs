use k8s_openapi::api::core::v1::ServiceAccount;

use super::meta::{Component, names, object_meta};
use crate::api::ValidatedSpec;

/// One ServiceAccount per workload, without an API token: the workloads never call the
/// Kubernetes API.
pub fn service_account(env: &ValidatedSpec, component: Component) -> ServiceAccount {
    ServiceAccount {
        metadata: object_meta(env, names::service_account(&env.name, component), component),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}
