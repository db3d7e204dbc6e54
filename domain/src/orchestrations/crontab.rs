//! A 5-field cron expression (`minute hour day-of-month month day-of-week`), read in UTC.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and month and
//! weekday names (`JAN`, `MON`); weekday 0 and 7 are Sunday. As in Vixie cron, when both
//! day-of-month and day-of-week are restricted a day matching either one fires.

use crate::error::DomainError;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Crontab {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// Far enough to find any valid date (29 February on a given weekday recurs within 28 years).
const SEARCH_DAYS: i64 = 366 * 29;

impl Crontab {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = |m: String| DomainError::invalid("crontab", m);
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(invalid(format!(
                "needs 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            )));
        }
        let minutes = field(fields[0], "minute", 0, 59, &[]).map_err(invalid)?;
        let hours = field(fields[1], "hour", 0, 23, &[]).map_err(invalid)?;
        let days = field(fields[2], "day-of-month", 1, 31, &[]).map_err(invalid)?;
        let months = field(fields[3], "month", 1, 12, &MONTHS).map_err(invalid)?;
        let weekdays = field(fields[4], "day-of-week", 0, 7, &WEEKDAYS).map_err(invalid)?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        let crontab = Crontab {
            text: fields.join(" "),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted: !fields[2].starts_with('*'),
            weekdays_restricted: !fields[4].starts_with('*'),
        };
        if crontab.next_after(DateTime::<Utc>::UNIX_EPOCH).is_none() {
            return Err(invalid(format!("{text:?} never fires (no such date)")));
        }
        Ok(crontab)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }

    /// The first time this fires strictly after `after`, to the minute.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut date = start.date_naive();
        for day in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                let (from_hour, from_minute) = if day == 0 {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for hour in from_hour..24 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    let first = if hour == from_hour { from_minute } else { 0 };
                    if let Some(minute) = (first..60).find(|m| self.minutes & (1 << m) != 0) {
                        return Some(Utc.from_utc_datetime(&date.and_hms_opt(hour, minute, 0)?));
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, name: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let upper = v.to_ascii_uppercase();
        let n = match names.iter().position(|n| *n == upper) {
            // Month names count from 1, weekday names from 0.
            Some(i) => i as u32 + min.min(1),
            None => v
                .parse::<u32>()
                .map_err(|_| format!("{name} field: {v:?} is not a number"))?,
        };
        if n < min || n > max {
            return Err(format!("{name} field: {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{name} field: step {step:?} must be a positive number")
                })?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{name} field: range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            (a, if part.contains('/') { max } else { a })
        };
        for v in (low..=high).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl TryFrom<String> for Crontab {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, DomainError> {
        Crontab::parse(&text)
    }
}

impl From<Crontab> for String {
    fn from(c: Crontab) -> String {
        c.text
    }
}

impl fmt::Debug for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crontab({:?})", self.text)
    }
}

impl fmt::Display for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(cron: &str, after: &str) -> String {
        Crontab::parse(cron)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn every_minute_fires_at_the_next_whole_minute() {
        assert_eq!(
            next("* * * * *", "2026-11-23T10:00:00Z"),
            "2026-11-23T10:01:00+00:00"
        );
        assert_eq!(
            next("* * * * *", "2026-11-23T10:00:59.9Z"),
            "2026-11-23T10:01:00+00:00"
        );
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        assert_eq!(
            next("*/15 * * * *", "2026-11-23T10:16:00Z"),
            "2026-11-23T10:30:00+00:00"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-11-23T13:00:00Z"),
            "2026-11-23T17:00:00+00:00"
        );
        assert_eq!(
            next("5,10 0 * * *", "2026-11-23T00:07:00Z"),
            "2026-11-23T00:10:00+00:00"
        );
        assert_eq!(
            next("0 0 1 FEB *", "2026-11-23T00:00:00Z"),
            "2027-02-01T00:00:00+00:00"
        );
        // 2026-11-23 is a Monday.
        assert_eq!(
            next("30 8 * * fri", "2026-11-23T00:00:00Z"),
            "2026-11-27T08:30:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-11-23T00:00:00Z"),
            "2026-11-29T00:00:00+00:00"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_set() {
        // The 1st, or any Wednesday: Wednesday 25 November comes first.
        assert_eq!(
            next("0 0 1 * 3", "2026-11-23T00:00:00Z"),
            "2026-11-25T00:00:00+00:00"
        );
    }

    #[test]
    fn leap_days_and_month_ends() {
        assert_eq!(
            next("0 0 29 2 *", "2026-11-23T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("0 12 31 * *", "2026-11-23T00:00:00Z"),
            "2026-12-31T12:00:00+00:00"
        );
    }

    #[test]
    fn refuses_what_is_not_a_5_field_expression() {
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "0 0 31 2 *",
        ] {
            let e = Crontab::parse(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    DomainError::Invalid {
                        field: "crontab",
                        ..
                    }
                ),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn keeps_its_text_through_serde() {
        let c = Crontab::parse("0  3 * * MON").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"0 3 * * MON\"");
        let back: Crontab = serde_json::from_str("\"0 3 * * MON\"").unwrap();
        assert_eq!(back, c);
    }
}
