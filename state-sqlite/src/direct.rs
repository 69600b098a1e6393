//! Point and many-slot reads on the caller's thread, with read-only rusqlite connections of
//! the store's own.
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
use std::sync::{Arc, Mutex};

use rusqlite::OpenFlags;
use state_core::Slot;
use state_sql::columns::{self, Columns};
use state_sql::{Known, Loaded};

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
        let conn = match self.take() {
            Ok(conn) => conn,
            Err(e) => return Some(Err(e)),
        };
        let result = read(&conn, slots);
        match &result {
            // A connection that failed for anything but a lock is not kept.
            Err(e) if !state_sql::BackendError::is_busy(e) => {}
            _ => self.give_back(conn),
        }
        if result.is_ok() {
            self.counters.direct_reads.fetch_add(1, Ordering::Relaxed);
        }
        Some(result)
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

/// The SELECT of [`sql::select_slots`] for `slots`, decoded as the sqlx reader decodes it.
fn read(conn: &rusqlite::Connection, slots: &[Slot]) -> Result<Loaded<SqliteError>, SqliteError> {
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

fn sqlite_error(e: rusqlite::Error) -> SqliteError {
    SqliteError::from(to_sqlx(e))
}

/// A rusqlite row read through the columns the shared engine decodes.
struct Row<'a, 'b>(&'a rusqlite::Row<'b>);

/// A column of the wrong type, as sqlx reports one.
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
}
