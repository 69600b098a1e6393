//! Errors of the PostgreSQL backend. They reach users inside `state_core::Error::Store`
//! (downcast its `source` to [`PgError`] to match on them).

use std::sync::Arc;
use std::time::Duration;

/// What went wrong with PostgreSQL.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL cannot be parsed.
    #[error("invalid PostgreSQL URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The schema name is not a plain identifier.
    #[error(
        "invalid schema name {name:?}: use 1 to 63 lower-case ASCII letters, digits or '_', not starting with a digit"
    )]
    InvalidSchemaName {
        /// The name given.
        name: String,
    },
    /// The schema does not exist (or holds no store), and the store was opened with
    /// [`PgOptions::create_if_missing(false)`](crate::PgOptions::create_if_missing): nothing
    /// was created.
    #[error("no state schema {schema:?} at {server}")]
    SchemaMissing {
        /// The schema asked for.
        schema: String,
        /// The server (host, port, database).
        server: String,
    },
    /// The schema holds another application's tables: refused, and left as it was.
    #[error(
        "schema {schema:?} at {server} is not a typed-state store: {reason}; nothing was changed (name another schema with state_schema)"
    )]
    ForeignSchema {
        /// The schema asked for.
        schema: String,
        /// The server (host, port, database).
        server: String,
        /// What it holds that a store does not.
        reason: String,
    },
    /// The server could not be reached (down, wrong host or port, refused, timed out).
    #[error("cannot reach PostgreSQL at {server}: {source}")]
    Unreachable {
        /// The server, without credentials.
        server: String,
        /// The driver's reason.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The server refused the credentials (wrong user or password, or no access to the
    /// database).
    #[error("PostgreSQL at {server} refused the login: {source}")]
    Auth {
        /// The server, without credentials.
        server: String,
        /// The server's reason.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The schema was written by a newer version of this crate.
    #[error(
        "{server}: schema {schema:?} is at version {found}, newer than this build supports ({supported}); upgrade state-postgres to open it"
    )]
    NewerSchema {
        /// The server, without credentials.
        server: String,
        /// The schema opened.
        schema: String,
        /// The newest migration applied to it.
        found: i64,
        /// The newest migration this build knows.
        supported: i64,
    },
    /// An applied migration differs from the one this build would apply.
    #[error("{server}: migration {version} of schema {schema:?} differs from this build's")]
    ChecksumMismatch {
        /// The server, without credentials.
        server: String,
        /// The schema opened.
        schema: String,
        /// The migration's version.
        version: i64,
    },
    /// A row does not hold what this crate writes (edited by hand, or corrupted).
    ///
    /// If only its value is unreadable, writes that do not need the old value (a CAS write at
    /// `version`, or a `set` of the whole value) replace it.
    #[error("malformed row: {0}")]
    MalformedRow(#[source] state_core::backend::rows::RowError),
    /// A version above the highest this store writes ([`state_core::backend::rows::MAX_VERSION`]: one
    /// below the largest PostgreSQL's BIGINT, so a clear can still raise every slot by one).
    #[error(
        "version {version} is above the highest PostgreSQL version this store writes (2^63 - 2)"
    )]
    VersionRange {
        /// The version.
        version: u64,
    },
    /// The connection failed before the transaction's `COMMIT` was sent: the server rolled it
    /// back, nothing was written. The store retries such failures (reconnecting) for
    /// [`PgOptions::retry_for`](crate::PgOptions::retry_for) before reporting this.
    #[error(
        "lost the connection to PostgreSQL before COMMIT (for {waited:?}); nothing was written: {source}"
    )]
    ConnectionLost {
        /// How long the store kept retrying.
        waited: Duration,
        /// The driver's reason.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The connection failed while `COMMIT` was on its way or its answer was: the commit may
    /// or may not have applied. Read the slots again before deciding what to do; never treat
    /// this as either success or failure.
    #[error(
        "lost the connection to PostgreSQL during COMMIT: the commit may or may not have applied ({source})"
    )]
    CommitOutcomeUnknown {
        /// The driver's reason.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// Other transactions kept creating slots this commit was creating, for as long as the
    /// store retries; nothing was written.
    #[error("other writers kept creating this commit's new slots first; nothing was written")]
    Contended,
    /// Any other PostgreSQL failure.
    #[error("PostgreSQL: {0}")]
    Sql(#[source] Arc<sqlx::Error>),
}

state_sql::error_conversions!(PgError);

impl From<sqlx::Error> for PgError {
    fn from(e: sqlx::Error) -> Self {
        PgError::Sql(Arc::new(e))
    }
}

impl PgError {
    /// Whether the transaction can simply run again: a deadlock, a serialization failure, or
    /// a lost connection before COMMIT (the server rolled the transaction back).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            PgError::Sql(e) => is_transient(e) || is_connection(e),
            PgError::Contended => true,
            _ => false,
        }
    }

    /// Whether the connection it came from is no longer usable.
    pub(crate) fn is_connection(&self) -> bool {
        matches!(self, PgError::Sql(e) if is_connection(e))
    }
}

impl state_sql::BackendError for PgError {
    /// A lost connection counts: the committer connects again.
    fn is_retryable(&self) -> bool {
        PgError::is_retryable(self) || matches!(self, PgError::Unreachable { .. })
    }

    fn is_busy(&self) -> bool {
        false
    }

    fn gave_up(self, waited: Duration) -> Self {
        match self {
            PgError::Sql(source) if is_connection(&source) => {
                PgError::ConnectionLost { waited, source }
            }
            other => other,
        }
    }

    fn class(&self) -> &'static str {
        match self {
            PgError::InvalidUrl { .. } | PgError::InvalidSchemaName { .. } => "invalid_option",
            PgError::SchemaMissing { .. }
            | PgError::ForeignSchema { .. }
            | PgError::NewerSchema { .. }
            | PgError::ChecksumMismatch { .. } => "schema",
            PgError::Unreachable { .. } | PgError::ConnectionLost { .. } => "connection",
            PgError::Auth { .. } => "auth",
            PgError::MalformedRow(_) => "malformed_row",
            PgError::VersionRange { .. } => "version_range",
            PgError::CommitOutcomeUnknown { .. } => "commit_outcome_unknown",
            PgError::Contended => "contended",
            PgError::Sql(e) if is_connection(e) => "connection",
            PgError::Sql(e) if is_transient(e) => "serialization",
            PgError::Sql(e) => match sqlstate(e).as_deref().map(|c| c.get(..2).unwrap_or(c)) {
                Some("23") => "constraint",
                Some("53") => "resources",
                Some(_) => "database",
                None => "driver",
            },
        }
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Deadlock detected (40P01) or serialization failure (40001): the server rolled back.
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40P01" | "40001"))
}

/// The connection broke or could not be had: I/O, TLS, protocol, pool timeouts, or the
/// server shutting down (57P01–57P03 admin/crash shutdown, cannot connect now).
pub(crate) fn is_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => matches!(
            sqlstate(e).as_deref(),
            Some("57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006")
        ),
        _ => false,
    }
}

/// Invalid authorization (28000) or password (28P01), or no such database (3D000).
pub(crate) fn is_auth(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("28000" | "28P01" | "3D000"))
}
