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
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ */,0-9A-Za-z._:@?#LW+-]{0,40}",
        "[/.a-z\u{0}\n\u{e9}\u{301}]{0,30}",
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000 to 2100.
    (946_684_800i64..4_102_444_800i64).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_crontab_parse_answers_any_text_and_keeps_what_it_accepts(text in text()) {
        if let Ok(cron) = Crontab::parse(&text) {
            prop_assert_eq!(cron.as_str(), text.as_str());
            prop_assert_eq!(text.split_whitespace().count(), 5);
            // What was accepted parses again the same.
            let again = Crontab::parse(cron.as_str()).expect("parses again");
            prop_assert_eq!(again.as_str(), cron.as_str());
        }
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
        // It is the first slot after `after`: from any instant between, the same one is next.
        let between = after + (next - after) / 2;
        prop_assert_eq!(cron.next_after(between), Some(next), "{} for {}", between, text);
    }

    #[test]
    fn variables_take_shell_names_and_values_without_nul(
        values in prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,20}", "[^\u{0}]{0,40}", 0..8),
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
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let valid_value = !value.contains('\u{0}') && value.len() <= MAX_VALUE_BYTES;
        let result = Variables::parse(BTreeMap::from([(name, value)]));
        prop_assert_eq!(result.is_ok(), valid_name && valid_value);
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
        // A component of dots only is `.` or `..`: not what this property is about.
        prop_assume!(components.iter().all(|c| !c.trim_matches('.').is_empty()));
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
    fn names_are_letters_digits_and_underscores_up_to_64(text in text()) {
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
