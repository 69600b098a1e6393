//! What the user types: scopes, JSON values (held to what a store keeps exactly, through
//! `state_core::json`), ops; a value too large for an argument comes from stdin or a file.

use std::path::Path;

use serde_json::{Value, json};
use state_core::json::{JsonError, parse, parse_enveloped};
use state_core::{Op, Scope, ScopeKind, Slot};

use crate::fail::{Class, Failure};

/// Parses a SCOPE argument.
pub fn parse_scope(text: &str) -> Result<Scope, Failure> {
    if text.trim_start().starts_with('[') {
        return parse_scope_array(text);
    }
    let (kind, rest) = text.split_once(':').ok_or_else(|| {
        Failure::new(
            Class::Invalid,
            format!("scope {text:?} is not `kind:id` (e.g. `app:shop`)"),
        )
    })?;
    let kind: ScopeKind = kind.parse()?;
    if kind.has_two_parts() {
        let (id, sub) = rest.split_once(':').ok_or_else(|| {
            Failure::new(
                Class::Invalid,
                format!("a `{kind}` scope is `{kind}:first:second`, not {text:?}"),
            )
        })?;
        Ok(Scope::new(kind, id, Some(sub))?)
    } else {
        Ok(Scope::new(kind, rest, None::<String>)?)
    }
}

fn parse_scope_array(text: &str) -> Result<Scope, Failure> {
    let parts: Vec<String> = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            Class::Invalid,
            format!("scope {text:?} is not a JSON array of strings: {e}"),
        )
    })?;
    let (kind, rest) = parts
        .split_first()
        .ok_or_else(|| Failure::new(Class::Invalid, "an empty scope array"))?;
    let kind: ScopeKind = kind.parse()?;
    match rest {
        [id] => Ok(Scope::new(kind, id.clone(), None::<String>)?),
        [id, sub] => Ok(Scope::new(kind, id.clone(), Some(sub.clone()))?),
        _ => Err(Failure::new(
            Class::Invalid,
            format!("scope {text:?} needs one or two id parts"),
        )),
    }
}

/// A scope as SCOPE takes it back.
pub fn scope_text(scope: &Scope) -> String {
    match scope.parts() {
        (id, Some(sub)) if !id.contains(':') => format!("{}:{id}:{sub}", scope.kind()),
        (id, Some(sub)) => json!([scope.kind().as_str(), id, sub]).to_string(),
        (id, None) => format!("{}:{id}", scope.kind()),
    }
}

/// The text of `set`'s value: the argument, or stdin (`-`), or a file (`--file`).
pub fn value_text(arg: Option<&str>, file: Option<&Path>) -> Result<String, Failure> {
    let read = |what: &str, r: &mut dyn std::io::Read| {
        let mut text = String::new();
        r.read_to_string(&mut text)
            .map_err(|e| Failure::new(Class::Invalid, format!("cannot read {what}: {e}")))?;
        // A byte-order mark some editors write is not part of the JSON.
        Ok(text
            .strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text))
    };
    match (arg, file) {
        (Some("-"), None) => read("the value from stdin", &mut std::io::stdin().lock()),
        (Some(text), None) => Ok(text.to_owned()),
        (None, Some(path)) => {
            let mut f = std::fs::File::open(path).map_err(|e| {
                Failure::new(
                    Class::NotFound,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            read(&path.display().to_string(), &mut f)
        }
        _ => Err(Failure::new(
            Class::Usage,
            "give the value as an argument, `-` (stdin) or --file PATH",
        )),
    }
}

/// A value for `slot`: JSON a store keeps exactly (no integer beyond i64/u64, at most
/// `MAX_DEPTH` levels), or an error naming where it is not.
pub fn value_for(slot: &Slot, text: &str) -> Result<Value, Failure> {
    parse(text).map_err(|e| match e {
        JsonError::Syntax(e) => {
            Failure::new(Class::Invalid, format!("the value is not valid JSON: {e}"))
        }
        other => other.for_slot(slot, &state_core::Path::root()).into(),
    })
}

/// The `n`th `--op` (from 1), read as strictly as a value.
pub fn op(n: usize, text: &str) -> Result<Op, Failure> {
    let shown: String = text.chars().take(80).collect();
    let more = if shown.len() < text.len() { "…" } else { "" };
    let invalid =
        |why: String| Failure::new(Class::Invalid, format!("op {n} ({shown:?}{more}) {why}"));
    // An op holds its value up to two levels down (`entries` of a merge); the store checks
    // the value the ops leave.
    let value = parse_enveloped(text, 2).map_err(|e| invalid(format!("is refused: {e}")))?;
    serde_json::from_value(value).map_err(|e| invalid(format!("is not a valid op: {e}")))
}
