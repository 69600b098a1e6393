//! What a SQL backend provides: its reads ([`Backend`]), its write transactions ([`Writer`])
//! and how its errors classify ([`BackendError`]). Everything around them — the queue, group
//! commit, retries, admin and restore checks, trimming, stats and the `Store` impl — is this
//! crate's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use state_core::backend::rows::{LoadError, RowError};
use state_core::{Clock, CommitOutcome, Error, Record, Slot, Timestamp};

use crate::columns::Columns;
use crate::committer::{Admin, Group};
use crate::reads::Param;
use crate::stats::Counters;

/// A boxed `Send` future borrowing for `'a`: what the backend traits' methods return.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Every row of a scope or store, each its slot and record or why it cannot be read.
pub type Rows = Vec<Result<(Slot, Record), Error>>;

/// What a slot's row held when loaded: its record, and whether a row exists.
pub type Known = (Record, bool);

/// What a load of slots found: each slot's [`Known`], or why its row cannot be read.
pub type Loaded<E> = Vec<Result<Known, E>>;

/// A connection of backend `B`'s database.
pub type Conn<B> = <<B as Backend>::Db as sqlx::Database>::Connection;

/// A row of backend `B`'s database.
pub type Row<B> = <<B as Backend>::Db as sqlx::Database>::Row;

/// How a write transaction failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Before `COMMIT`: nothing was written (the database rolled back, or will).
    Failed(E),
    /// During `COMMIT`: it may or may not have applied. Never run again, never retried.
    Unknown(E),
}

impl<E> From<E> for Failure<E> {
    fn from(e: E) -> Self {
        Failure::Failed(e)
    }
}

/// A backend's error, as the shared engine classifies and reports it.
pub trait BackendError: LoadError + Into<Error> + From<RowError> + From<sqlx::Error> {
    /// Whether a write transaction that failed with it wrote nothing and may succeed if run
    /// again (a lock, a deadlock, a connection lost before `COMMIT`).
    fn is_retryable(&self) -> bool;

    /// Whether a read that failed with it may succeed if run again soon (a lock).
    fn is_busy(&self) -> bool;

    /// The error to report when retries ran out after `waited` (e.g. "locked for 60 s").
    fn gave_up(self, waited: Duration) -> Self;

    /// What kind of failure this is, in a word (`busy`, `connection`, `constraint`…): the
    /// `class` field and label of spans, events and metrics, which never carry the message
    /// (it may quote a value).
    fn class(&self) -> &'static str {
        "other"
    }

    /// As a `state_core::Error`, naming the slot if there is one.
    fn into_state(self, slot: Option<Slot>) -> Error {
        Error::Store {
            slot,
            source: Box::new(self),
        }
    }
}

/// The store's committer stopped: the runtime that opened the store shut down, or the
/// committer panicked. What a write or read waiting on it fails with (inside
/// `state_core::Error::Store`), whatever the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the store's committer has stopped (the runtime that opened the store shut down, or it panicked); the commit may or may not have applied"
)]
#[non_exhaustive]
pub struct CommitterGone;

/// What [`Backend::open`] hands the shared store.
pub struct Opened<B: Backend> {
    /// The backend's shared, read-side state (a reader pool, its name).
    pub backend: B,
    /// The committer's connection.
    pub writer: B::Writer,
    /// How the committer runs.
    pub config: CommitterConfig,
}

/// How the committer runs: every backend's options carry one, set through the setters
/// [`shared_options!`](crate::shared_options) gives them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommitterConfig {
    /// The clock expiry is read from.
    pub clock: Arc<dyn Clock>,
    /// The most caller batches merged into one transaction.
    pub max_group: usize,
    /// How long a transaction that failed safely is run again before the error is reported.
    pub retry_for: Duration,
    /// How long the change log keeps changes (`None`: forever); trimmed every 1024 groups.
    pub change_retention: Option<Duration>,
}

impl CommitterConfig {
    /// The defaults (system clock, groups of up to 1024 batches, the change log kept for
    /// [`state_core::DEFAULT_CHANGE_RETENTION`]), retrying for the backend's `retry_for`.
    pub fn new(retry_for: Duration) -> Self {
        CommitterConfig {
            clock: Arc::new(state_core::SystemClock),
            max_group: 1024,
            retry_for,
            change_retention: Some(state_core::DEFAULT_CHANGE_RETENTION),
        }
    }
}

/// A SQL backend: opens a store, reads on its connections, and says what it counts. The
/// store value ([`crate::SqlStore`]) holds it.
pub trait Backend: Sized + Send + Sync + 'static {
    /// How to open one.
    type Options: Send;
    /// Its errors.
    type Error: BackendError;
    /// The sqlx database it runs on: reads run on its connections and decode its rows.
    type Db: sqlx::Database<Row: Columns>;
    /// The committer's connection and write transactions.
    type Writer: Writer<Error = Self::Error, Conn = Conn<Self>>;
    /// What the backend counts beyond the shared [`crate::Stats`].
    type Counts: Clone + Copy + std::fmt::Debug + Default + PartialEq + Eq;

    /// Connects, checks or migrates the schema, and returns what the store runs on.
    /// `counters` are the store's (the backend counts its retries while opening there).
    fn open(
        options: Self::Options,
        counters: Arc<Counters>,
    ) -> Fut<'static, Result<Opened<Self>, Error>>;

    /// The backend's name in spans, events and metric labels (`sqlite`, `postgres`).
    const KIND: &'static str;

    /// What the store is on, for errors and `Debug` (a path, or a server without password).
    fn name(&self) -> &str;

    /// A read connection, or `None` when reads run on the committer's connection (a
    /// private in-memory database has no other).
    fn reader(&self) -> Fut<'_, Result<Option<PoolConnection<Self::Db>>, Error>>;

    /// The backend's own counters.
    fn counts(&self) -> Self::Counts;

    /// See [`state_core::Store::change_signal`]; `None` by default (change streams poll).
    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// [`Backend::load_known`] served on the caller's thread, when the backend has a way to
    /// read without a hand-off to another thread (SQLite reading its file with a connection
    /// of its own): `None` reads through [`Backend::reader`] instead, and so does an error the
    /// backend calls busy (that path waits locks out). One snapshot, as `load_known`.
    fn load_inline(&self, slots: &[Slot]) -> Option<Result<Loaded<Self::Error>, Self::Error>> {
        let _ = slots;
        None
    }

    /// A read statement of the shared engine ([`crate::reads`], as for [`Backend::fetch`])
    /// served on the caller's thread, when the backend can: each row decoded by `row` as it
    /// is read (no copy of it is made first), or `None` to read through [`Backend::reader`]
    /// instead (and so for an error the backend calls busy). Listings, the change log and
    /// slot history use it.
    fn fetch_inline<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> Option<Result<Vec<T>, Self::Error>> {
        let _ = (sql, params, row);
        None
    }

    /// What each slot's row holds (raw: expiry not applied), in order, in one snapshot; a row
    /// that cannot be read is an error for its slot only.
    fn load_known<'a>(
        conn: &'a mut Conn<Self>,
        slots: &'a [Slot],
    ) -> Fut<'a, Result<Loaded<Self::Error>, Self::Error>>;

    /// Runs one read statement of the shared engine ([`crate::reads`]): `sql` numbers its
    /// parameters `$1`… and `params` are their values in that order (a statement may leave
    /// some unused).
    fn fetch<'a>(
        conn: &'a mut Conn<Self>,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> Fut<'a, Result<Vec<Row<Self>>, Self::Error>>;

    /// Runs `sql`, which may hold several statements and no parameters (a migration).
    fn execute<'a>(conn: &'a mut Conn<Self>, sql: &'a str) -> Fut<'a, Result<(), Self::Error>>;

    /// The statement reading the change log's newest sequence number: one row, one INTEGER
    /// column (0 when nothing was ever logged; a log its retention emptied still ends at the
    /// newest change it removed).
    const LAST_CHANGE: &'static str;

    /// The statement reading a slot's history: the columns of
    /// [`CHANGE_COLUMNS`](crate::columns::CHANGE_COLUMNS) for the slot `$1`…`$5` (kind, scope
    /// id, sub, namespace, key), newest first, below sequence number `$6`, at most `$7` rows.
    /// How the log finds a slot's versions is the backend's (an index, a chain).
    const HISTORY: &'static str;

    /// Two columns of the `slots` table's row, in the dialect: the whole row as the database
    /// quotes it (`'a', 'b', 1, NULL`…), and its quoted value. [`crate::reads`] names a row
    /// it cannot read with them.
    const QUOTED_ROW: &'static str;
}

/// The result of one write step: `Err` when the transaction failed.
pub type Step<'a, T, E> = Fut<'a, Result<T, Failure<E>>>;

/// The committer's connection: the shape of a backend's write transactions. The shared
/// committer decides when they run, retries them and answers callers.
pub trait Writer: Send + 'static {
    /// The backend's errors.
    type Error: BackendError;
    /// The connection reads run on (see [`Writer::read_conn`]).
    type Conn: Send;

    /// One attempt at committing `group` in one transaction: each caller's result (a batch
    /// refused on what was read contributes nothing). `attempt` counts the runs of this
    /// group before this one.
    fn try_group<'a>(
        &'a mut self,
        group: &'a Group<'a>,
        now: Timestamp,
        attempt: u32,
    ) -> Step<'a, Vec<Result<CommitOutcome, Error>>, Self::Error>;

    /// After a failed transaction: ends what it left open (or gives up the connection).
    fn recover<'a>(&'a mut self, failed: &'a Self::Error) -> Fut<'a, ()>;

    /// Opens the transaction an admin write runs in.
    fn begin_admin<'a>(&'a mut self, op: &'a Admin) -> Step<'a, (), Self::Error>;

    /// What each slot holds, in the admin transaction (a restore checks against it).
    fn load<'a>(
        &'a mut self,
        slots: &'a [Slot],
    ) -> Step<'a, Vec<Result<Known, Self::Error>>, Self::Error>;

    /// Runs the admin write in its transaction, returning how many slots or rows it touched.
    /// A restore's records were checked: each is a new version of its slot.
    fn admin<'a>(&'a mut self, op: &'a Admin, now: Timestamp) -> Step<'a, u64, Self::Error>;

    /// Commits the open transaction.
    fn commit(&mut self) -> Step<'_, (), Self::Error>;

    /// Rolls back the open transaction, whose input was refused.
    fn roll_back(&mut self) -> Fut<'_, ()>;

    /// Deletes changes older than `cutoff`, best effort (a failure trims at a later turn).
    fn trim_changes(&mut self, cutoff: Timestamp) -> Fut<'_, ()>;

    /// The committer's connection, for reads that have no other.
    fn read_conn(&mut self) -> Fut<'_, Result<&mut Self::Conn, Self::Error>>;

    /// Runs after each turn of the committer (a checkpoint when one is due).
    fn after_turn(&mut self) -> Fut<'_, ()> {
        Box::pin(async {})
    }
}
