//! [`SqlStore`]: the [`Store`] every SQL backend is. Writes go to the committer; reads run on
//! the backend's read connections (retried while the database is locked), or through the
//! committer when there are none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use state_core::backend::leader::Leader;
use state_core::{
    Batch, Change, ChangeFilter, Clock, CommitOutcome, Error, Page, Record, Restore, Scope,
    ScopeKind, Slot, SlotKey, Store, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, BackendError, CommitterGone, Conn};
use crate::columns::{self, Columns};
use crate::committer::{Admin, Committer, Request, backoff};
use crate::reads::{self, Param};
use crate::stats::{Counters, Stats};

/// How long a read is retried while the database is locked.
const READ_RETRY_FOR: Duration = Duration::from_secs(60);

/// A read the store serves.
pub(crate) enum Read {
    Many(Vec<Slot>),
    Rows(Option<Scope>),
    Keys(Scope, Option<String>, Option<SlotKey>, usize),
    Scopes(Option<ScopeKind>, Option<Scope>, usize, bool),
    Changes(u64, ChangeFilter, usize),
    History(Slot, Option<u64>, usize),
    LastChange,
}

/// What a [`Read`] returns.
pub(crate) enum ReadOut {
    Records(Vec<Record>),
    Rows(Vec<Result<(Slot, Record), Error>>),
    Keys(Page<SlotKey>),
    Scopes(Page<Scope>),
    Changes(Vec<Change>),
    Seq(u64),
}

/// Serves `op` on `conn`.
pub(crate) async fn serve_read<B: Backend>(
    conn: &mut Conn<B>,
    op: &Read,
    now: Timestamp,
) -> Result<ReadOut, Error> {
    Ok(match op {
        Read::Many(slots) => ReadOut::Records(reads::load_many::<B>(conn, slots, now).await?),
        Read::Rows(scope) => ReadOut::Rows(reads::load_rows::<B>(conn, scope.as_ref(), now).await?),
        Read::Keys(scope, ns, after, limit) => ReadOut::Keys(
            reads::list_keys::<B>(conn, scope, ns.as_deref(), after.as_ref(), *limit, now).await?,
        ),
        Read::Scopes(kind, after, limit, live) => {
            let live = live.then_some(now);
            let page = reads::list_scopes::<B>(conn, *kind, after.as_ref(), *limit, live);
            ReadOut::Scopes(page.await?)
        }
        Read::Changes(after, filter, limit) => {
            ReadOut::Changes(reads::read_changes::<B>(conn, *after, filter, *limit).await?)
        }
        Read::History(slot, before, limit) => {
            ReadOut::Changes(reads::slot_history::<B>(conn, slot, *before, *limit).await?)
        }
        Read::LastChange => ReadOut::Seq(reads::last_change::<B>(conn).await?),
    })
}

/// The [`Store`] of a SQL backend `B`: group commit through one committer, reads on the
/// backend's connections. Each backend names its own (`SqliteStore`, `PgStore`).
pub struct SqlStore<B: Backend> {
    tx: mpsc::Sender<Request>,
    /// The committer, run by the caller that finds it idle ([`Leader`]).
    writer: Arc<Leader<Committer<B>>>,
    backend: B,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
}

impl<B: Backend> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("on", &self.backend.name())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SqlStore<B> {
    /// Opens a store with `options` (a path or URL converts into them): connects, checks or
    /// applies the schema (safe when several processes open a fresh database at once), and
    /// parks the committer for the first write.
    pub async fn open(options: impl Into<B::Options>) -> Result<Self, Error> {
        Self::open_with(options.into()).await
    }

    /// [`Self::open`] with options built in full.
    pub async fn open_with(options: B::Options) -> Result<Self, Error> {
        let counters = Arc::new(Counters::default());
        let opened = B::open(options, counters.clone()).await?;
        let clock = opened.config.clock.clone();
        let (tx, writer) = Committer::start(opened.writer, opened.config, counters.clone());
        Ok(SqlStore {
            tx,
            writer,
            backend: opened.backend,
            clock,
            counters,
        })
    }

    /// What the store is on: a path, or a server as `user@host:port/database`.
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// What the store did so far.
    pub fn stats(&self) -> Stats<B::Counts> {
        let queued = self.tx.max_capacity() - self.tx.capacity();
        Stats::new(&self.counters, queued, self.backend.counts())
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Request,
    ) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        let gone = || Error::store(CommitterGone);
        self.tx.send(make(reply)).await.map_err(|_| gone())?;
        // No `.await` between queueing and this (see `Leader::wait`).
        self.writer.wait(rx).await.map_err(|_| gone())?
    }

    async fn admin(&self, op: Admin) -> Result<u64, Error> {
        self.send(|reply| Request::Admin(op, reply)).await
    }

    /// Rows the backend fetched itself, each decoded by `row`; `None`: it cannot, or met a
    /// lock.
    fn fetched<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> Result<Option<Vec<T>>, Error> {
        match self.backend.fetch_inline(sql, params, row) {
            Some(Ok(rows)) => Ok(Some(rows)),
            Some(Err(e)) if !e.is_busy() => Err(e.into()),
            _ => Ok(None),
        }
    }

    /// The records of `slots` read on the caller's thread ([`Backend::load_inline`]), or
    /// `None` to read through a reader connection.
    fn loaded_inline(&self, slots: &[Slot], now: Timestamp) -> Result<Option<Vec<Record>>, Error> {
        match self.backend.load_inline(slots) {
            Some(Ok(known)) => columns::visible(known, slots, now).map(Some),
            Some(Err(e)) if !e.is_busy() => Err(e.into()),
            _ => Ok(None),
        }
    }

    /// A listing, the change log or a slot's history served on the caller's thread by the
    /// backend ([`Backend::fetch_inline`]), or `None` to read through a reader connection
    /// (loads try [`Self::loaded_inline`] before they build a `Read`).
    fn read_inline(&self, op: &Read) -> Result<Option<ReadOut>, Error> {
        let now = self.clock.now();
        match op {
            Read::Keys(scope, ns, after, limit) => {
                let statement =
                    reads::keys_statement(scope, ns.as_deref(), after.as_ref(), *limit, now)?;
                let Some((sql, params)) = statement else {
                    return Ok(Some(ReadOut::Keys(Page::from_iter([], *limit))));
                };
                let Some(keys) = self.fetched(sql, &params, &mut |r| columns::slot_key(r))? else {
                    return Ok(None);
                };
                Ok(Some(ReadOut::Keys(Page::from_iter(keys, *limit))))
            }
            Read::Scopes(kind, after, limit, live) => {
                let live = live.then_some(now);
                let (sql, params) = reads::scopes_statement(*kind, after.as_ref(), *limit, live)?;
                let Some(triples) =
                    self.fetched(sql, &params, &mut |r| columns::scope_columns(r))?
                else {
                    return Ok(None);
                };
                let scopes = columns::scopes_from(triples)?;
                Ok(Some(ReadOut::Scopes(Page::from_iter(scopes, *limit))))
            }
            Read::Changes(after, filter, limit) => {
                let (sql, params) = reads::changes_statement(*after, filter, *limit);
                let decode = &mut |r: &dyn Columns| Ok(columns::change_row::<B::Error, _>(r));
                let Some(rows) = self.fetched(sql, &params, decode)? else {
                    return Ok(None);
                };
                Ok(Some(ReadOut::Changes(columns::changes_from::<B::Error>(
                    rows, *after,
                )?)))
            }
            Read::History(slot, before, limit) => {
                let (sql, params) = reads::history_statement::<B>(slot, *before, *limit);
                let decode = &mut |r: &dyn Columns| Ok(columns::change::<B::Error, _>(r, 0));
                let Some(rows) = self.fetched(sql, &params, decode)? else {
                    return Ok(None);
                };
                let changes = rows.into_iter().collect::<Result<Vec<_>, _>>()?;
                Ok(Some(ReadOut::Changes(changes)))
            }
            _ => Ok(None),
        }
    }

    /// Serves `op` on the caller's thread when the backend can ([`Self::read_inline`]), else
    /// on a read connection, retried while the database is locked, or through the committer
    /// if the backend has no read connections.
    async fn read(&self, op: Read) -> Result<ReadOut, Error> {
        if let Some(out) = self.read_inline(&op)? {
            return Ok(out);
        }
        let started = Instant::now();
        loop {
            let Some(mut conn) = self.backend.reader().await? else {
                return self.send(|reply| Request::Read(op, reply)).await;
            };
            match serve_read::<B>(&mut conn, &op, self.clock.now()).await {
                Err(e) if busy::<B>(&e) && started.elapsed() < READ_RETRY_FOR => {
                    self.counters.retried();
                    tokio::time::sleep(backoff(started)).await;
                }
                Err(e) => return Err(gave_up::<B>(e, started.elapsed())),
                other => return other,
            }
        }
    }
}

/// Whether a read failed for a lock.
fn busy<B: Backend>(e: &Error) -> bool {
    match e {
        Error::Store { source, .. } => source
            .downcast_ref::<B::Error>()
            .is_some_and(BackendError::is_busy),
        _ => false,
    }
}

/// A failed read as reported: a lock that outlasted the retries, as the backend names it.
fn gave_up<B: Backend>(e: Error, waited: Duration) -> Error {
    if !busy::<B>(&e) {
        return e;
    }
    match e {
        Error::Store { slot, source } => match source.downcast::<B::Error>() {
            Ok(e) => e.gave_up(waited).into_state(slot),
            Err(source) => Error::Store { slot, source },
        },
        other => other,
    }
}

/// The store answered a read with another kind of result (a bug).
fn unexpected() -> Error {
    Error::store(std::io::Error::other(
        "the store answered a read with another kind of result",
    ))
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>, Error> {
        // Read in place when the backend can, before the slots are copied for a reader.
        if let Some(records) = self.loaded_inline(slots, self.clock.now())? {
            return Ok(records);
        }
        match self.read(Read::Many(slots.to_vec())).await? {
            ReadOut::Records(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> Result<Vec<(SlotKey, Record)>, Error> {
        state_core::backend::rows::scope_records(self.load_rows(Some(scope)).await?, namespace)
    }

    async fn load_rows(
        &self,
        scope: Option<&Scope>,
    ) -> Result<Vec<Result<(Slot, Record), Error>>, Error> {
        match self.read(Read::Rows(scope.cloned())).await? {
            ReadOut::Rows(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, Error> {
        let batch = state_core::backend::check_batch(batch)?;
        self.send(|reply| Request::Commit(batch, reply)).await
    }

    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>, Error> {
        state_core::backend::check_page_limit(limit)?;
        let ns = namespace.map(str::to_owned);
        match self
            .read(Read::Keys(scope.clone(), ns, after.cloned(), limit))
            .await?
        {
            ReadOut::Keys(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }

    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        self.scopes(kind, after, limit, true).await
    }

    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>, Error> {
        self.scopes(kind, after, limit, false).await
    }

    async fn restore(&self, restore: Restore) -> Result<u64, Error> {
        let records =
            state_core::backend::check_restored(restore.records, restore.max_value_bytes)?;
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
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<Change>, Error> {
        match self
            .read(Read::Changes(after, filter.clone(), limit))
            .await?
        {
            ReadOut::Changes(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Change>, Error> {
        match self
            .read(Read::History(slot.clone(), before, limit))
            .await?
        {
            ReadOut::Changes(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn last_change(&self) -> Result<u64, Error> {
        match self.read(Read::LastChange).await? {
            ReadOut::Seq(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.backend.change_signal()
    }
}

impl<B: Backend> SqlStore<B> {
    /// A page of scopes holding a live value (`live`) or any row.
    async fn scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
        live: bool,
    ) -> Result<Page<Scope>, Error> {
        state_core::backend::check_page_limit(limit)?;
        match self
            .read(Read::Scopes(kind, after.cloned(), limit, live))
            .await?
        {
            ReadOut::Scopes(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }
}
