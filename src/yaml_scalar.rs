//! YAML scalars that every reader takes for the same string.
//!
//! A YAML 1.2 serializer quotes what the 1.2 core schema would read as
//! something else, but the readers deploy records meet are mostly YAML 1.1:
//! PyYAML behind Ansible's `from_yaml` and `include_vars` reads `on`, `no`
//! and `yes` as booleans, `12:30:00` as a number and `2026-01-25` or
//! `2026-01-25T01:10:00Z` as dates. [`scalar`] writes a string plain only
//! when no YAML 1.1 or 1.2 reader can take it for anything but itself, and
//! double-quoted otherwise, with every character a YAML reader refuses
//! escaped.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` as a YAML scalar for a block mapping value or sequence entry: plain
/// when that is safe for YAML 1.1 and 1.2 readers, else double-quoted.
pub fn scalar(s: &str) -> Cow<'_, str> {
    if plain_is_safe(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(double_quoted(s))
    }
}

/// Conservative: plain only for text made of ASCII letters, digits, spaces
/// and `._/@+-:,()`, starting with a letter or `/` (so never a number, date,
/// time or indicator), without `: ` or a final `:` or space, and not a word
/// some schema reads as a boolean or null (in any case).
fn plain_is_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'/') || b[b.len() - 1] == b' ' {
        return false;
    }
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b" ._/@+-:,()".contains(&c);
    if !b.iter().all(|&c| allowed(c)) {
        return false;
    }
    // `: ` starts a mapping value, and so does a `:` at the end.
    if b.windows(2).any(|w| w == b": ") || b[b.len() - 1] == b':' {
        return false;
    }
    const WORDS: [&str; 10] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan"];
    !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// `s` between double quotes, escaping `"`, `\`, every character outside
/// YAML's printable set (control characters, DEL, C1 controls, U+FEFF,
/// U+FFFE and U+FFFF) and the line breaks YAML 1.1 folds (NEL, U+2028,
/// U+2029).
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            // Not U+2028 and U+2029: YAML 1.1 readers fold them as line breaks.
            '\u{a0}'..='\u{2027}'
            | '\u{202a}'..='\u{d7ff}'
            | '\u{e000}'..='\u{fefe}'
            | '\u{ff00}'..='\u{fffd}'
            | '\u{10000}'.. => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_where_nothing_can_misread_it() {
        for s in [
            "hello-world",
            "eb53023",
            "registry.rednaw.nl/rednaw/hello-world",
            "sha256:2a4f0c1b",
            "wander@casa",
            "https://github.com/rednaw/hello-world",
            "add healthcheck + fix nginx proxy header",
            "dev",
            "/opt",
        ] {
            assert_eq!(scalar(s), s, "{s}");
        }
    }

    #[test]
    fn quoted_where_a_yaml_reader_would_see_something_else() {
        for s in [
            "",
            "on",
            "On",
            "OFF",
            "yes",
            "No",
            "y",
            "N",
            "true",
            "False",
            "null",
            "~",
            "NaN",
            ".inf",
            "-.inf",
            "1234567",
            "0123456",
            "12e4567",
            "1_23456",
            "0x1F",
            "0o17",
            "0b101",
            "1.5",
            "12:30:00",
            "190:20:30",
            "2026-01-25",
            "2026-01-25T01:10:00Z",
            "=",
            "<<",
            "- item",
            "-1",
            "a: b",
            "a:",
            "# not a comment",
            "a #b",
            " lead",
            "trail ",
            "'quoted'",
            "\"quoted\"",
            "[1]",
            "{a: 1}",
            "*alias",
            "&anchor",
            "!tag",
            "%directive",
            "@at",
            "`tick`",
            "|",
            ">",
            "?",
            "two\nlines",
            "tab\there",
            "über",
        ] {
            let q = scalar(s);
            assert!(q.starts_with('"') && q.ends_with('"'), "{s:?} → {q}");
        }
    }

    #[test]
    fn escapes_what_yaml_readers_refuse() {
        assert_eq!(double_quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(double_quoted("x\ny\tz\r"), r#""x\ny\tz\r""#);
        assert_eq!(
            double_quoted("\u{0}\u{7}\u{1b}\u{7f}\u{85}\u{9f}"),
            r#""\x00\x07\x1B\x7F\x85\x9F""#
        );
        assert_eq!(double_quoted("\u{feff}\u{fffe}\u{ffff}"), r#""\uFEFF\uFFFE\uFFFF""#);
        assert_eq!(double_quoted("a\u{2028}b\u{2029}"), r#""a\u2028b\u2029""#);
        assert_eq!(double_quoted("über 🚀 \u{a0}"), "\"über 🚀 \u{a0}\"");
    }
}
