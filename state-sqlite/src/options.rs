//! How to open a [`SqliteStore`](crate::SqliteStore): a file or a private in-memory
//! database, durability, waits and limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use state_sql::CommitterConfig;

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
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

/// How to open a [`SqliteStore`](crate::SqliteStore). A path converts into the options of
/// that file (`SqliteStore::open("state.db")`).
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(crate) location: Location,
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) readers: u32,
    pub(crate) inline_commits: bool,
    pub(crate) read_only: bool,
    pub(crate) committer: CommitterConfig,
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
            readers: 4,
            inline_commits: true,
            read_only: false,
            committer: CommitterConfig::new(Duration::from_secs(60)),
        }
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

    /// Sets whether the committer runs its one-call commit on its own thread, on a second
    /// connection of its own (default `true`; see the crate docs), or hands every statement to
    /// sqlx's worker thread (`false`; always so for [`SqliteOptions::memory`]). Inline, a lone writer's commit costs no thread
    /// hand-off (`BENCHMARKS.md` has the figures), but the thread running the committer — a
    /// runtime thread — blocks for the statement: tens of microseconds with
    /// [`Synchronous::Normal`] (milliseconds for the largest groups), plus an fsync with
    /// [`Synchronous::Full`]. Turn it off where an fsync on the runtime's threads costs more
    /// than the hand-off (a slow disk, a `current_thread` runtime serving latency-sensitive
    /// work). The same switch sends point and many-slot reads, which otherwise run on the
    /// caller's thread (see the crate docs), to sqlx's reader pool.
    #[must_use]
    pub fn inline_commits(mut self, on: bool) -> Self {
        self.inline_commits = on;
        self
    }

    /// Opens the store read-only (default `false`): no file is created or changed, every
    /// write fails with [`SqliteError::ReadOnly`](crate::SqliteError::ReadOnly), and a store whose schema is not current is
    /// refused ([`SqliteError::NeedsMigration`](crate::SqliteError::NeedsMigration)). Works on a read-only medium (a read-only
    /// mount, a file without write permission): when SQLite cannot create the WAL index next
    /// to the file there, the file is opened as immutable, and changes another process makes
    /// to it while the store is open are then not seen.
    #[must_use]
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    pub(crate) fn display(&self) -> String {
        match &self.location {
            Location::File(p) => p.display().to_string(),
            Location::Memory => ":memory:".to_owned(),
        }
    }

    pub(crate) fn connect_options(&self) -> SqliteConnectOptions {
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

impl Synchronous {
    /// The `PRAGMA synchronous` value.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

state_sql::options_from!(
    SqliteOptions,
    SqliteOptions::file,
    &Path,
    PathBuf,
    &PathBuf,
    &str,
    String,
    &String
);

state_sql::shared_options!(SqliteOptions, retry_default = "60 s");
