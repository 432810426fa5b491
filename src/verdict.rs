//! A verdict on one part of an environment (keys, DynamoDB, secrets, the mirror...): whether
//! it is fine, a machine-readable reason and a message for people. Conditions are made of
//! verdicts, and a reason decides the type of the event that reports it.

use kube::runtime::events::EventType;

/// A condition reason (`KeyServiceStarting`, `BootstrapFailed`, ...): CamelCase, fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reason(pub &'static str);

/// The reasons that stop a reconcile until the user acts.
pub const INVALID_SPEC: Reason = Reason("InvalidSpec");
pub const KEYRING_UNAVAILABLE: Reason = Reason("KeyringUnavailable");
pub const SECRET_CONFLICT: Reason = Reason("SecretConflict");
pub const MIRROR_UNAVAILABLE: Reason = Reason("MirrorUnavailable");
pub const APPLY_FAILED: Reason = Reason("ApplyFailed");

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Warning for what needs the user (see the constants above) and for any failure,
    /// Normal for progress.
    pub fn event_type(self) -> EventType {
        event_type(self.0)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// [`Reason::event_type`] of a reason read back from a stored condition.
pub fn event_type(reason: &str) -> EventType {
    let needs_user = [
        INVALID_SPEC,
        KEYRING_UNAVAILABLE,
        SECRET_CONFLICT,
        MIRROR_UNAVAILABLE,
    ]
    .iter()
    .any(|r| r.0 == reason);
    if needs_user || reason.ends_with("Failed") {
        EventType::Warning
    } else {
        EventType::Normal
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: Reason,
    pub message: String,
}

impl Verdict {
    pub fn ok(reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            reason: Reason(reason),
            message: message.into(),
        }
    }

    pub fn not(reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: Reason(reason),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_what_needs_the_user_are_warnings_progress_is_normal() {
        for r in [
            "InvalidSpec",
            "KeyringUnavailable",
            "SecretConflict",
            "MirrorUnavailable",
            "ApplyFailed",
            "BootstrapFailed",
        ] {
            assert_eq!(event_type(r), EventType::Warning, "{r}");
        }
        for r in ["Ready", "KeyServiceStarting", "BootstrapRunning", "Drifted"] {
            assert_eq!(event_type(r), EventType::Normal, "{r}");
        }
        assert_eq!(APPLY_FAILED.event_type(), EventType::Warning);
    }
}
