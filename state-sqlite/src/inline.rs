//! The write connection, and commits run on the committer's own thread.
//!
//! sqlx runs every statement of a [`SqliteConnection`] on that connection's worker thread: a
//! statement is a hand-off there and an answer back, two thread wake-ups that cost more than
//! SQLite's own work for a small commit (`BENCHMARKS.md`, sessions 4–7). The committer runs
//! its hot statement, the one-call guarded commit, on the connection's handle directly
//! instead, through sqlx's documented escape hatch ([`SqliteConnection::lock_handle`]: while
//! the handle is locked, the worker thread makes no call on it) and SQLite's C API.
//!
//! What keeps the thread that runs such a commit from blocking for long:
//! - **No busy wait.** While locked, the connection's busy timeout is 0: a commit that meets
//!   another connection's lock fails at once with `SQLITE_BUSY`, having written nothing, and
//!   the committer runs it again through sqlx (on the worker thread, with the configured busy
//!   timeout and retries).
//! - **No checkpoint.** SQLite's automatic checkpoint runs inside the commit that crosses
//!   1000 WAL pages; this connection's is replaced by a WAL hook that only counts the pages,
//!   and the committer runs the checkpoint through sqlx ([`WriteConn::checkpoint_due`]).
//!
//! What is left is SQLite's work for the statement itself: tens of microseconds with
//! `synchronous = NORMAL`, plus one `fsync` of the WAL with `FULL`.
//!
//! This is the crate's only `unsafe` code (the workspace forbids it elsewhere).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;
use sqlx::sqlite::LockedSqliteHandle;

use crate::error::SqliteError;
use crate::sql::P;

/// WAL pages after which the committer checkpoints (SQLite's automatic checkpoint default).
const CHECKPOINT_PAGES: i32 = 1000;

/// The most statements kept prepared on the handle (the one-call commit has a shape per
/// pair of size buckets; sqlx keeps 100 per connection).
const STATEMENTS_MAX: usize = 64;

/// The store's write connection: either handed to sqlx (its worker thread runs statements)
/// or locked out of it (the committer runs statements on the handle itself).
pub(crate) struct WriteConn {
    /// Declared before `conn`, so dropped before it: it borrows from `conn`'s allocation.
    locked: Option<Handle>,
    /// The connection, boxed so that its address never changes (`locked` borrows it).
    conn: NonNull<SqliteConnection>,
    busy_timeout: Duration,
    /// The WAL's size in pages after this connection's last commit, from SQLite's WAL hook.
    wal_pages: Arc<AtomicI32>,
    /// The hook's own reference to `wal_pages` (a raw `Arc`), while the hook is installed.
    hook: Option<NonNull<AtomicI32>>,
    /// WAL pages at the last checkpoint this connection ran or tried.
    checkpointed_at: i32,
}

// SAFETY: the connection and the locked handle are `Send`; the raw pointers are owned by this
// value alone (the box, and the `Arc` reference handed to the WAL hook), and every use of the
// handle or its statements happens through `&mut self`.
unsafe impl Send for WriteConn {}

/// The handle while it is locked out of sqlx, with the statements prepared on it: runs
/// statements on the calling thread.
pub(crate) struct Handle {
    /// Declared first: finalized before the handle is given back.
    stmts: HashMap<usize, Stmt>,
    handle: LockedSqliteHandle<'static>,
}

/// A prepared statement of a locked handle (finalized on drop, which happens while locked).
struct Stmt(NonNull<ffi::sqlite3_stmt>);

// SAFETY: SQLite (multi-thread mode) lets a connection and its statements be used from any
// thread, one at a time; a statement is used only through `&mut Handle`, while locked.
unsafe impl Send for Stmt {}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a handle this module still holds locked
        // (`Handle::stmts` is dropped before `Handle::handle`) and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

/// A statement that SQLite refused, run on a locked handle.
#[derive(Debug)]
pub(crate) struct Refused {
    /// SQLite's extended result code.
    pub(crate) code: i32,
    /// SQLite's message.
    pub(crate) message: String,
}

impl Refused {
    /// SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock; nothing was written.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self.code & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED)
    }
}

impl From<Refused> for SqliteError {
    fn from(r: Refused) -> Self {
        SqliteError::Statement {
            code: r.code,
            message: r.message,
        }
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
            conn,
            busy_timeout,
            wal_pages: Arc::new(AtomicI32::new(0)),
            hook: None,
            checkpointed_at: 0,
        }
    }

    /// The connection for sqlx (the worker thread runs its statements): gives the handle
    /// back first if it is locked.
    pub(crate) fn sqlx(&mut self) -> &mut SqliteConnection {
        self.unlock();
        // SAFETY: `conn` came from a box this value owns, and no locked handle borrows it now.
        unsafe { self.conn.as_mut() }
    }

    /// Gives the handle back to sqlx, with the busy timeout it is configured with.
    fn unlock(&mut self) {
        if let Some(mut locked) = self.locked.take() {
            locked.stmts.clear();
            let ms = c_int::try_from(self.busy_timeout.as_millis()).unwrap_or(c_int::MAX);
            // SAFETY: the handle is locked (no other thread uses it) and open.
            unsafe {
                ffi::sqlite3_busy_timeout(locked.handle.as_raw_handle().as_ptr(), ms);
            }
        }
    }

    /// Locks the handle out of sqlx (a round trip to its worker thread, unless already
    /// locked): statements then run on the calling thread, failing at once if busy.
    pub(crate) async fn lock(&mut self) -> Result<&mut Handle, SqliteError> {
        let handle = match self.locked.take() {
            Some(h) => h,
            None => {
                // SAFETY: `conn` came from a box this value owns, which outlives the handle
                // (`locked` is dropped first, in `unlock` and on drop); the handle is the only
                // borrow of it until it is given back.
                let conn: &'static mut SqliteConnection = unsafe { &mut *self.conn.as_ptr() };
                let mut handle = conn.lock_handle().await?;
                let db = handle.as_raw_handle().as_ptr();
                // SAFETY: the handle is locked and open.
                unsafe {
                    ffi::sqlite3_busy_timeout(db, 0);
                }
                if self.hook.is_none() {
                    let ctx = Arc::into_raw(self.wal_pages.clone());
                    // SAFETY: the handle is locked; `ctx` stays valid until `Drop` removes the
                    // hook and releases it (the hook replaces SQLite's automatic checkpoint).
                    unsafe {
                        ffi::sqlite3_wal_hook(db, Some(count_wal_pages), ctx as *mut c_void);
                    }
                    self.hook = NonNull::new(ctx as *mut AtomicI32);
                }
                Handle {
                    stmts: HashMap::new(),
                    handle,
                }
            }
        };
        Ok(self.locked.insert(handle))
    }

    /// Whether the WAL has grown by [`CHECKPOINT_PAGES`] since the last checkpoint this
    /// connection ran (then run `PRAGMA wal_checkpoint(PASSIVE)` through [`Self::sqlx`]).
    pub(crate) fn checkpoint_due(&mut self) -> bool {
        let pages = self.wal_pages.load(Ordering::Relaxed);
        if pages < self.checkpointed_at {
            // The WAL was restarted since.
            self.checkpointed_at = 0;
        }
        if pages >= self.checkpointed_at + CHECKPOINT_PAGES {
            self.checkpointed_at = pages;
            return true;
        }
        false
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        // If the handle is not locked, the worker thread may still run a commit that calls
        // the hook: its reference (one `AtomicI32`) is left to it.
        if let Some(ctx) = self.hook.take()
            && let Some(locked) = self.locked.as_mut()
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
        self.locked = None;
        // SAFETY: `conn` came from `Box::leak` in `new`, nothing borrows it any more.
        drop(unsafe { Box::from_raw(self.conn.as_ptr()) });
    }
}

impl Handle {
    /// Runs `sql` (ONE statement, `'static`: prepared once and kept) with `params` bound in
    /// order, to completion; returns the first column of its first row, if it returns rows.
    pub(crate) fn run(
        &mut self,
        sql: &'static str,
        params: &[P<'_>],
    ) -> Result<Option<i64>, Refused> {
        let db = self.handle.as_raw_handle().as_ptr();
        let stmt = match self.stmts.get(&(sql.as_ptr() as usize)) {
            Some(s) => s.0.as_ptr(),
            None => {
                if self.stmts.len() >= STATEMENTS_MAX {
                    self.stmts.clear();
                }
                let s = prepare(db, sql)?;
                let p = s.0.as_ptr();
                self.stmts.insert(sql.as_ptr() as usize, s);
                p
            }
        };
        // SAFETY: `stmt` was prepared on `db`, which is locked; the text bound points into
        // `params`, borrowed until this returns, and the bindings are cleared first.
        unsafe {
            let result = bind_and_step(db, stmt, params);
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            result
        }
    }
}

fn refused(db: *mut ffi::sqlite3) -> Refused {
    // SAFETY: `db` is an open, locked handle; `sqlite3_errmsg` returns a NUL-terminated
    // string owned by SQLite, copied here before any other call.
    unsafe {
        Refused {
            code: ffi::sqlite3_extended_errcode(db),
            message: CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned(),
        }
    }
}

fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<Stmt, Refused> {
    let len = c_int::try_from(sql.len()).map_err(|_| Refused {
        code: ffi::SQLITE_TOOBIG,
        message: "statement too long".into(),
    })?;
    let mut stmt = ptr::null_mut();
    // SAFETY: `db` is open and locked; `sql` is valid for `len` bytes.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            db,
            sql.as_ptr() as *const c_char,
            len,
            ffi::SQLITE_PREPARE_PERSISTENT,
            &mut stmt,
            ptr::null_mut(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(refused(db));
    }
    NonNull::new(stmt).map(Stmt).ok_or_else(|| Refused {
        code: ffi::SQLITE_MISUSE,
        message: "empty statement".into(),
    })
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

/// # Safety
/// `stmt` is a statement prepared on `db`, which the caller holds locked; the bindings are
/// cleared before `params` is dropped.
unsafe fn bind_and_step(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    params: &[P<'_>],
) -> Result<Option<i64>, Refused> {
    for (i, p) in params.iter().enumerate() {
        let i = c_int::try_from(i + 1).map_err(|_| Refused {
            code: ffi::SQLITE_RANGE,
            message: "too many parameters".into(),
        })?;
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
            return Err(refused(db));
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
            _ => return Err(refused(db)),
        }
    }
}
