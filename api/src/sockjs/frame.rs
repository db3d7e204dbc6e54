//! SockJS frames: what the server writes (`o`, `h`, `a[...]`, `c[code,"reason"]`) and the
//! client's message frames (a JSON array of strings, or one JSON string).

use super::session::Outgoing;

/// Opens a session.
pub(super) const OPEN: &str = "o";
/// Keeps an idle connection from being cut by proxies.
pub(super) const HEARTBEAT: &str = "h";

/// The frame for `outgoing`; none once the session has ended (nothing more to say).
pub(super) fn render(outgoing: &Outgoing) -> Option<String> {
    match outgoing {
        Outgoing::Open => Some(OPEN.to_owned()),
        Outgoing::Heartbeat => Some(HEARTBEAT.to_owned()),
        Outgoing::Messages(messages) => Some(messages_frame(messages)),
        Outgoing::Close(code, reason) => Some(close_frame(*code, reason)),
        Outgoing::Ended => None,
    }
}

/// `a["one","two"]`.
pub(super) fn messages_frame(messages: &[String]) -> String {
    let mut frame = String::with_capacity(2 + messages.iter().map(|m| m.len() + 3).sum::<usize>());
    frame.push_str("a[");
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            frame.push(',');
        }
        frame.push_str(&quote(message));
    }
    frame.push(']');
    frame
}

/// `c[3000,"Go away!"]`.
pub(super) fn close_frame(code: u16, reason: &str) -> String {
    format!("c[{code},{}]", quote(reason))
}

/// `s` as a JSON string, with the characters sockjs-node also escapes written as `\uXXXX`:
/// some browsers and proxies drop or mangle the zero-width and line/paragraph separators
/// (U+200C–U+200F, U+2028–U+202F, U+2060–U+206F), the specials U+FFF0–U+FFFF, and characters
/// outside the BMP (written as their UTF-16 surrogate pair, as a JavaScript string holds them).
/// Control characters are already escaped by JSON itself.
pub(super) fn quote(s: &str) -> String {
    // Serializing a `str` cannot fail; the fallback only keeps this free of `unwrap`.
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    if !json.chars().any(needs_escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    matches!(
        u32::from(c),
        0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff | 0x10000..
    )
}

/// A client frame that is not a JSON array of strings nor a JSON string.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BrokenFraming;

/// The messages in a client frame: `["a","b"]` is two messages, `"a"` is one.
pub(super) fn parse_client_frame(text: &str) -> Result<Vec<String>, BrokenFraming> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(text).map_err(|_| BrokenFraming)
    } else {
        serde_json::from_str::<String>(text)
            .map(|message| vec![message])
            .map_err(|_| BrokenFraming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_a_json_string() {
        assert_eq!(quote("hi \"you\"\n"), r#""hi \"you\"\n""#);
    }

    #[test]
    fn separators_and_zero_width_characters_are_escaped() {
        assert_eq!(quote("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
        assert_eq!(
            quote("\u{200c}\u{200f}\u{2060}\u{fff0}"),
            r#""\u200c\u200f\u2060\ufff0""#
        );
    }

    #[test]
    fn characters_outside_the_bmp_are_escaped_as_surrogate_pairs() {
        assert_eq!(quote("😀"), r#""\ud83d\ude00""#);
    }

    #[test]
    fn other_unicode_is_left_as_is() {
        assert_eq!(quote("žluť ✓"), "\"žluť ✓\"");
    }

    #[test]
    fn escaped_frames_parse_back_to_the_same_text() {
        let text = "a\u{2028}😀\u{200c}\"\\";
        let frame = messages_frame(&[text.to_owned()]);
        let parsed: Vec<String> = serde_json::from_str(&frame[1..]).expect("JSON array");
        assert_eq!(parsed, vec![text.to_owned()]);
    }

    #[test]
    fn frames_are_rendered_as_the_protocol_writes_them() {
        assert_eq!(messages_frame(&["a".into(), "b".into()]), r#"a["a","b"]"#);
        assert_eq!(close_frame(3000, "Go away!"), r#"c[3000,"Go away!"]"#);
    }

    #[test]
    fn client_frames_are_an_array_of_strings_or_one_string() {
        assert_eq!(
            parse_client_frame(r#"["a","b"]"#),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(parse_client_frame(r#""a""#), Ok(vec!["a".to_owned()]));
        assert_eq!(parse_client_frame(r#"["a""#), Err(BrokenFraming));
        assert_eq!(parse_client_frame("[1]"), Err(BrokenFraming));
        assert_eq!(parse_client_frame("{}"), Err(BrokenFraming));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// What the server quotes, any JSON reader reads back as it was.
        #[test]
        fn a_quoted_string_reads_back_whole(text in any::<String>()) {
            let quoted = quote(&text);
            prop_assert_eq!(serde_json::from_str::<String>(&quoted).ok(), Some(text));
            // And holds none of the characters some browsers' JSON or JS parsers mangle.
            prop_assert!(!quoted.chars().any(needs_escape), "{:?}", quoted);
        }

        /// Messages framed as a client frames them are the messages; any text gets an answer.
        #[test]
        fn a_client_frame_is_its_messages(messages in prop::collection::vec(any::<String>(), 0..6)) {
            let framed = serde_json::to_string(&messages).expect("JSON");
            prop_assert_eq!(parse_client_frame(&framed), Ok(messages.clone()));
            if let [one] = messages.as_slice() {
                let single = serde_json::to_string(one).expect("JSON");
                prop_assert_eq!(parse_client_frame(&single), Ok(messages.clone()));
            }
        }

        #[test]
        fn any_client_text_is_messages_or_broken_framing(text in any::<String>()) {
            let _ = parse_client_frame(&text);
        }
    }
}
