//! `PgStore`: the `state-core` [`Store`] on a PostgreSQL server, for workflows that run on
//! several machines and share their state. Same slot model and contract as the embedded
//! SQLite store (the same conformance suite runs against both); only the URL changes.
//!
//! - **Group commit.** Every write of a process goes through one committer that owns a
//!   connection, run by the caller that finds it idle ([`state_core::leader::Leader`]).
//!   Commits that arrive while a transaction runs are merged into the next one:
//!   `BEGIN`; one `SELECT … FOR UPDATE` of every slot involved (rows locked in key order);
//!   one statement updating the existing rows and inserting the new ones; `COMMIT` — four
//!   round trips however many slots. Each caller's batch is still all-or-nothing on its own:
//!   a batch that fails (a conflict, an overflow) is left out, the others commit. An idle
//!   commit is not delayed: the committer never waits for company, it only yields to tasks
//!   that are ready while they keep queueing commits ([`state_core::gather_yield`]).
//! - **Many processes, many machines.** Writers of different processes serialize on row
//!   locks; two processes creating the same slot at once are told apart by
//!   `INSERT … ON CONFLICT DO NOTHING` (the loser rolls back and runs again on what it then
//!   reads). Purges and restores lock the table against writers (readers go on).
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
//! let store = PgStore::connect("postgres://state:state@127.0.0.1:55432/state").await?;
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
mod schema;
mod sql;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgConnection, Postgres};
use state_core::leader::Leader;
use state_core::{
    Batch, Clock, CommitOutcome, Error, Page, Record, Restore, Scope, ScopeKind, Slot, SlotKey,
    Store, SystemClock, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

pub use crate::error::PgError;
pub use crate::schema::schema_version;

/// The schema the store's tables live in unless [`PgOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "typed_state";

/// How to connect a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    url: String,
    schema: String,
    readers: u32,
    max_group: usize,
    connect_timeout: Duration,
    retry_for: Duration,
    change_retention: Option<Duration>,
    clock: Arc<dyn Clock>,
    create_if_missing: bool,
}

impl PgOptions {
    /// A server by URL: `postgres://user:password@host:port/database` (everything sqlx's
    /// `PgConnectOptions` accepts, e.g. `?sslmode=require`).
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            readers: 4,
            max_group: 1024,
            connect_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
            change_retention: Some(state_core::DEFAULT_CHANGE_RETENTION),
            clock: Arc::new(SystemClock),
            create_if_missing: true,
        }
    }

    /// Whether opening creates the schema and its tables when the schema does not exist
    /// (default `true`). With `false`, a missing schema is [`PgError::SchemaMissing`] and
    /// nothing is created: what a tool that only reads wants, so a mistyped name is an error
    /// rather than a new, empty store.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Sets how long the change log keeps changes (default
    /// [`DEFAULT_CHANGE_RETENTION`](state_core::DEFAULT_CHANGE_RETENTION); `None`: forever).
    /// Older changes are deleted every 1024 group commits.
    #[must_use]
    pub fn change_retention(mut self, keep: Option<Duration>) -> Self {
        self.change_retention = keep;
        self
    }

    /// Sets the schema holding the store's tables (default [`DEFAULT_SCHEMA`]; created if
    /// missing): 1 to 63 lower-case ASCII letters, digits or `_`, not starting with a digit.
    /// Stores in different schemas of one database are independent.
    #[must_use]
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Sets the number of read connections (default 4).
    #[must_use]
    pub fn readers(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// Sets the most caller batches merged into one transaction (default 1024).
    #[must_use]
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }

    /// Sets how long one connection attempt may take (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets how long a transaction that failed safely (connection lost before `COMMIT`,
    /// deadlock, a lost race to create a slot) is run again before the error is reported
    /// (default 30 s).
    #[must_use]
    pub fn retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }

    /// Sets the clock expiry is read from (a `ManualClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// Counters of what the store did, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgStats {
    /// Group transactions committed.
    pub commits: u64,
    /// Group transactions run for caller commits (committed or not).
    pub groups: u64,
    /// Caller batches committed or refused in them.
    pub batches: u64,
    /// The largest number of caller batches merged into one transaction.
    pub max_group: u64,
    /// Transactions run again after a safe failure (deadlock, lost race, lost connection).
    pub retries: u64,
    /// Connections the committer opened after losing one.
    pub reconnects: u64,
    /// Requests waiting for the committer right now.
    pub queued: usize,
    /// Change notifications (`NOTIFY`) the store's listener received for its schema, from
    /// any process; see [`Store::change_signal`].
    pub notifications: u64,
}

#[derive(Default, Debug)]
struct Counters {
    commits: AtomicU64,
    groups: AtomicU64,
    batches: AtomicU64,
    max_group: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    notifications: AtomicU64,
}

/// The channel the change log notifies at commit (0003 migration); the payload is the schema.
const CHANGE_CHANNEL: &str = "state_changes";

/// The listener task that turns `NOTIFY`s into the store's change signal; stopped with the
/// store.
struct Listener {
    signal: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on [`CHANGE_CHANNEL`] on a connection of its own and raises `signal` for every
/// notification about `schema`, and after (re)connecting, when notifications may have been
/// missed. Connection failures are retried every second; change streams poll meanwhile.
async fn listen(
    connect: PgConnectOptions,
    schema: String,
    signal: tokio::sync::watch::Sender<u64>,
    counters: Arc<Counters>,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with(connect);
    let pause = Duration::from_secs(1);
    let mut listener = loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANGE_CHANNEL).await {
                Ok(()) => break l,
                Err(_) => tokio::time::sleep(pause).await,
            },
            Err(_) => tokio::time::sleep(pause).await,
        }
    };
    // Commits made before LISTEN took effect were not announced: look once.
    signal.send_modify(|n| *n += 1);
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => {
                if note.payload() == schema {
                    counters.notifications.fetch_add(1, Ordering::Relaxed);
                    signal.send_modify(|n| *n += 1);
                }
            }
            // The connection was lost (the next call reconnects and listens again): whatever
            // was announced meanwhile is gone, so look.
            Ok(None) => signal.send_modify(|n| *n += 1),
            Err(_) => tokio::time::sleep(pause).await,
        }
    }
}

/// One caller's batch in a group, and where its answer goes.
type Pending = (Batch, oneshot::Sender<Result<CommitOutcome, Error>>);

/// The [`Store`] on a PostgreSQL server: sqlx, group commit, row locks.
pub struct PgStore {
    tx: mpsc::Sender<Pending>,
    /// The committer, run by the caller that finds it idle ([`Leader`]).
    writer: Arc<Leader<Committer>>,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    server: String,
    retry_for: Duration,
    /// What the listener needs to start (on the first [`Store::change_signal`]).
    connect: PgConnectOptions,
    schema: String,
    listener: std::sync::OnceLock<Listener>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Pins a future with an explicit `Send` bound. sqlx's executor impls carry higher-ranked
/// lifetimes that rustc cannot see through when it infers `Send` for an enclosing `async fn`
/// used generically (rust-lang/rust#102211); boxing checks `Send` here, where lifetimes are
/// concrete.
fn boxed<'a, T>(
    f: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

/// A jittered, growing pause between retries (0.5 ms up to 100 ms).
fn backoff(started: Instant) -> Duration {
    let ms = (started.elapsed().as_millis() / 20).clamp(1, 100) as u64;
    Duration::from_micros(ms * 500 + fastrand::u64(..=ms * 500))
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
fn connect_error(e: sqlx::Error, server: &str) -> PgError {
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

impl PgStore {
    /// Connects to the server at `url` with default options.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::open_with(PgOptions::new(url)).await
    }

    /// Connects with `options`: parses the URL, connects, applies migrations (safe when
    /// several processes open a fresh schema at once) and parks the committer for the first
    /// write.
    pub async fn open_with(options: PgOptions) -> Result<Self, Error> {
        if !valid_schema(&options.schema) {
            return Err(PgError::InvalidSchemaName {
                name: options.schema,
            }
            .into());
        }
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|p| options.url.starts_with(p))
        {
            return Err(PgError::InvalidUrl {
                reason: "expected postgres://user:password@host:port/database".into(),
            }
            .into());
        }
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| PgError::InvalidUrl {
                reason: e.to_string(),
            })?
            .options([("search_path", options.schema.as_str())])
            .application_name("state-postgres")
            .statement_cache_capacity(64)
            .disable_statement_logging();
        let server = describe(&connect);
        let conn = boxed(connect_once(
            connect.clone(),
            options.connect_timeout,
            server.clone(),
        ))
        .await?;
        let (conn, migrated) = boxed(schema::migrate(
            conn,
            server.clone(),
            options.schema.clone(),
            options.create_if_missing,
        ))
        .await;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(options.readers)
            .min_connections(0)
            .acquire_timeout(options.connect_timeout)
            .connect_lazy_with(connect.clone());
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(4096);
        let committer = Committer {
            conn: Some(conn),
            connect: connect.clone(),
            rx,
            clock: options.clock.clone(),
            counters: counters.clone(),
            max_group: options.max_group,
            retry_for: options.retry_for,
            connect_timeout: options.connect_timeout,
            server: server.clone(),
            change_retention: options.change_retention,
        };
        Ok(PgStore {
            tx,
            writer: Leader::new(committer),
            pool,
            clock: options.clock,
            counters,
            server,
            retry_for: options.retry_for,
            connect,
            schema: options.schema,
            listener: std::sync::OnceLock::new(),
        })
    }

    /// The server, as `user@host:port/database`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// What the store did so far.
    pub fn stats(&self) -> PgStats {
        let c = &self.counters;
        PgStats {
            commits: c.commits.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            max_group: c.max_group.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            queued: self.tx.max_capacity() - self.tx.capacity(),
            notifications: c.notifications.load(Ordering::Relaxed),
        }
    }

    async fn reader(&self) -> Result<PoolConnection<Postgres>, Error> {
        self.pool
            .acquire()
            .await
            .map_err(|e| read_error(e, &self.server))
    }

    /// Runs one admin write in its own transaction on a pooled connection, run again after
    /// safe failures for `retry_for`.
    async fn admin(&self, op: Admin) -> Result<u64, Error> {
        let started = Instant::now();
        loop {
            let conn = self.reader().await?;
            let now = self.clock.now();
            let (mut conn, attempt) = boxed(run_admin(conn, &op, now)).await;
            match attempt {
                Ok(result) => return result,
                Err(TxError::Unknown(e)) => {
                    conn.close_on_drop();
                    return Err(e.into());
                }
                Err(TxError::Failed(e)) => {
                    if e.is_connection() {
                        conn.close_on_drop();
                    }
                    if e.is_retryable() && started.elapsed() < self.retry_for {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(started)).await;
                        continue;
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

/// Connects one connection, mapping failures to typed errors.
async fn connect_once(
    connect: PgConnectOptions,
    timeout: Duration,
    server: String,
) -> Result<PgConnection, PgError> {
    match tokio::time::timeout(timeout, connect.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(connect_error(e, &server)),
        Err(_) => Err(PgError::Unreachable {
            server,
            source: Arc::new(sqlx::Error::PoolTimedOut),
        }),
    }
}

/// How a transaction failed.
enum TxError {
    /// Before `COMMIT` (the server rolled back, or will when the connection closes).
    Failed(PgError),
    /// During `COMMIT`: it may or may not have applied.
    Unknown(PgError),
}

impl From<PgError> for TxError {
    fn from(e: PgError) -> Self {
        TxError::Failed(e)
    }
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Failed(e.into())
    }
}

/// Sends `COMMIT`; a connection lost on the way makes the outcome unknown.
async fn commit(conn: &mut PgConnection) -> Result<(), TxError> {
    match conn.execute("COMMIT").await {
        Ok(_) => Ok(()),
        Err(e) if error::is_connection(&e) => {
            Err(TxError::Unknown(PgError::CommitOutcomeUnknown {
                source: Arc::new(e),
            }))
        }
        Err(e) => Err(TxError::Failed(e.into())),
    }
}

/// Rolls back after a failure; a connection that cannot even do that is not reused.
async fn rollback(conn: &mut PgConnection) -> bool {
    conn.execute("ROLLBACK").await.is_ok()
}

enum Admin {
    Clear(Scope),
    Purge(Scope),
    PurgeExpired,
    Restore(Vec<(Slot, Record)>),
}

/// One admin transaction. `Ok(Err(_))`: the input was refused, nothing written.
async fn run_admin(
    mut conn: PoolConnection<Postgres>,
    op: &Admin,
    now: Timestamp,
) -> (
    PoolConnection<Postgres>,
    Result<Result<u64, Error>, TxError>,
) {
    let result = async {
        conn.execute("BEGIN").await?;
        if !matches!(op, Admin::Clear(_)) {
            // Purges change scope floors and restores write exact versions: no writer may
            // read a floor or a slot meanwhile (readers go on).
            conn.execute("LOCK TABLE slots IN EXCLUSIVE MODE").await?;
        }
        let n = match op {
            Admin::Clear(scope) => sql::clear(&mut conn, scope, now).await?,
            Admin::Purge(scope) => sql::purge_scope(&mut conn, scope).await?,
            Admin::PurgeExpired => sql::purge_expired(&mut conn, now).await?,
            Admin::Restore(records) => {
                // A restored version must leave room for the next write.
                if let Some((slot, r)) = records
                    .iter()
                    .find(|(_, r)| r.version > state_core::rows::MAX_VERSION)
                {
                    let refused = PgError::VersionRange { version: r.version };
                    rollback(&mut conn).await;
                    return Ok(Err(refused.into_state(Some(slot.clone()))));
                }
                let slots: Vec<Slot> = records.iter().map(|(s, _)| s.clone()).collect();
                let loaded = sql::load_raw(&mut conn, &slots, false).await?;
                let mut current = loaded.into_iter();
                let checked = state_core::check_restore(records, |slot| match current.next() {
                    Some(Ok((record, _))) => Ok(record),
                    Some(Err(e)) => Err(e.into_state(Some(slot.clone()))),
                    None => Err(Error::store(std::io::Error::other("slot was not loaded"))),
                });
                if let Err(refused) = checked {
                    rollback(&mut conn).await;
                    return Ok(Err(refused));
                }
                sql::delete_rows(&mut conn, &slots).await?;
                // Every restored record is a new version (check_restore saw to it).
                let fresh = vec![false; records.len()];
                if !sql::write(&mut conn, records, &fresh, records, now).await? {
                    return Err(PgError::MalformedRow {
                        reason: "a restored slot appeared during the restore".into(),
                        version: None,
                        expires_at: None,
                        raw: None,
                    }
                    .into());
                }
                records.len() as u64
            }
        };
        commit(&mut conn).await?;
        Ok(Ok(n))
    }
    .await;
    if let Err(TxError::Failed(_)) = &result
        && !rollback(&mut conn).await
    {
        conn.close_on_drop();
    }
    (conn, result)
}

#[async_trait]
impl Store for PgStore {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>, Error> {
        let mut conn = self.reader().await?;
        let now = self.clock.now();
        boxed(sql::load_many(&mut conn, slots, now)).await
    }

    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> Result<Vec<(SlotKey, Record)>, Error> {
        state_core::rows::scope_records(self.load_rows(Some(scope)).await?, namespace)
    }

    async fn load_rows(
        &self,
        scope: Option<&Scope>,
    ) -> Result<Vec<Result<(Slot, Record), Error>>, Error> {
        let mut conn = self.reader().await?;
        let now = self.clock.now();
        boxed(sql::load_rows(&mut conn, scope, now)).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, Error> {
        let batch = state_core::check_batch(batch)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .await
            .map_err(|_| Error::from(PgError::CommitterGone))?;
        // No `.await` between queueing and this (see `Leader::wait`).
        self.writer
            .wait(rx)
            .await
            .map_err(|_| Error::from(PgError::CommitterGone))?
    }

    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>, Error> {
        state_core::check_page_limit(limit)?;
        let mut conn = self.reader().await?;
        let now = self.clock.now();
        boxed(sql::list_keys(
            &mut conn, scope, namespace, after, limit, now,
        ))
        .await
    }

    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        state_core::check_page_limit(limit)?;
        let mut conn = self.reader().await?;
        let now = self.clock.now();
        boxed(sql::list_scopes(&mut conn, kind, after, limit, Some(now))).await
    }

    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        state_core::check_page_limit(limit)?;
        let mut conn = self.reader().await?;
        boxed(sql::list_scopes(&mut conn, kind, after, limit, None)).await
    }

    async fn restore(&self, restore: Restore) -> Result<u64, Error> {
        let records = state_core::check_restored(restore.records, restore.max_value_bytes)?;
        self.admin(Admin::Restore(records)).await
    }

    async fn clear(&self, scope: &Scope) -> Result<u64, Error> {
        self.admin(Admin::Clear(scope.clone())).await
    }

    async fn purge_scope(&self, scope: &Scope) -> Result<u64, Error> {
        self.admin(Admin::Purge(scope.clone())).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        self.admin(Admin::PurgeExpired).await
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn read_changes(
        &self,
        after: u64,
        filter: &state_core::ChangeFilter,
        limit: usize,
    ) -> Result<Vec<state_core::Change>, Error> {
        let mut conn = self.reader().await?;
        boxed(sql::read_changes(&mut conn, after, filter, limit)).await
    }

    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<state_core::Change>, Error> {
        let mut conn = self.reader().await?;
        boxed(sql::slot_history(&mut conn, slot, before, limit)).await
    }

    async fn last_change(&self) -> Result<u64, Error> {
        let mut conn = self.reader().await?;
        boxed(sql::last_change(&mut conn)).await
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
            let task = runtime.spawn(listen(
                self.connect.clone(),
                self.schema.clone(),
                tx,
                self.counters.clone(),
            ));
            Listener { signal: rx, task }
        });
        Some(listener.signal.clone())
    }
}

/// Owns the write connection and runs every commit transaction; run by one caller or task at
/// a time ([`Leader`]).
struct Committer {
    conn: Option<PgConnection>,
    connect: PgConnectOptions,
    rx: mpsc::Receiver<Pending>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    max_group: usize,
    retry_for: Duration,
    connect_timeout: Duration,
    server: String,
    change_retention: Option<Duration>,
}

/// Each caller batch's result, or the transaction's failure.
type GroupResult = Result<Vec<Result<CommitOutcome, Error>>, TxError>;

impl state_core::leader::GroupCommitter for Committer {
    fn serve(self) -> impl Future<Output = Self> + Send + 'static {
        self.serve_group()
    }

    fn is_idle(&self) -> bool {
        self.rx.is_empty()
    }
}

impl Committer {
    /// Commits the queued commits (a group), if any.
    async fn serve_group(mut self) -> Self {
        let Ok(first) = self.rx.try_recv() else {
            return self;
        };
        // Merge what the callers answered last queue meanwhile; never wait for company
        // (a timer).
        state_core::gather_yield(&self.rx).await;
        let mut group = vec![first];
        while group.len() < self.max_group {
            match self.rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        self.commit_group(group).await;
        let groups = self.counters.groups.load(Ordering::Relaxed);
        if let Some(keep) = self.change_retention
            && groups.is_multiple_of(1024)
            && let Some(conn) = self.conn.as_mut()
        {
            let cutoff = self.clock.now().saturating_sub(keep);
            // Best effort: a failure trims at a later turn.
            let _ = sql::trim_changes(conn, cutoff).await;
        }
        self
    }

    /// Runs `group` in one transaction, running it again after safe failures, and answers
    /// every caller.
    async fn commit_group(&mut self, group: Vec<Pending>) {
        let size = group.len() as u64;
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.counters.batches.fetch_add(size, Ordering::Relaxed);
        self.counters.max_group.fetch_max(size, Ordering::Relaxed);
        let started = Instant::now();
        let result: Result<Vec<Result<CommitOutcome, Error>>, PgError> = loop {
            let conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let c = boxed(connect_once(
                        self.connect.clone(),
                        self.connect_timeout,
                        self.server.clone(),
                    ))
                    .await;
                    match c {
                        Ok(c) => {
                            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                            c
                        }
                        Err(e) => {
                            if started.elapsed() < self.retry_for {
                                tokio::time::sleep(backoff(started)).await;
                                continue;
                            }
                            break Err(e);
                        }
                    }
                }
            };
            let now = self.clock.now();
            let (mut conn, attempt) = boxed(try_group(conn, &group, now)).await;
            match attempt {
                Ok(results) => {
                    self.counters.commits.fetch_add(1, Ordering::Relaxed);
                    self.conn = Some(conn);
                    break Ok(results);
                }
                Err(TxError::Unknown(e)) => break Err(e),
                Err(TxError::Failed(e)) => {
                    if !e.is_connection() && rollback(&mut conn).await {
                        self.conn = Some(conn);
                    }
                    if e.is_retryable() && started.elapsed() < self.retry_for {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(started)).await;
                        continue;
                    }
                    break Err(match e {
                        PgError::Sql(source) if error::is_connection(&source) => {
                            PgError::ConnectionLost {
                                waited: started.elapsed(),
                                source,
                            }
                        }
                        other => other,
                    });
                }
            }
        };
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                for (_, reply) in group {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }
}

/// One transaction for a group: lock and read every slot, prepare each batch on the records
/// as the batches before it left them, write, commit.
async fn try_group(
    mut conn: PgConnection,
    group: &[Pending],
    now: Timestamp,
) -> (PgConnection, GroupResult) {
    let result = async {
        let mut index: HashMap<&Slot, usize> = HashMap::new();
        let mut slots: Vec<Slot> = Vec::new();
        for (batch, _) in group {
            for w in &batch.writes {
                index.entry(&w.slot).or_insert_with(|| {
                    slots.push(w.slot.clone());
                    slots.len() - 1
                });
            }
        }
        conn.execute("BEGIN").await?;
        let loaded = sql::load_raw(&mut conn, &slots, true).await?;
        let prepared =
            state_core::rows::prepare_loaded_group(group.iter().map(|(b, _)| b), now, |slot| {
                let loaded = index.get(slot).and_then(|&i| loaded.get(i))?;
                Some(loaded.as_ref().map(|(r, _)| r))
            });
        let existed: Vec<bool> = prepared
            .changes
            .iter()
            .map(|(slot, _)| {
                index
                    .get(slot)
                    .and_then(|&i| loaded.get(i))
                    .is_some_and(|k| match k {
                        Ok((_, row)) => *row,
                        // A malformed row exists (and is locked).
                        Err(_) => true,
                    })
            })
            .collect();
        if !sql::write(&mut conn, &prepared.changes, &existed, &prepared.log, now).await? {
            // Another transaction created one of the new slots first: run again on what is
            // there now.
            return Err(TxError::Failed(PgError::Contended));
        }
        commit(&mut conn).await?;
        Ok(prepared.results)
    }
    .await;
    (conn, result)
}
