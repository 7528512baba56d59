//! Timestamps and the human durations of the AGE column.
//!
//! kubectl shows whatever string the server puts in a cell, so the durations must be
//! formatted here exactly as upstream's `k8s.io/apimachinery/pkg/util/duration.HumanDuration`
//! does, or `kubectl get` would print ages that differ from a real cluster's.
//! RFC 3339 is parsed by hand because the only timestamps Kubernetes writes are the two
//! fixed layouts of `metav1.Time` and `metav1.MicroTime`, which does not justify a
//! date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch. `i128` holds every instant RFC 3339 can write,
/// so computing a difference can never overflow before it is clamped to Go's range.
pub(crate) type UnixNanos = i128;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

/// Converts a [`SystemTime`] to nanoseconds since the epoch, negative before 1970,
/// so that a clock set in the past still yields a usable "now".
pub(crate) fn unix_nanos(t: SystemTime) -> UnixNanos {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// Formats a signed duration, given in nanoseconds like Go's `time.Duration`, with the
/// limited precision upstream's `duration.HumanDuration` uses: two or three significant
/// figures, e.g. `"45s"`, `"3m20s"`, `"10m"`, `"5h3m"`, `"2d3h"`, `"45d"`, `"3y120d"`.
///
/// A duration between -2s and 0 prints as `"0s"`, because a creation timestamp
/// slightly in the future only means the clocks of two machines disagree a little;
/// anything more negative prints as `"<invalid>"`.
pub fn human_duration(nanos: i64) -> String {
    // Integer division truncates toward zero, as Go's int(d.Seconds()) does.
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / NANOS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let days_of_year = (hours / 24) % 365;
        if days_of_year == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{days_of_year}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// The time elapsed from `timestamp` to `now`, as the AGE column shows it.
///
/// A missing timestamp is `"<unknown>"`, as upstream prints a zero `metav1.Time`.
/// An unparseable one is treated the same way: upstream would have refused to decode
/// the object at all, and a listing should not fail because of one odd object.
pub fn translate_timestamp_since(timestamp: Option<&str>, now: SystemTime) -> String {
    since(timestamp, unix_nanos(now))
}

/// [`translate_timestamp_since`] with "now" already converted, for the printers.
pub(crate) fn since(timestamp: Option<&str>, now: UnixNanos) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(t) => elapsed(t, now),
        None => "<unknown>".to_string(),
    }
}

/// The human duration from the instant `t` to `now`.
pub(crate) fn elapsed(t: UnixNanos, now: UnixNanos) -> String {
    human_duration(clamp_to_go_duration(now - t))
}

/// Go's `Time.Sub` saturates at the limits of `time.Duration` instead of overflowing;
/// clamping reproduces that, so that absurd timestamps still print something sensible.
fn clamp_to_go_duration(nanos: i128) -> i64 {
    nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123456Z`,
/// `2024-05-01T14:00:00+02:00`) into nanoseconds since the epoch.
/// Returns `None` for anything else, including impossible dates such as February 30.
pub(crate) fn parse_rfc3339(s: &str) -> Option<UnixNanos> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut i = 19;
    let mut fraction_nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale: i128 = 100_000_000;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            // Digits beyond nanoseconds are dropped, as Go's parser does.
            fraction_nanos += i128::from(d - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }

    let offset_seconds: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let magnitude = oh * 3600 + om * 60;
            if sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * i128::from(NANOS_PER_SECOND) + fraction_nanos)
}

/// Reads `len` ASCII digits at `at` as a number, or `None` if any is not a digit.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0i64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date
/// (Howard Hinnant's `days_from_civil`, which needs no tables and no loops).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March is 0, February is 11.
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: i64 = NANOS_PER_SECOND;

    #[test]
    fn human_duration_matches_upstream_table() {
        // The cases of upstream's duration_test.go, plus the boundaries between branches.
        let cases: &[(i64, &str)] = &[
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (-S, "0s"),
            (0, "0s"),
            (S / 2, "0s"),
            (S, "1s"),
            (70 * S, "70s"),
            (119 * S, "119s"),
            (120 * S, "2m"),
            (200 * S, "3m20s"),
            (9 * 60 * S + 59 * S, "9m59s"),
            (10 * 60 * S, "10m"),
            (179 * 60 * S, "179m"),
            (180 * 60 * S, "3h"),
            (3 * 3600 * S + 5 * 60 * S, "3h5m"),
            (7 * 3600 * S + 59 * 60 * S, "7h59m"),
            (8 * 3600 * S, "8h"),
            (47 * 3600 * S + 59 * 60 * S, "47h"),
            (48 * 3600 * S, "2d"),
            (51 * 3600 * S, "2d3h"),
            (8 * 24 * 3600 * S - 1, "7d23h"),
            (8 * 24 * 3600 * S, "8d"),
            (45 * 24 * 3600 * S, "45d"),
            (729 * 24 * 3600 * S, "729d"),
            (730 * 24 * 3600 * S, "2y"),
            ((3 * 365 + 120) * 24 * 3600 * S, "3y120d"),
            (8 * 365 * 24 * 3600 * S, "8y"),
            (9 * 365 * 24 * 3600 * S + 30 * 24 * 3600 * S, "9y"),
            (i64::MAX, "292y"),
        ];
        for &(nanos, want) in cases {
            assert_eq!(human_duration(nanos), want, "for {nanos}ns");
        }
    }

    #[test]
    fn parses_the_layouts_kubernetes_writes() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00Z"), Some(1_714_564_800 * i128::from(S)));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00.123456Z"), Some(1_714_564_800 * i128::from(S) + 123_456_000));
        assert_eq!(parse_rfc3339("2024-05-01T14:30:00+02:30"), parse_rfc3339("2024-05-01T12:00:00Z"));
        assert_eq!(parse_rfc3339("2024-05-01T07:00:00-05:00"), parse_rfc3339("2024-05-01T12:00:00Z"));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400 * i128::from(S)));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-i128::from(S)));
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01T12:00:00é",
            "twenty-twenty-four",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn translate_timestamp_since_uses_the_given_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800 + 200);
        assert_eq!(translate_timestamp_since(Some("2024-05-01T12:00:00Z"), now), "3m20s");
        assert_eq!(translate_timestamp_since(None, now), "<unknown>");
        assert_eq!(translate_timestamp_since(Some("yesterday"), now), "<unknown>");
        // A timestamp a whole minute in the future is a broken clock, not "0s".
        assert_eq!(translate_timestamp_since(Some("2024-05-01T12:04:20Z"), now), "<invalid>");
    }

    #[test]
    fn now_before_the_epoch_is_negative() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(unix_nanos(before), -5 * i128::from(S));
    }
}
