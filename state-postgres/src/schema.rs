//! Schema migrations: embedded with `sqlx::migrate!`, applied in one transaction per open
//! under a transaction-scoped advisory lock, so several processes (or machines) opening a
//! fresh schema at once serialize, and a failure leaves nothing half-applied (PostgreSQL's
//! DDL is transactional). Applied versions are recorded in sqlx's `_sqlx_migrations` table
//! inside the store's schema, so `sqlx migrate info` reads them.

use sqlx::migrate::Migrator;
use sqlx::{Executor, PgConnection};
use state_core::backend::rows::{self, MigrationMismatch};

use crate::Pg;
use crate::error::PgError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    state_sql::migrate::newest(&MIGRATOR)
}

/// Refuses a schema that holds another application's tables: one with tables but not this
/// crate's `_sqlx_migrations` and `slots`. An empty or missing schema is this crate's to fill.
async fn check_ours(conn: &mut PgConnection, server: &str, schema: &str) -> Result<(), PgError> {
    let objects: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p') ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    if objects.is_empty() {
        return Ok(());
    }
    // This crate's tables (checked against this build's migrations afterwards).
    if ["_sqlx_migrations", "slots"]
        .iter()
        .all(|t| objects.iter().any(|o| o == t))
    {
        return Ok(());
    }
    let named = rows::some_names(&objects);
    Err(PgError::ForeignSchema {
        server: server.to_owned(),
        schema: schema.to_owned(),
        reason: format!("it holds tables a typed-state store does not ({named})"),
    })
}

/// Brings `schema` to this build's version and hands the connection back.
///
/// Takes the connection by value: a future borrowing a connection trips rustc's `Send`
/// inference on sqlx's higher-ranked executor impls (rust-lang/rust#102211).
pub(crate) async fn migrate(
    mut conn: PgConnection,
    server: String,
    schema: String,
    create: bool,
) -> (PgConnection, Result<(), PgError>) {
    let result = async {
        conn.execute("BEGIN").await?;
        let applied = apply(&mut conn, &server, &schema, create).await;
        state_sql::migrate::finish::<Pg, _>(&mut conn, applied).await
    }
    .await;
    (conn, result)
}

async fn apply(
    conn: &mut PgConnection,
    server: &str,
    schema: &str,
    create: bool,
) -> Result<(), PgError> {
    // One lock per schema name, held until COMMIT: concurrent openers wait here.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('state-postgres:' || $1, 0))")
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    check_ours(conn, server, schema).await?;
    if !create {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
             AND to_regclass(quote_ident($1) || '._sqlx_migrations') IS NOT NULL",
        )
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?;
        if !exists {
            return Err(PgError::SchemaMissing {
                schema: schema.to_owned(),
                server: server.to_owned(),
            });
        }
    }
    // The name was checked to be a plain identifier; quoting keeps its case.
    conn.execute(&*format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    conn.execute(&*format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\"._sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL
        )"
    ))
    .await?;
    state_sql::migrate::apply::<Pg>(conn, &MIGRATOR, |mismatch| match mismatch {
        MigrationMismatch::Newer { found, supported } => PgError::NewerSchema {
            server: server.to_owned(),
            schema: schema.to_owned(),
            found,
            supported,
        },
        MigrationMismatch::Checksum { version } => PgError::ChecksumMismatch {
            server: server.to_owned(),
            schema: schema.to_owned(),
            version,
        },
    })
    .await
}
