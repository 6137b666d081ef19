//! The wall clock, read in one place, and how times and durations are shown.
//! Logic elsewhere takes `now` as an argument (STYLE.md 5).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now. Commands read the wall clock here and
/// pass the value down.
pub fn now_unix() -> u64 {
    unix_secs(SystemTime::now())
}

/// Seconds since the Unix epoch at `t` (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Microseconds since the Unix epoch, now: the send and receive times of
/// per-frame stamps, compared across processes on one host.
pub fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Formats Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// Milliseconds with microsecond precision, as output shows them.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A duration in words, two units at most: "3 h 12 min", "45 s", "1 day 4 h".
pub fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        (1, _, _) => format!("1 day {h} h"),
        _ => format!("{d} days {h} h"),
    }
}

/// A duration in one rounded unit: "45 s", "12 min", "5 h", "1 day", "3 days".
pub fn human_rounded(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(human(45), "45 s");
        assert_eq!(human(3 * 3600 + 12 * 60), "3 h 12 min");
        assert_eq!(human(86_400 + 4 * 3600), "1 day 4 h");
        assert_eq!(human(2 * 86_400), "2 days 0 h");
        assert_eq!(human_rounded(90), "90 s");
        assert_eq!(human_rounded(3 * 86_400), "3 days");
        assert_eq!(rfc3339(1546064025), "2018-12-29T06:13:45Z");
    }
}
