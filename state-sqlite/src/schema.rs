//! Schema migrations: embedded with `sqlx::migrate!`, applied inside one `BEGIN IMMEDIATE`
//! transaction so several processes opening a fresh file at once serialize on SQLite's write
//! lock (sqlx's own SQLite migration lock does not serialize processes). Applied versions are
//! recorded in sqlx's `_sqlx_migrations` table, so `sqlx migrate info` reads them.
//!
//! Before anything is changed, a read decides whether the file is this crate's: stamped with
//! [`APPLICATION_ID`], empty, or (from before the stamp) holding this crate's first migration.
//! Anything else is another program's file, refused untouched. A store whose schema is
//! current is opened with reads alone: no write lock, so opening never waits for a writer and
//! works on a read-only file.

use sqlx::migrate::Migrator;
use sqlx::{Executor, SqliteConnection};
use state_core::backend::rows::{self, MigrationMismatch};

use crate::Sqlite;
use crate::error::SqliteError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The `PRAGMA application_id` this crate stamps on its files (`"tyst"` in ASCII): what tells
/// a typed-state store from another program's SQLite file (`file(1)` and `sqlite3` show it).
pub const APPLICATION_ID: i32 = 0x7479_7374;

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    state_sql::migrate::newest(&MIGRATOR)
}

/// What a read found in a database that is this crate's (or empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Stamped, every migration applied, in WAL mode (when asked): nothing to write.
    Current,
    /// This crate's, with migrations (or the stamp, or WAL mode) still to apply.
    Stale,
    /// Empty: no store yet.
    Empty,
}

/// Decides, by reads alone, whether the database is this crate's and whether it is current
/// (`wal`: in WAL mode too, as a writable file must be). Another program's file is
/// [`SqliteError::ForeignDatabase`].
pub(crate) async fn probe(
    conn: &mut SqliteConnection,
    path: &str,
    wal: bool,
) -> Result<Found, SqliteError> {
    if !check_ours(conn, path).await? {
        return Ok(Found::Empty);
    }
    let stamped = application_id(conn).await? == APPLICATION_ID;
    let wal = !wal || {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        mode.eq_ignore_ascii_case("wal")
    };
    let pending = pending(conn, path).await?;
    Ok(if stamped && wal && pending.is_empty() {
        Found::Current
    } else {
        Found::Stale
    })
}

async fn application_id(conn: &mut SqliteConnection) -> Result<i32, SqliteError> {
    Ok(sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether the database holds a store of this crate (`false`: it is empty); another
/// program's database is an error.
async fn check_ours(conn: &mut SqliteConnection, path: &str) -> Result<bool, SqliteError> {
    let foreign = |reason: String| SqliteError::ForeignDatabase {
        path: path.to_owned(),
        reason,
    };
    let id = application_id(conn).await?;
    if id == APPLICATION_ID {
        return Ok(true);
    }
    if id != 0 {
        return Err(foreign(format!(
            "its application_id is {id:#x}, another program's (a typed-state store's is {APPLICATION_ID:#x})"
        )));
    }
    let user_version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    if user_version != 0 {
        return Err(foreign(format!(
            "its user_version is {user_version}, another program's (a typed-state store's is 0)"
        )));
    }
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    if tables.is_empty() {
        return Ok(false);
    }
    // A store from before the stamp: this crate's first migration, applied.
    let first = MIGRATOR
        .iter()
        .find(|m| m.version == 1)
        .map(|m| &*m.checksum);
    if tables.iter().any(|t| t == "_sqlx_migrations") && tables.iter().any(|t| t == "slots") {
        let applied: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
                .fetch_optional(&mut *conn)
                .await?;
        if applied.is_some() && applied.as_deref() == first {
            return Ok(true);
        }
    }
    let named = rows::some_names(&tables);
    Err(foreign(format!(
        "it holds tables and indexes a typed-state store does not ({named})"
    )))
}

/// This build's migrations still to apply to a database of this crate's.
async fn pending(conn: &mut SqliteConnection, path: &str) -> Result<Vec<i64>, SqliteError> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    state_sql::migrate::pending::<Sqlite>(conn, &MIGRATOR, exists.is_some(), mismatch(path)).await
}

/// The error of a history this build does not know.
fn mismatch(path: &str) -> impl Fn(MigrationMismatch) -> SqliteError + '_ {
    move |mismatch| match mismatch {
        MigrationMismatch::Newer { found, supported } => SqliteError::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        },
        MigrationMismatch::Checksum { version } => SqliteError::ChecksumMismatch {
            path: path.to_owned(),
            version,
        },
    }
}

/// Brings a database of this crate's (or an empty one) to this build's schema, stamped and in
/// WAL mode (`file`), and hands the connection back. Busy errors are returned for the caller
/// to retry; nothing is half-applied.
///
/// Takes the connection by value: a future borrowing a `SqliteConnection` trips rustc's
/// `Send` inference on sqlx's higher-ranked executor impls (rust-lang/rust#102211).
pub(crate) async fn migrate(
    mut conn: SqliteConnection,
    path: String,
    file: bool,
) -> (SqliteConnection, Result<(), SqliteError>) {
    let result = async {
        if file {
            // Outside a transaction (SQLite cannot switch journal modes inside one); the file
            // was found to be this crate's or empty.
            conn.execute("PRAGMA journal_mode = WAL").await?;
        }
        conn.execute("BEGIN IMMEDIATE").await?;
        let applied = apply(&mut conn, &path).await;
        state_sql::migrate::finish::<Sqlite, _>(&mut conn, applied).await
    }
    .await;
    (conn, result)
}

async fn apply(conn: &mut SqliteConnection, path: &str) -> Result<(), SqliteError> {
    // Again under the write lock: another program may have written since the probe.
    check_ours(conn, path).await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .await?;
    state_sql::migrate::apply::<Sqlite>(conn, &MIGRATOR, mismatch(path)).await?;
    conn.execute(format!("PRAGMA application_id = {APPLICATION_ID}").as_str())
        .await?;
    Ok(())
}
