//! The write connection, and commits run on the committer's own thread.
//!
//! sqlx runs every statement of a [`SqliteConnection`] on that connection's worker thread: a
//! statement is a hand-off there and an answer back, two thread wake-ups that cost more than
//! SQLite's own work for a small commit (`BENCHMARKS.md`, sessions 4–8). So the committer
//! keeps a second connection to the same file, a [`rusqlite::Connection`] (the same linked
//! SQLite: rusqlite and sqlx share `libsqlite3-sys`), and runs its hot statement, the one-call
//! guarded commit, on it directly, on the thread that runs the committer. Everything else —
//! the read path, admin writes, checkpoints — runs on the sqlx connection. Both connections
//! belong to the committer, which uses one at a time and ends every transaction it opens
//! before it uses the other, so they never wait for each other.
//!
//! What keeps the thread that runs such a commit from blocking for long:
//! - **No busy wait.** The direct connection's busy timeout is 0: a commit that meets another
//!   connection's lock fails at once with `SQLITE_BUSY`, having written nothing (an autocommit
//!   statement takes the write lock before it writes), and the committer runs it again through
//!   sqlx (on the worker thread, with the configured busy timeout and retries).
//! - **No checkpoint.** SQLite's automatic checkpoint runs inside the commit that crosses
//!   1000 WAL pages; it is off on the direct connection, and the committer runs the
//!   checkpoint through sqlx once the direct commits since the last one have done enough work
//!   ([`WriteConn::checkpoint_due`]): each counts the pages it likely wrote (3, and one per
//!   1365 bytes it binds: what it binds lands in a slot row, a change-log row and an index),
//!   and how many such units make about 1000 pages is learnt from what each checkpoint finds
//!   in the WAL. (The WAL's exact size is only known to a WAL hook, which rusqlite does not
//!   offer; counting commits alone let a few large ones grow the WAL far past 1000 pages.)
//!
//! What is left is SQLite's work for the statement itself: tens of microseconds with
//! `synchronous = NORMAL` for a small group, up to milliseconds for the largest (1024 slots,
//! 2048 versions) or the first run of a statement shape (its preparation), plus one `fsync`
//! of the WAL with `FULL`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::OpenFlags;
use sqlx::SqliteConnection;

use crate::sql::P;

/// WAL pages after which a checkpoint is due (SQLite's automatic checkpoint default).
const CHECKPOINT_PAGES: u64 = 1000;

/// Units of work between checkpoints before the first one tells how many pages they write.
const FIRST_CHECKPOINT_AFTER: u64 = 128;

/// Bounds on the units of work between checkpoints.
const CHECKPOINT_EVERY: std::ops::RangeInclusive<u64> = 8..=16_384;

/// The units of work of any direct commit: the pages it writes however small it is (the
/// slot table's, the change log's and its index's).
const BASE_UNITS: u64 = 3;

/// Bytes bound to a direct commit that count one more unit of work (a page's worth, written
/// three times).
const BYTES_PER_UNIT: usize = 4096 / 3;

/// The most statements kept prepared on the direct connection (the one-call commit has a
/// shape per triple of size buckets — checked slots, scope floors, versions — of which a
/// workload uses a few; sqlx keeps 128 per connection).
const STATEMENTS_MAX: usize = 64;

/// The store's write connections: sqlx's, and the direct one the one-call commit runs on.
pub(crate) struct WriteConn {
    sqlx: SqliteConnection,
    direct: Option<Direct>,
    /// A `ROLLBACK` through sqlx failed: a transaction may still be open there.
    maybe_open: bool,
}

/// The direct connection, and when its next checkpoint is due.
struct Direct {
    conn: rusqlite::Connection,
    pace: Pace,
}

/// When the next checkpoint is due, in units of work of direct commits ([`BASE_UNITS`] per
/// commit, and one per [`BYTES_PER_UNIT`] it binds: about the pages it writes).
#[derive(Debug, PartialEq, Eq)]
struct Pace {
    /// Units of work since the last checkpoint.
    since: u64,
    /// Units of work after which the next checkpoint is due.
    due: u64,
}

impl Pace {
    fn new() -> Self {
        Pace {
            since: 0,
            due: FIRST_CHECKPOINT_AFTER,
        }
    }

    /// See [`WriteConn::checkpointed`]. A WAL much smaller than the work since the last
    /// checkpoint was restarted meanwhile (by another connection's checkpoint): it says
    /// nothing about this work, and is not learnt from. The pace at most doubles at a time.
    fn checkpointed(&mut self, wal: Option<u64>, complete: bool) {
        if let Some(pages) = wal.filter(|&p| p > 0 && p.saturating_mul(4) >= self.since) {
            let every = self.since.saturating_mul(CHECKPOINT_PAGES) / pages;
            let most = self.due.saturating_mul(2).min(*CHECKPOINT_EVERY.end());
            self.due = every.clamp(*CHECKPOINT_EVERY.start(), most);
        }
        if !complete {
            self.due = (self.due / 10).max(*CHECKPOINT_EVERY.start());
        }
        self.since = 0;
    }
}

impl WriteConn {
    /// Takes the store's sqlx write connection, with no direct connection: every statement
    /// runs through sqlx.
    pub(crate) fn new(sqlx: SqliteConnection) -> Self {
        WriteConn {
            sqlx,
            direct: None,
            maybe_open: false,
        }
    }

    /// Opens the direct connection to the store's file at `path` (it exists, migrated), with
    /// `synchronous` as the store's and `commits` counting the transactions it commits.
    pub(crate) fn open_direct(
        &mut self,
        path: &Path,
        synchronous: &str,
        commits: Arc<AtomicU64>,
    ) -> Result<(), sqlx::Error> {
        let conn = open_direct(path, synchronous).map_err(to_sqlx)?;
        conn.commit_hook(Some(move || {
            commits.fetch_add(1, Ordering::Relaxed);
            false // false: commit (true would roll back)
        }));
        self.direct = Some(Direct {
            conn,
            pace: Pace::new(),
        });
        Ok(())
    }

    /// Whether commits can run on the direct connection.
    pub(crate) fn has_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The sqlx connection (its worker thread runs the statements).
    pub(crate) fn sqlx(&mut self) -> &mut SqliteConnection {
        &mut self.sqlx
    }

    /// Rolls back, through sqlx, what a failed statement or transaction left open. If that
    /// fails, the next [`Self::sqlx_checked`] tries again before anything else runs there.
    pub(crate) async fn roll_back(&mut self) {
        if roll_back_any(&mut self.sqlx).await.is_err() {
            self.maybe_open = true;
        }
    }

    /// [`Self::sqlx`], after making sure no transaction is left open on it if a
    /// [`Self::roll_back`] failed: a statement meant to run in autocommit would otherwise run
    /// inside it, and not commit; and the open transaction would hold the write lock against
    /// the direct connection.
    pub(crate) async fn sqlx_checked(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        if self.maybe_open {
            roll_back_any(&mut self.sqlx).await?;
            self.maybe_open = false;
        }
        Ok(&mut self.sqlx)
    }

    /// Runs `sql` (ONE statement, prepared once and kept) with `params` bound in order, to
    /// completion, on the direct connection, on the calling thread; returns the first column of
    /// its first row, if it returns rows. Fails at once with SQLITE_BUSY if another connection
    /// holds a lock, and refuses to run while a transaction may be open on the sqlx connection
    /// (it would hold the lock this statement needs).
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        params: &[P<'_>],
    ) -> Result<Option<i64>, sqlx::Error> {
        if sql.contains(';') {
            // SQLite would prepare the first statement alone, and the rest never run. The
            // store's statements bind every value, so none holds a `;`.
            return Err(sqlx::Error::Protocol("more than one statement".into()));
        }
        self.sqlx_checked().await?;
        let direct = self
            .direct
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol("no direct connection".into()))?;
        let (first, bytes) = run(&direct.conn, sql, params).map_err(to_sqlx)?;
        direct.pace.since += BASE_UNITS + (bytes / BYTES_PER_UNIT) as u64;
        Ok(first)
    }

    /// Whether a checkpoint is due: enough work by direct commits since the last one (there
    /// is no automatic one on that connection). Then run `PRAGMA wal_checkpoint(PASSIVE)` through [`Self::sqlx`]
    /// and report what it found with [`Self::checkpointed`].
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.direct
            .as_ref()
            .is_some_and(|d| d.pace.since >= d.pace.due)
    }

    /// Records a checkpoint's outcome: `wal` is the WAL's size in pages when it ran and
    /// `complete` whether every page was copied back. The next one is due after as much work as
    /// wrote about 1000 pages this time; after an incomplete one (a reader still
    /// needs pages), a tenth of that.
    pub(crate) fn checkpointed(&mut self, wal: Option<u64>, complete: bool) {
        if let Some(d) = self.direct.as_mut() {
            d.pace.checkpointed(wal, complete);
        }
    }
}

/// Ends any transaction open on `conn`: a savepoint opens one if none is, so the `ROLLBACK`
/// always has one to end and any failure is a real one.
async fn roll_back_any(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    conn.execute("SAVEPOINT roll_back_any; ROLLBACK")
        .await
        .map(drop)
}

/// Opens the direct connection: the file must exist (no create), no URI names, no busy wait,
/// no automatic checkpoint.
fn open_direct(path: &Path, synchronous: &str) -> rusqlite::Result<rusqlite::Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_MAX);
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// See [`WriteConn::run`]; also returns the bytes it bound (an integer: 8).
fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[P<'_>],
) -> rusqlite::Result<(Option<i64>, usize)> {
    let mut stmt = conn.prepare_cached(sql)?;
    if stmt.parameter_count() != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            stmt.parameter_count(),
        ));
    }
    let mut bytes = 0;
    for (i, p) in params.iter().enumerate() {
        bytes += p.len();
        p.bind_rusqlite(&mut stmt, i + 1)?;
    }
    let mut rows = stmt.raw_query();
    let mut first = None;
    while let Some(row) = rows.next()? {
        if first.is_none() {
            first = Some(row.get::<_, i64>(0)?);
        }
    }
    Ok((first, bytes))
}

/// A rusqlite error as sqlx reports SQLite's: a database error with SQLite's extended result
/// code (what the store's error classes read), or a protocol error for a refusal of
/// rusqlite's own.
pub(crate) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => sqlx::Error::Database(Box::new(Failure {
            code: f.extended_code,
            message: message.unwrap_or_else(|| f.to_string()),
        })),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// A SQLite failure on the direct connection.
#[derive(Debug)]
struct Failure {
    /// SQLite's extended result code.
    code: i32,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl sqlx::error::DatabaseError for Failure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            1555 | 2067 => ErrorKind::UniqueViolation,
            787 => ErrorKind::ForeignKeyViolation,
            1299 => ErrorKind::NotNullViolation,
            275 => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Executor};

    async fn write_conn(dir: &tempfile::TempDir) -> WriteConn {
        let path = dir.path().join("t.db");
        let conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        let mut w = WriteConn::new(conn);
        w.sqlx()
            .execute("CREATE TABLE t (n INTEGER NOT NULL)")
            .await
            .unwrap();
        w.open_direct(&path, "NORMAL", Arc::default()).unwrap();
        w
    }

    async fn rows(w: &mut WriteConn) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(w.sqlx())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_statement_runs_on_the_direct_connection_and_its_errors_carry_sqlites_codes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = write_conn(&dir).await;
        assert_eq!(
            w.run("INSERT INTO t VALUES (?)", &[P::Int(7)])
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            w.run("SELECT n * 2 FROM t", &[]).await.unwrap(),
            Some(14),
            "the first column of the first row"
        );
        let e = w
            .run("INSERT INTO t VALUES (?)", &[P::Null])
            .await
            .unwrap_err();
        match e {
            sqlx::Error::Database(db) => {
                assert_eq!(db.kind(), sqlx::error::ErrorKind::NotNullViolation);
                assert_eq!(db.code().as_deref(), Some("1299"), "the extended code");
            }
            other => panic!("{other:?}"),
        }
        // Committed: sqlx's connection reads it.
        assert_eq!(rows(&mut w).await, [7]);
        assert_eq!(w.run("SELECT n FROM t", &[]).await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_multi_statement_string_or_a_wrong_parameter_count_is_refused_unrun() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = write_conn(&dir).await;
        let e = w
            .run("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", &[])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("more than one statement"), "{e}");
        let e = w.run("INSERT INTO t VALUES (?)", &[]).await.unwrap_err();
        assert!(e.to_string().contains("parameter"), "{e}");
        let e = w
            .run("INSERT INTO t VALUES (?)", &[P::Int(1), P::Int(2)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("parameter"), "{e}");
        assert!(rows(&mut w).await.is_empty());
    }

    #[tokio::test]
    async fn a_transaction_a_failed_rollback_left_open_is_ended_before_a_direct_statement() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = write_conn(&dir).await;
        w.roll_back().await;
        assert!(
            !w.maybe_open,
            "a rollback with nothing to roll back is no failure"
        );
        w.sqlx().execute("BEGIN IMMEDIATE").await.unwrap();
        w.sqlx().execute("INSERT INTO t VALUES (1)").await.unwrap();
        // As if the ROLLBACK after a failure had failed: the direct statement does not meet
        // the stray transaction's lock, which (and its row) is rolled back first.
        w.maybe_open = true;
        w.run("INSERT INTO t VALUES (?)", &[P::Int(2)])
            .await
            .unwrap();
        assert!(!w.maybe_open);
        let e = w.sqlx().execute("COMMIT").await.unwrap_err();
        assert_eq!(crate::error::code(&e), Some(1), "no transaction open: {e}");
        assert_eq!(rows(&mut w).await, [2]);
    }

    #[tokio::test]
    async fn another_connections_lock_fails_a_direct_statement_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = write_conn(&dir).await;
        let blocker = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = w
            .run("INSERT INTO t VALUES (?)", &[P::Int(1)])
            .await
            .unwrap_err();
        assert!(crate::error::is_busy(&e), "{e}");
        blocker.execute_batch("ROLLBACK").unwrap();
        w.run("INSERT INTO t VALUES (?)", &[P::Int(1)])
            .await
            .unwrap();
        assert_eq!(rows(&mut w).await, [1]);
    }

    #[test]
    fn checkpoints_come_about_every_thousand_pages() {
        let mut pace = Pace::new();
        let after = |pace: &mut Pace, commits: u64, wal: Option<u64>, complete: bool| {
            pace.since = commits;
            pace.checkpointed(wal, complete);
            pace.due
        };
        // 128 units wrote 512 pages: 4 a unit, so 250 units make 1000.
        assert_eq!(after(&mut pace, 128, Some(512), true), 250);
        assert_eq!(pace.since, 0);
        // A reader kept it from finishing: try again after a tenth.
        assert_eq!(after(&mut pace, 250, Some(1000), false), 25);
        // Large commits: down at once, to the floor.
        assert_eq!(after(&mut pace, 8, Some(100_000), true), 8);
        // Small ones: up, at most doubling each time.
        assert_eq!(after(&mut pace, 8, Some(4), true), 16);
        assert_eq!(after(&mut pace, 16, Some(4), true), 32);
        // A WAL another connection restarted (far fewer pages than the work): not learnt.
        assert_eq!(after(&mut pace, 32, Some(7), true), 32, "kept");
        assert_eq!(after(&mut pace, 32, Some(0), true), 32, "kept");
        assert_eq!(after(&mut pace, 32, None, true), 32, "kept");
        // Bounded above.
        for _ in 0..20 {
            after(&mut pace, 10_000, Some(2_500), true);
        }
        assert_eq!(pace.due, 4000);
        pace.due = 16_384;
        assert_eq!(after(&mut pace, 100_000, Some(25_000), true), 4000);
        pace.due = 16_384;
        assert_eq!(after(&mut pace, 1_000_000, Some(250_000), true), 4000);
    }
}
