//! Whose a create-once Secret is: the rules that keep the operator from using or overwriting
//! key material and credentials it did not make for this environment (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::resources::{
    ANNOTATION_ADOPT_EXISTING, ANNOTATION_ENVIRONMENT_UID, ANNOTATION_RETAINED, LABEL_ENVIRONMENT,
    LABEL_MANAGED_BY, MANAGED_BY,
};

/// The verdict on an existing Secret named like one of the environment's create-once Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Made for this environment (its uid in an owner reference or the uid annotation).
    Ours,
    /// Kept by deletionPolicy Retain for an earlier environment of the same name: adopt it.
    Retained,
    /// Anyone else's. The reason says why, for the condition message.
    Foreign(String),
}

/// Decides whose `meta` is, for environment `env_name` with uid `env_uid`.
pub fn claim(meta: &ObjectMeta, env_name: &str, env_uid: &str) -> Claim {
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k));
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == env_uid);
    if owned || annotation(ANNOTATION_ENVIRONMENT_UID).is_some_and(|u| u == env_uid) {
        return Claim::Ours;
    }
    if label(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return Claim::Foreign("it was not made by parity-operator".into());
    }
    if label(LABEL_ENVIRONMENT).map(String::as_str) != Some(env_name) {
        return Claim::Foreign("parity-operator made it for another environment".into());
    }
    let retained = annotation(ANNOTATION_RETAINED).is_some_and(|v| v == "true");
    if retained && annotation(ANNOTATION_ENVIRONMENT_UID).is_some() {
        return Claim::Retained;
    }
    Claim::Foreign("parity-operator made it for an earlier environment of this name, which did not retain it on deletion".into())
}

/// The message for a Secret the environment may not use, naming the way out.
pub fn refusal(kind: &str, name: &str, why: &str) -> String {
    format!(
        "{kind} Secret {name} already exists and {why}: it is left untouched. Delete or rename it, \
         or annotate the environment {ANNOTATION_ADOPT_EXISTING}=true to take it over"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn meta(
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        owner: Option<&str>,
    ) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    const OURS: [(&str, &str); 2] = [(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_ENVIRONMENT, "dev")];

    #[test]
    fn a_secret_made_for_this_environment_is_ours_by_uid_annotation_or_owner() {
        let by_annotation = meta(&OURS, &[(ANNOTATION_ENVIRONMENT_UID, "u1")], None);
        assert_eq!(claim(&by_annotation, "dev", "u1"), Claim::Ours);
        // Keyrings made before the uid annotation existed carried an owner reference.
        assert_eq!(
            claim(&meta(&OURS, &[], Some("u1")), "dev", "u1"),
            Claim::Ours
        );
    }

    #[test]
    fn only_a_keyring_retained_for_this_name_is_adopted() {
        let retained = [
            (ANNOTATION_ENVIRONMENT_UID, "old"),
            (ANNOTATION_RETAINED, "true"),
        ];
        assert_eq!(
            claim(&meta(&OURS, &retained, None), "dev", "new"),
            Claim::Retained
        );
        // The earlier environment was deleted without retaining it (or someone copied it).
        let not_retained = meta(&OURS, &[(ANNOTATION_ENVIRONMENT_UID, "old")], None);
        assert!(matches!(
            claim(&not_retained, "dev", "new"),
            Claim::Foreign(_)
        ));
        // Retained by another environment: not ours to take.
        assert!(matches!(
            claim(&meta(&OURS, &retained, None), "other", "new"),
            Claim::Foreign(_)
        ));
    }

    #[test]
    fn a_secret_parity_operator_did_not_make_is_foreign_whatever_it_claims() {
        // Retained and uid annotations without our labels: someone else's Secret.
        let forged = meta(
            &[],
            &[
                (ANNOTATION_ENVIRONMENT_UID, "old"),
                (ANNOTATION_RETAINED, "true"),
            ],
            None,
        );
        match claim(&forged, "dev", "new") {
            Claim::Foreign(why) => assert!(why.contains("not made by parity-operator"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            claim(&meta(&[], &[], Some("x")), "dev", "new"),
            Claim::Foreign(_)
        ));
    }
}
