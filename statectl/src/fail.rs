//! Failures: one line on stderr and an exit code per class, every URL's password redacted and
//! every control character escaped.

use state_core::Error;
use state_postgres::PgError;
use state_sqlite::SqliteError;

/// The classes of failure, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Usage = 2,
    NotFound = 3,
    Conflict = 4,
    Invalid = 5,
    Store = 6,
    /// Stdout could not be written (closed, full); the message says whether a write committed.
    Output = 7,
}

/// Why a command failed, as the user reads it.
#[derive(Debug)]
pub struct Failure {
    pub class: Class,
    pub message: String,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
        }
    }

    /// The line printed on stderr: passwords redacted, control characters escaped.
    pub fn line(&self) -> String {
        let mut text = self.message.replace('\n', " ");
        for secret in SECRETS.get().into_iter().flatten() {
            // Where a password sits (`:…@`, `password=…`), as written and as `{:?}` shows it;
            // not everywhere, so a password such as `state` leaves the word alone.
            for shown in [secret.clone(), secret.escape_debug().to_string()] {
                text = text
                    .replace(&format!(":{shown}@"), ":***@")
                    .replace(&format!("={shown}"), "=***");
            }
        }
        crate::out::escape_controls(&redact(&text)).into_owned()
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let class = match &e {
            Error::VersionMismatch { .. } | Error::Conflict { .. } => Class::Conflict,
            Error::ChangesTrimmed { .. } => Class::NotFound,
            Error::Store { source, .. } => {
                match (
                    source.downcast_ref::<SqliteError>(),
                    source.downcast_ref::<PgError>(),
                ) {
                    (
                        Some(
                            SqliteError::NotADatabase { .. } | SqliteError::ForeignDatabase { .. },
                        ),
                        _,
                    ) => Class::Invalid,
                    (
                        _,
                        Some(
                            PgError::InvalidUrl { .. }
                            | PgError::InvalidSchemaName { .. }
                            | PgError::ForeignSchema { .. },
                        ),
                    ) => Class::Invalid,
                    (_, Some(PgError::SchemaMissing { .. })) => Class::NotFound,
                    _ => Class::Store,
                }
            }
            _ => Class::Invalid,
        };
        Failure::new(class, e.to_string())
    }
}

/// The passwords in `--db`, hidden in every message whatever they hold (quotes, spaces, `/`).
static SECRETS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Remembers the passwords `db` holds: what follows the user name up to the last `@`, and
/// every `password=` parameter.
pub fn hide_secrets_of(db: &str) {
    let mut secrets = Vec::new();
    if let Some(at) = db.rfind('@') {
        let start = db.find("//").map_or(0, |i| i + 2).min(at);
        if let Some(colon) = db[start..at].find(':') {
            secrets.push(db[start + colon + 1..at].to_owned());
        }
    }
    let lower = db.to_ascii_lowercase();
    for (i, _) in lower.match_indices("password=") {
        let value = &db[i + "password=".len()..];
        secrets.push(value.split(['&', '#']).next().unwrap_or("").to_owned());
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len())); // longest first: none hides part of another
    let _ = SECRETS.set(secrets);
}

/// `text` with the password of every `user:password@` replaced by `***`: from the first `:`
/// of a word (after `//`, a space or a `/`) up to its `@`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(&redact_word(word));
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || c == '/' || c == '"' || c == '\'' || c == '`' {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn redact_word(word: &str) -> String {
    let word = match (word.find(':'), word.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!("{}:***{}", &word[..colon], &word[at..])
        }
        _ => word.to_owned(),
    };
    match word.to_ascii_lowercase().find("password=") {
        Some(i) => {
            let start = i + "password=".len();
            let end = word[start..].find('&').map_or(word.len(), |e| start + e);
            format!("{}***{}", &word[..start], &word[end..])
        }
        None => word,
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_in_every_spelling() {
        assert_eq!(
            redact("no database at postgres://u:pw@host:5/db?x=1"),
            "no database at postgres://u:***@host:5/db?x=1"
        );
        assert_eq!(redact("'postgresql:u:pw@host'"), "'postgresql:***@host'");
        assert_eq!(redact("POSTGRES://u:a:b@h/d"), "POSTGRES://u:***@h/d");
        assert_eq!(redact("a@b c:d e:f@g"), "a@b c:d e:***@g");
        assert_eq!(redact("state slot app:shop/N/k"), "state slot app:shop/N/k");
        assert_eq!(
            redact("x?state_schema=a&password=SECRET&b=1"),
            "x?state_schema=a&password=***&b=1"
        );
    }
}
