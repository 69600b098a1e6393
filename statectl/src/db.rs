//! `--db`: which store a name opens. Only `postgres://` and `postgresql://` (lowercase) are
//! PostgreSQL; `sqlite://` and `sqlite:` prefix a file path. Anything else that looks like a
//! URL (`POSTGRES://`, `pg://`, `postgres:/…`, ` postgres://…`) or holds `user:password@` is
//! refused rather than taken for a file name, which would create a file or echo the password.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use state_core::Store;
use state_postgres::PgStore;
use state_sqlite::{SqliteError, SqliteOptions, SqliteStore};

use crate::fail::{Class, Failure, redact};

/// What a command needs of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only: a SQLite file is opened read-only (no write lock, works on a read-only
    /// mount); one an older version wrote is opened writable once, to migrate it.
    Read,
    /// Writes to a store that exists.
    Write,
    /// Writes, creating the store if it is missing (`import --create`).
    Create,
}

/// A database name, classified.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Postgres(&'a str),
    Sqlite(PathBuf),
}

/// Opens the store `db` names.
pub async fn open(db: Option<&str>, access: Access) -> Result<Arc<dyn Store>, Failure> {
    let db = db.ok_or_else(|| {
        Failure::new(
            Class::Usage,
            "no database: pass --db PATH or set STATECTL_DB",
        )
    })?;
    match target(db)? {
        Target::Postgres(url) => open_postgres(url, access).await,
        Target::Sqlite(path) => open_sqlite(&path, access).await,
    }
}

async fn open_postgres(db: &str, access: Access) -> Result<Arc<dyn Store>, Failure> {
    if db.matches("state_schema=").count() > 1 {
        return Err(Failure::new(
            Class::Invalid,
            format!(
                "invalid database name {:?}: it names `state_schema` twice",
                redact(db)
            ),
        ));
    }
    // `state_schema` is ours, not a server parameter: take it off the URL.
    let (url, schema) = match db.rsplit_once("state_schema=") {
        Some((head, schema)) => (head.trim_end_matches(['?', '&']), schema),
        None => (db, state_postgres::DEFAULT_SCHEMA),
    };
    // Like a missing file: a missing schema is created only by `import --create`.
    let options = state_postgres::PgOptions::new(url)
        .schema(schema)
        .create_if_missing(access == Access::Create)
        .retry_for(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5));
    Ok(Arc::new(PgStore::open_with(options).await?))
}

async fn open_sqlite(path: &Path, access: Access) -> Result<Arc<dyn Store>, Failure> {
    if path.is_dir() {
        return Err(Failure::new(
            Class::Invalid,
            format!("{} is a directory, not a database file", path.display()),
        ));
    }
    if access != Access::Create && !non_empty(path) {
        let what = if path.exists() {
            "an empty file"
        } else {
            "nothing"
        };
        return Err(Failure::new(
            Class::NotFound,
            format!(
                "no database at {}: {what} there (`import --create` makes a store)",
                path.display()
            ),
        ));
    }
    if access != Access::Create {
        // Read-only first, which changes nothing: an empty database is not made a store, and
        // a read needs no more.
        match SqliteStore::open_with(SqliteOptions::file(path).read_only(true)).await {
            Ok(store) if access == Access::Read => return Ok(Arc::new(store)),
            Ok(_) => {}
            Err(e) if sqlite_error(&e).is_some_and(|e| matches!(e, SqliteError::Empty { .. })) => {
                return Err(Failure::new(
                    Class::NotFound,
                    format!(
                        "no store at {}: an empty database (`import --create` makes one)",
                        path.display()
                    ),
                ));
            }
            // A store from an older version is migrated by a writable open, as before.
            Err(e)
                if sqlite_error(&e)
                    .is_some_and(|e| matches!(e, SqliteError::NeedsMigration { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Arc::new(
        SqliteStore::open_with(SqliteOptions::file(path)).await?,
    ))
}

fn sqlite_error(e: &state_core::Error) -> Option<&SqliteError> {
    match e {
        state_core::Error::Store { source, .. } => source.downcast_ref::<SqliteError>(),
        _ => None,
    }
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Classifies a database name, refusing what is neither a PostgreSQL URL nor a file name.
fn target(db: &str) -> Result<Target<'_>, Failure> {
    let invalid = |why: String| {
        Failure::new(
            Class::Invalid,
            format!("invalid database name {:?}: {why}", redact(db)),
        )
    };
    if db.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if db.trim() != db {
        return Err(invalid("it starts or ends with whitespace".into()));
    }
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Ok(Target::Postgres(db));
    }
    let (path, explicit) = match db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
    {
        Some("") => return Err(invalid("it names no file".into())),
        Some(rest) => (rest, true),
        None => (db, false),
    };
    if let Some(scheme) = scheme(path).filter(|_| !explicit) {
        return Err(invalid(format!(
            "it looks like a URL (`{scheme}:`), and the only URLs statectl opens start with \
             `postgres://` or `postgresql://` (lowercase); for a SQLite file whose name \
             starts so, prefix it with ./"
        )));
    }
    if path.split('/').any(holds_credentials) {
        return Err(invalid(
            "it holds `user:password@`, as a URL does, and is not taken for a file name; \
             PostgreSQL URLs start with `postgres://` or `postgresql://` (lowercase)"
                .into(),
        ));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// The scheme of a name that starts like a URL (`letter (letter | digit | + | - | .)* :`).
fn scheme(name: &str) -> Option<&str> {
    let (head, _) = name.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(head)
}

/// Whether a path component holds `user:password@`.
fn holds_credentials(component: &str) -> bool {
    matches!((component.find(':'), component.rfind('@')), (Some(c), Some(a)) if c < a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(db: &str) -> String {
        match target(db) {
            Err(f) => {
                assert_eq!(f.class, Class::Invalid, "{db}");
                f.message
            }
            Ok(t) => panic!("{db:?} was taken as {t:?}"),
        }
    }

    #[test]
    fn only_exact_postgres_urls_and_plain_paths_are_databases() {
        assert_eq!(
            target("postgres://h/d").ok(),
            Some(Target::Postgres("postgres://h/d"))
        );
        assert_eq!(
            target("postgresql://u:pw@h/d").ok(),
            Some(Target::Postgres("postgresql://u:pw@h/d"))
        );
        assert_eq!(target("a.db").ok(), Some(Target::Sqlite("a.db".into())));
        assert_eq!(
            target("./x:y.db").ok(),
            Some(Target::Sqlite("./x:y.db".into()))
        );
        assert_eq!(
            target("sqlite://a.db").ok(),
            Some(Target::Sqlite("a.db".into()))
        );
        assert_eq!(
            target("sqlite:/tmp/a.db").ok(),
            Some(Target::Sqlite("/tmp/a.db".into()))
        );
        for db in [
            "POSTGRES://u:pw@h/d",
            " postgres://u:pw@h/d",
            "postgres://u:pw@h/d ",
            "postgres:/u:pw@h/d",
            "pg://u:pw@h/d",
            "postgresql:u:pw@host",
            "./u:pw@host",
            "mysql://h/d",
            "",
            "sqlite:",
        ] {
            let message = refused(db);
            assert!(!message.contains("pw"), "{message}");
        }
    }
}
