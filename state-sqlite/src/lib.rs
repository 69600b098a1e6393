//! `SqliteStore`: the durable, embedded default [`Store`] for `state-core`.
//!
//! - **One file, WAL.** Readers never block the writer; several processes may share a file.
//! - **Group commit.** Every write goes through one committer that owns the write
//!   connection. A caller that finds it idle runs it in its own task
//!   ([`state_core::leader::Leader`]: no hand-off to another task when writes do not
//!   overlap); commits that arrive while a transaction runs are merged into the next one.
//!   The committer remembers what each slot held after its last transaction (the last
//!   8 192 to 16 384 slots written, values up to 4 KiB serialized), so a group usually
//!   commits in ONE statement (its own transaction): every version into the change log, from
//!   which a trigger stores each slot's row, guarded by a count of the slots that no longer
//!   hold what the committer assumed (a slot it assumes has no row is stored as a new row,
//!   which a row there refuses, and only its scope's floor is counted). If another process
//!   changed one, the statement writes nothing and the group runs again on the read path:
//!   `BEGIN IMMEDIATE` and one SELECT of every slot involved, then the write and `COMMIT`.
//!   Each caller's batch is still all-or-nothing on its own: a batch that fails (a conflict,
//!   an overflow) is left out, the others commit. An idle commit is not delayed: the
//!   committer never waits for company, it only yields to tasks that are ready while they
//!   keep queueing commits
//!   ([`state_core::gather_yield`]).
//! - **The commit statement runs on the committer's own thread.** sqlx runs statements on a
//!   worker thread per connection, and handing one over and back costs two thread wake-ups,
//!   more than SQLite's work for a small commit. So the committer keeps a second connection
//!   to the file (rusqlite, on the same linked SQLite) and runs the one-call commit on it
//!   where it runs (the caller that leads, or its task). That thread never waits for a lock
//!   or a checkpoint: the connection's busy timeout is 0, and a commit that meets another
//!   connection's lock runs again through sqlx, whose worker waits it out
//!   ([`SqliteStats::inline_busy`]); SQLite's automatic checkpoint is off there and the
//!   committer runs one through sqlx about every 1000 WAL pages
//!   ([`SqliteStats::checkpoints`]) — a caller that leads the turn waits for it, as for
//!   SQLite's own. What the thread does block for is the statement itself: tens of
//!   microseconds with `synchronous = NORMAL` (a group of 64 slots: a few hundred; the
//!   largest groups, or a statement's first run, milliseconds), plus an fsync with `FULL`;
//!   [`SqliteOptions::inline_commits`] turns it off. The read path, admin writes and every
//!   statement of a `:memory:` store (whose database no second connection can open) run
//!   through sqlx.
//! - **Never acknowledges an uncommitted write.** A caller hears back only after `COMMIT`
//!   returned. Dropping a commit future cannot half-apply a batch (the committer owns it): the
//!   commit may or may not have applied.
//! - **Busy is retried.** Besides SQLite's `busy_timeout`, a transaction that meets another
//!   process's lock is retried (for 60 s by default) before it fails — failing, it wrote
//!   nothing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
//! use state_core::{Engine, Scope, Slot};
//! use state_sqlite::SqliteStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path().join("state.db")).await?;
//! let engine = Engine::new(store);
//! let hits = engine.handle::<u64>(Slot::new(Scope::app("shop")?, "Stats", "hits")?);
//! hits.increment(1).await?;
//! assert_eq!(hits.get().await?, Some(1));
//! # Ok(()) }
//! ```
//!
//! # Durability
//!
//! [`Synchronous::Normal`] (the default) survives a crash of the process — a `SIGKILL`
//! included — with every acknowledged write: the commit is in the WAL file before the caller
//! hears back. A power loss or OS crash may lose the last transactions (never corrupts the
//! file). [`Synchronous::Full`] fsyncs the WAL on every commit, so acknowledged writes also
//! survive a power loss, at the cost of one fsync per (group-)commit. The latest commits live
//! in the `-wal` file next to the database until a checkpoint copies them in: deleting it (or
//! copying the database without it) loses them, silently. Back up with a logical export
//! (`statectl export`) or SQLite's backup API; copy files only with every process closed.
//!
//! # Files
//!
//! A store's file is stamped with [`APPLICATION_ID`]. [`SqliteStore::open_with`] decides by
//! reads alone whether a file is a store (stamped, empty, or holding this crate's first
//! migration from before the stamp) before it changes anything, so another program's SQLite
//! file is refused ([`SqliteError::ForeignDatabase`]) exactly as it was. A store whose schema
//! is current opens without taking the write lock; [`SqliteOptions::read_only`] opens one
//! that cannot be written (a read-only mount).

mod cache;
mod error;
mod inline;
mod schema;
mod sql;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};
use state_core::leader::Leader;
use state_core::{
    Batch, Clock, CommitOutcome, Error, Page, PreparedGroup, Record, Restore, Scope, ScopeKind,
    Slot, SlotKey, Store, SystemClock,
};
use tokio::sync::{mpsc, oneshot};

pub use crate::error::SqliteError;

/// The store's statements, for query-plan tests and benchmarks. Not public API.
#[doc(hidden)]
pub mod __sql {
    pub use crate::sql::{list_keys_sql, list_scopes_sql, select_slots};
}
pub use crate::schema::{APPLICATION_ID, schema_version};

/// When a commit is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous = NORMAL`: acknowledged writes survive a process crash (`SIGKILL`); a power
    /// loss may lose the last transactions. The default.
    #[default]
    Normal,
    /// `synchronous = FULL`: acknowledged writes also survive a power loss or OS crash.
    Full,
}

/// Where the database lives.
#[derive(Clone, Debug)]
enum Location {
    File(PathBuf),
    Memory,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    location: Location,
    synchronous: Synchronous,
    busy_timeout: Duration,
    busy_retry_for: Duration,
    readers: u32,
    max_group: usize,
    change_retention: Option<Duration>,
    clock: Arc<dyn Clock>,
    inline_commits: bool,
    read_only: bool,
}

impl SqliteOptions {
    /// A database file (created if missing).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Location::File(path.into()))
    }

    /// A private in-memory database (one connection: `:memory:` gives every connection its
    /// own database). Gone when the store is dropped.
    pub fn memory() -> Self {
        Self::new(Location::Memory)
    }

    fn new(location: Location) -> Self {
        SqliteOptions {
            location,
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            busy_retry_for: Duration::from_secs(60),
            readers: 4,
            max_group: 1024,
            change_retention: Some(state_core::DEFAULT_CHANGE_RETENTION),
            clock: Arc::new(SystemClock),
            inline_commits: true,
            read_only: false,
        }
    }

    /// Sets how long the change log keeps changes (default
    /// [`DEFAULT_CHANGE_RETENTION`](state_core::DEFAULT_CHANGE_RETENTION); `None`: forever).
    /// Older changes are deleted every 1024 group commits.
    #[must_use]
    pub fn change_retention(mut self, keep: Option<Duration>) -> Self {
        self.change_retention = keep;
        self
    }

    /// Sets the durability of commits (default [`Synchronous::Normal`]).
    #[must_use]
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// Sets SQLite's own wait on a locked database per statement (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    /// Sets how long a transaction that meets a lock is retried beyond `busy_timeout` before
    /// it fails (default 60 s).
    #[must_use]
    pub fn busy_retry_for(mut self, d: Duration) -> Self {
        self.busy_retry_for = d;
        self
    }

    /// Sets the number of read connections of a file database (default 4).
    #[must_use]
    pub fn readers(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// Sets the most caller batches merged into one transaction (default 1024).
    #[must_use]
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }

    /// Sets whether the committer runs its one-call commit on its own thread, on a second
    /// connection of its own (default `true`; see the crate docs), or hands every statement to
    /// sqlx's worker thread (`false`; always so for [`SqliteOptions::memory`]). Inline, a lone writer's commit costs no thread
    /// hand-off (W1 ×2 in `BENCHMARKS.md`), but the thread running the committer — a
    /// runtime thread — blocks for the statement: tens of microseconds with
    /// [`Synchronous::Normal`] (milliseconds for the largest groups), plus an fsync with
    /// [`Synchronous::Full`]. Turn it off where an fsync on the runtime's threads costs more
    /// than the hand-off (a slow disk, a `current_thread` runtime serving latency-sensitive
    /// work).
    #[must_use]
    pub fn inline_commits(mut self, on: bool) -> Self {
        self.inline_commits = on;
        self
    }

    /// Opens the store read-only (default `false`): no file is created or changed, every
    /// write fails with [`SqliteError::ReadOnly`], and a store whose schema is not current is
    /// refused ([`SqliteError::NeedsMigration`]). Works on a read-only medium (a read-only
    /// mount, a file without write permission): when SQLite cannot create the WAL index next
    /// to the file there, the file is opened as immutable, and changes another process makes
    /// to it while the store is open are then not seen.
    #[must_use]
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Sets the clock expiry is read from (a `ManualClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn display(&self) -> String {
        match &self.location {
            Location::File(p) => p.display().to_string(),
            Location::Memory => ":memory:".to_owned(),
        }
    }

    fn connect_options(&self) -> SqliteConnectOptions {
        let base = match &self.location {
            // No journal mode here: a file becomes WAL only once it is known to be this
            // crate's (`schema::migrate`); setting it would change another program's file.
            // `./` before a relative name: SQLite reads `:memory:` and `file:…` as a memory
            // database and a URI, not as the file they name.
            Location::File(p) => SqliteConnectOptions::new()
                .filename(if p.is_relative() {
                    Path::new(".").join(p)
                } else {
                    p.clone()
                })
                .create_if_missing(!self.read_only)
                .read_only(self.read_only),
            Location::Memory => SqliteConnectOptions::new()
                .in_memory(true)
                .journal_mode(SqliteJournalMode::Memory),
        };
        base.synchronous(match self.synchronous {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        })
        .busy_timeout(self.busy_timeout)
        .foreign_keys(false)
        .statement_cache_capacity(128)
        .disable_statement_logging()
    }
}

/// Counters of what the store did, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Transactions SQLite really committed on the write connections (commit hooks count
    /// them).
    pub commits: u64,
    /// Group transactions run for caller commits.
    pub groups: u64,
    /// Caller batches committed or refused in them.
    pub batches: u64,
    /// The largest number of caller batches merged into one transaction.
    pub max_group: u64,
    /// Transactions retried because another connection held the lock.
    pub busy_retries: u64,
    /// Group transactions committed in one call from what the committer knew.
    pub fast_commits: u64,
    /// One-call attempts that found a slot changed (by another connection, or never seen, or
    /// no longer remembered: the committer remembers up to 16 384 slots) and wrote nothing
    /// before the group ran again on what it read.
    pub cache_misses: u64,
    /// One-call commits that met another connection's lock on the committer's thread and
    /// ran again through sqlx's worker thread, which waits it out (see the crate docs).
    pub inline_busy: u64,
    /// WAL checkpoints the committer ran (SQLite's automatic one is off on the connection it
    /// runs one-call commits on).
    pub checkpoints: u64,
    /// Requests waiting for the committer right now.
    pub queued: usize,
}

#[derive(Default, Debug)]
struct Counters {
    commits: AtomicU64,
    /// Commits of the direct connection (its own hook's counter).
    direct_commits: Arc<AtomicU64>,
    groups: AtomicU64,
    batches: AtomicU64,
    max_group: AtomicU64,
    busy_retries: AtomicU64,
    fast_commits: AtomicU64,
    cache_misses: AtomicU64,
    inline_busy: AtomicU64,
    checkpoints: AtomicU64,
}

/// A read the store serves.
enum Read {
    Many(Vec<Slot>),
    Rows(Option<Scope>),
    Keys(Scope, Option<String>, Option<SlotKey>, usize),
    Scopes(Option<ScopeKind>, Option<Scope>, usize),
    StoredScopes(Option<ScopeKind>, Option<Scope>, usize),
    Changes(u64, state_core::ChangeFilter, usize),
    History(Slot, Option<u64>, usize),
    LastChange,
}

enum ReadOut {
    Records(Vec<Record>),
    Rows(Vec<Result<(Slot, Record), Error>>),
    Keys(Page<SlotKey>),
    Scopes(Page<Scope>),
    Changes(Vec<state_core::Change>),
    Seq(u64),
}

enum Admin {
    Clear(Scope),
    Purge(Scope),
    PurgeExpired,
    Restore(Vec<(Slot, Record)>),
}

enum Request {
    Commit(Batch, oneshot::Sender<Result<CommitOutcome, Error>>),
    Admin(Admin, oneshot::Sender<Result<u64, Error>>),
    /// Reads of an in-memory database go through the one connection.
    Read(Read, oneshot::Sender<Result<ReadOut, Error>>),
}

/// The durable, embedded [`Store`]: SQLite through sqlx, WAL, group commit.
pub struct SqliteStore {
    tx: mpsc::Sender<Request>,
    /// The committer, run by the caller that finds it idle ([`Leader`]).
    writer: Arc<Leader<Committer>>,
    /// Read connections of a file database; `None` for `:memory:` (reads go to the committer).
    readers: Option<SqlitePool>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(SqliteOptions::file(path.as_ref())).await
    }

    /// A private in-memory database.
    pub async fn memory() -> Result<Self, Error> {
        Self::open_with(SqliteOptions::memory()).await
    }

    /// Opens a database with `options`: connects, applies migrations (safe when several
    /// processes open a fresh file at once) and parks the committer for the first write.
    pub async fn open_with(options: SqliteOptions) -> Result<Self, Error> {
        let path = options.display();
        let counters = Arc::new(Counters::default());
        let (mut conn, connect) = boxed(open_schema(&options, &path, &counters)).await?;
        {
            let hook_counters = counters.clone();
            let mut handle = boxed(conn.lock_handle()).await.map_err(SqliteError::from)?;
            handle.set_commit_hook(move || {
                hook_counters.commits.fetch_add(1, Ordering::Relaxed);
                true
            });
        }
        let readers = match options.location {
            Location::File(_) => Some(
                SqlitePoolOptions::new()
                    .max_connections(options.readers)
                    .min_connections(0)
                    // sqlx pings a pooled connection before each use by default: for SQLite
                    // a round trip to the connection's worker thread, as long as the read
                    // itself (a point read ran at 0.8-1.2 of a default sqlx pool with it,
                    // 1.5-1.8 without). A local file's connection does not go stale as a
                    // network one does.
                    .test_before_acquire(false)
                    .connect_lazy_with(connect.clone()),
            ),
            Location::Memory => None,
        };
        let mut conn = inline::WriteConn::new(conn);
        if options.inline_commits
            && !options.read_only
            && let Location::File(_) = options.location
        {
            let synchronous = match options.synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            let commits = counters.direct_commits.clone();
            conn.open_direct(connect.get_filename(), synchronous, commits)
                .map_err(|e| open_error(e, &path))?;
        }
        let (tx, rx) = mpsc::channel(4096);
        let committer = Committer {
            conn,
            rx,
            clock: options.clock.clone(),
            counters: counters.clone(),
            max_group: options.max_group,
            busy_retry_for: options.busy_retry_for,
            cache: cache::KnownCache::default(),
            optimistic: true,
            change_retention: options.change_retention,
            next: None,
        };
        Ok(SqliteStore {
            tx,
            writer: Leader::new(committer),
            readers,
            clock: options.clock,
            counters,
            path,
        })
    }

    /// The path (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the store did so far.
    pub fn stats(&self) -> SqliteStats {
        let c = &self.counters;
        SqliteStats {
            commits: c.commits.load(Ordering::Relaxed)
                + c.direct_commits.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            max_group: c.max_group.load(Ordering::Relaxed),
            busy_retries: c.busy_retries.load(Ordering::Relaxed),
            fast_commits: c.fast_commits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            inline_busy: c.inline_busy.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            queued: self.tx.max_capacity() - self.tx.capacity(),
        }
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Request,
    ) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::from(SqliteError::CommitterGone))?;
        // No `.await` between queueing and this (see `Leader::wait`).
        self.writer
            .wait(rx)
            .await
            .map_err(|_| Error::from(SqliteError::CommitterGone))?
    }

    async fn read(&self, op: Read) -> Result<ReadOut, Error> {
        match &self.readers {
            None => self.send(|reply| Request::Read(op, reply)).await,
            Some(pool) => {
                let started = Instant::now();
                loop {
                    let mut conn = pool
                        .acquire()
                        .await
                        .map_err(|e| open_error(e, &self.path))?;
                    match serve_read(&mut conn, &op, self.clock.now()).await {
                        Err(e)
                            if is_busy_state(&e) && started.elapsed() < Duration::from_secs(60) =>
                        {
                            self.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(backoff(started)).await;
                        }
                        Err(e) if is_busy_state(&e) => {
                            let waited = started.elapsed();
                            return Err(SqliteError::Busy { waited }.into());
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

/// Pins a future with an explicit `Send` bound. sqlx's executor impls carry higher-ranked
/// lifetimes that rustc cannot see through when it infers `Send` for an enclosing `async fn`
/// used generically (rust-lang/rust#102211); boxing checks `Send` here, where lifetimes are
/// concrete, so `open_with` and every `Store` method stay `Send` for callers.
fn boxed<'a, T>(
    f: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

fn is_busy_state(e: &Error) -> bool {
    match e {
        Error::Store { source, .. } => match source.downcast_ref::<SqliteError>() {
            Some(e) => e.is_busy(),
            None => false,
        },
        _ => false,
    }
}

/// A jittered, growing pause between busy retries (1 ms up to 50 ms).
fn backoff(started: Instant) -> Duration {
    let ms = (started.elapsed().as_millis() / 20).clamp(1, 50) as u64;
    Duration::from_micros(
        ms * 1000 / 2 + (started.elapsed().subsec_nanos() as u64 % (ms * 500 + 1)),
    )
}

fn open_error(e: sqlx::Error, path: &str) -> Error {
    if error::is_not_a_database(&e) {
        SqliteError::NotADatabase {
            path: path.to_owned(),
        }
        .into()
    } else {
        SqliteError::Open {
            path: path.to_owned(),
            source: Arc::new(e),
        }
        .into()
    }
}

/// Connects, then reads whether the file is this crate's and current; migrates it if not
/// (and the store may write). Busy errors are the caller's to retry.
async fn open_schema_once(
    connect: SqliteConnectOptions,
    path: String,
    file: bool,
    read_only: bool,
) -> Result<SqliteConnection, SqliteError> {
    if file && !read_only && connect.get_filename().metadata().is_ok_and(|m| m.len() > 0) {
        // Decide on a read-only connection first: closing a writable one would checkpoint a
        // foreign file's WAL into it.
        let ro = connect.clone().read_only(true).connect().await;
        if let Err(e) = &ro
            && error::is_hot_journal(e)
        {
            return Err(hot_journal(path));
        }
        if let Ok(ro) = ro {
            let (ro, verdict) = boxed(probe_on(ro, path.clone(), false)).await;
            let _ = ro.close().await;
            match verdict {
                Err(e) if e.is_busy() || matches!(e, SqliteError::ForeignDatabase { .. }) => {
                    return Err(e);
                }
                _ => {}
            }
        }
    }
    let conn = match connect.connect().await {
        Ok(c) => c,
        Err(e) if error::is_busy(&e) => return Err(e.into()),
        Err(e) if error::is_hot_journal(&e) => return Err(hot_journal(path)),
        Err(e) if error::is_not_a_database(&e) => {
            return Err(SqliteError::NotADatabase { path });
        }
        Err(e) => {
            return Err(SqliteError::Open {
                path,
                source: Arc::new(e),
            });
        }
    };
    let (conn, found) = boxed(probe_on(conn, path.clone(), file && !read_only)).await;
    match found? {
        schema::Found::Current => Ok(conn),
        schema::Found::Stale if read_only => Err(SqliteError::NeedsMigration { path }),
        schema::Found::Empty if read_only => Err(SqliteError::Empty { path }),
        schema::Found::Stale | schema::Found::Empty => {
            let (conn, migrated) = boxed(schema::migrate(conn, path, file)).await;
            migrated.map(|()| conn)
        }
    }
}

/// A file with a hot rollback journal: another program's (a store's files use WAL), which
/// only a writable connection could roll back, changing it.
fn hot_journal(path: String) -> SqliteError {
    let reason = format!(
        "it has a hot rollback journal ({path}-journal: a process stopped while writing it), which a typed-state store, always in WAL mode, never has"
    );
    SqliteError::ForeignDatabase { path, reason }
}

/// [`schema::probe`] on `conn`, handed back (by value: see [`schema::migrate`]); "not a
/// database" named as such.
async fn probe_on(
    mut conn: SqliteConnection,
    path: String,
    wal: bool,
) -> (SqliteConnection, Result<schema::Found, SqliteError>) {
    let found = schema::probe(&mut conn, &path, wal)
        .await
        .map_err(|e| match e {
            SqliteError::Sql(s) if error::is_not_a_database(&s) => {
                SqliteError::NotADatabase { path }
            }
            other => other,
        });
    (conn, found)
}

/// Whether the database file exists and may not be written (a read-only mount, no
/// permission); opening it for writing changes nothing.
fn cannot_write(location: &Location) -> bool {
    match location {
        Location::File(file) => match std::fs::OpenOptions::new().write(true).open(file) {
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            Ok(_) => false,
        },
        Location::Memory => false,
    }
}

/// Whether the WAL next to `file` holds commits not yet copied into the file.
fn wal_holds_commits(file: &Path) -> bool {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// [`open_schema_once`], retried while another connection holds a lock (then the typed busy
/// error), and once as immutable when a read-only store's WAL index cannot be created.
async fn open_schema(
    options: &SqliteOptions,
    path: &str,
    counters: &Counters,
) -> Result<(SqliteConnection, SqliteConnectOptions), Error> {
    let mut connect = options.connect_options();
    let file = matches!(options.location, Location::File(_));
    let mut immutable = false;
    let started = Instant::now();
    loop {
        let attempt = open_schema_once(connect.clone(), path.to_owned(), file, options.read_only);
        match boxed(attempt).await {
            Ok(conn) => return Ok((conn, connect)),
            Err(e) if e.is_busy() && started.elapsed() < options.busy_retry_for => {
                counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(started)).await;
            }
            Err(e) if e.is_busy() => {
                let waited = started.elapsed();
                return Err(SqliteError::Busy { waited }.into());
            }
            // A writable open of a file that cannot be written (a read-only mount): SQLite
            // falls back to reading and then cannot create the WAL index.
            Err(e)
                if !options.read_only && e.is_cannot_open() && cannot_write(&options.location) =>
            {
                return Err(SqliteError::ReadOnly.into());
            }
            Err(e) if options.read_only && !immutable && e.is_cannot_open() => {
                // Immutable reads skip the WAL: only when it holds nothing to skip.
                if let Location::File(file) = &options.location
                    && wal_holds_commits(file)
                {
                    let path = path.to_owned();
                    return Err(SqliteError::WalUnreadable { path }.into());
                }
                immutable = true;
                connect = connect.immutable(true);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn serve_read(
    conn: &mut SqliteConnection,
    op: &Read,
    now: state_core::Timestamp,
) -> Result<ReadOut, Error> {
    Ok(match op {
        Read::Many(slots) => ReadOut::Records(sql::load_many(conn, slots, now).await?),
        Read::Rows(scope) => ReadOut::Rows(sql::load_rows(conn, scope.as_ref(), now).await?),
        Read::Keys(scope, ns, after, limit) => ReadOut::Keys(
            sql::list_keys(conn, scope, ns.as_deref(), after.as_ref(), *limit, now).await?,
        ),
        Read::StoredScopes(kind, after, limit) => {
            ReadOut::Scopes(sql::list_stored_scopes(conn, *kind, after.as_ref(), *limit).await?)
        }
        Read::Scopes(kind, after, limit) => {
            ReadOut::Scopes(sql::list_scopes(conn, *kind, after.as_ref(), *limit, now).await?)
        }
        Read::Changes(after, filter, limit) => {
            ReadOut::Changes(sql::read_changes(conn, *after, filter, *limit).await?)
        }
        Read::History(slot, before, limit) => {
            ReadOut::Changes(sql::slot_history(conn, slot, *before, *limit).await?)
        }
        Read::LastChange => ReadOut::Seq(sql::last_change(conn).await?),
    })
}

fn unexpected() -> Error {
    Error::store(std::io::Error::other(
        "the store answered a read with another kind of result",
    ))
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>, Error> {
        match self.read(Read::Many(slots.to_vec())).await? {
            ReadOut::Records(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> Result<Vec<(SlotKey, Record)>, Error> {
        state_core::rows::scope_records(self.load_rows(Some(scope)).await?, namespace)
    }

    async fn load_rows(
        &self,
        scope: Option<&Scope>,
    ) -> Result<Vec<Result<(Slot, Record), Error>>, Error> {
        match self.read(Read::Rows(scope.cloned())).await? {
            ReadOut::Rows(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, Error> {
        let batch = state_core::check_batch(batch)?;
        self.send(|reply| Request::Commit(batch, reply)).await
    }

    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>, Error> {
        state_core::check_page_limit(limit)?;
        let op = Read::Keys(
            scope.clone(),
            namespace.map(str::to_owned),
            after.cloned(),
            limit,
        );
        match self.read(op).await? {
            ReadOut::Keys(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }

    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        state_core::check_page_limit(limit)?;
        match self.read(Read::Scopes(kind, after.cloned(), limit)).await? {
            ReadOut::Scopes(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }

    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        state_core::check_page_limit(limit)?;
        match self
            .read(Read::StoredScopes(kind, after.cloned(), limit))
            .await?
        {
            ReadOut::Scopes(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }

    async fn restore(&self, restore: Restore) -> Result<u64, Error> {
        let records = state_core::check_restored(restore.records, restore.max_value_bytes)?;
        self.send(|reply| Request::Admin(Admin::Restore(records), reply))
            .await
    }

    async fn clear(&self, scope: &Scope) -> Result<u64, Error> {
        self.send(|reply| Request::Admin(Admin::Clear(scope.clone()), reply))
            .await
    }

    async fn purge_scope(&self, scope: &Scope) -> Result<u64, Error> {
        self.send(|reply| Request::Admin(Admin::Purge(scope.clone()), reply))
            .await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        self.send(|reply| Request::Admin(Admin::PurgeExpired, reply))
            .await
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn read_changes(
        &self,
        after: u64,
        filter: &state_core::ChangeFilter,
        limit: usize,
    ) -> Result<Vec<state_core::Change>, Error> {
        match self
            .read(Read::Changes(after, filter.clone(), limit))
            .await?
        {
            ReadOut::Changes(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<state_core::Change>, Error> {
        match self
            .read(Read::History(slot.clone(), before, limit))
            .await?
        {
            ReadOut::Changes(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn last_change(&self) -> Result<u64, Error> {
        match self.read(Read::LastChange).await? {
            ReadOut::Seq(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }
}

/// Prepares every batch of a group on the records `loaded` (indexed like `index`), each batch
/// seeing the changes of the accepted batches before it; a refused batch contributes nothing.
fn prepare_group(
    group: &[Pending],
    index: &HashMap<&Slot, usize>,
    loaded: &[Result<sql::Known, SqliteError>],
    now: state_core::Timestamp,
) -> PreparedGroup {
    state_core::rows::prepare_loaded_group(group.iter().map(|(b, _)| b), now, |slot| {
        let loaded = index.get(slot).and_then(|&i| loaded.get(i))?;
        Some(loaded.as_ref().map(|(r, _)| r))
    })
}

/// Owns the write connection and runs every write transaction; run by one caller or task at
/// a time ([`Leader`]).
struct Committer {
    conn: inline::WriteConn,
    rx: mpsc::Receiver<Request>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    max_group: usize,
    busy_retry_for: Duration,
    /// What each slot held after this committer's last transaction touching it. Every write
    /// made from it is guarded by it, so a stale entry costs a retry, never a lost update.
    cache: cache::KnownCache,
    /// Whether to try the one-call guarded commit (off after a miss, until a read refreshed
    /// the cache).
    optimistic: bool,
    /// How long the change log keeps changes.
    change_retention: Option<Duration>,
    /// A request taken from the queue that did not fit the last group.
    next: Option<Request>,
}

/// One caller's batch in a group, and where its answer goes.
type Pending = (Batch, oneshot::Sender<Result<CommitOutcome, Error>>);

impl state_core::leader::GroupCommitter for Committer {
    fn serve(self) -> impl Future<Output = Self> + Send + 'static {
        self.serve_one()
    }

    fn is_idle(&self) -> bool {
        self.next.is_none() && self.rx.is_empty()
    }
}

impl Committer {
    /// Serves one queued request (a commit merged with the commits queued behind it), if any.
    async fn serve_one(mut self) -> Self {
        let request = match self.next.take() {
            Some(r) => r,
            None => match self.rx.try_recv() {
                Ok(r) => r,
                Err(_) => return self,
            },
        };
        match request {
            Request::Commit(batch, reply) => {
                // Merge what the callers answered last queue meanwhile; never wait for
                // company (a timer).
                state_core::gather_yield(&self.rx).await;
                let mut group: Vec<Pending> = vec![(batch, reply)];
                while group.len() < self.max_group {
                    match self.rx.try_recv() {
                        Ok(Request::Commit(b, r)) => group.push((b, r)),
                        Ok(other) => {
                            self.next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.commit_group(group).await;
                let groups = self.counters.groups.load(Ordering::Relaxed);
                if let Some(keep) = self.change_retention
                    && groups.is_multiple_of(1024)
                {
                    let cutoff = self.clock.now().saturating_sub(keep);
                    // Best effort: a busy database trims at a later turn.
                    if sql::trim_changes(self.conn.sqlx(), cutoff).await.is_err() {
                        self.conn.roll_back().await;
                    }
                }
            }
            Request::Admin(op, reply) => {
                let result = self.admin(&op).await;
                let _ = reply.send(result);
            }
            Request::Read(op, reply) => {
                let now = self.clock.now();
                let read = match self.conn.sqlx_checked().await {
                    Ok(conn) => serve_read(conn, &op, now).await,
                    Err(e) => Err(SqliteError::from(e).into()),
                };
                let _ = reply.send(read);
            }
        }
        if self.conn.checkpoint_due() {
            self.checkpoint().await;
        }
        self
    }

    /// Copies the WAL back into the database file as SQLite's automatic checkpoint would (it
    /// is off on the write connection: it would run inside a commit on this thread), through
    /// sqlx. Best effort: pages a reader still needs are copied at a later try.
    async fn checkpoint(&mut self) {
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        let outcome: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(self.conn.sqlx())
            .await;
        let complete = matches!(outcome, Ok((0, log, copied)) if log == copied);
        let wal = outcome.ok().and_then(|(_, log, _)| u64::try_from(log).ok());
        self.conn.checkpointed(wal, complete);
    }

    /// Runs `group` in one transaction, retrying it whole while another connection holds the
    /// lock, and answers every caller.
    async fn commit_group(&mut self, group: Vec<Pending>) {
        let size = group.len() as u64;
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.counters.batches.fetch_add(size, Ordering::Relaxed);
        self.counters.max_group.fetch_max(size, Ordering::Relaxed);
        let started = Instant::now();
        // A retry after a lock runs through sqlx: its worker waits for the lock.
        let mut inline = self.conn.has_direct();
        let result = loop {
            let attempt = self.try_group(&group, inline).await;
            if let Err(e) = &attempt {
                inline = false;
                self.conn.roll_back().await;
                if e.is_busy() && started.elapsed() < self.busy_retry_for {
                    self.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(started)).await;
                    continue;
                }
            }
            break attempt;
        };
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let err = if e.is_busy() {
                    SqliteError::Busy {
                        waited: started.elapsed(),
                    }
                } else {
                    e
                };
                for (_, reply) in group {
                    let _ = reply.send(Err(err.clone().into()));
                }
            }
        }
    }

    /// One transaction for the group: each batch is prepared on the records as the batches
    /// before it left them; a refused batch contributes nothing.
    async fn try_group(
        &mut self,
        group: &[Pending],
        inline: bool,
    ) -> Result<Vec<Result<CommitOutcome, Error>>, SqliteError> {
        let now = self.clock.now();
        let mut index: HashMap<&Slot, usize> = HashMap::new();
        let mut slots: Vec<Slot> = Vec::new();
        for (batch, _) in group {
            for w in &batch.writes {
                index.entry(&w.slot).or_insert_with(|| {
                    slots.push(w.slot.clone());
                    slots.len() - 1
                });
            }
        }
        // Fast path: assume what the cache knows (a slot never seen: no row, floor 0) and
        // commit in one statement, guarded by those assumptions for every touched slot. If
        // one is wrong nothing is written, and the group runs again on what it reads.
        // A slot known to hold a value too large to compare in the database takes the read
        // path.
        let assumed: Option<Vec<sql::Known>> = if self.optimistic && slots.len() <= sql::GUARDED_MAX
        {
            slots
                .iter()
                .map(|s| match self.cache.get(s) {
                    Some(cache::Entry::Known(k)) => Some(k.clone()),
                    Some(cache::Entry::Large) => None,
                    None => Some((Record::absent(0), false)),
                })
                .collect()
        } else {
            None
        };
        if let Some(assumed) = assumed.filter(|a| !a.is_empty()) {
            let loaded: Vec<Result<sql::Known, SqliteError>> =
                assumed.iter().cloned().map(Ok).collect();
            let PreparedGroup {
                results,
                changes,
                log,
            } = prepare_group(group, &index, &loaded, now);
            let wrote = match sql::Guarded::new(&slots, &assumed, &log, now)? {
                Some(statement) => Some(self.run_guarded(statement, inline).await?),
                None => None,
            };
            match wrote {
                Some(true) => {
                    self.counters.fast_commits.fetch_add(1, Ordering::Relaxed);
                    self.remember(changes.into_iter().map(|(s, r)| (s, (r, true))));
                    return Ok(results);
                }
                Some(false) => {
                    self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
                    self.optimistic = false;
                    for s in &slots {
                        self.cache.remove(s);
                    }
                }
                None => {}
            }
        }
        // Read path, two calls: "BEGIN IMMEDIATE; SELECT …" and "INSERT …; COMMIT" (each a
        // multi-statement string, one hand-off to sqlx's worker thread). On any error the
        // caller rolls back: sqlx does not know about a transaction begun inside a string.
        let conn = self.conn.sqlx_checked().await?;
        let loaded = sql::load_raw(conn, &slots, sql::ReadIn::NewWriteTransaction).await?;
        let PreparedGroup {
            results,
            changes,
            log,
        } = prepare_group(group, &index, &loaded, now);
        if changes.is_empty() {
            conn.execute("COMMIT").await?;
        } else {
            sql::write_commit(conn, &log, now, true).await?;
        }
        let read: Vec<(Slot, sql::Known)> = slots
            .into_iter()
            .zip(loaded)
            .filter_map(|(s, k)| k.ok().map(|k| (s, k)))
            .collect();
        self.remember(read);
        self.remember(changes.into_iter().map(|(s, r)| (s, (r, true))));
        self.optimistic = true;
        Ok(results)
    }

    /// Runs the one-call commit on the direct connection, on this thread (unless
    /// `inline` is off: a retry after a lock); through sqlx (whose worker thread waits out a
    /// lock) if another connection holds one.
    async fn run_guarded(
        &mut self,
        statement: sql::Guarded<'_>,
        inline: bool,
    ) -> Result<bool, SqliteError> {
        if inline {
            match statement.run_inline(&mut self.conn).await {
                Err(e) if e.is_busy() => {
                    self.counters.inline_busy.fetch_add(1, Ordering::Relaxed);
                }
                result => return result,
            }
        }
        statement.run_sqlx(self.conn.sqlx_checked().await?).await
    }

    /// Records what slots hold after a commit (bounded: see [`cache::KnownCache`]).
    fn remember(&mut self, known: impl IntoIterator<Item = (Slot, sql::Known)>) {
        for (slot, k) in known {
            self.cache.insert(slot, k);
        }
    }

    /// Runs one admin write in its own transaction, retried while the database is locked.
    async fn admin(&mut self, op: &Admin) -> Result<u64, Error> {
        // Clears and purges change many slots at once: forget them all.
        self.cache.clear();
        let started = Instant::now();
        loop {
            // Ok(Err(_)): the input was refused (nothing written); Err(_): SQLite failed.
            let attempt = async {
                self.conn
                    .sqlx_checked()
                    .await?
                    .execute("BEGIN IMMEDIATE")
                    .await?;
                let now = self.clock.now();
                let n = match op {
                    Admin::Clear(scope) => sql::clear(self.conn.sqlx(), scope, now).await?,
                    Admin::Purge(scope) => sql::purge_scope(self.conn.sqlx(), scope).await?,
                    Admin::PurgeExpired => sql::purge_expired(self.conn.sqlx(), now).await?,
                    Admin::Restore(records) => {
                        // A restored version must leave room for the next write (`clear`
                        // raises versions in SQL, where i64::MAX + 1 would not be an integer).
                        if let Some((slot, r)) = records
                            .iter()
                            .find(|(_, r)| r.version > state_core::rows::MAX_VERSION)
                        {
                            let refused = SqliteError::VersionRange { version: r.version };
                            self.conn.roll_back().await;
                            return Ok(Err(refused.into_state(Some(slot.clone()))));
                        }
                        let slots: Vec<Slot> = records.iter().map(|(s, _)| s.clone()).collect();
                        let loaded =
                            sql::load_raw(self.conn.sqlx(), &slots, sql::ReadIn::Transaction)
                                .await?;
                        let mut current = loaded.into_iter();
                        let checked =
                            state_core::check_restore(records, |slot| match current.next() {
                                Some(Ok((record, _))) => Ok(record),
                                Some(Err(e)) => Err(e.into_state(Some(slot.clone()))),
                                None => {
                                    Err(Error::store(std::io::Error::other("slot was not loaded")))
                                }
                            });
                        if let Err(refused) = checked {
                            self.conn.roll_back().await;
                            return Ok(Err(refused));
                        }
                        // Every restored record is a new version (check_restore saw to it).
                        sql::write_commit(self.conn.sqlx(), records, now, false).await?;
                        records.len() as u64
                    }
                };
                self.conn.sqlx().execute("COMMIT").await?;
                Ok::<Result<u64, Error>, SqliteError>(Ok(n))
            }
            .await;
            match attempt {
                Ok(result) => return result,
                Err(e) => {
                    self.conn.roll_back().await;
                    let busy = e.is_busy();
                    if busy && started.elapsed() < self.busy_retry_for {
                        self.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(started)).await;
                        continue;
                    }
                    return Err(if busy {
                        SqliteError::Busy {
                            waited: started.elapsed(),
                        }
                    } else {
                        e
                    }
                    .into());
                }
            }
        }
    }
}
