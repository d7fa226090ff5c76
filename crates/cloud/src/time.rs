//! The clouds' many time formats, read into `jiff::Timestamp`.
//!
//! * `YYYY-MM-DD HH:MM:SS` with no zone (EDAS and SAE create/finish times): read in a
//!   configurable UTC offset, default `+08:00` (the zone is unconfirmed; most likely China time).
//! * epoch milliseconds as a string (EDAS pipeline times) or an integer (SAE pipeline times).
//! * ISO-8601 / RFC 3339 with an offset or `Z` (AppStack).
//!
//! Anything unparseable gives `None`: a bad time never fails a poll.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use serde_json::Value;

/// The default offset of zone-less times: UTC+8.
pub const DEFAULT_OFFSET_SECONDS: i32 = 8 * 3600;

pub fn default_offset() -> Offset {
    Offset::from_seconds(DEFAULT_OFFSET_SECONDS).unwrap_or(Offset::UTC)
}

/// Parse `+08:00`, `-05:30`, `+0800`, `Z`/`UTC` into an offset.
pub fn parse_offset(s: &str) -> Option<Offset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(Offset::UTC);
    }
    let (sign, rest) = if let Some(rest) = s.strip_prefix('+') {
        (1, rest)
    } else if let Some(rest) = s.strip_prefix('-') {
        (-1, rest)
    } else {
        return None;
    };
    // Only ASCII digits (and the colon) can make an offset. Checking that first also keeps the
    // byte-offset split of `+0800` below on a character boundary: `+0é0` would otherwise be
    // split inside `é`, a panic on text that comes from a watch spec or a scenario file.
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None if rest.len() <= 2 => (rest, "0"),
        None => return None,
    };
    // At most two digits each, so `+000000000008:00` is not an offset either.
    if !(1..=2).contains(&h.len()) || !(1..=2).contains(&m.len()) {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// Epoch milliseconds below this are taken as seconds: as milliseconds they would fall in
/// early 1973, which no change order does.
const SECONDS_THRESHOLD: i64 = 100_000_000_000;

fn from_epoch_number(n: i64) -> Option<Timestamp> {
    // 0 (and negatives) mean "not set" in these APIs (e.g. a pipeline that has not started).
    if n <= 0 {
        return None;
    }
    if n < SECONDS_THRESHOLD {
        Timestamp::from_second(n).ok()
    } else {
        Timestamp::from_millisecond(n).ok()
    }
}

/// Parse one time string in any of the supported formats. `zone` applies to zone-less times.
pub fn parse_time_str(s: &str, zone: Offset) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return from_epoch_number(s.parse().ok()?);
    }
    if let Some(f) = s.parse::<f64>().ok().filter(|f| f.is_finite()) {
        // e.g. "1562831689704.0"; saturating cast is fine, the range check rejects nonsense.
        return from_epoch_number(f as i64);
    }
    // With an offset or `Z`: RFC 3339 / ISO 8601 (`2025-07-17T03:53:55.000+00:00`).
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts);
    }
    // Zone-less civil time, with a space or a `T` (`2019-11-13 14:23:46`).
    let dt: DateTime = s.parse().ok()?;
    zone.to_timestamp(dt).ok()
}

/// Parse a JSON value: a string in any supported format, or a number of epoch milliseconds
/// (seconds when small). Anything else gives `None`.
pub fn parse_time(v: &Value, zone: Offset) -> Option<Timestamp> {
    match v {
        Value::String(s) => parse_time_str(s, zone),
        Value::Number(n) => match n.as_i64() {
            Some(i) => from_epoch_number(i),
            None => n
                .as_f64()
                .filter(|f| f.is_finite())
                .and_then(|f| from_epoch_number(f as i64)),
        },
        _ => None,
    }
}

/// A duration that is not Go-style (`30s`, `5m`, `1h30m`, `250ms`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: use a number with a unit, e.g. 30s, 5m, 1h30m, 250ms")]
pub struct DurationError {
    pub text: String,
}

/// Go-style durations (`90s`, `1m30s`, `250ms`, `2h`), the format the CRD and the flags use.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, DurationError> {
    let err = || DurationError { text: s.to_string() };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn formats_table() {
        let cst = default_offset();
        let cases: &[(Value, Option<&str>)] = &[
            (json!("2019-11-13 14:23:46"), Some("2019-11-13T06:23:46Z")),
            (json!(" 2019-11-13 14:23:46 "), Some("2019-11-13T06:23:46Z")),
            (json!("2019-11-13T14:23:46"), Some("2019-11-13T06:23:46Z")),
            (json!("2019-11-13 14:23:46.5"), Some("2019-11-13T06:23:46.5Z")),
            (json!("1562831689704"), Some("2019-07-11T07:54:49.704Z")),
            (json!(1562831689704_i64), Some("2019-07-11T07:54:49.704Z")),
            (json!(1562831689704.0_f64), Some("2019-07-11T07:54:49.704Z")),
            (json!("1562831689"), Some("2019-07-11T07:54:49Z")),
            (json!(1562831689), Some("2019-07-11T07:54:49Z")),
            (
                json!("2025-07-17T03:53:55.000+00:00"),
                Some("2025-07-17T03:53:55Z"),
            ),
            (json!("2024-10-08T09:11:38Z"), Some("2024-10-08T09:11:38Z")),
            (json!("2024-10-08T17:11:38+08:00"), Some("2024-10-08T09:11:38Z")),
            (json!("0"), None),
            (json!(0), None),
            (json!(-1), None),
            (json!(""), None),
            (json!("   "), None),
            (json!("not a time"), None),
            (json!("2019-13-45 99:99:99"), None),
            (json!(null), None),
            (json!(true), None),
            (json!({"a": 1}), None),
            (json!([1]), None),
            (json!("99999999999999999999999"), None),
            (json!(9_999_999_999_999_999_i64), None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_time(v, cst), want.map(ts), "{v}");
        }
    }

    #[test]
    fn configurable_zone() {
        let utc = Offset::UTC;
        assert_eq!(
            parse_time_str("2019-11-13 14:23:46", utc),
            Some(ts("2019-11-13T14:23:46Z"))
        );
        let minus = parse_offset("-05:30").unwrap();
        assert_eq!(
            parse_time_str("2019-11-13 14:23:46", minus),
            Some(ts("2019-11-13T19:53:46Z"))
        );
        // An explicit offset in the value wins over the configured one.
        assert_eq!(
            parse_time_str("2024-10-08T09:11:38Z", minus),
            Some(ts("2024-10-08T09:11:38Z"))
        );
    }

    #[test]
    fn offsets_table() {
        for (s, secs) in [
            ("+08:00", Some(28800)),
            ("-05:30", Some(-19800)),
            ("+0800", Some(28800)),
            ("+8", Some(28800)),
            ("Z", Some(0)),
            ("UTC", Some(0)),
            ("+00:00", Some(0)),
            ("08:00", None),
            ("+24:00", None),
            ("+08:60", None),
            ("+a8:00", None),
            ("", None),
            ("+", None),
            ("+08:", None),
            ("+08:00:00", None),
            ("+008:00", None),
            ("+-8:00", None),
            ("++8", None),
        ] {
            assert_eq!(parse_offset(s).map(|o| o.seconds()), secs, "{s:?}");
        }
        assert_eq!(default_offset().seconds(), 28800);
    }

    /// Issue 7, defect 7: a non-ASCII zone of four bytes (`+` then one digit, a two-byte
    /// character and a digit) used to be split at byte 2, inside the character: a panic.
    #[test]
    fn non_ascii_zone_is_rejected_not_a_panic() {
        for s in [
            "+0é0",
            "-0é0",
            "+é00",
            "+00é",
            "+٠٨٠٠",
            "+08:é",
            "+\u{1F600}",
            "+0\u{1F600}",
        ] {
            assert_eq!(parse_offset(s), None, "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*", n in proptest::num::i64::ANY, f in proptest::num::f64::ANY) {
            let z = default_offset();
            let _ = parse_time_str(&s, z);
            let _ = parse_offset(&s);
            let _ = parse_time(&json!(n), z);
            let _ = parse_time(&json!(f), z);
        }
    }
}
