//! `export` and `import`: JSON lines of `{"slot": …, "record": …}`.
//!
//! Export reads row by row, so one damaged row never stops a backup of the rest: it is named
//! on stderr with its version, why it is unreadable and its stored text, and the command
//! exits non-zero. Import is strict: every line is checked (unknown fields, numbers a store
//! cannot keep exactly, nesting) before anything is written, and the store holds each record
//! to the limits of a write, all or nothing.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use state_core::backend::check_value;
use state_core::{Error, Record, Restore, Scope, ScopeKind, Slot, Store};
use state_postgres::PgError;
use state_sqlite::SqliteError;

use crate::fail::{Class, Failure};
use crate::out::{Out, json_text};

/// One line of an export.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    slot: Slot,
    record: Record,
}

/// The scope of consumers' cursors: positions in this store's change log, meaningless in
/// another store's, so `export` of every scope leaves it out.
fn is_cursor_scope(scope: &Scope) -> bool {
    scope.kind() == ScopeKind::App && scope.parts().0 == "_consumers"
}

/// Writes every readable slot of `scope` (or of every scope), read in one snapshot, to
/// `out`; names each unreadable one on stderr and then fails, saying how many were left out.
/// A value past a write's limits (stored before they were enforced) is left out likewise, so
/// the export always imports.
pub async fn export(store: &dyn Store, scope: Option<Scope>, out: &mut Out) -> Result<(), Failure> {
    let all = scope.is_none();
    let (mut written, mut left_out) = (0u64, 0u64);
    for row in store.load_rows(scope.as_ref()).await? {
        let (slot, mut record) = match row {
            Ok((slot, _)) if all && is_cursor_scope(slot.scope()) => continue,
            Ok(read) => read,
            Err(e) => {
                report_unreadable(&e, None);
                left_out += 1;
                continue;
            }
        };
        // One walk of the value: past the depth limit it is left out (a restore refuses it);
        // over the default size it is written, with the flag its import needs.
        let checked = record.value.as_ref().map_or(Ok(()), |v| {
            check_value(&slot, v, state_core::DEFAULT_MAX_VALUE_BYTES)
        });
        match checked {
            Err(e @ Error::TooDeep { .. }) => {
                report_unreadable(&e, Some(&record));
                left_out += 1;
                continue;
            }
            Err(_) => {
                let bytes = record
                    .value
                    .as_ref()
                    .and_then(|v| serde_json::to_vec(v).ok())
                    .map_or(0, |t| t.len());
                warn(&format!(
                    "slot {slot} holds {bytes} bytes, over the 1 MiB a write takes by default: import this export with --max-value-bytes {bytes}"
                ));
            }
            Ok(()) => {}
        }
        if record.value.is_none() {
            record.expires_at = None; // an expired slot exports as the tombstone it reads as
        }
        out.json_line(&Line { slot, record })?;
        written += 1;
    }
    out.flush()?;
    if left_out > 0 {
        return Err(Failure::new(
            Class::Store,
            format!(
                "export wrote {written} slots and left out {left_out} (each named above, with its stored text)"
            ),
        ));
    }
    Ok(())
}

/// One row left out of an export, on stderr as a JSON line a repair can read: slot, version,
/// reason and the stored text (`read`: the record, when it was readable).
fn report_unreadable(e: &Error, read: Option<&Record>) {
    let (slot, source) = match e {
        Error::Store { slot, source } => (slot.as_ref(), Some(source)),
        Error::TooDeep { slot, .. } | Error::OutOfRange { slot, .. } => (Some(slot), None),
        _ => (None, None),
    };
    let malformed = source.and_then(|s| {
        let row = match (s.downcast_ref::<SqliteError>(), s.downcast_ref::<PgError>()) {
            (Some(SqliteError::MalformedRow(row)), _) | (_, Some(PgError::MalformedRow(row))) => {
                row
            }
            _ => return None,
        };
        Some((row.reason.clone(), row.version, row.raw.clone()))
    });
    let (reason, version, raw) = malformed.unwrap_or_else(|| {
        let raw = read
            .and_then(|r| r.value.as_ref())
            .map(|v| serde_json::to_string(v).unwrap_or_default());
        (e.to_string(), read.map(|r| r.version), raw)
    });
    let report = json!({"unreadable": {
        "slot": slot,
        "version": version,
        "reason": reason,
        "raw": raw,
    }});
    warn(&json_text(&report).unwrap_or_else(|f| f.message));
}

/// One line on stderr (if even stderr cannot be written there is nowhere to say so).
fn warn(text: &str) {
    let line = format!("statectl: {}\n", crate::out::escape_controls(text));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Reads and checks every line of an `import` file, before any database is opened: a bad or
/// missing file creates nothing.
pub fn read_import(file: &Path) -> Result<Vec<(Slot, Record)>, Failure> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| {
            Failure::new(
                Class::NotFound,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut records = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let n = n + 1;
        let invalid = |why: String| Failure::new(Class::Invalid, format!("line {n}: {why}"));
        let line = line.map_err(|e| invalid(e.to_string()))?;
        let line = if n == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        if line.trim().is_empty() {
            continue;
        }
        // A line holds its value two levels down: a value of the deepest a store keeps fits.
        let value =
            state_core::json::parse_enveloped(line, 2).map_err(|e| invalid(e.to_string()))?;
        let l: Line = serde_json::from_value(value)
            .map_err(|e| invalid(format!("not an export line: {e}")))?;
        records.push((l.slot, l.record));
    }
    Ok(records)
}

/// `records` held to every limit a store's restore checks that needs no store: depth and size
/// (`max_value_bytes`), valid and distinct slots, versions from 1 to the highest a SQL store
/// writes. What is left to the store is only the comparison with what it holds.
pub fn checked_import(
    records: Vec<(Slot, Record)>,
    max_value_bytes: usize,
) -> Result<Vec<(Slot, Record)>, Failure> {
    let records = state_core::backend::check_restored(records, max_value_bytes)?;
    state_core::backend::check_restore(&records, |_| Ok(Record::absent(0)))?;
    if let Some((slot, r)) = records
        .iter()
        .find(|(_, r)| r.version > state_core::backend::rows::MAX_VERSION)
    {
        return Err(Failure::new(
            Class::Invalid,
            format!(
                "slot {slot}: version {} is above the highest a store writes (2^63 - 2)",
                r.version
            ),
        ));
    }
    Ok(records)
}

/// Restores `records`, held to `max_value_bytes` and every other limit of a write.
pub async fn import(
    store: &dyn Store,
    records: Vec<(Slot, Record)>,
    max_value_bytes: usize,
) -> Result<u64, Failure> {
    let restore = Restore::new(records).max_value_bytes(max_value_bytes);
    match store.restore(restore).await {
        Ok(n) => Ok(n),
        Err(Error::VersionMismatch {
            slot,
            expected,
            actual,
        }) => Err(Failure::new(
            Class::Conflict,
            format!(
                "slot {slot} is at version {actual} here: a restore writes a slot only while it is \
                 below the version restored ({expected}), so a version never goes down; nothing \
                 was imported"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}
