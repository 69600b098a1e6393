//! Stdout as a writer whose errors are failures: a closed pipe (`| head -1`) or a full disk
//! ends the command cleanly, saying whether its write committed, instead of a panic. Table
//! cells escape control characters, so an id cannot send a terminal escape.

use std::borrow::Cow;
use std::io::{BufWriter, Stdout, Write};

use serde::Serialize;

use crate::fail::{Class, Failure};

/// The command's output.
pub struct Out {
    /// JSON (one document, or JSON lines) instead of tables.
    pub json: bool,
    w: BufWriter<Stdout>,
    committed: Option<String>,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out {
            json,
            w: BufWriter::new(std::io::stdout()),
            committed: None,
        }
    }

    /// Notes that the command's write committed (`what`: "version 4"): an output failure from
    /// now on says so.
    pub fn committed(&mut self, what: impl Into<String>) {
        self.committed = Some(what.into());
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), Failure> {
        writeln!(self.w, "{text}").map_err(|e| self.failure(&e))
    }

    /// Writes one JSON document as a line.
    pub fn json_line(&mut self, v: &impl Serialize) -> Result<(), Failure> {
        let text = json_text(v)?;
        self.line(text)
    }

    /// Hands everything written to the OS (at the end, and after each change a watch prints).
    pub fn flush(&mut self) -> Result<(), Failure> {
        self.w.flush().map_err(|e| self.failure(&e))
    }

    fn failure(&self, e: &std::io::Error) -> Failure {
        let message = match &self.committed {
            Some(what) => {
                format!("the write committed ({what}), but stdout could not be written: {e}")
            }
            None => format!("cannot write to stdout: {e}; nothing was changed"),
        };
        Failure::new(Class::Output, message)
    }
}

/// Compact JSON with every control character and bidirectional override left in strings
/// written as `\uXXXX` (serde_json leaves DEL, the C1 controls and U+202E as they are): the
/// same JSON, safe on a terminal.
pub fn json_text(v: &impl Serialize) -> Result<String, Failure> {
    let text = serde_json::to_string(v)
        .map_err(|e| Failure::new(Class::Store, format!("cannot encode: {e}")))?;
    if !text.chars().any(is_hazard) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hazard(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// A control character, or one that reorders text on a terminal.
fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An id or key as a table cell: control characters as `\u{..}` and `\` doubled, so the cell
/// shows exactly what the id holds and nothing the terminal would act on.
pub fn cell(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// `text` as one word a shell reads back exactly: single-quoted (each `'` as `'\''`), or, when
/// it holds a control character, ANSI-C quoted (`$'…'`, bash, zsh, ksh) with those characters
/// as `\xHH` bytes, so none reaches the terminal. A printed `--after` hint pastes as the
/// cursor it names.
pub fn shell_word(text: &str) -> String {
    if !text.chars().any(is_hazard) {
        return format!("'{}'", text.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            c if is_hazard(c) => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A message with its control characters as `\u{..}` (a message is not parsed back, so `\`
/// stays as it is).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

fn escape(text: &str, backslash: bool) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_hazard(c) || (backslash && c == '\\'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hazard(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else if backslash && c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_json_carry_no_terminal_control() {
        assert_eq!(cell("a\u{1b}[31mb\\"), "a\\u{1b}[31mb\\\\");
        assert_eq!(cell("plain"), "plain");
        assert_eq!(escape_controls("x\u{9b}y\\"), "x\\u{9b}y\\");
        let text = json_text(&serde_json::json!({"k": "a\u{7f}\u{202e}\u{1b}"})).unwrap();
        assert_eq!(text, r#"{"k":"a\u007f\u202e\u001b"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["k"], "a\u{7f}\u{202e}\u{1b}");
    }
}
