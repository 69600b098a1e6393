//! The write connection, and commits run on the committer's own thread.
//!
//! sqlx runs every statement of a [`SqliteConnection`] on that connection's worker thread: a
//! statement is a hand-off there and an answer back, two thread wake-ups that cost more than
//! SQLite's own work for a small commit (`BENCHMARKS.md`, sessions 4–8). The committer runs
//! its hot statement, the one-call guarded commit, on the connection's handle directly
//! instead, through sqlx's documented escape hatch ([`SqliteConnection::lock_handle`]: while
//! the handle is locked, the worker thread makes no call on it) and SQLite's C API.
//!
//! What keeps the thread that runs such a commit from blocking for long:
//! - **No busy wait.** While locked, the connection's busy timeout is 0: a commit that meets
//!   another connection's lock fails at once with `SQLITE_BUSY`, having written nothing (an
//!   autocommit statement takes the write lock before it writes), and the committer runs it
//!   again through sqlx (on the worker thread, with the configured busy timeout and retries).
//! - **No checkpoint.** SQLite's automatic checkpoint runs inside the commit that crosses
//!   1000 WAL pages; this connection's is replaced by a WAL hook that only counts the pages,
//!   and the committer runs the checkpoint through sqlx ([`WriteConn::checkpoint_due`]).
//!
//! What is left is SQLite's work for the statement itself: tens of microseconds with
//! `synchronous = NORMAL` for a small group, up to milliseconds for the largest (1024 slots,
//! 2048 versions) or the first run of a statement shape (its preparation), plus one `fsync`
//! of the WAL with `FULL`.
//!
//! This relies on sqlx-sqlite's `lock_handle` (the workspace pins sqlx's version) and is the
//! crate's only `unsafe` code (the workspace forbids it elsewhere).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;
use sqlx::sqlite::LockedSqliteHandle;

use crate::sql::P;

/// WAL pages after which the committer checkpoints (SQLite's automatic checkpoint default).
const CHECKPOINT_PAGES: i32 = 1000;

/// After a checkpoint that a reader kept from finishing: WAL pages until the next try.
const CHECKPOINT_RETRY_PAGES: i32 = 100;

/// The most statements kept prepared on the handle (the one-call commit has a shape per
/// triple of size buckets — checked slots, scope floors, versions — of which a workload uses
/// a few; sqlx keeps 100 per connection). A workload whose groups vary widely in all three
/// prepares statements again when the cache is emptied.
const STATEMENTS_MAX: usize = 64;

/// The store's write connection: either handed to sqlx (its worker thread runs statements)
/// or locked out of it (the committer runs statements on the handle itself).
pub(crate) struct WriteConn {
    /// Declared before `conn`, so dropped before it.
    locked: Option<Handle>,
    /// Statements prepared on the handle, kept while it is handed to sqlx (where nothing
    /// uses them); finalized only while locked.
    parked: HashMap<(usize, usize), Stmt>,
    /// The connection, boxed so that its address never changes while a locked handle,
    /// made from a `'static` borrow of it, exists.
    conn: NonNull<SqliteConnection>,
    busy_timeout: Duration,
    /// The WAL's size in pages after this connection's last commit, from SQLite's WAL hook.
    wal_pages: Arc<AtomicI32>,
    /// The hook's own reference to `wal_pages` (a raw `Arc`), while the hook is installed.
    hook: Option<NonNull<AtomicI32>>,
    /// WAL pages at which the next checkpoint is due.
    checkpoint_at: i32,
    /// The WAL's size when last looked at (a smaller one means it was restarted).
    pages_seen: i32,
    /// A `ROLLBACK` through sqlx failed: a transaction may still be open.
    maybe_open: bool,
}

// SAFETY: the connection, the locked handle and the statements are used only through
// `&mut self` (SQLite's multi-thread mode lets a connection and its statements move between
// threads, used by one at a time); the raw pointers are owned by this value alone (the box,
// and the `Arc` reference handed to the WAL hook).
unsafe impl Send for WriteConn {}

/// The handle while it is locked out of sqlx, with the statements prepared on it: runs
/// statements on the calling thread.
struct Handle {
    /// By the statement text's address and length (texts are `'static`). Finalized before
    /// the handle is given back ([`Handle`]'s `Drop`).
    stmts: HashMap<(usize, usize), Stmt>,
    handle: LockedSqliteHandle<'static>,
}

/// Why a statement did not run.
enum Fail {
    /// SQLite's result code (its message is the connection's last error).
    Sqlite(c_int),
    /// This module refused it.
    Misuse(&'static str),
}

/// A prepared statement. Finalized only by its [`Handle`], while locked (on drop, or when the
/// cache is full); one dropped anywhere else is leaked, never finalized unlocked.
struct Stmt(NonNull<ffi::sqlite3_stmt>);

// SAFETY: SQLite's multi-thread mode lets a statement move between threads, used by one at a
// time; a statement is used only through `&mut` of the `WriteConn` holding it, while locked.
unsafe impl Send for Stmt {}

impl Drop for Handle {
    fn drop(&mut self) {
        // Before the guard (a field) is released.
        self.finalize_all();
    }
}

/// SQLite's WAL hook: records the WAL's size. Returns SQLITE_OK (no checkpoint here).
unsafe extern "C" fn count_wal_pages(
    ctx: *mut c_void,
    _db: *mut ffi::sqlite3,
    _schema: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `ctx` is the `Arc<AtomicI32>` reference that `WriteConn::lock` handed to the
    // hook; it is released only after the hook is removed.
    let pages_seen = unsafe { &*(ctx as *const AtomicI32) };
    pages_seen.store(pages, Ordering::Relaxed);
    ffi::SQLITE_OK
}

impl WriteConn {
    /// Takes the store's write connection (handed to sqlx until first locked).
    pub(crate) fn new(conn: SqliteConnection, busy_timeout: Duration) -> Self {
        let conn = NonNull::from(Box::leak(Box::new(conn)));
        WriteConn {
            locked: None,
            parked: HashMap::new(),
            conn,
            busy_timeout,
            wal_pages: Arc::new(AtomicI32::new(0)),
            hook: None,
            checkpoint_at: CHECKPOINT_PAGES,
            pages_seen: 0,
            maybe_open: false,
        }
    }

    /// The connection for sqlx (the worker thread runs its statements): gives the handle
    /// back first if it is locked.
    pub(crate) fn sqlx(&mut self) -> &mut SqliteConnection {
        if let Some(mut locked) = self.locked.take() {
            self.parked = std::mem::take(&mut locked.stmts);
            let ms = c_int::try_from(self.busy_timeout.as_millis()).unwrap_or(c_int::MAX);
            // SAFETY: the handle is locked (no other thread uses it) and open.
            unsafe {
                ffi::sqlite3_busy_timeout(locked.handle.as_raw_handle().as_ptr(), ms);
            }
        }
        // SAFETY: `conn` came from a box this value owns, and no locked handle exists now.
        unsafe { self.conn.as_mut() }
    }

    /// Rolls back, through sqlx, what a failed statement or transaction left open. If that
    /// fails other than for want of a transaction, the next [`Self::sqlx_checked`] makes sure
    /// on the handle.
    pub(crate) async fn roll_back(&mut self) {
        use sqlx::Executor;
        // A savepoint first opens a transaction if none is open, so the ROLLBACK always has
        // one to end: any failure is a real one, told apart by no message text.
        if self
            .sqlx()
            .execute("SAVEPOINT roll_back_any; ROLLBACK")
            .await
            .is_err()
        {
            self.maybe_open = true;
        }
    }

    /// [`Self::sqlx`], after making sure no transaction is left open on the connection if a
    /// [`Self::roll_back`] failed: a statement meant to run in autocommit (the one-call
    /// commit) would otherwise run inside it, and not commit.
    pub(crate) async fn sqlx_checked(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        if self.maybe_open {
            self.roll_back_open().await?;
            self.maybe_open = false;
        }
        Ok(self.sqlx())
    }

    /// Rolls back a transaction open on the connection, on the calling thread (locking the
    /// handle first if it is not).
    async fn roll_back_open(&mut self) -> Result<(), sqlx::Error> {
        let handle = self.lock().await?;
        if !handle.autocommit() {
            handle.run("ROLLBACK", &[])?;
        }
        Ok(())
    }

    /// Runs `sql` (ONE statement, `'static`: prepared once and kept) with `params` bound in
    /// order, to completion, on the calling thread; returns the first column of its first
    /// row, if it returns rows. Locks the handle out of sqlx first if it is not (a round trip
    /// to its worker thread). Fails at once with SQLITE_BUSY if another connection holds a
    /// lock. Runs outside any transaction: one left open on the connection (by a failed
    /// rollback elsewhere) is rolled back first.
    pub(crate) async fn run(
        &mut self,
        sql: &'static str,
        params: &[P<'_>],
    ) -> Result<Option<i64>, sqlx::Error> {
        self.roll_back_open().await?;
        self.lock().await?.run(sql, params)
    }

    async fn lock(&mut self) -> Result<&mut Handle, sqlx::Error> {
        let handle = match self.locked.take() {
            Some(h) => h,
            None => {
                // SAFETY: `conn` came from a box this value owns, which outlives the handle
                // (`locked` is dropped first, in `sqlx()` and on drop); the handle is the
                // only use of it until it is given back.
                let conn: &'static mut SqliteConnection = unsafe { &mut *self.conn.as_ptr() };
                let mut handle = conn.lock_handle().await?;
                let db = handle.as_raw_handle().as_ptr();
                // SAFETY: the handle is locked and open.
                unsafe {
                    ffi::sqlite3_busy_timeout(db, 0);
                }
                if self.hook.is_none() {
                    let ctx = Arc::into_raw(self.wal_pages.clone());
                    // SAFETY: the handle is locked; `ctx` stays valid until `Drop` removes
                    // the hook and releases it (the hook replaces SQLite's automatic
                    // checkpoint on this connection).
                    unsafe {
                        ffi::sqlite3_wal_hook(db, Some(count_wal_pages), ctx as *mut c_void);
                    }
                    self.hook = NonNull::new(ctx as *mut AtomicI32);
                }
                Handle {
                    stmts: std::mem::take(&mut self.parked),
                    handle,
                }
            }
        };
        Ok(self.locked.insert(handle))
    }

    /// Whether a checkpoint is due: the WAL holds 1000 pages (SQLite's automatic checkpoint
    /// threshold), or, after a checkpoint a reader kept from finishing, 100 more than then.
    /// Then run `PRAGMA wal_checkpoint(PASSIVE)` through [`Self::sqlx`] and report its
    /// outcome with [`Self::checkpointed`].
    pub(crate) fn checkpoint_due(&mut self) -> bool {
        let pages = self.wal_pages.load(Ordering::Relaxed);
        if pages < self.pages_seen {
            // The WAL was restarted (after a checkpoint, maybe another process's).
            self.checkpoint_at = CHECKPOINT_PAGES;
        }
        self.pages_seen = pages;
        self.hook.is_some() && pages >= self.checkpoint_at
    }

    /// Records a checkpoint's outcome: `complete` when every WAL page was copied back (the
    /// next writer restarts the WAL from its start), otherwise a reader still needs some and
    /// the checkpoint is tried again 100 pages later.
    pub(crate) fn checkpointed(&mut self, complete: bool) {
        if complete {
            // Nothing left to copy until the next commit reports the WAL's new size.
            self.wal_pages.store(0, Ordering::Relaxed);
            self.checkpoint_at = CHECKPOINT_PAGES;
        } else {
            let pages = self.wal_pages.load(Ordering::Relaxed);
            self.checkpoint_at = pages.saturating_add(CHECKPOINT_RETRY_PAGES);
        }
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        let teardown = Teardown {
            locked: self.locked.take(),
            parked: std::mem::take(&mut self.parked),
            hook: self.hook.take(),
            conn: self.conn,
        };
        if teardown.locked.is_some() || (teardown.hook.is_none() && teardown.parked.is_empty()) {
            teardown.run();
        } else {
            // Statements are finalized and the hook removed only while locked, and locking
            // waits for sqlx's worker to finish whatever it runs (a statement waiting out a
            // lock: up to the busy timeout): not on this thread, which may be a runtime's
            // or inside another executor. If no thread can be started, all of it is leaked.
            let _ = std::thread::Builder::new()
                .name("state-sqlite-close".into())
                .spawn(move || teardown.run());
        }
    }
}

/// What a dropped [`WriteConn`] leaves to release: the statements and the WAL hook (under
/// the lock), then the connection. Dropped without [`Teardown::run`], it leaks them all.
struct Teardown {
    locked: Option<Handle>,
    parked: HashMap<(usize, usize), Stmt>,
    hook: Option<NonNull<AtomicI32>>,
    conn: NonNull<SqliteConnection>,
}

// SAFETY: as for `WriteConn`, whose parts these are; only `run` uses them.
unsafe impl Send for Teardown {}

impl Teardown {
    fn run(mut self) {
        if self.locked.is_none() && (self.hook.is_some() || !self.parked.is_empty()) {
            // SAFETY: as in `WriteConn::lock`; the box is dropped below, after the handle.
            let conn: &'static mut SqliteConnection = unsafe { &mut *self.conn.as_ptr() };
            match futures_executor::block_on(conn.lock_handle()) {
                Ok(handle) => {
                    self.locked = Some(Handle {
                        stmts: std::mem::take(&mut self.parked),
                        handle,
                    });
                }
                // The worker thread is gone (it crashed): closing the connection would find
                // statements open (sqlx panics then). Leak it, the statements and the hook's
                // reference.
                Err(_) => return,
            }
        }
        if let Some(locked) = self.locked.as_mut()
            && let Some(ctx) = self.hook.take()
        {
            // SAFETY: the handle is locked; after this the hook holds no reference.
            unsafe {
                ffi::sqlite3_wal_hook(
                    locked.handle.as_raw_handle().as_ptr(),
                    None,
                    ptr::null_mut(),
                );
                drop(Arc::from_raw(ctx.as_ptr() as *const AtomicI32));
            }
        }
        // Finalizes the statements, then gives the handle back.
        self.locked = None;
        // SAFETY: `conn` came from `Box::leak` in `WriteConn::new`; nothing uses it any more.
        drop(unsafe { Box::from_raw(self.conn.as_ptr()) });
    }
}

impl Handle {
    /// Finalizes every statement prepared on the handle.
    fn finalize_all(&mut self) {
        for (_, stmt) in self.stmts.drain() {
            // SAFETY: the handle is locked; the statement was prepared on it and is
            // finalized once (drained).
            unsafe {
                ffi::sqlite3_finalize(stmt.0.as_ptr());
            }
        }
    }

    /// Whether the connection is outside any transaction.
    fn autocommit(&mut self) -> bool {
        // SAFETY: the handle is locked and open.
        unsafe { ffi::sqlite3_get_autocommit(self.handle.as_raw_handle().as_ptr()) != 0 }
    }

    /// See [`WriteConn::run`].
    fn run(&mut self, sql: &'static str, params: &[P<'_>]) -> Result<Option<i64>, sqlx::Error> {
        let db = self.handle.as_raw_handle().as_ptr();
        let key = (sql.as_ptr() as usize, sql.len());
        let stmt = match self.stmts.get(&key) {
            Some(s) => s.0.as_ptr(),
            None => {
                if self.stmts.len() >= STATEMENTS_MAX {
                    self.finalize_all();
                }
                let s = match prepare(db, sql) {
                    Ok(s) => s,
                    Err(fail) => return Err(self.error(fail)),
                };
                let p = s.0.as_ptr();
                self.stmts.insert(key, s);
                p
            }
        };
        // SAFETY: `stmt` was prepared on `db`, which is locked; the text bound points into
        // `params`, borrowed until this returns, and the bindings are cleared first.
        let result = unsafe { bind_and_step(stmt, params) };
        // The error, read before `sqlite3_reset` (which keeps it, but be plain about it).
        let result = result.map_err(|fail| self.error(fail));
        // SAFETY: as above.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }

    /// The error, as sqlx reports SQLite's on its own path (the connection's last error).
    fn error(&mut self, fail: Fail) -> sqlx::Error {
        match fail {
            Fail::Sqlite(rc) => match self.handle.last_error() {
                Some(e) => sqlx::Error::Database(Box::new(e)),
                None => sqlx::Error::Protocol(format!("SQLite returned {rc} without an error")),
            },
            Fail::Misuse(why) => sqlx::Error::Protocol(why.to_owned()),
        }
    }
}

/// Prepares ONE statement (a string holding more than one is refused rather than run in
/// part).
fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<Stmt, Fail> {
    let len = c_int::try_from(sql.len()).map_err(|_| Fail::Misuse("statement too long"))?;
    let mut stmt = ptr::null_mut();
    let mut tail: *const c_char = ptr::null();
    // SAFETY: `db` is open and locked; `sql` is valid for `len` bytes.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            db,
            sql.as_ptr() as *const c_char,
            len,
            ffi::SQLITE_PREPARE_PERSISTENT,
            &mut stmt,
            &mut tail,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(Fail::Sqlite(rc));
    }
    let stmt = NonNull::new(stmt).ok_or(Fail::Misuse("empty statement"))?;
    let used = (tail as usize).wrapping_sub(sql.as_ptr() as usize);
    if sql.get(used..).is_none_or(|rest| !rest.trim().is_empty()) {
        // SAFETY: prepared just now on `db`, which is locked; never used again.
        unsafe {
            ffi::sqlite3_finalize(stmt.as_ptr());
        }
        return Err(Fail::Misuse("more than one statement"));
    }
    Ok(Stmt(stmt))
}

/// Binds `text` without copying it (SQLITE_STATIC): valid while `params` is borrowed, and
/// [`Handle::run`] clears the bindings before it returns.
///
/// # Safety
/// `stmt` is a statement of a handle the caller holds locked; `text` outlives the binding.
unsafe fn bind_text(stmt: *mut ffi::sqlite3_stmt, i: c_int, text: &str) -> c_int {
    // SAFETY: per this function's contract.
    unsafe {
        ffi::sqlite3_bind_text64(
            stmt,
            i,
            text.as_ptr() as *const c_char,
            text.len() as u64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    }
}

/// Binds `params` in order and steps `stmt` to completion.
///
/// # Safety
/// `stmt` is a statement of a handle the caller holds locked; the bindings are cleared before
/// `params` is dropped.
unsafe fn bind_and_step(
    stmt: *mut ffi::sqlite3_stmt,
    params: &[P<'_>],
) -> Result<Option<i64>, Fail> {
    // SAFETY: per this function's contract.
    if unsafe { ffi::sqlite3_bind_parameter_count(stmt) } as usize != params.len() {
        return Err(Fail::Misuse("parameter count differs from the statement's"));
    }
    for (i, p) in params.iter().enumerate() {
        let i = c_int::try_from(i + 1).map_err(|_| Fail::Misuse("too many parameters"))?;
        // SAFETY: per this function's contract.
        let rc = unsafe {
            match p {
                P::Null | P::Text(None) => ffi::sqlite3_bind_null(stmt, i),
                P::Int(v) => ffi::sqlite3_bind_int64(stmt, i, *v),
                P::Text(Some(t)) => bind_text(stmt, i, t),
                P::Str(t) => bind_text(stmt, i, t),
            }
        };
        if rc != ffi::SQLITE_OK {
            return Err(Fail::Sqlite(rc));
        }
    }
    let mut first = None;
    loop {
        // SAFETY: per this function's contract.
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_ROW => {
                if first.is_none() {
                    // SAFETY: a row is current.
                    first = Some(unsafe { ffi::sqlite3_column_int64(stmt, 0) });
                }
            }
            ffi::SQLITE_DONE => return Ok(first),
            rc => return Err(Fail::Sqlite(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Executor};

    async fn write_conn() -> WriteConn {
        let conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut w = WriteConn::new(conn, Duration::from_secs(5));
        w.sqlx()
            .execute("CREATE TABLE t (n INTEGER NOT NULL)")
            .await
            .unwrap();
        w
    }

    async fn count(w: &mut WriteConn) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(w.sqlx())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_statement_runs_on_the_handle_and_its_errors_are_sqlxs() {
        let mut w = write_conn().await;
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
        // SQLite's own refusal, as sqlx reports it on its path.
        let e = w
            .run("INSERT INTO t VALUES (?)", &[P::Null])
            .await
            .unwrap_err();
        match e {
            sqlx::Error::Database(db) => {
                assert_eq!(db.kind(), sqlx::error::ErrorKind::NotNullViolation);
                assert!(db.message().contains("NOT NULL"), "{}", db.message());
            }
            other => panic!("{other:?}"),
        }
        // Handed to sqlx and back, the statements are still prepared and work.
        assert_eq!(count(&mut w).await, 1);
        assert_eq!(w.run("SELECT n FROM t", &[]).await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_multi_statement_string_or_a_wrong_parameter_count_is_refused_unrun() {
        let mut w = write_conn().await;
        let e = w
            .run("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", &[])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("more than one statement"), "{e}");
        let e = w.run("INSERT INTO t VALUES (?)", &[]).await.unwrap_err();
        assert!(e.to_string().contains("parameter count"), "{e}");
        let e = w
            .run("INSERT INTO t VALUES (?)", &[P::Int(1), P::Int(2)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("parameter count"), "{e}");
        assert_eq!(count(&mut w).await, 0);
    }

    /// No transaction is open, and `t` holds only the row 2 (the stray transaction's row 1 was
    /// rolled back).
    async fn assert_stray_transaction_ended(w: &mut WriteConn) {
        let e = w.sqlx().execute("COMMIT").await.unwrap_err();
        assert!(e.to_string().contains("no transaction is active"), "{e}");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t")
            .fetch_all(w.sqlx())
            .await
            .unwrap();
        assert_eq!(rows, [2]);
    }

    #[tokio::test]
    async fn a_transaction_a_failed_rollback_left_open_is_ended_before_sqlx_runs_on() {
        let mut w = write_conn().await;
        // A ROLLBACK with nothing to roll back is not a failure.
        w.roll_back().await;
        assert!(!w.maybe_open);
        w.sqlx().execute("BEGIN").await.unwrap();
        w.sqlx().execute("INSERT INTO t VALUES (1)").await.unwrap();
        // As if the ROLLBACK after a failure had failed: the next statement through sqlx runs
        // in autocommit, the stray transaction (and its row) rolled back first.
        w.maybe_open = true;
        w.sqlx_checked()
            .await
            .unwrap()
            .execute("INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        assert!(!w.maybe_open);
        assert_stray_transaction_ended(&mut w).await;
    }

    #[tokio::test]
    async fn a_transaction_left_open_is_rolled_back_before_a_statement() {
        let mut w = write_conn().await;
        w.sqlx().execute("BEGIN").await.unwrap();
        w.sqlx().execute("INSERT INTO t VALUES (1)").await.unwrap();
        // Runs in autocommit: the stray transaction (and its row) is rolled back first.
        w.run("INSERT INTO t VALUES (?)", &[P::Int(2)])
            .await
            .unwrap();
        assert_stray_transaction_ended(&mut w).await;
    }
}
