//! For backend authors: the checks every SQL backend makes when it turns its rows back into
//! scopes, records and changes, and when it decides which schema migrations to apply. The
//! SQLite and PostgreSQL stores both use them, so a row means the same in both.

use serde_json::Value;

use crate::changes::Change;
use crate::error::{Error, Result};
use crate::record::{Record, Timestamp};
use crate::scope::{Scope, ScopeKind, Slot};

/// The highest version a SQL store writes by a commit or a restore: one below the largest
/// signed 64-bit integer (the column type), so a clear, which raises every live slot of a
/// scope by one, still fits. Above it a write is refused with the backend's version-range
/// error, and nothing is written.
pub const MAX_VERSION: u64 = i64::MAX as u64 - 1;

/// A stored row that does not hold what a store writes. Backends carry it in their own
/// "malformed row" error, as its source (so a tool finds it in any backend's error chain).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
#[non_exhaustive]
pub struct RowError {
    /// What is wrong with the row.
    pub reason: String,
    /// The row's version, when that much is readable (a write that replaces the value whole
    /// can then repair the row).
    pub version: Option<u64>,
    /// The row's expiry, when its version and expiry are readable (`Some(None)`: it has
    /// none): a repair with [`Ttl::Keep`](crate::Ttl::Keep) keeps it.
    pub expires_at: Option<Option<Timestamp>>,
    /// The value's stored text, when the value is what cannot be read (for a repair).
    pub raw: Option<String>,
}

impl RowError {
    /// A row error without a readable version.
    pub fn new(reason: impl Into<String>) -> Self {
        RowError {
            reason: reason.into(),
            version: None,
            expires_at: None,
            raw: None,
        }
    }
}

/// The three identity columns of a scope: kind, first id part, second id part (`""` for the
/// one-part kinds; id parts are never empty, so `""` is never a real part).
pub fn scope_columns(scope: &Scope) -> (&'static str, &str, &str) {
    let (id, sub) = scope.parts();
    (scope.kind().as_str(), id, sub.unwrap_or(""))
}

/// A change-log position as a signed 64-bit `seq` column holds it: any `u64` a caller passes
/// is a position, and those above the column's range lie past every change (as on
/// `MemoryStore`).
pub fn log_position(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The identity columns a change filter's scope matches (kind, id, second id part), all
/// `None` without a scope. A scope is its kind and its id parts: `app:shop` is not
/// `execution:shop`, whatever the filter's own `kind`.
pub fn filter_scope_columns(
    filter: &crate::ChangeFilter,
) -> (Option<&'static str>, Option<&str>, Option<&str>) {
    match &filter.scope {
        Some(s) => {
            let (kind, id, sub) = scope_columns(s);
            (Some(kind), Some(id), Some(sub))
        }
        None => (None, None, None),
    }
}

/// A scope from its three identity columns, validated like any other.
pub fn scope_from_columns(kind: &str, id: String, sub: String) -> Result<Scope> {
    Scope::new(
        kind.parse::<ScopeKind>()?,
        id,
        (!sub.is_empty()).then_some(sub),
    )
}

/// A read of the change log after `after`, against the log's retention watermark (the newest
/// sequence number removed, read in the same snapshot): [`Error::ChangesTrimmed`] if a change
/// after `after` is gone.
///
pub fn check_not_trimmed(after: u64, trimmed_through: u64) -> Result<()> {
    if after < trimmed_through {
        return Err(Error::ChangesTrimmed {
            after,
            trimmed_through,
        });
    }
    Ok(())
}

/// A stored non-negative integer (a version, a floor, a sequence number).
pub fn stored_u64(v: i64, what: &str) -> std::result::Result<u64, RowError> {
    u64::try_from(v).map_err(|_| RowError::new(format!("{what} is negative ({v})")))
}

/// A stored value: JSON text, or `None` for a tombstone.
pub fn stored_value(text: Option<&str>) -> std::result::Result<Option<Value>, RowError> {
    text.map(|t| {
        let unreadable = |why: String| RowError {
            raw: Some(t.to_owned()),
            ..RowError::new(format!("the value {why}: {t:.80}"))
        };
        let value =
            serde_json::from_str(t).map_err(|e| unreadable(format!("is not JSON ({e})")))?;
        match crate::json::wide_integer(t) {
            Some(e) => {
                crate::limits::dispose(value);
                Err(unreadable(format!("cannot be read exactly: {e}")))
            }
            None => Ok(value),
        }
    })
    .transpose()
}

/// A stored record from its columns (raw: expiry not applied). An unreadable value is an
/// error that carries the row's version.
pub fn stored_record(
    version: i64,
    value: Option<&str>,
    expires_at: Option<i64>,
) -> std::result::Result<Record, RowError> {
    let version = stored_u64(version, "a version")?;
    let expires_at = expires_at.map(Timestamp::from_millis);
    let value = stored_value(value).map_err(|e| RowError {
        version: Some(version),
        expires_at: Some(expires_at),
        ..e
    })?;
    Ok(Record {
        version,
        value,
        expires_at,
    })
}

/// The first five of `names`, comma-separated, then how many more: how a store names the
/// tables it found in another application's database.
pub fn some_names(names: &[String]) -> String {
    let mut listed = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        listed.push_str(&format!(" and {} more", names.len() - 5));
    }
    listed
}

/// The columns of a stored slot row, as an export reads them ([`stored_row`]).
#[derive(Clone, Debug)]
pub struct SlotColumns {
    /// The scope's kind.
    pub kind: String,
    /// The scope's first id part.
    pub scope_id: String,
    /// The scope's second id part (`""` for one-part kinds).
    pub scope_sub: String,
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The version.
    pub version: i64,
    /// The value (JSON text), `None` for a tombstone.
    pub value: Option<String>,
    /// The expiry, milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

/// A stored slot row as a reader sees it at `now`, or why it cannot be read: the slot when
/// its identity is valid, and the row error (an invalid identity names the columns).
pub fn stored_row(
    row: SlotColumns,
    now: Timestamp,
) -> std::result::Result<(Slot, Record), (Option<Slot>, RowError)> {
    let shown = format!(
        "{:?}/{:?}/{:?}/{:?}/{:?}",
        row.kind, row.scope_id, row.scope_sub, row.namespace, row.key
    );
    let slot = scope_from_columns(&row.kind, row.scope_id, row.scope_sub)
        .and_then(|scope| Slot::new(scope, row.namespace, row.key))
        .map_err(|e| {
            let reason = format!("its identity {shown} is not valid: {e}");
            let version = u64::try_from(row.version).ok();
            let raw = row.value.clone();
            (
                None,
                RowError {
                    version,
                    raw,
                    ..RowError::new(reason)
                },
            )
        })?;
    match stored_record(row.version, row.value.as_deref(), row.expires_at) {
        Ok(record) => Ok((slot, record.visible(now))),
        Err(e) => Err((Some(slot), e)),
    }
}

/// [`Store::load_scope`](crate::Store::load_scope) from the rows
/// [`Store::load_rows`](crate::Store::load_rows) read of one scope: those of `namespace` (or
/// all), and the first unreadable row as the error.
pub fn scope_records(
    rows: Vec<Result<(Slot, Record)>>,
    namespace: Option<&str>,
) -> Result<Vec<(crate::SlotKey, Record)>> {
    let mut out = Vec::new();
    for row in rows {
        let (slot, record) = row?;
        if namespace.is_none_or(|ns| ns == slot.namespace()) {
            let key = crate::SlotKey {
                namespace: slot.namespace().to_owned(),
                key: slot.key().to_owned(),
            };
            out.push((key, record));
        }
    }
    Ok(out)
}

/// The current record a write that replaces a value whole works on when the row's value is
/// unreadable but its version is not. With a readable expiry (`expires_at: Some(_)`): a live
/// value at that version with that expiry, so the write is one version above it and
/// [`Ttl::Keep`](crate::Ttl::Keep) keeps the expiry as it would for a readable value; the
/// value itself is a placeholder (`null`) that such a write never reads. With an unreadable
/// expiry (`None`), nothing but the version can be trusted: the slot reads as absent at that
/// version, so the write starts without an expiry (or a new window, with
/// [`Ttl::KeepOr`](crate::Ttl::KeepOr)).
///
/// Backends call this only when [`Batch::first_write_reads`](crate::Batch::first_write_reads)
/// is false; [`prepare_commit`](crate::backend::prepare_commit) evaluates no write after a CAS write to
/// the same slot conflicted, so no op ever runs on the placeholder.
pub fn unreadable_value(version: u64, expires_at: Option<Option<Timestamp>>) -> Record {
    match expires_at {
        Some(expires_at) => Record {
            value: Some(Value::Null),
            version,
            expires_at,
        },
        None => Record::absent(version),
    }
}

/// A SQL backend's error for one loaded slot, as the shared group logic needs it.
pub trait LoadError: Clone + std::error::Error + Send + Sync + 'static {
    /// The row's readable version and expiry when only its value is unreadable (see
    /// [`RowError`]): a write that replaces the value whole may then repair it.
    fn readable(&self) -> Option<(u64, Option<Option<Timestamp>>)>;
    /// The backend's error for a version above [`MAX_VERSION`].
    fn version_range(version: u64) -> Self;
}

/// [`prepare_group`](crate::backend::prepare_group) on the records a SQL backend loaded for the group's
/// slots (`loaded(slot)`: the slot's record, or why its row could not be read; `None`: not
/// loaded, a bug). Rows whose value is unreadable are repaired by writes that do not read
/// them ([`unreadable_value`]); versions above [`MAX_VERSION`] are refused.
pub fn prepare_loaded_group<'a, 'b, E: LoadError>(
    batches: impl IntoIterator<Item = &'a crate::Batch>,
    now: Timestamp,
    loaded: impl Fn(&Slot) -> Option<std::result::Result<&'b Record, &'b E>>,
) -> crate::backend::PreparedGroup {
    let as_state = |e: E, slot: &Slot| Error::Store {
        slot: Some(slot.clone()),
        source: Box::new(e),
    };
    crate::backend::prepare_group(
        batches,
        now,
        |batch, slot| match loaded(slot) {
            Some(Ok(r)) => Ok(r.clone()),
            Some(Err(e)) => match e.readable() {
                // An unreadable value is replaced by a write that does not need it.
                Some((v, expires_at)) if !batch.first_write_reads(slot) => {
                    Ok(unreadable_value(v, expires_at))
                }
                _ => Err(as_state(e.clone(), slot)),
            },
            None => Err(Error::store(std::io::Error::other("slot was not loaded"))),
        },
        |slot, rec| {
            // Refused above the highest version a clear can still raise by one.
            if rec.version > MAX_VERSION {
                return Err(as_state(E::version_range(rec.version), slot));
            }
            Ok(())
        },
    )
}

/// The JSON text a store writes for a value.
pub fn value_text(value: &Value) -> std::result::Result<String, RowError> {
    serde_json::to_string(value).map_err(|e| RowError::new(format!("cannot serialize: {e}")))
}

/// The columns of a change-log row.
#[derive(Clone, Debug)]
pub struct ChangeColumns {
    /// `seq`.
    pub seq: i64,
    /// The scope's kind.
    pub kind: String,
    /// The scope's first id part.
    pub scope_id: String,
    /// The scope's second id part (`""` for one-part kinds).
    pub scope_sub: String,
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The version committed.
    pub version: i64,
    /// The value committed (JSON text), `None` for a tombstone.
    pub value: Option<String>,
    /// The commit time, milliseconds since the Unix epoch.
    pub at: i64,
}

/// A change from its row; `malformed` turns a row error into the backend's error, naming the
/// slot once it is known.
pub fn stored_change(
    row: ChangeColumns,
    malformed: impl Fn(RowError, Option<Slot>) -> Error,
) -> Result<Change> {
    let seq = row.seq;
    let scope = scope_from_columns(&row.kind, row.scope_id, row.scope_sub)?;
    let slot = Slot::new(scope, row.namespace, row.key)?;
    let decoded = (|| {
        Ok::<_, RowError>((
            stored_u64(row.seq, "a sequence number")?,
            stored_u64(row.version, "a version")?,
            stored_value(row.value.as_deref())?,
        ))
    })();
    match decoded {
        Ok((seq, version, value)) => Ok(Change {
            seq,
            slot,
            version,
            value,
            at: Timestamp::from_millis(row.at),
        }),
        // Named by its sequence number: a reader can resume past it (`--from`).
        Err(e) => Err(malformed(
            RowError {
                reason: format!("change {seq}: {}", e.reason),
                ..e
            },
            Some(slot),
        )),
    }
}

/// Why a database's applied migrations do not fit this build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationMismatch {
    /// A migration newer than this build knows was applied.
    Newer {
        /// The newest applied version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// An applied migration differs from this build's.
    Checksum {
        /// Its version.
        version: i64,
    },
}

/// The versions of `known` migrations (version, checksum) still to apply, given the
/// `applied` ones, in `known`'s order; or why the database does not fit this build.
pub fn migrations_to_apply<'a>(
    applied: &[(i64, Vec<u8>)],
    known: impl IntoIterator<Item = (i64, &'a [u8])>,
) -> std::result::Result<Vec<i64>, MigrationMismatch> {
    let known: Vec<(i64, &[u8])> = known.into_iter().collect();
    let supported = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    if let Some(found) = applied
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| *v > supported)
        .max()
    {
        return Err(MigrationMismatch::Newer { found, supported });
    }
    let mut pending = Vec::new();
    for (version, checksum) in known {
        match applied.iter().find(|(v, _)| *v == version) {
            Some((_, applied)) if applied.as_slice() != checksum => {
                return Err(MigrationMismatch::Checksum { version });
            }
            Some(_) => {}
            None => pending.push(version),
        }
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_checked_against_what_was_applied() {
        let known = [(1, &b"a"[..]), (2, &b"b"[..])];
        assert_eq!(migrations_to_apply(&[], known), Ok(vec![1, 2]));
        assert_eq!(
            migrations_to_apply(&[(1, b"a".to_vec())], known),
            Ok(vec![2])
        );
        assert_eq!(
            migrations_to_apply(&[(1, b"x".to_vec())], known),
            Err(MigrationMismatch::Checksum { version: 1 })
        );
        assert_eq!(
            migrations_to_apply(&[(3, b"c".to_vec())], known),
            Err(MigrationMismatch::Newer {
                found: 3,
                supported: 2
            })
        );
    }

    #[test]
    fn an_unreadable_value_keeps_the_rows_version() {
        let e = stored_record(4, Some("{not json"), None).unwrap_err();
        assert_eq!(e.version, Some(4));
        assert!(stored_record(-1, None, None).is_err());
        assert_eq!(
            stored_record(2, Some("7"), Some(5)).unwrap(),
            Record {
                version: 2,
                value: Some(7.into()),
                expires_at: Some(Timestamp::from_millis(5)),
            }
        );
    }
}
