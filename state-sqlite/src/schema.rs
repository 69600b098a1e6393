//! Schema migrations: embedded with `sqlx::migrate!`, applied inside one `BEGIN IMMEDIATE`
//! transaction so several processes opening a fresh file at once serialize on SQLite's write
//! lock (sqlx's own SQLite migration lock does not serialize processes). Applied versions are
//! recorded in sqlx's `_sqlx_migrations` table, so `sqlx migrate info` reads them.

use sqlx::migrate::{MigrationType, Migrator};
use sqlx::{Executor, Row, SqliteConnection};
use state_core::rows::{self, MigrationMismatch};

use crate::error::SqliteError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Brings the database to this build's schema and hands the connection back. Busy errors
/// are returned for the caller to retry; nothing is half-applied.
///
/// Takes the connection by value: a future borrowing a `SqliteConnection` trips rustc's
/// `Send` inference on sqlx's higher-ranked executor impls (rust-lang/rust#102211).
pub(crate) async fn migrate(
    mut conn: SqliteConnection,
    path: String,
) -> (SqliteConnection, Result<(), SqliteError>) {
    let result = async {
        conn.execute("BEGIN IMMEDIATE").await?;
        match apply(&mut conn, &path).await {
            Ok(()) => {
                conn.execute("COMMIT").await?;
                Ok(())
            }
            Err(e) => {
                // The transaction may already be gone; the original error is what matters.
                let _ = conn.execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
    .await;
    (conn, result)
}

async fn apply(conn: &mut SqliteConnection, path: &str) -> Result<(), SqliteError> {
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
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query("SELECT version, checksum FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    let known = MIGRATOR
        .iter()
        .filter(|m| m.migration_type != MigrationType::ReversibleDown);
    let pending =
        rows::migrations_to_apply(&applied, known.clone().map(|m| (m.version, &*m.checksum)))
            .map_err(|mismatch| match mismatch {
                MigrationMismatch::Newer { found, supported } => SqliteError::NewerSchema {
                    path: path.to_owned(),
                    found,
                    supported,
                },
                MigrationMismatch::Checksum { version } => SqliteError::ChecksumMismatch {
                    path: path.to_owned(),
                    version,
                },
            })?;
    for m in known.filter(|m| pending.contains(&m.version)) {
        let started = std::time::Instant::now();
        conn.execute(&*m.sql).await?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, ?, TRUE, ?, ?)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
