//! Who may talk to whom. Each serving pod admits only its namespace's pods (spec.network
//! .ingress Namespace, the default); outside Local the dashboard is also cut off from the key
//! service, from both ends: the kms pod admits no dashboard, and the dashboard may only
//! reach DNS and DynamoDB.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Component, LABEL_COMPONENT, names, object_meta, selector};
use super::{BuildContext, DASHBOARD_PORT, DYNAMODB_PORT, KMS_PORT, SECRETS_API_PORT, plan};
use crate::api::{IngressMode, ValidatedSpec};
use crate::dashboard::config::CredentialSource;
use crate::tier::TierProfile;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// The port each serving component listens on (the Service's target port).
fn serving_port(component: Component) -> Option<i32> {
    match component {
        Component::Kms => Some(KMS_PORT),
        Component::DynamoDb => Some(DYNAMODB_PORT),
        Component::SecretsApi => Some(SECRETS_API_PORT),
        Component::Dashboard => Some(DASHBOARD_PORT),
        _ => None,
    }
}

/// Whether `component` gets an ingress policy: every serving pod while spec.network.ingress
/// is Namespace; with Any only the key service, where the tier cuts dashboards off.
pub fn has_ingress_policy(
    env: &ValidatedSpec,
    profile: &TierProfile,
    component: Component,
) -> bool {
    serving_port(component).is_some()
        && (env.spec.network.ingress == IngressMode::Namespace
            || (component == Component::Kms && profile.isolate_dashboard_from_kms))
}

/// `<env>-<component>-ingress`: who may connect to the component's pods.
/// * Namespace (default): pods of the environment's namespace. A NodePort'd Service (the
///   operator's NodePorts, Local tier only) also admits any address: a NodePort is a
///   deliberate exposure beyond the namespace, and the node rewrites the client's address.
/// * Any: every pod of every namespace, for the key service of a tier that isolates it (the
///   only component that keeps a policy then).
///
/// In a tier that cuts the dashboard off from the key service, the kms policy admits no
/// pod labelled as a dashboard.
pub fn ingress_policy(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
    component: Component,
) -> NetworkPolicy {
    let port = serving_port(component).unwrap_or(DASHBOARD_PORT);
    let isolate = component == Component::Kms && profile.isolate_dashboard_from_kms;
    let pods = LabelSelector {
        match_expressions: isolate.then(|| {
            vec![LabelSelectorRequirement {
                key: LABEL_COMPONENT.to_string(),
                operator: "NotIn".to_string(),
                values: Some(vec![Component::Dashboard.as_str().to_string()]),
            }]
        }),
        ..Default::default()
    };
    let mut from = vec![NetworkPolicyPeer {
        pod_selector: Some(pods),
        namespace_selector: (env.spec.network.ingress == IngressMode::Any)
            .then(LabelSelector::default),
        ..Default::default()
    }];
    if !isolate && node_ports(profile, ctx) {
        from.extend(["0.0.0.0/0", "::/0"].map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
    NetworkPolicy {
        metadata: object_meta(
            env,
            names::ingress_policy(&env.name, component),
            Component::NetworkPolicy,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(env, component)),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![tcp(port)]),
            }]),
            ..Default::default()
        }),
    }
}

/// The dashboard reaches DNS and DynamoDB only: its own DynamoDB Local pod, or (external
/// DynamoDB) the endpoint's port on spec.dynamodb.external.egressCidrs. Without those the
/// rule is any address on that port: an IP rule cannot tell DynamoDB's public addresses from
/// AWS KMS's, so zero knowledge then rests on the other fences (no key material, no key
/// service endpoint, and an IAM role without kms:Decrypt). With the SDK's default credential
/// chain it may also ask the EKS Pod Identity agent (link-local, port 80); IRSA's STS call
/// goes over the same HTTPS rule (or an STS VPC endpoint inside egressCidrs).
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
    let ip = |cidr: &str| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut rules = vec![dns];
    if plan(env, profile).dynamodb_pod {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(selector(env, Component::DynamoDb)),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(DYNAMODB_PORT)]),
        });
    } else {
        let external = env.spec.dynamodb.external.as_ref();
        let port = external.map(|e| url_port(&e.endpoint)).unwrap_or(443);
        let cidrs: Vec<&str> = match external {
            Some(e) if !e.egress_cidrs.is_empty() => {
                e.egress_cidrs.iter().map(String::as_str).collect()
            }
            _ => vec!["0.0.0.0/0", "::/0"],
        };
        rules.push(NetworkPolicyEgressRule {
            to: Some(cidrs.into_iter().map(ip).collect()),
            ports: Some(vec![tcp(port)]),
        });
    }
    if profile.dashboard_credentials == CredentialSource::DefaultChain {
        rules.push(NetworkPolicyEgressRule {
            to: Some(POD_IDENTITY_AGENT.iter().map(|c| ip(c)).collect()),
            ports: Some(vec![tcp(80)]),
        });
    }
    NetworkPolicy {
        metadata: object_meta(
            env,
            names::dashboard_egress_policy(&env.name),
            Component::NetworkPolicy,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(env, Component::Dashboard)),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(rules),
            ..Default::default()
        }),
    }
}

/// The EKS Pod Identity agent's link-local addresses (AWS_CONTAINER_CREDENTIALS_FULL_URI).
const POD_IDENTITY_AGENT: &[&str] = &["169.254.170.23/32", "fd00:ec2::23/128"];

/// Whether Services are NodePorts (see `workload::service`).
fn node_ports(profile: &TierProfile, ctx: &BuildContext) -> bool {
    ctx.node_ports && profile.node_ports_allowed
}

/// The port of an `http(s)://host[:port][/path]` URL: explicit, else the scheme's default
/// (validate() has already checked the endpoint; anything unparsable falls back to 443).
fn url_port(url: &str) -> i32 {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return 443;
    };
    match (uri.port_u16(), uri.scheme()) {
        (Some(p), _) => i32::from(p),
        (None, Some(s)) if *s == http::uri::Scheme::HTTP => 80,
        _ => 443,
    }
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
        assert_eq!(super::url_port("http://[fd00::1]:8000"), 8000);
        assert_eq!(super::url_port("https://[fd00::1]"), 443);
    }
}
