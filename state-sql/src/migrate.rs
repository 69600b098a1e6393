//! The migration runner both SQL stores share. Each backend embeds its migrations
//! (`sqlx::migrate!`), opens the transaction they run in (under whatever lock serializes
//! openers on its database) and creates sqlx's `_sqlx_migrations` table in its dialect; from
//! there the history is read, checked and extended here, so `sqlx migrate info` reads it as
//! sqlx's own.

use std::time::Instant;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use state_core::backend::rows::{self, MigrationMismatch};

use crate::backend::{Backend, Conn};
use crate::columns::Columns;
use crate::reads::Param;

/// The migrations of `migrator` a database gets (the down halves of reversible ones left
/// out).
pub fn known(migrator: &'static Migrator) -> impl Iterator<Item = &'static Migration> + Clone {
    migrator
        .iter()
        .filter(|m| m.migration_type != MigrationType::ReversibleDown)
}

/// The newest schema version `migrator` knows.
pub fn newest(migrator: &'static Migrator) -> i64 {
    known(migrator).map(|m| m.version).max().unwrap_or(0)
}

/// The versions of `migrator` a database still lacks, from what its `_sqlx_migrations`
/// records (`exists`: whether the table does; without it nothing was applied). A history
/// this build does not know — a newer migration, or an applied one that differs — is
/// `mismatch`'s error.
pub async fn pending<B: Backend>(
    conn: &mut Conn<B>,
    migrator: &'static Migrator,
    exists: bool,
    mismatch: impl Fn(MigrationMismatch) -> B::Error,
) -> Result<Vec<i64>, B::Error> {
    let mut applied = Vec::new();
    if exists {
        let sql = "SELECT version, checksum FROM _sqlx_migrations";
        for row in B::fetch(conn, sql, &[]).await? {
            applied.push((row.int(0)?, row.bytes(1)?));
        }
    }
    let known = known(migrator).map(|m| (m.version, &*m.checksum));
    rows::migrations_to_apply(&applied, known).map_err(mismatch)
}

/// Applies the migrations of `migrator` the database lacks, in order, recording each in
/// `_sqlx_migrations` (which must exist), inside the caller's transaction.
pub async fn apply<B: Backend>(
    conn: &mut Conn<B>,
    migrator: &'static Migrator,
    mismatch: impl Fn(MigrationMismatch) -> B::Error,
) -> Result<(), B::Error> {
    let pending = pending::<B>(conn, migrator, true, mismatch).await?;
    for m in known(migrator).filter(|m| pending.contains(&m.version)) {
        let started = Instant::now();
        B::execute(conn, &m.sql).await?;
        let took = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let params = [
            Param::Int(m.version),
            Param::Text(Some(&m.description)),
            Param::Bytes(&m.checksum),
            Param::Int(took),
        ];
        let sql = "INSERT INTO _sqlx_migrations \
            (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, $4)";
        B::fetch(conn, sql, &params).await?;
    }
    Ok(())
}

/// Ends the transaction a migration ran in: `COMMIT` after `result` is `Ok`, `ROLLBACK`
/// otherwise (a failed rollback is not reported: the transaction may already be gone, and
/// the original error is what matters).
pub async fn finish<B: Backend, E: From<B::Error>>(
    conn: &mut Conn<B>,
    result: Result<(), E>,
) -> Result<(), E> {
    match result {
        Ok(()) => Ok(B::execute(conn, "COMMIT").await?),
        Err(e) => {
            let _ = B::execute(conn, "ROLLBACK").await;
            Err(e)
        }
    }
}
