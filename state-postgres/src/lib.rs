//! `PgStore`: the `state-core` [`Store`](state_core::Store) on a PostgreSQL server, for workflows that run on
//! several machines and share their state. Same slot model and contract as the embedded
//! SQLite store (the same conformance suite runs against both); only the URL changes.
//!
//! - **Group commit.** Every write of a process goes through one committer that owns a
//!   connection (the engine all SQL stores share: [`state_sql`]), run by the caller that
//!   finds it idle ([`state_core::backend::leader::Leader`]).
//!   Commits that arrive while a transaction runs are merged into the next one:
//!   `BEGIN`; one `SELECT … FOR UPDATE` of every slot involved (rows locked in key order);
//!   one statement updating the existing rows and inserting the new ones; `COMMIT` — four
//!   round trips however many slots. Each caller's batch is still all-or-nothing on its own:
//!   a batch that fails (a conflict, an overflow) is left out, the others commit. An idle
//!   commit is not delayed: the committer never waits for company, it only yields to tasks
//!   that are ready while they keep queueing commits ([`state_core::backend::gather_yield`]).
//! - **Many processes, many machines.** Writers of different processes serialize on row
//!   locks; two processes creating the same slot at once are told apart by
//!   `INSERT … ON CONFLICT DO NOTHING` (the loser rolls back and runs again on what it then
//!   reads). Admin writes (clear, purge, restore) run through the committer too, between
//!   groups: a long clear delays this process's commits; purges and restores also lock the
//!   table against other processes' writers (readers go on).
//! - **Never acknowledges an uncommitted write, never hides an unknown outcome.** A caller
//!   hears back only after `COMMIT` returned. A connection lost before `COMMIT` means the
//!   server rolled back: the store reconnects and runs the transaction again (for
//!   [`PgOptions::retry_for`]). A connection lost *during* `COMMIT` is reported as
//!   [`PgError::CommitOutcomeUnknown`]: the commit may or may not have applied.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
//! use state_core::{Engine, Scope, Slot};
//! use state_postgres::PgStore;
//!
//! let store = PgStore::open("postgres://state:state@127.0.0.1:55432/state").await?;
//! let engine = Engine::new(store);
//! let hits = engine.handle::<u64>(Slot::new(Scope::app("shop")?, "Stats", "hits")?);
//! hits.increment(1).await?;
//! # Ok(()) }
//! ```
//!
//! # Durability
//!
//! A commit is acknowledged after PostgreSQL's `COMMIT` returned, so it is as durable as the
//! server's `synchronous_commit` setting makes it (the default, `on`, flushes the WAL first).

mod error;
mod listener;
mod options;
mod schema;
mod sql;
mod writer;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, Postgres};
use state_core::{Error, Slot};
use state_sql::{Fut, Loaded, Opened, boxed};

pub use crate::error::PgError;
pub use crate::options::{DEFAULT_SCHEMA, PgOptions};
pub use crate::schema::schema_version;
pub use crate::writer::{PgCounts, PgWriter};

/// The [`Store`](state_core::Store) on a PostgreSQL server: sqlx, group commit, row locks.
/// Open one with [`PgStore::open`] (a URL, or [`PgOptions`]).
pub type PgStore = state_sql::SqlStore<Pg>;

/// Counters of what a [`PgStore`] did, for tests and monitoring ([`PgStore::stats`]): the
/// shared engine's, and [`PgCounts`].
pub type PgStats = state_sql::Stats<PgCounts>;

/// The PostgreSQL backend of the shared SQL engine: its read connections, its change
/// listener, and what it counts.
pub struct Pg {
    pool: PgPool,
    server: String,
    counters: Arc<writer::Counters>,
    /// What the listener needs to start (on the first change signal asked for).
    connect: PgConnectOptions,
    schema: String,
    listener: std::sync::OnceLock<listener::Listener>,
}

/// Whether `name` is a plain identifier, kept as is with no quoting surprises: PostgreSQL
/// folds unquoted names to lower case (a `search_path` of `MySchema` means `myschema`), so
/// upper-case letters are refused rather than meaning two different schemas.
fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The server as shown in errors: host, port and database, never the password.
fn describe(o: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("")
    )
}

/// Maps a failure to connect.
pub(crate) fn connect_error(e: sqlx::Error, server: &str) -> PgError {
    if error::is_auth(&e) {
        PgError::Auth {
            server: server.to_owned(),
            source: Arc::new(e),
        }
    } else {
        PgError::Unreachable {
            server: server.to_owned(),
            source: Arc::new(e),
        }
    }
}

/// Maps a failure of a read.
fn read_error(e: sqlx::Error, server: &str) -> Error {
    if error::is_connection(&e) {
        connect_error(e, server).into()
    } else {
        PgError::from(e).into()
    }
}

/// The URL's connect options, with the store's schema as the search path.
fn connect_options(options: &PgOptions) -> Result<PgConnectOptions, PgError> {
    if !valid_schema(&options.schema) {
        let name = options.schema.clone();
        return Err(PgError::InvalidSchemaName { name });
    }
    if !["postgres://", "postgresql://"]
        .iter()
        .any(|p| options.url.starts_with(p))
    {
        return Err(PgError::InvalidUrl {
            reason: "expected postgres://user:password@host:port/database".into(),
        });
    }
    Ok(PgConnectOptions::from_str(&options.url)
        .map_err(|e| PgError::InvalidUrl {
            reason: e.to_string(),
        })?
        .options([("search_path", options.schema.as_str())])
        .application_name("state-postgres")
        .statement_cache_capacity(64)
        .disable_statement_logging())
}

impl Pg {
    /// Parses the URL, connects, applies migrations (safe when several processes open a fresh
    /// schema at once) and sets up the committer's connection.
    async fn open_store(options: PgOptions) -> Result<Opened<Self>, Error> {
        let connect = connect_options(&options)?;
        let server = describe(&connect);
        let timeout = options.connect_timeout;
        let conn = boxed(writer::connect_once(
            connect.clone(),
            timeout,
            server.clone(),
        ))
        .await?;
        let schema = options.schema.clone();
        let migrate = schema::migrate(conn, server.clone(), schema, options.create_if_missing);
        let (conn, migrated) = boxed(migrate).await;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(options.readers)
            .min_connections(0)
            .acquire_timeout(timeout)
            .connect_lazy_with(connect.clone());
        let counters = Arc::new(writer::Counters::default());
        let writer = PgWriter {
            conn: Some(conn),
            connect: connect.clone(),
            connect_timeout: timeout,
            server: server.clone(),
            counters: counters.clone(),
        };
        let backend = Pg {
            pool,
            server,
            counters,
            connect,
            schema: options.schema,
            listener: std::sync::OnceLock::new(),
        };
        Ok(Opened {
            backend,
            writer,
            config: options.committer,
        })
    }
}

impl state_sql::Backend for Pg {
    type Options = PgOptions;
    type Error = PgError;
    type Db = Postgres;
    type Writer = PgWriter;
    type Counts = PgCounts;

    fn open(
        options: PgOptions,
        _counters: Arc<state_sql::Counters>,
    ) -> Fut<'static, Result<Opened<Self>, Error>> {
        boxed(Self::open_store(options))
    }

    const KIND: &'static str = "postgres";

    fn name(&self) -> &str {
        &self.server
    }

    fn reader(&self) -> Fut<'_, Result<Option<PoolConnection<Postgres>>, Error>> {
        boxed(async move {
            match self.pool.acquire().await {
                Ok(conn) => Ok(Some(conn)),
                Err(e) => Err(read_error(e, &self.server)),
            }
        })
    }

    fn counts(&self) -> PgCounts {
        self.counters.counts()
    }

    /// Raised by `NOTIFY`s of commits in any process on this schema: a listener on a
    /// connection of its own starts with the first call (outside a tokio runtime: `None`,
    /// and change streams poll).
    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        if let Some(l) = self.listener.get() {
            return Some(l.signal.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let listener = self.listener.get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(0);
            let task = runtime.spawn(listener::listen(
                self.connect.clone(),
                self.schema.clone(),
                tx,
                self.counters.notifications.clone(),
            ));
            listener::Listener { signal: rx, task }
        });
        Some(listener.signal.clone())
    }

    fn load_known<'a>(
        conn: &'a mut PgConnection,
        slots: &'a [Slot],
    ) -> Fut<'a, Result<Loaded<PgError>, PgError>> {
        boxed(sql::load_raw(conn, slots, false))
    }

    state_sql::sqlx_statements!();

    const LAST_CHANGE: &'static str = "SELECT GREATEST(COALESCE(max(seq), 0), \
        (SELECT through FROM changes_trimmed WHERE id = 0)) FROM changes";

    // By the history index `changes_slot`.
    const HISTORY: &'static str = "SELECT seq, kind, scope_id, scope_sub, namespace, key, \
        version, value, at FROM changes WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
        AND namespace = $4 AND key = $5 AND seq < $6 ORDER BY seq DESC LIMIT $7";

    const QUOTED_ROW: &'static str = "concat_ws(', ', quote_nullable(kind), \
        quote_nullable(scope_id), quote_nullable(scope_sub), quote_nullable(namespace), \
        quote_nullable(key), quote_nullable(version), quote_nullable(expires_at)), \
        quote_nullable(value)";
}
