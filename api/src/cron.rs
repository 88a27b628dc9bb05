//! CronJob schedules as Kubernetes reads them (robfig/cron's standard parser: five fields or
//! an `@hourly`-style descriptor, day-of-month and day-of-week OR'd as in Vixie cron), the
//! time zone rules of `spec.timeZone`, and the schedule arithmetic the CronJob controller
//! needs (next run, most recent missed run, how many were missed).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// More missed start times than this and the controller reports `TooManyMissedTimes`
/// (Kubernetes' limit of 100).
pub const MAX_MISSED_REPORTED: usize = 100;

/// A parsed `spec.schedule`.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

/// Parses a schedule, with robfig/cron's wording for a wrong field count. `TZ=`/`CRON_TZ=`
/// prefixes are refused by validation before this is reached (see [`tz_in_schedule`]).
pub fn parse(schedule: &str) -> Result<Schedule, String> {
    let trimmed = schedule.trim();
    let pattern = match trimmed {
        "@midnight" => "@daily",
        other => other,
    };
    if pattern.starts_with("@every") {
        return Err(format!(
            "unsupported descriptor {pattern:?}: use a five-field schedule"
        ));
    }
    if !pattern.starts_with('@') {
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
    } else if !matches!(
        pattern,
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@hourly"
    ) {
        return Err(format!("unrecognized descriptor: {pattern}"));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    parser
        .parse(pattern)
        .map(|cron| Schedule { cron })
        .map_err(|e| e.to_string())
}

/// Whether a schedule carries a `TZ=` or `CRON_TZ=` prefix, which Kubernetes refuses in
/// favour of `spec.timeZone`.
pub fn tz_in_schedule(schedule: &str) -> bool {
    schedule.contains("TZ")
}

/// The message for a bad `spec.timeZone`, or the zone, as `validateTimeZone` words it.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() {
        return Err("timeZone must be nil or non-empty string".into());
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    if !valid_chars {
        return Err(format!("unknown time zone {name}"));
    }
    TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
}

impl Schedule {
    /// The first scheduled time strictly after `after`, in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The scheduled times in `(earliest, now]` the controller has not acted on: the most
    /// recent one and how many there were, counting at most `MAX_MISSED_REPORTED + 1`
    /// (`mostRecentScheduleTime` in Kubernetes' CronJob controller).
    pub fn missed(&self, earliest: Timestamp, now: Timestamp, tz: &TimeZone) -> Missed {
        let mut count = 0;
        let mut cursor = earliest;
        while count <= MAX_MISSED_REPORTED {
            match self.next_after(cursor, tz) {
                Some(t) if t <= now => {
                    count += 1;
                    cursor = t;
                }
                _ => break,
            }
        }
        let most_recent = if count > MAX_MISSED_REPORTED {
            // Too many to walk: the latest scheduled time at or before now.
            self.cron
                .find_previous_occurrence(&now.to_zoned(tz.clone()), true)
                .ok()
                .map(|z| z.timestamp())
                .or(Some(cursor))
        } else {
            (count > 0).then_some(cursor)
        };
        Missed { most_recent, count }
    }
}

/// What [`Schedule::missed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The latest scheduled time not yet run, if any.
    pub most_recent: Option<Timestamp>,
    /// How many scheduled times were missed (capped just past `MAX_MISSED_REPORTED`).
    pub count: usize,
}

impl Missed {
    /// Whether Kubernetes would report "too many missed start times".
    pub fn too_many(&self) -> bool {
        self.count > MAX_MISSED_REPORTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_or_a_descriptor() {
        assert!(parse("*/5 * * * *").is_ok());
        assert!(parse("@hourly").is_ok());
        assert!(parse("@midnight").is_ok());
        assert_eq!(
            parse("bad").unwrap_err(),
            "expected exactly 5 fields, found 1: [bad]"
        );
        assert_eq!(
            parse("0 0 * * * *").unwrap_err(),
            "expected exactly 5 fields, found 6: [0 0 * * * *]"
        );
        assert!(parse("61 * * * *").is_err());
        assert!(parse("@fortnightly").is_err());
        assert!(tz_in_schedule("CRON_TZ=UTC 0 * * * *"));
    }

    #[test]
    fn next_run_follows_the_time_zone() {
        let s = parse("0 9 * * *").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(
            s.next_after(ts("2024-03-01T08:59:00Z"), &utc),
            Some(ts("2024-03-01T09:00:00Z"))
        );
        // 09:00 in New York on 1 March 2024 is 14:00 UTC (EST, -5).
        let ny = time_zone("America/New_York").unwrap();
        assert_eq!(
            s.next_after(ts("2024-03-01T10:00:00Z"), &ny),
            Some(ts("2024-03-01T14:00:00Z"))
        );
        // Strictly after: a run exactly at `after` is not repeated.
        assert_eq!(
            s.next_after(ts("2024-03-01T09:00:00Z"), &utc),
            Some(ts("2024-03-02T09:00:00Z"))
        );
    }

    #[test]
    fn missed_runs_are_counted_and_capped() {
        let s = parse("* * * * *").unwrap();
        let utc = TimeZone::UTC;
        let none = s.missed(ts("2024-01-01T00:00:00Z"), ts("2024-01-01T00:00:30Z"), &utc);
        assert_eq!(
            none,
            Missed {
                most_recent: None,
                count: 0
            }
        );
        let three = s.missed(ts("2024-01-01T00:00:00Z"), ts("2024-01-01T00:03:10Z"), &utc);
        assert_eq!(three.count, 3);
        assert_eq!(three.most_recent, Some(ts("2024-01-01T00:03:00Z")));
        assert!(!three.too_many());
        let day = s.missed(ts("2024-01-01T00:00:00Z"), ts("2024-01-02T00:00:30Z"), &utc);
        assert!(day.too_many());
        assert_eq!(day.most_recent, Some(ts("2024-01-02T00:00:00Z")));
    }

    #[test]
    fn time_zones_come_from_the_tz_database() {
        assert!(time_zone("Europe/Paris").is_ok());
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err(),
            "unknown time zone Mars/Olympus"
        );
        assert!(time_zone("Local").is_err());
        assert!(time_zone("").is_err());
    }
}
