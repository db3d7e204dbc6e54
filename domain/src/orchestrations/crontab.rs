//! A 5-field cron expression (`minute hour day-of-month month day-of-week`), read in UTC.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n`, `a/n` and `a-b/n`, lists `a,b`, and
//! month and weekday names (`JAN`, `MON`, in their own field only); weekday 0 and 7 are Sunday.
//! As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts with
//! `*`) a day matching either one fires; otherwise a day must match both. Parsing and the search
//! for the next slot are the `croner` crate's; this type keeps the text as written (its
//! serialized form) and refuses croner's extensions (`L`, `W`, `#`, `?`, `+`, `@daily`, a
//! seconds or a year field), so what the log holds stays plain 5-field cron.

use crate::error::DomainError;
use chrono::{DateTime, Timelike, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Crontab {
    text: String,
    /// Boxed: croner's parsed form is some 300 bytes, and a crontab sits in events and states.
    cron: Box<Cron>,
}

const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

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
        for (i, field) in fields.iter().enumerate() {
            plain_syntax(field, i).map_err(invalid)?;
        }
        let text = fields.join(" ");
        // Vixie cron: a day-of-month or day-of-week field starting with `*` (`*`, `*/2`) makes
        // the day rule "both"; croner treats only a bare `*` so, and ORs otherwise.
        let both = fields[2].starts_with('*') || fields[4].starts_with('*');
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(both)
            .build()
            .parse(&text)
            .map_err(|e| invalid(format!("{text:?}: {e}")))?;
        let crontab = Crontab {
            text,
            cron: Box::new(cron),
        };
        if crontab.next_after(DateTime::<Utc>::UNIX_EPOCH).is_none() {
            return Err(invalid(format!(
                "{:?} never fires (no such date)",
                crontab.text
            )));
        }
        Ok(crontab)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time this fires strictly after `after`, to the minute.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Whole seconds: croner steps by seconds and would carry the fraction along.
        let after = after.with_nanosecond(0)?;
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// What this type accepts of cron's syntax, field `index` of the five: digits, `*`, `,`, `-`,
/// `/`, and in the month and day-of-week fields their own names.
fn plain_syntax(field: &str, index: usize) -> Result<(), String> {
    let name = FIELDS[index];
    let names: &[&str] = match index {
        3 => &MONTHS,
        4 => &WEEKDAYS,
        _ => &[],
    };
    let mut rest = field;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() {
            let word_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let word = &rest[..word_len];
            if !names.iter().any(|n| n.eq_ignore_ascii_case(word)) {
                return Err(format!("{name} field: {word:?} is not a number"));
            }
            rest = &rest[word_len..];
        } else if c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/') {
            rest = &rest[1..];
        } else {
            return Err(format!("{name} field: {c:?} is not allowed in {field:?}"));
        }
    }
    Ok(())
}

impl PartialEq for Crontab {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Crontab {}

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
    fn a_day_field_starting_with_a_star_makes_the_day_rule_both() {
        // Vixie cron: `*/2` counts as a star, so odd days that are Mondays. 2026-11-23 is an
        // odd Monday; the 25th is odd, the 30th a Monday; 7 December is both.
        assert_eq!(
            next("0 0 */2 * 1", "2026-11-23T01:00:00Z"),
            "2026-12-07T00:00:00+00:00"
        );
        // The 1st that is a Sunday, Wednesday or Saturday: Saturday 1 May 2027.
        assert_eq!(
            next("0 0 1 * */3", "2026-11-23T00:00:00Z"),
            "2027-05-01T00:00:00+00:00"
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
            "0 0 30,31 2 *",
            // croner's extensions, and names outside their field.
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#2",
            "0 0 * * 5L",
            "0 0 ? * *",
            "0 0 1 * +MON",
            "@daily",
            "@daily * * * *",
            "0 0 * MON *",
            "0 0 * * MAR",
            "0 0 * * MONDAY",
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
    fn a_date_that_never_comes_is_refused_quickly() {
        let started = std::time::Instant::now();
        assert!(Crontab::parse("59 23 31 2,4,6,9,11 *").is_err());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn skips_a_century_that_is_not_a_leap_year() {
        assert_eq!(
            next("0 0 29 2 *", "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn keeps_its_text_through_serde() {
        let c = Crontab::parse("0  3 * * MON").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"0 3 * * MON\"");
        let back: Crontab = serde_json::from_str("\"0 3 * * MON\"").unwrap();
        assert_eq!(back, c);
    }
}
