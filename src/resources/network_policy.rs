//! Outside Local the dashboard is cut off from the key service, from both ends: the kms pod
//! admits no dashboard, and the dashboard may only reach DNS and DynamoDB.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Component, LABEL_COMPONENT, names, object_meta, selector};
use super::{DYNAMODB_PORT, KMS_PORT, plan};
use crate::api::ValidatedSpec;
use crate::tier::TierProfile;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// The kms pod accepts connections from pods of its namespace, except any dashboard.
pub fn kms_ingress_policy(env: &ValidatedSpec, _profile: &TierProfile) -> NetworkPolicy {
    NetworkPolicy {
        metadata: object_meta(
            env,
            names::kms_ingress_policy(&env.name),
            Component::NetworkPolicy,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(env, Component::Kms)),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: LABEL_COMPONENT.to_string(),
                            operator: "NotIn".to_string(),
                            values: Some(vec![Component::Dashboard.as_str().to_string()]),
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(KMS_PORT)]),
            }]),
            ..Default::default()
        }),
    }
}

/// The dashboard reaches DNS and DynamoDB only: its own DynamoDB Local pod, or (external
/// DynamoDB) HTTPS/HTTP endpoints outside the cluster's pods, which the kms ingress policy
/// still guards.
pub fn dashboard_egress_policy(env: &ValidatedSpec, profile: &TierProfile) -> NetworkPolicy {
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]),
        ports: Some(vec![
            NetworkPolicyPort {
                port: Some(IntOrString::Int(53)),
                protocol: Some("UDP".to_string()),
                ..Default::default()
            },
            tcp(53),
        ]),
    };
    let dynamodb = if plan(env, profile).dynamodb_pod {
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(selector(env, Component::DynamoDb)),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(DYNAMODB_PORT)]),
        }
    } else {
        let port = env
            .spec
            .dynamodb
            .external
            .as_ref()
            .map(|e| url_port(&e.endpoint))
            .unwrap_or(443);
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(port)]),
        }
    };
    NetworkPolicy {
        metadata: object_meta(
            env,
            names::dashboard_egress_policy(&env.name),
            Component::NetworkPolicy,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(env, Component::Dashboard)),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(vec![dns, dynamodb]),
            ..Default::default()
        }),
    }
}

/// The port of an `http(s)://host[:port][/path]` URL.
fn url_port(url: &str) -> i32 {
    let (default, rest) = match url.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some((_, rest)) => (443, rest),
        None => (443, url),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_port_defaults_by_scheme() {
        assert_eq!(
            super::url_port("https://dynamodb.eu-west-1.amazonaws.com"),
            443
        );
        assert_eq!(super::url_port("http://10.0.0.1:8000/x"), 8000);
        assert_eq!(super::url_port("http://ddb"), 80);
    }
}
