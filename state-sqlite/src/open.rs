//! Opening a store's file: decide by reads alone whether it is a store (stamped, empty, or
//! holding this crate's first migration from before the stamp) before anything changes it,
//! then migrate it if it may be written; busy opens are retried.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use state_core::Error;
use state_sql::{Counters, backoff, boxed};

use crate::error::{self, SqliteError};
use crate::options::{Location, SqliteOptions};
use crate::schema;

pub(crate) fn open_error(e: sqlx::Error, path: &str) -> Error {
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
pub(crate) async fn open_schema(
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
            Err(e) if e.is_busy() && started.elapsed() < options.committer.retry_for => {
                counters.retried();
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
