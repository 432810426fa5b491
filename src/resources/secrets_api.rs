//! `<env>-secrets-api`: `parity secrets-api` (docs/secrets.md), the part of Infisical's REST
//! API the official SDKs use, serving the Local provider's `<env>-secrets`. At parity level 3
//! an app's Infisical SDK code runs unmodified with only the site URL changed.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, SecretVolumeSource, Service, Volume};

use super::keyring::create_once_secret;
use super::kms::secret_volume;
use super::meta::{Component, names};
use super::security::{NONROOT_UID, resources};
use super::workload::{
    deployment, http_probe, liveness, parity_container, pod_template, read_only_mount, readiness,
    service,
};
use super::{BuildContext, SECRETS_API_NODE_PORT, SECRETS_API_PORT};
use crate::api::ValidatedSpec;
use crate::tier::TierProfile;

/// Where `<env>-secrets` is mounted, one file per secret (the kubelet refreshes it in place).
pub const SECRETS_DIR: &str = "/etc/parity/secrets";
/// Where the secrets-api credentials Secret is mounted (client secret only).
pub const SECRETS_API_CREDENTIALS_DIR: &str = "/etc/parity/secrets-api-credentials";
/// Data keys of `<env>-secrets-api-credentials`: the universal-auth pair apps log in with.
pub const SECRETS_API_CLIENT_ID_KEY: &str = "client-id";
pub const SECRETS_API_CLIENT_SECRET_KEY: &str = "client-secret";

/// The universal-auth client id apps log in with. Not a secret.
pub fn secrets_api_client_id(env: &ValidatedSpec) -> String {
    format!("parity-{}", env.name)
}

/// The credentials Secret's shape, annotated create-once: the controller creates it with
/// [`secrets_api_credentials_secret_with`] and never applies over it.
pub fn secrets_api_credentials_secret(env: &ValidatedSpec) -> Secret {
    create_once_secret(env, names::secrets_api_credentials(&env.name))
}

/// [`secrets_api_credentials_secret`] with its data. `client_secret` must come from a CSPRNG;
/// the returned Secret must never be logged.
pub fn secrets_api_credentials_secret_with(env: &ValidatedSpec, client_secret: &str) -> Secret {
    let mut secret = secrets_api_credentials_secret(env);
    secret.data = Some(BTreeMap::from([
        (
            SECRETS_API_CLIENT_ID_KEY.to_string(),
            ByteString(secrets_api_client_id(env).into_bytes()),
        ),
        (
            SECRETS_API_CLIENT_SECRET_KEY.to_string(),
            ByteString(client_secret.as_bytes().to_vec()),
        ),
    ]));
    secret
}

/// The container arguments. With spec.secrets.infisical set, only that project, environment
/// and path are served, so the app's SDK calls are the ones it makes against staging.
pub fn secrets_api_args(env: &ValidatedSpec) -> Vec<String> {
    let mut args = vec![
        "secrets-api".to_string(),
        format!("--listen=0.0.0.0:{SECRETS_API_PORT}"),
        format!("--secrets-dir={SECRETS_DIR}"),
        format!("--client-id={}", secrets_api_client_id(env)),
        format!(
            "--client-secret-file={SECRETS_API_CREDENTIALS_DIR}/{SECRETS_API_CLIENT_SECRET_KEY}"
        ),
    ];
    if let Some(i) = &env.spec.secrets.infisical {
        args.push(format!("--project={}", i.project_slug));
        args.push(format!("--environment={}", i.env_slug));
        args.push(format!("--secret-path={}", i.secrets_path));
    }
    args
}

pub fn secrets_api_deployment(
    env: &ValidatedSpec,
    _profile: &TierProfile,
    ctx: &BuildContext,
) -> Deployment {
    let mut container = parity_container(
        ctx,
        "secrets-api",
        secrets_api_args(env),
        Vec::new(),
        Some(SECRETS_API_PORT),
        resources(("10m", "16Mi"), ("200m", "64Mi")),
    );
    container.readiness_probe = Some(readiness(http_probe("/healthz")));
    container.liveness_probe = Some(liveness(http_probe("/healthz")));
    // Every key of the Secret: new schema entries appear without a change here.
    let secrets = Volume {
        name: "secrets".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::secrets(&env.name)),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    };
    let credentials = secret_volume(
        "credentials",
        names::secrets_api_credentials(&env.name),
        &[SECRETS_API_CLIENT_SECRET_KEY],
    );
    container.volume_mounts = Some(vec![
        read_only_mount("secrets", SECRETS_DIR),
        read_only_mount("credentials", SECRETS_API_CREDENTIALS_DIR),
    ]);
    let template = pod_template(
        env,
        ctx,
        Component::SecretsApi,
        NONROOT_UID,
        container,
        vec![secrets, credentials],
        None,
    );
    deployment(
        env,
        Component::SecretsApi,
        names::secrets_api(&env.name),
        template,
        false,
    )
}

pub fn secrets_api_service(
    env: &ValidatedSpec,
    profile: &TierProfile,
    ctx: &BuildContext,
) -> Service {
    service(
        env,
        profile,
        ctx,
        Component::SecretsApi,
        names::secrets_api(&env.name),
        SECRETS_API_PORT,
        SECRETS_API_NODE_PORT,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Object, build_all, endpoints, plan};
    use super::*;
    use crate::api::{ParityEnvironment, validate};

    fn env(tier: &str, level: i32, secrets: &str) -> ValidatedSpec {
        let dynamodb = if tier == "Staging" {
            r#"{external: {endpoint: "https://dynamodb.eu-west-1.amazonaws.com", region: eu-west-1}}"#
        } else {
            "{}"
        };
        let yaml = format!(
            r#"
apiVersion: parity.dev/v1alpha1
kind: ParityEnvironment
metadata: {{name: dev, namespace: team}}
spec:
  tier: {tier}
  parityLevel: {level}
  keys: {{provider: Kms, kms: {{keyId: "arn:aws:kms:eu-west-1:1:key/x", region: eu-west-1}}}}
  dynamodb: {dynamodb}
  secrets: {secrets}
"#
        );
        let mut e: ParityEnvironment = serde_yaml::from_str(&yaml).expect("parse test env");
        e.metadata.uid = Some("1234".to_string());
        validate(&e).unwrap_or_else(|e| panic!("invalid test env: {e:?}"))
    }

    const LOCAL_SCHEMA: &str = "{schema: {name: app-secrets, key: secrets.schema.json}}";

    fn secrets_api(env: &ValidatedSpec) -> Option<Deployment> {
        build_all(env, env.profile, &BuildContext::new("img"))
            .into_iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some("dev-secrets-api") => {
                    Some(d)
                }
                _ => None,
            })
    }

    #[test]
    fn only_at_level_3_with_local_generated_secrets() {
        for tier in ["Local", "CI"] {
            assert!(secrets_api(&env(tier, 3, LOCAL_SCHEMA)).is_some(), "{tier}");
            assert!(
                secrets_api(&env(tier, 2, LOCAL_SCHEMA)).is_none(),
                "{tier} level 2"
            );
            // Without a schema there is nothing to serve.
            assert!(
                secrets_api(&env(tier, 3, "{}")).is_none(),
                "{tier} no schema"
            );
        }
        // Infisical-synced secrets are read from Infisical itself.
        let infisical = "{provider: Infisical, schema: {name: s, key: k}, infisical: {projectSlug: p, envSlug: staging}}";
        assert!(secrets_api(&env("Staging", 3, infisical)).is_none());
        let e = env("Local", 3, LOCAL_SCHEMA);
        assert!(plan(&e, e.profile).secrets_api);
        assert_eq!(
            endpoints(&e, e.profile, &BuildContext::new("img"))
                .secrets
                .as_deref(),
            Some("http://dev-secrets-api.team.svc:8095")
        );
        assert_eq!(
            endpoints(
                &env("Local", 2, LOCAL_SCHEMA),
                e.profile,
                &BuildContext::new("img")
            )
            .secrets,
            None
        );
    }

    #[test]
    fn args_parse_with_parity_secrets_api_and_point_at_the_mounts() {
        let e = env(
            "Local",
            3,
            "{schema: {name: s, key: k}, infisical: {projectSlug: shop, envSlug: dev, secretsPath: /app}}",
        );
        let d = secrets_api(&e).expect("secrets-api Deployment");
        let pod = d.spec.template.spec.as_ref().expect("pod spec");
        let c = &pod.containers[0];
        let mut argv = vec!["parity".to_string()];
        argv.extend(c.args.clone().unwrap_or_default());
        let cli = crate::cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("parity secrets-api rejects {argv:?}: {e}"));
        let crate::cli::Command::SecretsApi(a) = cli.command else {
            panic!("not secrets-api: {argv:?}");
        };
        assert_eq!(
            a.secrets_dir.as_deref(),
            Some(std::path::Path::new(SECRETS_DIR))
        );
        assert_eq!(a.client_id, "parity-dev");
        assert_eq!(a.project.as_deref(), Some("shop"));
        assert_eq!(a.environment.as_deref(), Some("dev"));
        assert_eq!(a.secret_path, "/app");
        // The files it reads are where the volumes are mounted.
        let mounts = c.volume_mounts.clone().unwrap_or_default();
        let mounted = |path: &str| mounts.iter().any(|m| m.mount_path == path);
        assert!(mounted(SECRETS_DIR));
        assert!(mounted(SECRETS_API_CREDENTIALS_DIR));
        let secret_file = a.client_secret_file.expect("client secret file");
        assert_eq!(
            secret_file,
            std::path::Path::new(SECRETS_API_CREDENTIALS_DIR).join(SECRETS_API_CLIENT_SECRET_KEY)
        );
        let volumes = pod.volumes.clone().unwrap_or_default();
        let secret_of = |name: &str| {
            volumes
                .iter()
                .find(|v| v.name == name)
                .and_then(|v| v.secret.as_ref())
                .and_then(|s| s.secret_name.clone())
        };
        assert_eq!(secret_of("secrets").as_deref(), Some("dev-secrets"));
        assert_eq!(
            secret_of("credentials").as_deref(),
            Some("dev-secrets-api-credentials")
        );
        // No secret value on the command line or in the environment.
        assert!(c.env.is_none());
    }

    #[test]
    fn credentials_are_created_once_with_the_client_id() {
        let e = env("Local", 3, LOCAL_SCHEMA);
        let s = secrets_api_credentials_secret_with(&e, "s3cr3t");
        let data = s.data.unwrap_or_default();
        assert_eq!(data[SECRETS_API_CLIENT_ID_KEY].0, b"parity-dev");
        assert_eq!(data[SECRETS_API_CLIENT_SECRET_KEY].0, b"s3cr3t");
        let shape = secrets_api_credentials_secret(&e);
        assert!(shape.data.is_none());
        assert_eq!(
            shape.metadata.annotations.unwrap_or_default()[super::super::ANNOTATION_CREATE_ONCE],
            "true"
        );
    }

    #[test]
    fn pod_template_annotation_lands_on_workloads_only() {
        let e = env("Local", 3, LOCAL_SCHEMA);
        let mut objs = build_all(&e, e.profile, &BuildContext::new("img"));
        for o in &mut objs {
            super::super::annotate_pod_template(o, "parity.dev/secrets-hash", "hmac-sha256:ab");
        }
        for o in &objs {
            let annotated = match o {
                Object::Deployment(d) => d.spec.template.metadata.as_ref(),
                Object::Job(j) => j.spec.as_ref().and_then(|s| s.template.metadata.as_ref()),
                _ => None,
            }
            .and_then(|m| m.annotations.as_ref())
            .is_some_and(|a| a["parity.dev/secrets-hash"] == "hmac-sha256:ab");
            assert_eq!(
                annotated,
                matches!(o, Object::Deployment(_) | Object::Job(_)),
                "{}",
                o.name()
            );
        }
    }
}
