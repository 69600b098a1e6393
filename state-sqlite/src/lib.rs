//! `SqliteStore`: the durable, embedded default [`Store`](state_core::Store) for `state-core`.
//!
//! - **One file, WAL.** Readers never block the writer; several processes may share a file.
//! - **Group commit.** Every write goes through one committer that owns the write
//!   connection (the engine all SQL stores share: [`state_sql`]). A caller that finds it idle
//!   runs it in its own task ([`state_core::backend::leader::Leader`]: no hand-off to another task
//!   when writes do not overlap); commits that arrive while a transaction runs are merged
//!   into the next one.
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
//!   ([`state_core::backend::gather_yield`]).
//! - **The commit statement runs on the committer's own thread.** sqlx runs statements on a
//!   worker thread per connection, and handing one over and back costs two thread wake-ups,
//!   more than SQLite's work for a small commit. So the committer keeps a second connection
//!   to the file (rusqlite, on the same linked SQLite) and runs the one-call commit on it
//!   where it runs (the caller that leads, or its task). That thread never waits for a lock
//!   or a checkpoint: the connection's busy timeout is 0, and a commit that meets another
//!   connection's lock runs again through sqlx, whose worker waits it out
//!   ([`SqliteCounts::inline_busy`]); SQLite's automatic checkpoint is off there and the
//!   committer runs one through sqlx about every 1000 WAL pages
//!   ([`SqliteCounts::checkpoints`]) — a caller that leads the turn waits for it, as for
//!   SQLite's own. What the thread does block for is the statement itself: tens of
//!   microseconds with `synchronous = NORMAL` (a group of 64 slots: a few hundred; the
//!   largest groups, or a statement's first run, milliseconds), plus an fsync with `FULL`;
//!   [`SqliteOptions::inline_commits`] turns it off. The committer's read path, admin writes
//!   and every statement of a `:memory:` store (whose database no second connection can
//!   open) run through sqlx.
//! - **Point reads and listings run on the caller's thread too** (`load`, `load_many`, a
//!   typed `get`, a struct's `load`): one SELECT on a read-only rusqlite connection of the
//!   store's own, one snapshot, a struct's fields found in one range of the primary key. A
//!   WAL reader takes no lock a writer holds, so such a read never waits for one; a read that
//!   meets a lock anyway (busy timeout 0) goes to sqlx's reader pool, which waits it out
//!   ([`SqliteCounts::direct_reads`] counts the others). Key and scope listings, the change
//!   log and a slot's history read the same way, each row decoded as SQLite returns it (a
//!   page whose values pass 1 MiB goes to sqlx's reader instead); exports and whole-scope
//!   loads, which have no page size, read through sqlx, so that no read holds the caller's
//!   thread for long. [`SqliteOptions::inline_commits`]`(false)`
//!   runs every read through sqlx.
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
mod direct;
mod error;
mod inline;
mod open;
mod options;
mod schema;
mod sql;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite as Db, SqliteConnection};
use state_core::{Error, Slot};
use state_sql::{Fut, Loaded, Opened, Param, boxed};

pub use crate::error::SqliteError;
pub use crate::options::{SqliteOptions, Synchronous};
pub use crate::schema::{APPLICATION_ID, schema_version};
pub use crate::writer::SqliteCounts;

/// The store's statements, for query-plan tests and benchmarks. Not public API.
#[doc(hidden)]
pub mod __sql {
    pub use crate::sql::select_slots;
}

/// The durable, embedded [`Store`](state_core::Store): SQLite through sqlx, WAL, group
/// commit. Open one with [`SqliteStore::open`] (a path, or [`SqliteOptions`]).
pub type SqliteStore = state_sql::SqlStore<Sqlite>;

/// Counters of what a [`SqliteStore`] did, for tests and monitoring
/// ([`SqliteStore::stats`]): the shared engine's, and [`SqliteCounts`].
pub type SqliteStats = state_sql::Stats<SqliteCounts>;

/// The SQLite backend of the shared SQL engine: its read connections, and what it counts.
pub struct Sqlite {
    /// Read connections of a file database; `None` for `:memory:` (reads go to the committer).
    readers: Option<SqlitePool>,
    /// Point and many-slot reads on the caller's thread (a writable file with inline
    /// commits: see [`SqliteOptions::inline_commits`]).
    direct: Option<direct::DirectReads>,
    counters: Arc<writer::Counters>,
    path: String,
}

impl Sqlite {
    /// Connects, migrates (or refuses another program's file) and sets up the committer's
    /// connections.
    async fn open_store(
        options: SqliteOptions,
        shared: Arc<state_sql::Counters>,
    ) -> Result<Opened<Self>, Error> {
        let path = options.display();
        let counters = Arc::new(writer::Counters::default());
        let (mut conn, connect) = boxed(open::open_schema(&options, &path, &shared)).await?;
        {
            let commits = counters.commits.clone();
            let mut handle = boxed(conn.lock_handle()).await.map_err(SqliteError::from)?;
            handle.set_commit_hook(move || {
                commits.fetch_add(1, Ordering::Relaxed);
                true
            });
        }
        let file = matches!(options.location, options::Location::File(_));
        let readers = file.then(|| {
            SqlitePoolOptions::new()
                .max_connections(options.readers)
                .min_connections(0)
                // sqlx pings a pooled connection before each use by default: for SQLite a
                // round trip to the connection's worker thread, as long as the read itself (a
                // point read ran at 0.8-1.2 of a default sqlx pool with it, 1.5-1.8 without).
                // A local file's connection does not go stale as a network one does.
                .test_before_acquire(false)
                .connect_lazy_with(connect.clone())
        });
        let direct = (options.inline_commits && !options.read_only && file).then(|| {
            let path = connect.get_filename().to_owned();
            direct::DirectReads::new(path, options.readers as usize, counters.clone())
        });
        let mut conn = inline::WriteConn::new(conn);
        if options.inline_commits && !options.read_only && file {
            let commits = counters.direct_commits.clone();
            let sync = options.synchronous.pragma();
            conn.open_direct(connect.get_filename(), sync, commits)
                .map_err(|e| open::open_error(e, &path))?;
        }
        let writer = writer::SqliteWriter {
            conn,
            counters: counters.clone(),
            cache: cache::KnownCache::default(),
            optimistic: true,
        };
        let backend = Sqlite {
            readers,
            direct,
            counters,
            path,
        };
        Ok(Opened {
            backend,
            writer,
            config: options.committer,
        })
    }
}

impl state_sql::Backend for Sqlite {
    type Options = SqliteOptions;
    type Error = SqliteError;
    type Db = Db;
    type Writer = writer::SqliteWriter;
    type Counts = SqliteCounts;

    fn open(
        options: SqliteOptions,
        counters: Arc<state_sql::Counters>,
    ) -> Fut<'static, Result<Opened<Self>, Error>> {
        boxed(Self::open_store(options, counters))
    }

    const KIND: &'static str = "sqlite";

    fn name(&self) -> &str {
        &self.path
    }

    fn reader(&self) -> Fut<'_, Result<Option<PoolConnection<Db>>, Error>> {
        boxed(async move {
            match &self.readers {
                None => Ok(None),
                Some(pool) => match pool.acquire().await {
                    Ok(conn) => Ok(Some(conn)),
                    Err(e) => Err(open::open_error(e, &self.path)),
                },
            }
        })
    }

    fn counts(&self) -> SqliteCounts {
        self.counters.counts()
    }

    fn load_inline(&self, slots: &[Slot]) -> Option<Result<Loaded<SqliteError>, SqliteError>> {
        self.direct.as_ref()?.load(slots)
    }

    fn fetch_inline<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn state_sql::columns::Columns) -> Result<T, sqlx::Error>,
    ) -> Option<Result<Vec<T>, SqliteError>> {
        self.direct.as_ref()?.fetch(sql, params, row)
    }

    fn load_known<'a>(
        conn: &'a mut SqliteConnection,
        slots: &'a [Slot],
    ) -> Fut<'a, Result<Loaded<SqliteError>, SqliteError>> {
        boxed(sql::load_raw(conn, slots, sql::ReadIn::Snapshot))
    }

    state_sql::sqlx_statements!();

    const LAST_CHANGE: &'static str =
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)";

    // By the chain of migration 0009: from the version at `$6` if it is the slot's (the
    // next page of a listing), else from the slot's newest one, skipping versions at or above
    // `$6`; each step must go down (a damaged chain ends the walk, never loops it) and stay on
    // the slot.
    const HISTORY: &'static str = "WITH RECURSIVE \
        here(link) AS (SELECT COALESCE(seq - prev_back, prev_seq) FROM changes \
          WHERE seq = $6 AND kind = $1 AND scope_id = $2 AND scope_sub = $3 \
            AND namespace = $4 AND key = $5), \
        head(s) AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM here) THEN (SELECT link FROM here) \
          ELSE COALESCE((SELECT last_seq FROM slots WHERE kind = $1 AND scope_id = $2 \
                           AND scope_sub = $3 AND namespace = $4 AND key = $5), \
                        (SELECT last_seq FROM purged_heads WHERE kind = $1 AND scope_id = $2 \
                           AND scope_sub = $3 AND namespace = $4 AND key = $5)) END), \
        walk(seq, link, n) AS ( \
          SELECT c.seq, COALESCE(c.seq - c.prev_back, c.prev_seq), c.seq < $6 \
          FROM head JOIN changes c ON c.seq = head.s \
          WHERE c.kind = $1 AND c.scope_id = $2 AND c.scope_sub = $3 \
            AND c.namespace = $4 AND c.key = $5 \
          UNION ALL \
          SELECT c.seq, COALESCE(c.seq - c.prev_back, c.prev_seq), w.n + (c.seq < $6) \
          FROM walk w JOIN changes c ON c.seq = w.link \
          WHERE w.n < $7 AND c.seq < w.seq AND c.kind = $1 AND c.scope_id = $2 \
            AND c.scope_sub = $3 AND c.namespace = $4 AND c.key = $5) \
        SELECT c.seq, c.kind, c.scope_id, c.scope_sub, c.namespace, c.key, c.version, \
          c.value, c.at FROM walk w JOIN changes c ON c.seq = w.seq \
        WHERE c.seq < $6 ORDER BY c.seq DESC LIMIT $7";

    const QUOTED_ROW: &'static str = "quote(kind) || ', ' || quote(scope_id) || ', ' || \
        quote(scope_sub) || ', ' || quote(namespace) || ', ' || quote(key) || ', ' || \
        quote(version) || ', ' || quote(expires_at), quote(value)";
}
