//! Errors of the SQLite backend. They reach users inside `state_core::Error::Store` (downcast
//! its `source` to [`SqliteError`] to match on them).

use std::sync::Arc;
use std::time::Duration;

/// What went wrong in SQLite.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The file exists but is not a SQLite database.
    #[error("{path}: not a SQLite database")]
    NotADatabase {
        /// The path opened.
        path: String,
    },
    /// The file is another program's SQLite database (not stamped with this crate's
    /// [`APPLICATION_ID`](crate::APPLICATION_ID), and not empty): refused, and left exactly as
    /// it was.
    #[error(
        "{path} is not a typed-state store: {reason}; nothing was changed (open a new file for the store)"
    )]
    ForeignDatabase {
        /// The path opened.
        path: String,
        /// What the file holds that a store does not.
        reason: String,
    },
    /// A store opened read-only needs a schema migration, which only a writable open applies.
    #[error(
        "{path} was written by an older version of this crate and needs a schema migration; open it writable once (a read-only open changes nothing)"
    )]
    NeedsMigration {
        /// The path opened.
        path: String,
    },
    /// A database opened read-only holds nothing yet (an empty file, or a database without a
    /// table): a writable open makes it a store.
    #[error("{path} holds no store yet (an empty database); a read-only open changes nothing")]
    Empty {
        /// The path opened.
        path: String,
    },
    /// A store opened read-only on a read-only medium whose WAL holds commits: SQLite cannot
    /// read them there (it cannot create the WAL index), and reading without them would show
    /// old values.
    #[error(
        "{path}-wal holds commits not yet in {path}, and SQLite cannot read them where neither can be written (it needs to create {path}-shm); open the store once where it is writable, or copy the database and its -wal file somewhere writable"
    )]
    WalUnreadable {
        /// The path opened.
        path: String,
    },
    /// A write to a store opened read-only, or whose file or directory cannot be written.
    #[error(
        "the database is read-only (opened read-only, or its file or directory cannot be written); nothing was written"
    )]
    ReadOnly,
    /// The database could not be opened (a directory, no permission, a missing parent…).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path opened.
        path: String,
        /// SQLite's reason.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The file was written by a newer version of this crate.
    #[error(
        "{path}: schema version {found} is newer than this build supports ({supported}); upgrade state-sqlite to open it"
    )]
    NewerSchema {
        /// The path opened.
        path: String,
        /// The newest migration applied to the file.
        found: i64,
        /// The newest migration this build knows.
        supported: i64,
    },
    /// An applied migration differs from the one this build would apply.
    #[error("{path}: migration {version} differs from the one applied to this file")]
    ChecksumMismatch {
        /// The path opened.
        path: String,
        /// The migration's version.
        version: i64,
    },
    /// A row does not hold what this crate writes (edited by hand, or corrupted).
    ///
    /// If only its value is unreadable, writes that do not need the old value (a CAS write at
    /// `version`, or a `set` of the whole value — `set_raw` is made for this) replace it.
    #[error("malformed row: {0}")]
    MalformedRow(#[source] state_core::backend::rows::RowError),
    /// Another connection held the database's write lock for longer than the store waits.
    #[error("the database stayed locked by another connection for {waited:?}; nothing was written")]
    Busy {
        /// How long the store kept retrying.
        waited: Duration,
    },
    /// A version above the highest this store writes ([`state_core::backend::rows::MAX_VERSION`]: one
    /// below the largest SQLite's INTEGER, so a clear can still raise every slot by one).
    #[error("version {version} is above the highest SQLite version this store writes (2^63 - 2)")]
    VersionRange {
        /// The version.
        version: u64,
    },
    /// Any other SQLite failure.
    #[error("SQLite: {0}")]
    Sql(#[source] Arc<sqlx::Error>),
}

state_sql::error_conversions!(SqliteError);

impl From<sqlx::Error> for SqliteError {
    fn from(e: sqlx::Error) -> Self {
        if code(&e) == Some(8) {
            return SqliteError::ReadOnly; // SQLITE_READONLY
        }
        SqliteError::Sql(Arc::new(e))
    }
}

impl SqliteError {
    /// Whether another connection held a lock (retrying is safe: nothing was written).
    pub fn is_busy(&self) -> bool {
        matches!(self, SqliteError::Sql(e) if is_busy(e))
    }

    /// SQLITE_CANTOPEN: the file, or the WAL index next to it, cannot be opened.
    pub(crate) fn is_cannot_open(&self) -> bool {
        match self {
            SqliteError::Sql(e) | SqliteError::Open { source: e, .. } => code(e) == Some(14),
            _ => false,
        }
    }
}

impl state_sql::BackendError for SqliteError {
    fn is_retryable(&self) -> bool {
        self.is_busy()
    }

    fn is_busy(&self) -> bool {
        SqliteError::is_busy(self)
    }

    fn gave_up(self, waited: Duration) -> Self {
        if self.is_busy() {
            SqliteError::Busy { waited }
        } else {
            self
        }
    }

    fn class(&self) -> &'static str {
        match self {
            SqliteError::NotADatabase { .. } | SqliteError::ForeignDatabase { .. } => {
                "foreign_file"
            }
            SqliteError::NeedsMigration { .. }
            | SqliteError::NewerSchema { .. }
            | SqliteError::ChecksumMismatch { .. } => "schema",
            SqliteError::Empty { .. } | SqliteError::WalUnreadable { .. } => "unreadable_file",
            SqliteError::ReadOnly => "read_only",
            SqliteError::Open { .. } => "open",
            SqliteError::MalformedRow(_) => "malformed_row",
            SqliteError::Busy { .. } => "busy",
            SqliteError::VersionRange { .. } => "version_range",
            SqliteError::Sql(e) => sql_class(e),
        }
    }
}

/// The class of a driver error, by SQLite's primary result code.
fn sql_class(e: &sqlx::Error) -> &'static str {
    match code(e) {
        Some(5) => "busy",
        Some(6) => "locked",
        Some(8) => "read_only",
        Some(10) => "io",
        Some(11) => "corrupt",
        Some(13) => "full",
        Some(19) => "constraint",
        Some(_) => "database",
        None => match e {
            sqlx::Error::Io(_) => "io",
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "pool",
            _ => "driver",
        },
    }
}

/// SQLite's primary result code of an error, if it is a database error.
pub(crate) fn code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock; retrying is safe.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(code(e), Some(5 | 6))
}

/// SQLITE_READONLY_ROLLBACK: a read-only connection met a hot journal it cannot roll back.
pub(crate) fn is_hot_journal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()) == Some(776),
        _ => false,
    }
}

/// SQLITE_NOTADB.
pub(crate) fn is_not_a_database(e: &sqlx::Error) -> bool {
    code(e) == Some(26)
}
