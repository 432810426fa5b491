//! A reason a value is invalid, at the path of the field that holds it: what `api::validate`
//! reports about a spec and `Topology::validate` about a topology (a leaf module, so both can
//! use it without depending on each other).

use std::fmt;

/// One problem, naming its field and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.keys.kms.keyId` or
    /// `tables[2].globalSecondaryIndexes[0].partitionKey.type`.
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins errors into one message for a condition or stderr.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
