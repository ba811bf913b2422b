//! How a value is quoted in a message: whole when it is short, otherwise a
//! short prefix, an ellipsis and its length in bytes.
//!
//! Values come from annotations, request bodies and manifests, so they can be
//! as long as the body that carried them (megabytes). A denial, a log line or
//! `kubectl`'s output that echoes such a value whole is unreadable and costs
//! its size again in every copy, so every message that quotes a value goes
//! through [`Excerpt`]. Messages written by libraries (serde's "invalid type:
//! string \"…\"", "unknown variant `…`") quote values their own way;
//! [`shorten_quoted`] cuts the quoted runs inside such a message the same way.
//!
//! Quoting uses Rust's `Debug` escaping, so a control character (a newline
//! in a value, say) can never start a new log line.

use std::fmt;

/// Values of at most this many characters are quoted whole.
pub const WHOLE_CHARS: usize = 64;
/// Longer values are cut to this many characters.
pub const PREFIX_CHARS: usize = 32;

/// A value as it appears in a message: `"short"`, or
/// `"the first 32 characters…" (5000 bytes)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Excerpt {
    /// The value, or its first [`PREFIX_CHARS`] characters.
    shown: String,
    /// Length of the whole value in bytes; `None` when `shown` is the whole.
    cut_from: Option<usize>,
    /// How `shown` is written out.
    style: Style,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Style {
    /// In double quotes, `Debug`-escaped: values.
    Quoted,
    /// Without quotes, control characters escaped: names and keys.
    Bare,
    /// As it is: JSON text, which has no raw control characters.
    Json,
}

impl Excerpt {
    /// The excerpt of `value`; only the prefix is kept, never the whole.
    pub fn new(value: &str) -> Self {
        if value.chars().nth(WHOLE_CHARS).is_none() {
            return Self {
                shown: value.to_owned(),
                cut_from: None,
                style: Style::Quoted,
            };
        }
        let end = value
            .char_indices()
            .nth(PREFIX_CHARS)
            .map_or(value.len(), |(i, _)| i);
        Self {
            shown: value[..end].to_owned(),
            cut_from: Some(value.len()),
            style: Style::Quoted,
        }
    }

    /// Like [`Excerpt::new`] but shown without quotes, for names and keys in
    /// messages that have always printed them bare (`unknown annotation
    /// s3-seed.io/sorce`). Control characters are still escaped.
    pub fn bare(value: &str) -> Self {
        Self {
            style: Style::Bare,
            ..Self::new(value)
        }
    }

    /// The excerpt of a JSON value as compact JSON text, shown without
    /// quotes (`false`, `{"a":1}`, `[0,0,…] (200001 bytes)`), without ever
    /// writing out more than the prefix.
    pub fn of_json(value: &serde_json::Value) -> Self {
        let mut out = Prefix::default();
        // Writing into `Prefix` never fails.
        let _ = serde_json::to_writer(&mut out, value);
        // JSON text is UTF-8; only the kept prefix can end inside a character.
        let text = match std::str::from_utf8(&out.kept) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&out.kept[..e.valid_up_to()]).unwrap_or_default(),
        };
        let mut excerpt = Self::new(text);
        // More than was kept was written: the prefix is always cut (it holds
        // more than WHOLE_CHARS characters), and its length is the total.
        excerpt.cut_from = excerpt.cut_from.map(|_| out.total);
        excerpt.style = Style::Json;
        excerpt
    }

    /// True when the message shows only a prefix of the value.
    pub fn is_cut(&self) -> bool {
        self.cut_from.is_some()
    }
}

impl From<&str> for Excerpt {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<&String> for Excerpt {
    fn from(value: &String) -> Self {
        Self::new(value)
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.style {
            Style::Quoted => {
                let quoted = format!("{:?}", self.shown);
                match self.cut_from {
                    None => f.write_str(&quoted),
                    Some(len) => write!(f, "{}…\" ({len} bytes)", &quoted[..quoted.len() - 1]),
                }
            }
            Style::Bare | Style::Json => {
                f.write_str(&escape_controls(&self.shown))?;
                match self.cut_from {
                    None => Ok(()),
                    Some(len) => write!(f, "… ({len} bytes)"),
                }
            }
        }
    }
}

/// Keeps the first bytes written to it and counts the rest.
#[derive(Default)]
struct Prefix {
    kept: Vec<u8>,
    total: usize,
}

impl std::io::Write for Prefix {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Enough bytes for WHOLE_CHARS + 1 characters of up to 4 bytes.
        let room = (4 * (WHOLE_CHARS + 1)).saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..buf.len().min(room)]);
        self.total += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `message` with every `"…"` (Debug-escaped) and `` `…` `` run longer than
/// [`WHOLE_CHARS`] characters cut as [`Excerpt`] cuts a value, and every
/// control character escaped. For messages written by libraries that quote
/// values themselves: serde escapes a string it quotes in `"…"`, but not a
/// variant or field name it quotes in `` `…` `` (an unknown variant holding
/// a DEL, or a newline decoded from `\n`).
pub fn shorten_quoted(message: &str) -> String {
    escape_controls(&cut_quoted(message))
}

/// `text` with each control character written as its `Debug` escape
/// (`\n`, `\u{7f}`), so it prints on one line.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

fn cut_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let Some(close) = closing(body, quote) else {
            // An unterminated quote: cut what follows like a value.
            push_cut(&mut out, body, quote, false);
            return out;
        };
        push_cut(&mut out, &body[..close], quote, true);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Index of the quote that closes a run, skipping `\"` escapes in `"` runs.
fn closing(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// The inside of a quoted run, cut when long, then the closing quote.
fn push_cut(out: &mut String, inside: &str, quote: char, closed: bool) {
    if inside.chars().nth(WHOLE_CHARS).is_none() {
        out.push_str(inside);
        if closed {
            out.push(quote);
        }
        return;
    }
    let end = inside
        .char_indices()
        .nth(PREFIX_CHARS)
        .map_or(inside.len(), |(i, _)| i);
    // Never end the prefix inside an escape sequence.
    let prefix = inside[..end].trim_end_matches('\\');
    out.push_str(prefix);
    out.push('…');
    out.push(quote);
    out.push_str(&format!(" ({} bytes)", inside.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_whole_or_cut_with_their_length() {
        let long = "a".repeat(5000);
        let wide = "é".repeat(100);
        let cases: &[(&str, &str)] = &[
            ("", r#""""#),
            ("eu-west-1", r#""eu-west-1""#),
            ("line\nbreak \"q\"", r#""line\nbreak \"q\"""#),
            (&long, r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (5000 bytes)"#),
            (
                &long[..WHOLE_CHARS],
                r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#,
            ),
            (
                &long[..WHOLE_CHARS + 1],
                r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (65 bytes)"#,
            ),
            (&wide, r#""éééééééééééééééééééééééééééééééé…" (200 bytes)"#),
        ];
        for (value, want) in cases {
            let got = Excerpt::new(value);
            assert_eq!(got.to_string(), *want, "{value:?}");
            assert_eq!(got.is_cut(), value.chars().count() > WHOLE_CHARS);
            assert!(got.shown.len() <= 4 * WHOLE_CHARS, "only a prefix is kept");
        }
    }

    #[test]
    fn bare_names_escape_control_characters() {
        assert_eq!(
            Excerpt::bare("s3-seed.io/sorce").to_string(),
            "s3-seed.io/sorce"
        );
        assert_eq!(Excerpt::bare("a\nb").to_string(), "a\\nb");
        assert_eq!(
            Excerpt::bare(&"k".repeat(100)).to_string(),
            format!("{}… (100 bytes)", "k".repeat(32))
        );
    }

    #[test]
    fn json_values_are_cut_without_writing_them_out() {
        let short = serde_json::json!({"a": 1});
        assert_eq!(Excerpt::of_json(&short).to_string(), r#"{"a":1}"#);
        assert_eq!(
            Excerpt::of_json(&serde_json::json!(false)).to_string(),
            "false"
        );
        let big = serde_json::json!(vec![0; 100_000]);
        let got = Excerpt::of_json(&big);
        assert!(got.is_cut());
        assert_eq!(
            got.to_string(),
            "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0… (200001 bytes)"
        );
    }

    #[test]
    fn quoted_runs_in_library_messages_are_cut() {
        let long = "x".repeat(300);
        let cases: Vec<(String, String)> = vec![
            ("no quotes here".into(), "no quotes here".into()),
            (
                r#"invalid type: string "short", expected a map"#.into(),
                r#"invalid type: string "short", expected a map"#.into(),
            ),
            (
                format!("invalid type: string \"{long}\", expected a sequence"),
                format!(
                    "invalid type: string \"{}…\" (300 bytes), expected a sequence",
                    &long[..32]
                ),
            ),
            (
                format!("unknown variant `{long}`, expected one of `CREATE`, `UPDATE`"),
                format!(
                    "unknown variant `{}…` (300 bytes), expected one of `CREATE`, `UPDATE`",
                    &long[..32]
                ),
            ),
            (
                format!("escaped \"{}\\\"{long}\" end", "y".repeat(31)),
                format!("escaped \"{}…\" (333 bytes) end", "y".repeat(31)),
            ),
            (
                format!("unterminated \"{long}"),
                format!("unterminated \"{}…\" (300 bytes)", &long[..32]),
            ),
        ];
        for (message, want) in cases {
            assert_eq!(shorten_quoted(&message), want);
        }
    }

    #[test]
    fn control_characters_in_library_messages_are_escaped() {
        let cases = [
            (
                "unknown variant `CREAT\u{7f}E`, expected one of `CREATE`",
                r"unknown variant `CREAT\u{7f}E`, expected one of `CREATE`",
            ),
            ("unknown field `a\nb`", r"unknown field `a\nb`"),
            ("unterminated `tab\there", r"unterminated `tab\there"),
            ("outside quotes\r", r"outside quotes\r"),
        ];
        for (message, want) in cases {
            let got = shorten_quoted(message);
            assert_eq!(got, want);
            assert!(!got.chars().any(char::is_control), "{got:?}");
        }
        let long = format!("unknown variant `{}\n{}`", "v".repeat(40), "w".repeat(40));
        let got = shorten_quoted(&long);
        assert_eq!(
            got,
            format!("unknown variant `{}…` (81 bytes)", "v".repeat(32))
        );
    }
}
