//! Point and many-slot reads, listings, the change log and slot history on the caller's
//! thread, with read-only rusqlite connections of the store's own.
//!
//! sqlx runs every SQLite statement on a worker thread of its connection: a read is two
//! thread hand-offs, more than SQLite takes to read a few rows of a file in the page cache.
//! These reads run on the calling thread instead, as the committer's one-call commits do.
//! Each is one SELECT — one snapshot in WAL mode — and never waits: WAL readers take no lock
//! a writer holds, and a read that meets a lock anyway (a checkpoint restarting the WAL, a
//! rollback-journal file) fails at once as busy and goes to the sqlx reader, which waits it
//! out with the store's retries.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;
use state_core::Slot;
use state_sql::columns::{self, Columns};
use state_sql::{Known, Loaded, Param};

use crate::error::SqliteError;
use crate::inline::to_sqlx;
use crate::sql;
use crate::writer::Counters;

/// Prepared statements kept per connection: one per row bucket in use.
const STATEMENTS_MAX: usize = 16;

/// The store's direct readers: idle connections, opened on demand, at most `max` kept.
pub(crate) struct DirectReads {
    path: PathBuf,
    max: usize,
    idle: Mutex<Vec<rusqlite::Connection>>,
    counters: Arc<Counters>,
}

impl DirectReads {
    pub(crate) fn new(path: PathBuf, max: usize, counters: Arc<Counters>) -> Self {
        DirectReads {
            path,
            max,
            idle: Mutex::new(Vec::new()),
            counters,
        }
    }

    /// Each slot's row (raw), in order, from one SELECT; `None` for more slots than one
    /// SELECT reads (the sqlx reader then reads them in one transaction).
    pub(crate) fn load(&self, slots: &[Slot]) -> Option<Result<Loaded<SqliteError>, SqliteError>> {
        if slots.is_empty() || slots.len() > sql::SELECT_MAX {
            return None;
        }
        let loaded = self.with_conn(|conn| read(conn, slots));
        if loaded.is_ok() {
            self.counters.direct_reads.fetch_add(1, Ordering::Relaxed);
        }
        Some(loaded)
    }

    /// A read statement of the shared engine (`$N` parameters), each row decoded by `row` as
    /// SQLite returns it; `None` when its rows hold more than [`INLINE_BYTES_MAX`] (a page of
    /// large values), which the sqlx reader then reads off the caller's thread.
    pub(crate) fn fetch<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> Option<Result<Vec<T>, SqliteError>> {
        match self.with_conn(|conn| fetch(conn, sql, params, row)) {
            Ok(Some(rows)) => {
                self.counters.direct_reads.fetch_add(1, Ordering::Relaxed);
                Some(Ok(rows))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Runs `read` on an idle connection (or a new one); a connection that failed for
    /// anything but a lock is not kept.
    fn with_conn<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        let conn = self.take()?;
        let result = read(&conn);
        match &result {
            Err(e) if !state_sql::BackendError::is_busy(e) => {}
            _ => self.give_back(conn),
        }
        result
    }

    fn take(&self) -> Result<rusqlite::Connection, SqliteError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open(&self.path).map_err(|e| SqliteError::from(to_sqlx(e))),
        }
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

/// A read-only connection to the store's file: no create, no URI names, no busy wait.
fn open(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_MAX);
    Ok(conn)
}

/// Each slot's row, decoded as the sqlx reader decodes it: slots of one scope and namespace
/// (a struct's fields, a collection's entries) by key, others by [`sql::select_slots`].
fn read(conn: &rusqlite::Connection, slots: &[Slot]) -> Result<Loaded<SqliteError>, SqliteError> {
    let first = &slots[0];
    let together = slots
        .iter()
        .all(|s| s.scope() == first.scope() && s.namespace() == first.namespace());
    // One slot reads faster through the plain join than with the floor's extra row.
    if together && slots.len() > 1 {
        read_namespace(conn, slots)
    } else {
        read_any(conn, slots)
    }
}

/// Slots of one scope and namespace: the scope's floor (a row whose key is NULL) and the
/// rows between the smallest and the largest key asked for, in one range of the primary key
/// (a struct's fields lie together) — or, when that range holds many more rows than were
/// asked for (a few entries of a large collection), the rows of those keys only. A slot
/// without a row is absent at the floor, as in [`sql::select_slots`].
fn read_namespace(
    conn: &rusqlite::Connection,
    slots: &[Slot],
) -> Result<Loaded<SqliteError>, SqliteError> {
    let (wanted, place) = wanted_keys(slots);
    let (kind, id, sub) = state_core::backend::rows::scope_columns(slots[0].scope());
    let scope = [kind, id, sub, kind, id, sub, slots[0].namespace()];
    // At most this many rows in the range before the keys are looked up one by one.
    let limit = 2 * wanted.len() + 16;
    let range = {
        let mut stmt = conn.prepare_cached(RANGE_SQL).map_err(sqlite_error)?;
        let (first, last) = (wanted[0], wanted[wanted.len() - 1]);
        for (i, p) in scope.iter().chain([&first, &last]).enumerate() {
            stmt.raw_bind_parameter(i + 1, *p).map_err(sqlite_error)?;
        }
        stmt.raw_bind_parameter(scope.len() + 3, limit as i64)
            .map_err(sqlite_error)?;
        collect(stmt.raw_query(), &wanted)?
    };
    let (absent, found) = match range {
        (absent, found, rows) if rows < limit => (absent, found),
        _ => {
            let keys = sql::bucket(wanted.len());
            let mut stmt = conn
                .prepare_cached(namespace_sql(keys))
                .map_err(sqlite_error)?;
            let padded = (0..keys).map(|i| &wanted[i.min(wanted.len() - 1)]);
            for (i, p) in scope.iter().chain(padded).enumerate() {
                stmt.raw_bind_parameter(i + 1, *p).map_err(sqlite_error)?;
            }
            let (absent, found, _) = collect(stmt.raw_query(), &wanted)?;
            (absent, found)
        }
    };
    let absent = absent.ok_or_else(|| {
        SqliteError::MalformedRow(state_core::backend::rows::RowError::new(
            "the scope's floor was not returned",
        ))
    })?;
    // Each wanted key's record moves to its slot; only a slot asked for twice is a copy.
    let mut found = found;
    let unique = wanted.len() == slots.len();
    Ok(place
        .into_iter()
        .map(|i| {
            let kept = if unique {
                found[i].take()
            } else {
                found[i].clone()
            };
            kept.unwrap_or_else(|| absent.clone())
        })
        .collect())
}

/// The distinct keys of `slots` in key order, and each slot's place among them.
fn wanted_keys(slots: &[Slot]) -> (Vec<&str>, Vec<usize>) {
    let mut order: Vec<usize> = (0..slots.len()).collect();
    // A struct's fields usually come in key order already: a stable sort checks that in one pass.
    order.sort_by(|&a, &b| slots[a].key().cmp(slots[b].key()));
    let (mut wanted, mut place) = (Vec::with_capacity(slots.len()), vec![0; slots.len()]);
    for i in order {
        let key = slots[i].key();
        if wanted.last() != Some(&key) {
            wanted.push(key);
        }
        place[i] = wanted.len() - 1;
    }
    (wanted, place)
}

/// What a key-ordered read of one namespace returned: the floor row's record, each wanted
/// key's (by its position in the sorted `wanted`; other keys' rows are counted, not
/// decoded), and how many slot rows.
type Collected = (
    Option<Result<Known, SqliteError>>,
    Vec<Option<Result<Known, SqliteError>>>,
    usize,
);

fn collect(mut rows: rusqlite::Rows<'_>, wanted: &[&str]) -> Result<Collected, SqliteError> {
    let (mut absent, mut found, mut count) = (None, vec![None; wanted.len()], 0);
    // Rows come in key order, as `wanted` is: the next wanted key is usually the row's. Keys
    // compare as bytes (as `str`s order), so a row between the wanted ones whose key is not
    // text (a hand edit) is skipped like any key not asked for, as the IN-list read would.
    let mut next = 0;
    let mut locate = |key: &[u8]| match wanted.get(next) {
        Some(&w) if w.as_bytes() == key => {
            next += 1;
            Some(next - 1)
        }
        _ => wanted.binary_search_by(|w| w.as_bytes().cmp(key)).ok(),
    };
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        // `None`: the floor's row (no key); else the key's place among those wanted.
        let place = match row.get_ref(0).map_err(sqlite_error)? {
            ValueRef::Null => None,
            ValueRef::Text(key) => Some(locate(key)),
            _ => Some(None),
        };
        let row = Row(row);
        match place {
            None => absent = Some(columns::known(&row, 1).map_err(SqliteError::from)),
            Some(at) => {
                count += 1;
                if let Some(i) = at {
                    found[i] = Some(columns::known(&row, 1).map_err(SqliteError::from));
                }
            }
        }
    }
    Ok((absent, found, count))
}

/// The floor, then the namespace's rows from key `?8` to key `?9`, at most `?10` of them.
const RANGE_SQL: &str = "SELECT NULL, NULL, NULL, NULL, (SELECT floor FROM scope_floors \
       WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3) \
     UNION ALL \
     SELECT * FROM (SELECT key, version, value, expires_at, NULL FROM slots \
       WHERE kind = ?4 AND scope_id = ?5 AND scope_sub = ?6 AND namespace = ?7 \
         AND key >= ?8 AND key <= ?9 ORDER BY key LIMIT ?10)";

/// The statement of [`read_namespace`] for `keys` keys, a power of two up to
/// [`sql::SELECT_MAX`].
fn namespace_sql(keys: usize) -> &'static str {
    static TEXTS: [OnceLock<String>; 13] = [const { OnceLock::new() }; 13];
    let i = (keys.trailing_zeros() as usize).min(TEXTS.len() - 1);
    TEXTS[i].get_or_init(|| namespace_text(keys))
}

fn namespace_text(keys: usize) -> String {
    let list = vec!["?"; keys].join(",");
    format!(
        "SELECT NULL, NULL, NULL, NULL, (SELECT floor FROM scope_floors \
           WHERE kind = ? AND scope_id = ? AND scope_sub = ?) \
         UNION ALL \
         SELECT key, version, value, expires_at, NULL FROM slots \
           WHERE kind = ? AND scope_id = ? AND scope_sub = ? AND namespace = ? AND key IN ({list})"
    )
}

/// The SELECT of [`sql::select_slots`] for `slots`.
fn read_any(
    conn: &rusqlite::Connection,
    slots: &[Slot],
) -> Result<Loaded<SqliteError>, SqliteError> {
    let params = sql::slot_params(slots, 0);
    let mut stmt = conn
        .prepare_cached(sql::select_slots(sql::bucket(slots.len())))
        .map_err(sqlite_error)?;
    for (i, p) in params.iter().enumerate() {
        p.bind_rusqlite(&mut stmt, i + 1).map_err(sqlite_error)?;
    }
    let mut out: Vec<Option<Result<Known, SqliteError>>> = vec![None; slots.len()];
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let row = Row(row);
        let i = row.int(0).map_err(SqliteError::from)?;
        if let Some(slot_out) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot_out = Some(columns::known(&row, 1).map_err(SqliteError::from));
        }
    }
    Ok(sql::all_returned(out))
}

/// The most bytes of stored values (columns named `value`; identities are short) a fetch
/// reads on the caller's thread: past it, the read goes to the sqlx reader, whose thread is
/// not the caller's (a page of large values would hold the caller's runtime worker for as
/// long as it takes to read and decode).
const INLINE_BYTES_MAX: usize = 1 << 20;

/// Runs `sql`, binding `params[i]` to its parameter `$i+1` (by name: SQLite numbers named
/// parameters in the order they first appear), and decodes each row with `row_decoder`;
/// `None` once the rows hold more than [`INLINE_BYTES_MAX`].
fn fetch<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
    row_decoder: &mut dyn FnMut(&dyn Columns) -> Result<T, sqlx::Error>,
) -> Result<Option<Vec<T>>, SqliteError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    for (i, p) in params.iter().enumerate() {
        let Some(at) = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(sqlite_error)?
        else {
            continue;
        };
        match p {
            Param::Int(v) => stmt.raw_bind_parameter(at, v),
            Param::Text(t) => stmt.raw_bind_parameter(at, t),
            Param::Bytes(b) => stmt.raw_bind_parameter(at, b),
        }
        .map_err(sqlite_error)?;
    }
    let values: Vec<usize> = (0..stmt.column_count())
        .filter(|&i| stmt.column_name(i).is_ok_and(|name| name == "value"))
        .collect();
    let (mut out, mut bytes) = (Vec::new(), 0);
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        for &i in &values {
            if let ValueRef::Text(b) | ValueRef::Blob(b) = row.get_ref(i).map_err(sqlite_error)? {
                bytes += b.len();
            }
        }
        if bytes > INLINE_BYTES_MAX {
            return Ok(None);
        }
        // Text that is not UTF-8 (a hand edit) fails as a column of the wrong type, never as
        // a changed string.
        out.push(row_decoder(&Row(row)).map_err(SqliteError::from)?);
    }
    Ok(Some(out))
}

fn sqlite_error(e: rusqlite::Error) -> SqliteError {
    SqliteError::from(to_sqlx(e))
}

/// A rusqlite row read through the columns the shared engine decodes.
struct Row<'a, 'b>(&'a rusqlite::Row<'b>);

/// A column that cannot be read as asked (another type, text that is not UTF-8), as sqlx
/// reports one.
fn decode(i: usize, e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: i.to_string(),
        source: Box::new(e),
    }
}

impl Columns for Row<'_, '_> {
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.0.get(i).map_err(|e| decode(i, e))
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.0.get(i).map_err(|e| decode(i, e))
    }

    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.0.get(i).map_err(|e| decode(i, e))
    }

    fn int_or_null(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.0.get(i).map_err(|e| decode(i, e))
    }

    fn bytes(&self, i: usize) -> Result<Vec<u8>, sqlx::Error> {
        self.0.get(i).map_err(|e| decode(i, e))
    }

    fn with_text_or_null<R>(
        &self,
        i: usize,
        f: impl FnOnce(Option<&str>) -> R,
    ) -> Result<R, sqlx::Error> {
        let value = self.0.get_ref(i).map_err(|e| decode(i, e))?;
        let text = value.as_str_or_null().map_err(|e| {
            let e = rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(e));
            decode(i, e)
        })?;
        Ok(f(text))
    }
}
