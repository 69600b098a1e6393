//! JSON text in, held to what a store keeps exactly.
//!
//! serde_json reads an integer beyond `i64`/`u64` as the nearest float, so
//! `18446744073709551616` would be stored as `1.8446744073709552e19`: a silently changed
//! value. It also reads up to 128 levels of nesting, deeper than a store may keep
//! ([`MAX_DEPTH`]). [`parse`] reads text as serde_json does and then refuses both, naming
//! where in the value each sits. (Floats are read exactly: the workspace enables serde_json's
//! `float_roundtrip`, so every finite `f64` written as text reads back bit-identical.)
//!
//! ```
//! use state_core::json::{JsonError, parse};
//! assert_eq!(parse(r#"{"n": 18446744073709551615}"#).unwrap()["n"], u64::MAX);
//! let e = parse(r#"{"n": [1, 18446744073709551616]}"#).unwrap_err();
//! assert!(matches!(e, JsonError::OutOfRange { ref literal, .. } if literal == "18446744073709551616"));
//! assert_eq!(e.to_string(), "the integer 18446744073709551616 at n[\"1\"] is outside the range of i64 and u64: it cannot be stored exactly (store it as a string)");
//! ```

use serde_json::Value;

use crate::error::Error;
use crate::limits::{MAX_DEPTH, dispose};
use crate::op::Path;
use crate::scope::Slot;

/// Why JSON text was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// It nests deeper than [`MAX_DEPTH`].
    #[error(
        "the value nests deeper than {limit} levels at {path} (the deepest a stored value may be)"
    )]
    TooDeep {
        /// Where the first array or object past the limit opens.
        path: Path,
        /// The limit ([`MAX_DEPTH`]).
        limit: usize,
    },
    /// A float literal too small for an `f64` (`1e-400`), which serde_json would read as 0.
    #[error("the number {literal} at {path} is too close to 0 for an f64: it would be stored as 0")]
    Underflow {
        /// Where it sits.
        path: Path,
        /// The number, as written.
        literal: String,
    },
    /// An object with a key twice, of which serde_json would keep the last silently.
    #[error("the key {key:?} appears twice in the object at {path}")]
    DuplicateKey {
        /// The object.
        path: Path,
        /// The key.
        key: String,
    },
    /// An integer outside `i64`/`u64`, which serde_json would read as a float.
    #[error(
        "the integer {literal} at {path} is outside the range of i64 and u64: it cannot be stored exactly (store it as a string)"
    )]
    OutOfRange {
        /// Where it sits.
        path: Path,
        /// The integer, as written.
        literal: String,
    },
}

impl JsonError {
    /// The engine's error for this text given as `slot`'s value (`at`: where in the slot's
    /// value the text lands).
    pub fn for_slot(self, slot: &Slot, at: &Path) -> Error {
        match self {
            JsonError::Syntax(e) => {
                Error::InvalidArgument(format!("state slot {slot}: invalid JSON: {e}"))
            }
            JsonError::TooDeep { path, limit } => Error::TooDeep {
                slot: slot.clone(),
                path: at.join(&path),
                limit,
            },
            JsonError::OutOfRange { path, literal } => Error::OutOfRange {
                slot: slot.clone(),
                path: at.join(&path),
                literal,
            },
            other @ (JsonError::Underflow { .. } | JsonError::DuplicateKey { .. }) => {
                Error::InvalidArgument(format!("state slot {slot}: {other}"))
            }
        }
    }
}

/// Reads one JSON value from `text`: serde_json's reading (floats exact), with what it would
/// silently change refused, naming where it sits: integers beyond `i64`/`u64`, floats that
/// would round to 0, a key twice in an object; and nesting past [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Value, JsonError> {
    parse_enveloped(text, 0)
}

/// [`parse`] for text whose values sit `envelope` levels inside it (an export line holds its
/// value 2 levels down, in `record.value`): the text may nest `envelope` levels more than
/// [`MAX_DEPTH`], so every value a store holds fits. The store checks each value's own depth
/// again when it is written.
pub fn parse_enveloped(text: &str, envelope: usize) -> Result<Value, JsonError> {
    let limit = MAX_DEPTH + envelope;
    match serde_json::from_str::<Value>(text) {
        Ok(value) => match scan(text, limit) {
            None => Ok(value),
            Some(e) => {
                dispose(value);
                Err(e)
            }
        },
        // Past serde_json's own limit (128 levels): say where ours was passed.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            Err(scan(text, limit).unwrap_or(JsonError::Syntax(e)))
        }
        Err(e) => Err(JsonError::Syntax(e)),
    }
}

/// For stored text serde_json read: an integer beyond `i64`/`u64` in it, which the read
/// turned into a float (text this crate writes never holds one; a hand edit may). Scans only
/// text with a run of 19 digits or more, so reads of ordinary values cost one pass of bytes.
pub(crate) fn wide_integer(text: &str) -> Option<JsonError> {
    let mut run = 0;
    let long = text.bytes().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 19
    });
    if !long {
        return None;
    }
    match scan(text, usize::MAX) {
        Some(e @ JsonError::OutOfRange { .. }) => Some(e),
        _ => None,
    }
}

/// A container being scanned: an array at its element index, or an object and its current
/// key (`None` while a key is expected).
enum Open {
    Array(usize),
    Object(Option<String>, std::collections::HashSet<String>),
}

fn path_of(open: &[Open]) -> Path {
    Path::new(open.iter().map(|o| match o {
        Open::Array(i) => i.to_string(),
        Open::Object(k, _) => k.clone().unwrap_or_default(),
    }))
}

/// The first integer out of range or container past `limit` levels in JSON text, found by
/// one pass over its tokens (no recursion). Numbers are tokens outside strings.
fn scan(text: &str, limit: usize) -> Option<JsonError> {
    let bytes = text.as_bytes();
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i);
                if let Some(e) = object_key(&mut open, &text[i..end]) {
                    return Some(e);
                }
                i = end;
                continue;
            }
            b'[' | b'{' if open.len() >= limit => {
                return Some(JsonError::TooDeep {
                    path: path_of(&open),
                    limit: MAX_DEPTH,
                });
            }
            b'[' => open.push(Open::Array(0)),
            b'{' => open.push(Open::Object(None, Default::default())),
            b']' | b'}' => {
                open.pop();
            }
            b',' => match open.last_mut() {
                Some(Open::Array(n)) => *n += 1,
                Some(Open::Object(key, _)) => *key = None,
                None => {}
            },
            b'-' | b'0'..=b'9' => {
                let end = i + bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(bytes.len() - i);
                if let Some(e) = number(&open, &text[i..end]) {
                    return Some(e);
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A string token `quoted`: in key position of the innermost object, it is that object's
/// next key, refused if the object already has it.
fn object_key(open: &mut Vec<Open>, quoted: &str) -> Option<JsonError> {
    let Some(Open::Object(key @ None, seen)) = open.last_mut() else {
        return None;
    };
    let name: String = serde_json::from_str(quoted).unwrap_or_default();
    if !seen.insert(name.clone()) {
        open.pop();
        return Some(JsonError::DuplicateKey {
            path: path_of(open),
            key: name,
        });
    }
    *key = Some(name);
    None
}

/// A number token: an integer outside `i64` and `u64`, or a float that reads as 0 though it
/// is not, is refused.
fn number(open: &[Open], literal: &str) -> Option<JsonError> {
    let integer = !literal.contains(['.', 'e', 'E']);
    if integer && literal.parse::<i64>().is_err() && literal.parse::<u64>().is_err() {
        return Some(JsonError::OutOfRange {
            path: path_of(open),
            literal: literal.to_owned(),
        });
    }
    if !integer && underflows(literal) {
        return Some(JsonError::Underflow {
            path: path_of(open),
            literal: literal.to_owned(),
        });
    }
    None
}

/// Whether a float literal with a non-zero digit before its exponent reads as 0.
fn underflows(literal: &str) -> bool {
    let mantissa = literal.split(['e', 'E']).next().unwrap_or("");
    literal.parse::<f64>() == Ok(0.0) && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'))
}

/// The index just past the string that opens at `start` (its closing quote, escapes skipped).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::{JsonError, parse};
    use crate::MAX_DEPTH;

    #[test]
    fn integers_at_the_edges_pass_and_beyond_them_are_refused_where_they_sit() {
        for ok in [
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for (text, at) in [
            ("18446744073709551616", "the root"),
            ("-9223372036854775809", "the root"),
            (r#"{"a": {"b\"c": [0, 1, 1e400000000000000000000]}}"#, ""),
            (
                r#"{"s": "99999999999999999999", "a": {"x": 1, "y": [2, 99999999999999999999]}}"#,
                r#"a.y["1"]"#,
            ),
        ] {
            match parse(text) {
                Err(JsonError::OutOfRange { path, .. }) => {
                    assert_eq!(path.to_string(), at, "{text}")
                }
                Err(JsonError::Syntax(_)) if at.is_empty() => {}
                other => panic!("{text}: {other:?}"),
            }
        }
        // Floats are not integers, however large.
        assert!(parse("1e300").is_ok());
        assert!(parse("18446744073709551616.0").is_ok());
    }

    #[test]
    fn nesting_is_refused_past_the_limit_whatever_its_depth() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        for n in [MAX_DEPTH + 1, 127, 128, 129, 100_000] {
            match parse(&deep(n)) {
                Err(JsonError::TooDeep { path, limit }) => {
                    assert_eq!((path.segments().len(), limit), (MAX_DEPTH, MAX_DEPTH));
                }
                other => panic!("{n}: {other:?}"),
            }
        }
        assert!(matches!(parse("[1,"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn floats_read_back_bit_identical() {
        for f in [938.3112035786577f64, 5e-324, f64::MAX, -0.0, 0.1 + 0.2] {
            let text = serde_json::to_string(&f).unwrap();
            let back = parse(&text).unwrap().as_f64().unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
        }
    }

    #[test]
    fn what_serde_json_would_change_silently_is_refused() {
        for (text, at) in [
            ("1e-400", "the root"),
            (r#"{"a": [0.0, -2.5e-999]}"#, r#"a["1"]"#),
        ] {
            match parse(text) {
                Err(JsonError::Underflow { path, .. }) => assert_eq!(path.to_string(), at),
                other => panic!("{text}: {other:?}"),
            }
        }
        for ok in ["0.0", "-0", "0e-400", "5e-324", "1e-300"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        match parse(r#"{"x": {"a": 1, "b": {"a": 2}, "a": 3}}"#) {
            Err(JsonError::DuplicateKey { path, key }) => {
                assert_eq!((path.to_string(), key.as_str()), ("x".to_owned(), "a"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_ok());
    }
}
