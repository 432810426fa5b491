//! The `ParityEnvironment` custom resource (`parity.dev/v1alpha1`): spec, status, CEL rules,
//! defaults, the pure `validate`, and the CRD document.

mod crd;
mod spec;
mod status;
mod validate;

/// The string formats, shared with the topology (a leaf module: `crate::formats`).
pub use crate::formats;

pub use crd::crd_yaml;
pub use spec::*;
pub use status::*;
pub use validate::{
    ANNOTATION_ADOPT_EXISTING, ANNOTATION_MIRROR_ALLOWED_NAMESPACES, FieldError, ValidatedSpec,
    check_mirror_source, describe, validate,
};

#[cfg(test)]
mod tests;
