//! The build step (pure): every object the environment should have, as the builders list it
//! ([`resources::desired`]), with the keyed hash of `<env>-secrets` on the pod templates of
//! the workloads that read it, so that they roll when it changes.

use crate::api::ValidatedSpec;
use crate::resources::{self, BuildContext, Desired};

pub fn desired(
    valid: &ValidatedSpec,
    ctx: &BuildContext,
    secrets_hash: Option<&str>,
) -> Vec<Desired> {
    let mut desired = resources::desired(valid, valid.profile, ctx);
    if let Some(hash) = secrets_hash {
        for d in &mut desired {
            if let Desired::Apply(o) = d
                && o.component()
                    .is_some_and(|c| resources::READS_SECRETS.contains(&c))
            {
                resources::annotate_pod_template(o, crate::secrets::ROLLOUT_ANNOTATION, hash);
            }
        }
    }
    desired
}
