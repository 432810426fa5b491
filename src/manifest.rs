//! ParityEnvironments read from files, as `parity render` and `parity dev` take them:
//! parsed, validated with the operator's rules and their mirror sources resolved, with every
//! problem named by document and field.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::api::{ParityEnvironment, ValidatedSpec, validate};

/// Stands in for the uid the API server would assign, in owner references.
pub const RENDER_PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The ParityEnvironments of a YAML stream (with their 1-based document numbers), the
/// namespace filled in when given.
fn environments(
    yaml: &str,
    source: &str,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<(usize, ParityEnvironment)>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("{source}: document {}: not YAML", i + 1))?;
        // Files may carry what an environment references (a seed Secret, a ConfigMap).
        if value.is_null()
            || value.get("kind").and_then(|k| k.as_str()) != Some("ParityEnvironment")
        {
            continue;
        }
        let mut env: ParityEnvironment = serde_yaml::from_value(value)
            .with_context(|| format!("{source}: document {}: not a ParityEnvironment", i + 1))?;
        if env.metadata.namespace.is_none() {
            env.metadata.namespace = namespace.map(str::to_string);
        }
        if env.metadata.uid.is_none() {
            env.metadata.uid = Some(RENDER_PLACEHOLDER_UID.to_string());
        }
        out.push((i + 1, env));
    }
    Ok(out)
}

/// What `--mirror-source FILE` holds: the environments spec.mirror.from may name, or, in a
/// file without any, the topology that stands in for spec.mirror.configMapRef's ConfigMap.
#[derive(Clone, Debug, Default)]
pub struct MirrorSources {
    pub environments: Vec<ParityEnvironment>,
    /// (file name, topology).
    pub topology: Option<(String, crate::dynamo::topology::Topology)>,
}

/// The source spec.mirror.from names, among `candidates`: by name, and by namespace when
/// both the reference and the candidate give one (a source file without namespaces
/// stands for whichever namespace it is applied to).
fn find_source<'a>(
    env: &ParityEnvironment,
    candidates: &'a [ParityEnvironment],
) -> Option<&'a ParityEnvironment> {
    let from = env.spec.mirror.as_ref()?.from.as_ref()?;
    candidates.iter().find(|c| {
        c.metadata.name.as_deref() == Some(from.name.as_str())
            && from
                .namespace
                .as_ref()
                .zip(c.metadata.namespace.as_ref())
                .is_none_or(|(want, have)| want == have)
    })
}

/// The environments in `yaml`, validated with the same rules as the operator, their mirror
/// sources resolved from `sources` (and the environments of `yaml` itself). Errors name the
/// document and field; all of them are reported at once.
pub fn validated_environments(
    yaml: &str,
    source: &str,
    namespace: &str,
    sources: &MirrorSources,
) -> anyhow::Result<Vec<ValidatedSpec>> {
    use crate::mirror::Source;
    let envs = environments(yaml, source, Some(namespace))?;
    let candidates: Vec<ParityEnvironment> = envs
        .iter()
        .map(|(_, e)| e)
        .chain(&sources.environments)
        .cloned()
        .collect();
    let file_topology = sources.topology.as_ref().map(|(f, t)| (f.as_str(), t));
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (doc, env) in &envs {
        let name = env.metadata.name.clone().unwrap_or_default();
        let valid = validate(env).and_then(|mut valid| {
            if valid.spec.mirror.is_some() {
                let from = match valid.spec.mirror.as_ref().and_then(|m| m.from.as_ref()) {
                    Some(_) => Source::Environment(find_source(env, &candidates)),
                    None => Source::File(file_topology),
                };
                let m = crate::mirror::evaluate(&valid, from).map_err(|e| {
                    vec![crate::api::FieldError::new(
                        e.path,
                        format!("{} (give the source with --mirror-source FILE)", e.message),
                    )]
                })?;
                valid.mirrored = m.resolved;
            }
            Ok(valid)
        });
        match valid {
            Ok(valid) => {
                for d in valid.spec.deprecations() {
                    eprintln!("warning: {source}: document {doc} ({name}): {d}");
                }
                out.push(valid)
            }
            Err(errors) => {
                for e in errors {
                    problems.push(format!("  {source}: document {doc} ({name}): {e}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!("invalid ParityEnvironment:\n{}", problems.join("\n"));
    }
    Ok(out)
}

/// The environments of a `--mirror-source` file (namespaces as written), or, if it has none,
/// its topology (as `parity capture` prints it).
pub fn mirror_sources(path: &std::path::Path) -> anyhow::Result<MirrorSources> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let name = path.display().to_string();
    let environments: Vec<ParityEnvironment> = environments(&text, &name, None)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    if !environments.is_empty() {
        return Ok(MirrorSources {
            environments,
            topology: None,
        });
    }
    let topology = crate::dynamo::topology::Topology::from_document_str(&text).with_context(|| {
        format!("--mirror-source {name}: neither a ParityEnvironment nor a topology as `parity capture` prints it")
    })?;
    Ok(MirrorSources {
        environments,
        topology: Some((name, topology)),
    })
}
