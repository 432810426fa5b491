//! The one duration grammar of the project: Go-style units (`500ms`, `90s`, `15m`, `12h`,
//! `1h30m`) plus whole days (`7d`). The CRD's pattern ([`PATTERN`]) admits exactly what
//! [`parse_duration`] parses, so `spec.ttl` and `spec.keys.rotation.period` mean the same to
//! the API server, the operator and the command-line flags (`parity bootstrap --wait-timeout`,
//! `parity dashboard --stream-poll`). A leaf module: it depends on nothing in the crate.

use std::time::Duration;

/// The regex the CRD puts on duration fields: one or more `<1-6 digits><unit>` groups.
pub const PATTERN: &str = r"^([0-9]{1,6}(d|h|m|s|ms))+$";

/// Parses `90s`, `15m`, `12h`, `1h30m`, `7d`, `500ms`. A bare number has no unit and is
/// refused (is `30` seconds or minutes?), as is anything the CRD pattern refuses.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 90s, 2h, 1h30m, 7d"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 6 {
            return Err(bad());
        }
        let n: u32 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            match rest.as_bytes().first() {
                Some(b's') => (Duration::from_secs(1), 1),
                Some(b'm') => (Duration::from_secs(60), 1),
                Some(b'h') => (Duration::from_secs(3600), 1),
                Some(b'd') => (Duration::from_secs(86400), 1),
                _ => return Err(bad()),
            }
        };
        rest = &rest[len..];
        total = unit
            .checked_mul(n)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_go_units_plus_days_and_compounds() {
        for (text, want) in [
            ("90s", s(90)),
            ("2m", s(120)),
            ("1h30m", s(5400)),
            ("7d", s(7 * 86400)),
            ("500ms", Duration::from_millis(500)),
            ("250ms", Duration::from_millis(250)),
            ("1m30s500ms", Duration::from_millis(90_500)),
            ("999999d", s(999_999 * 86400)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_the_crd_pattern_refuses_and_names_the_input() {
        for bad in [
            "", "h", "10", "30", "1y", "-1h", "1.5h", "1h ", " 1h", "9999999s", "x", "1hh",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("{bad:?} is not a duration")),
                "{bad}: {err}"
            );
        }
    }

    /// The CRD pattern and the parser accept the same strings (checked on a grammar sample
    /// rather than a regex engine, which the crate does not depend on).
    #[test]
    fn the_crd_pattern_is_the_parsers_grammar() {
        for unit in ["d", "h", "m", "s", "ms"] {
            assert!(parse_duration(&format!("1{unit}")).is_ok(), "{unit}");
            assert!(parse_duration(&format!("123456{unit}")).is_ok(), "{unit}");
            assert!(parse_duration(&format!("1234567{unit}")).is_err(), "{unit}");
        }
    }
}
