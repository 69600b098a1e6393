//! Decoding what every SQL store's tables hold alike — a slot's stored state, a whole row,
//! keys, scopes, change-log rows — from a row of any sqlx database. The backends keep their
//! SQL text and bind their parameters; what comes back is read here, once.

use sqlx::{ColumnIndex, Decode, Row, Type};
use state_core::backend::rows::{self, ChangeColumns, RowError, SlotColumns};
use state_core::{Change, Error, Record, Scope, Slot, SlotKey, Timestamp};

use crate::backend::{BackendError, Known};

/// The column types the stores read, from a row of any sqlx database.
pub trait Columns {
    /// A TEXT column.
    fn text(&self, i: usize) -> Result<String, sqlx::Error>;
    /// A TEXT column that may be NULL.
    fn text_or_null(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    /// An INTEGER (BIGINT) column.
    fn int(&self, i: usize) -> Result<i64, sqlx::Error>;
    /// An INTEGER (BIGINT) column that may be NULL.
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    /// A BLOB (BYTEA) column.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, sqlx::Error>;
    /// A TEXT column that may be NULL, lent to `f`: a row that can lend its text in place
    /// saves the copy [`Columns::text_or_null`] makes.
    fn with_text_or_null<R>(
        &self,
        i: usize,
        f: impl FnOnce(Option<&str>) -> R,
    ) -> Result<R, sqlx::Error>
    where
        Self: Sized,
    {
        Ok(f(self.text_or_null(i)?.as_deref()))
    }
}

impl<R> Columns for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }

    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }

    fn int_or_null(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }

    fn bytes(&self, i: usize) -> Result<Vec<u8>, sqlx::Error> {
        self.try_get(i)
    }
}

/// A column of the wrong SQL type: the row's problem, not the whole read's.
fn wrong_type(e: sqlx::Error) -> RowError {
    RowError::new(format!("a column has the wrong type: {e}"))
}

/// What a slot holds, from columns `version, value, expires_at, floor` starting at
/// `first` (the slot's row LEFT JOINed to its scope's floor: no version, no row). A row whose
/// version is readable but whose value is not says which version (and expiry, when that is
/// readable), so writes that replace the value whole can repair it.
pub fn known(row: &impl Columns, first: usize) -> Result<Known, RowError> {
    let version = row.int_or_null(first).map_err(wrong_type)?;
    let floor = row.int_or_null(first + 3).map_err(wrong_type)?;
    let Some(v) = version else {
        let floor = floor.map_or(Ok(0), |f| rows::stored_u64(f, "a scope floor"))?;
        return Ok((Record::absent(floor), false));
    };
    let readable = |expires_at: Option<Option<i64>>| {
        move |e: sqlx::Error| {
            let mut error = wrong_type(e);
            error.version = u64::try_from(v).ok();
            error.expires_at = expires_at.map(|t| t.map(Timestamp::from_millis));
            error
        }
    };
    let expires_at = row.int_or_null(first + 2).map_err(readable(None))?;
    let record = row
        .with_text_or_null(first + 1, |value| rows::stored_record(v, value, expires_at))
        .map_err(readable(Some(expires_at)))?;
    Ok((record?, true))
}

/// What each of `slots` reads as at `now`, from what was loaded for them in order (expired
/// values read as absent); a row that could not be read fails the read, naming its slot.
pub fn visible<E: BackendError>(
    loaded: Vec<Result<Known, E>>,
    slots: &[Slot],
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    loaded
        .into_iter()
        .zip(slots)
        .map(|(r, s)| {
            r.map(|(r, _)| r.visible(now))
                .map_err(|e| e.into_state(Some(s.clone())))
        })
        .collect()
}

/// A whole stored row, from columns `kind, scope_id, scope_sub, namespace, key, version,
/// value, expires_at`, visible at `now`; what cannot be read names the slot when its
/// identity columns are readable and valid, whatever else is not.
pub fn slot_row(
    row: &impl Columns,
    now: Timestamp,
) -> Result<(Slot, Record), (Option<Slot>, RowError)> {
    let columns = (|| {
        Ok::<_, sqlx::Error>(SlotColumns {
            kind: row.text(0)?,
            scope_id: row.text(1)?,
            scope_sub: row.text(2)?,
            namespace: row.text(3)?,
            key: row.text(4)?,
            version: row.int(5)?,
            value: row.text_or_null(6)?,
            expires_at: row.int_or_null(7)?,
        })
    })();
    match columns {
        Ok(c) => rows::stored_row(c, now),
        Err(e) => Err((identity(row), wrong_type(e))),
    }
}

/// The slot a row's identity columns name, if they are readable and valid.
fn identity(row: &impl Columns) -> Option<Slot> {
    let text = |i: usize| row.text(i).ok();
    let scope = rows::scope_from_columns(&text(0)?, text(1)?, text(2)?).ok()?;
    Slot::new(scope, text(3)?, text(4)?).ok()
}

/// Keys from `namespace, key` rows.
pub fn keys<E: BackendError>(rows: &[impl Columns]) -> Result<Vec<SlotKey>, Error> {
    rows.iter()
        .map(|r| slot_key(r))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(|e| E::from(e).into())
}

/// A `namespace, key` row's key.
pub fn slot_key<C: Columns + ?Sized>(r: &C) -> Result<SlotKey, sqlx::Error> {
    Ok(SlotKey {
        namespace: r.text(0)?,
        key: r.text(1)?,
    })
}

/// Scopes from `kind, scope_id, scope_sub` rows (validated like any other).
pub fn scopes<E: BackendError>(rows: &[impl Columns]) -> Result<Vec<Scope>, Error> {
    let triples = rows
        .iter()
        .map(|r| scope_columns(r))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(|e| -> Error { E::from(e).into() })?;
    scopes_from(triples)
}

/// A `kind, scope_id, scope_sub` row's columns, not yet validated ([`scopes_from`]).
pub fn scope_columns<C: Columns + ?Sized>(r: &C) -> Result<(String, String, String), sqlx::Error> {
    Ok((r.text(0)?, r.text(1)?, r.text(2)?))
}

/// The scopes named by [`scope_columns`], validated like any other.
pub fn scopes_from(triples: Vec<(String, String, String)>) -> Result<Vec<Scope>, Error> {
    triples
        .into_iter()
        .map(|(kind, id, sub)| rows::scope_from_columns(&kind, id, sub))
        .collect()
}

/// The column list of a change-log row, as [`change`] reads it.
pub const CHANGE_COLUMNS: &str =
    "seq, kind, scope_id, scope_sub, namespace, key, version, value, at FROM changes";

/// A change-log row ([`CHANGE_COLUMNS`] from column `first` on).
pub fn change<E: BackendError, C: Columns + ?Sized>(
    row: &C,
    first: usize,
) -> Result<Change, Error> {
    let columns = (|| {
        Ok::<_, sqlx::Error>(ChangeColumns {
            seq: row.int(first)?,
            kind: row.text(first + 1)?,
            scope_id: row.text(first + 2)?,
            scope_sub: row.text(first + 3)?,
            namespace: row.text(first + 4)?,
            key: row.text(first + 5)?,
            version: row.int(first + 6)?,
            value: row.text_or_null(first + 7)?,
            at: row.int(first + 8)?,
        })
    })()
    .map_err(|e| E::from(RowError::new(format!("a change-log row: {e}"))).into_state(None))?;
    rows::stored_change(columns, |e, slot| E::from(e).into_state(slot))
}

/// The changes of a read after `after`: rows of the log's retention watermark LEFT JOINed to
/// the changes (one row at least; the changes from column 1 on, NULL when there are none),
/// or [`Error::ChangesTrimmed`] if the retention removed one after `after`.
pub fn changes_after<E: BackendError>(
    rows: &[impl Columns],
    after: u64,
) -> Result<Vec<Change>, Error> {
    changes_from::<E>(rows.iter().map(|r| change_row::<E, _>(r)).collect(), after)
}

/// One row of a changes read ([`changes_after`]), decoded: its retention watermark column and,
/// unless the row is the watermark alone, its change.
pub type ChangeRow = (Result<i64, sqlx::Error>, Option<Result<Change, Error>>);

/// Decodes one row of a changes read, for [`changes_from`].
pub fn change_row<E: BackendError, C: Columns + ?Sized>(row: &C) -> ChangeRow {
    let change = match row.int_or_null(1) {
        Ok(None) => None,
        _ => Some(change::<E, C>(row, 1)),
    };
    (row.int(0), change)
}

/// [`changes_after`] of rows decoded one by one ([`change_row`]).
pub fn changes_from<E: BackendError>(
    rows: Vec<ChangeRow>,
    after: u64,
) -> Result<Vec<Change>, Error> {
    let malformed = |reason: String| E::from(RowError::new(reason)).into_state(None);
    let (through, _) = rows
        .first()
        .ok_or_else(|| malformed("the change log's retention watermark is missing".into()))?;
    let through = *through
        .as_ref()
        .map_err(|e| malformed(format!("the change log's retention watermark: {e}")))?;
    let through = rows::stored_u64(through, "the change log's retention watermark")
        .map_err(|e| E::from(e).into_state(None))?;
    rows::check_not_trimmed(after, through)?;
    rows.into_iter().filter_map(|(_, change)| change).collect()
}

/// The cursor of a key listing with a namespace filter: a cursor in that namespace seeks on
/// the key; one before it means "from its start" (`Some(None)`), one after it means
/// "nothing left" (`None`).
pub fn key_cursor<'a>(
    namespace: Option<&str>,
    after: Option<&'a SlotKey>,
) -> Option<Option<&'a SlotKey>> {
    match (namespace, after) {
        (Some(ns), Some(a)) if a.namespace.as_str() < ns => Some(None),
        (Some(ns), Some(a)) if a.namespace.as_str() > ns => None,
        (_, a) => Some(a),
    }
}
