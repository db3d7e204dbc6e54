//! Property tests of the domain's parsers: whatever text comes in, a parser answers (no panic),
//! what it accepts keeps its rule, and what it makes of a well-formed input is that input.

use bosun_domain::identity::{TeamName, Username};
use bosun_domain::jobs::{Variables, MAX_VALUE_BYTES};
use bosun_domain::orchestrations::Crontab;
use bosun_domain::runnables::FilePath;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Any text, weighted toward the characters these parsers look at.
/// The names a job may not set (`domain/src/jobs/variables.rs`), as this test knows them.
const RESERVED: [&str; 8] = [
    "PATH",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
];

fn reserved(name: &str) -> bool {
    RESERVED.contains(&name)
        || ["LD_", "BOSUN_", "BASH_FUNC_"]
            .iter()
            .any(|p| name.starts_with(p))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ */,0-9A-Za-z._:@?#LW+-]{0,40}",
        "[/.a-z\u{0}\n\u{e9}\u{301}]{0,30}",
    ]
}

/// One plain cron field for values `low..=high`: `*`, a number, a range, a step or a list.
fn field(low: u32, high: u32) -> impl Strategy<Value = String> {
    let value = move || low..=high;
    prop_oneof![
        Just("*".to_string()),
        value().prop_map(|n| n.to_string()),
        (value(), value()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (1..=high.max(1)).prop_map(|n| format!("*/{n}")),
        prop::collection::btree_set(value(), 1..4)
            .prop_map(|set| { set.iter().map(u32::to_string).collect::<Vec<_>>().join(",") }),
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000 to 2100.
    (946_684_800i64..4_102_444_800i64).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_crontab_parse_answers_any_text(text in text()) {
        if let Ok(cron) = Crontab::parse(&text) {
            prop_assert_eq!(text.split_whitespace().count(), 5);
            let again = Crontab::parse(cron.as_str()).expect("parses again");
            prop_assert_eq!(again.as_str(), cron.as_str());
        }
    }

    /// Five fields of plain cron, however spaced, parse and are kept with single spaces.
    #[test]
    fn a_well_formed_crontab_is_kept_as_written(
        // Days up to 28: a day no month has (`31 2 *`) is refused, rightly.
        fields in (field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 7)),
        gaps in prop::collection::vec("[ \t]{1,3}", 4),
        lead in "[ \t]{0,2}",
        trail in "[ \t]{0,2}",
    ) {
        let (minute, hour, day, month, weekday) = fields;
        let parts = [minute, hour, day, month, weekday];
        let mut text = lead;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                text.push_str(&gaps[i - 1]);
            }
            text.push_str(part);
        }
        text.push_str(&trail);
        let cron = Crontab::parse(&text).expect("a well-formed crontab");
        prop_assert_eq!(cron.as_str(), parts.join(" "));
    }

    #[test]
    fn a_fixed_minute_and_hour_fire_next_at_that_time_within_a_day(
        minute in 0u32..60,
        hour in 0u32..24,
        after in instant(),
    ) {
        let cron = Crontab::parse(&format!("{minute} {hour} * * *")).expect("a valid crontab");
        let next = cron.next_after(after).expect("a next slot");
        prop_assert!(next > after, "{next} after {after}");
        prop_assert!(next - after <= Duration::days(1), "{next} after {after}");
        prop_assert_eq!((next.minute(), next.hour(), next.second()), (minute, hour, 0));
    }

    #[test]
    fn variables_take_shell_names_and_values_without_nul(
        // Lowercase: the reserved names (`PATH`, `LD_…`) are all uppercase.
        values in prop::collection::btree_map("[a-z_][a-z0-9_]{0,20}", "[^\u{0}]{0,40}", 0..8),
    ) {
        let parsed = Variables::parse(values.clone()).expect("valid variables");
        let held: BTreeMap<String, String> =
            parsed.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        prop_assert_eq!(held, values);
    }

    #[test]
    fn a_variable_name_off_the_rule_or_a_nul_in_a_value_is_refused(
        name in text(),
        value in text(),
    ) {
        let valid_name = name.len() <= 256
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !reserved(&name);
        let valid_value = !value.contains('\u{0}') && value.len() <= MAX_VALUE_BYTES;
        let result = Variables::parse(BTreeMap::from([(name, value)]));
        prop_assert_eq!(result.is_ok(), valid_name && valid_value);
    }

    #[test]
    fn a_reserved_variable_name_is_refused(
        name in prop_oneof![
            prop::sample::select(RESERVED.to_vec()).prop_map(str::to_string),
            ("(LD_|BOSUN_|BASH_FUNC_)", "[A-Z0-9_]{0,8}").prop_map(|(p, rest)| p + &rest),
        ],
    ) {
        prop_assert!(Variables::parse(BTreeMap::from([(name, "x".to_string())])).is_err());
    }

    #[test]
    fn a_file_path_answers_any_text_and_what_it_accepts_stays_in_the_tree(text in text()) {
        if let Ok(path) = FilePath::parse(&text) {
            let held = path.as_str();
            prop_assert!(!held.starts_with('/') && !held.ends_with('/'), "{:?}", held);
            prop_assert!(
                held.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
                "{:?}",
                held
            );
            prop_assert!(!held.chars().any(char::is_control), "{:?}", held);
            // Normalized once and for all.
            prop_assert_eq!(FilePath::parse(held).expect("parses again"), path.clone());
        }
    }

    #[test]
    fn a_file_path_is_its_components_however_they_are_joined(
        components in prop::collection::vec("[a-z0-9_][a-z0-9_.-]{0,10}", 1..6),
        separators in prop::collection::vec(prop_oneof![Just("/"), Just("//"), Just("/./")], 5),
        lead in prop_oneof![Just(""), Just("./")],
        trail in prop_oneof![Just(""), Just("/")],
    ) {
        let mut written = lead.to_string();
        for (i, component) in components.iter().enumerate() {
            if i > 0 {
                written.push_str(separators[i - 1]);
            }
            written.push_str(component);
        }
        written.push_str(trail);
        let path = FilePath::parse(&written).expect("a path in the tree");
        prop_assert_eq!(path.as_str(), components.join("/"));
        // And a `..` anywhere never is one.
        let escaping = format!("{written}/../x");
        prop_assert!(FilePath::parse(&escaping).is_err());
    }

    #[test]
    fn names_are_letters_digits_and_underscores_up_to_64(
        text in prop_oneof![text(), "[A-Za-z0-9_]{60,70}"],
    ) {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        prop_assert_eq!(TeamName::parse(&text).is_ok(), valid, "{:?}", text);
        // A username may also be an anonymous or a GitHub user's: never fewer than a team's.
        if valid {
            prop_assert!(Username::parse(&text).is_ok(), "{:?}", text);
        }
    }
}

proptest! {
    // Each case scans up to a month minute by minute.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn steps_ranges_and_lists_fire_only_on_their_values(
        step in 1u32..30,
        low in 0u32..12,
        span in 0u32..12,
        day in 1u32..29,
        after in instant(),
    ) {
        let high = low + span;
        let text = format!("*/{step} {low}-{high} {day},28 * *");
        let cron = Crontab::parse(&text).expect("a valid crontab");
        let next = cron.next_after(after).expect("a next slot");
        prop_assert!(next > after);
        prop_assert_eq!(next.minute() % step, 0, "{} for {}", next, text);
        prop_assert!((low..=high).contains(&next.hour()), "{} for {}", next, text);
        prop_assert!(next.day() == day || next.day() == 28, "{} for {}", next, text);
        // It is the first slot after `after`: no whole minute between the two matches.
        let matches = |t: DateTime<Utc>| {
            t.minute().is_multiple_of(step)
                && (low..=high).contains(&t.hour())
                && (t.day() == day || t.day() == 28)
        };
        let mut t = after.with_second(0).expect("a minute") + Duration::minutes(1);
        while t < next {
            prop_assert!(!matches(t), "{} matches {} before {}", t, text, next);
            t += Duration::minutes(1);
        }
    }
}
