//! The shape of SQLite's write transactions, run by the shared committer
//! ([`state_sql::Writer`]).
//!
//! A group usually commits in ONE statement, from what the committer remembers each slot
//! held after its last transaction ([`cache::KnownCache`]), guarded by those assumptions
//! ([`sql::Guarded`]); if another process changed a slot, the statement writes nothing and
//! the group runs again on the read path: `BEGIN IMMEDIATE` and one SELECT of every slot
//! involved, then the write and `COMMIT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Executor;
use state_core::backend::PreparedGroup;
use state_core::{CommitOutcome, Error, Record, Slot, Timestamp};
use state_sql::{Admin, Fut, Group, Known, Step, boxed};

use crate::Sqlite;
use crate::error::SqliteError;
use crate::inline::WriteConn;
use crate::{cache, sql};

/// What the SQLite backend counts beyond the shared stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteCounts {
    /// Transactions SQLite really committed on the write connections (commit hooks count
    /// them).
    pub commits: u64,
    /// Group transactions committed in one call from what the committer knew.
    pub fast_commits: u64,
    /// One-call attempts that found a slot changed (by another connection, or never seen, or
    /// no longer remembered: the committer remembers up to 16 384 slots) and wrote nothing
    /// before the group ran again on what it read.
    pub cache_misses: u64,
    /// One-call commits that met another connection's lock on the committer's thread and
    /// ran again through sqlx's worker thread, which waits it out (see the crate docs).
    pub inline_busy: u64,
    /// WAL checkpoints the committer ran (SQLite's automatic one is off on the connection it
    /// runs one-call commits on).
    pub checkpoints: u64,
    /// Point and many-slot reads served on the caller's thread by a read-only connection of
    /// the store's own (the others went to sqlx's reader pool).
    pub direct_reads: u64,
}

/// The backend's counters, shared by the store and its writer.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    /// The sqlx write connection's commit hook.
    pub(crate) commits: Arc<AtomicU64>,
    /// The direct connection's commit hook.
    pub(crate) direct_commits: Arc<AtomicU64>,
    fast_commits: AtomicU64,
    cache_misses: AtomicU64,
    inline_busy: AtomicU64,
    checkpoints: AtomicU64,
    pub(crate) direct_reads: AtomicU64,
}

impl Counters {
    pub(crate) fn counts(&self) -> SqliteCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SqliteCounts {
            commits: get(&self.commits) + get(&self.direct_commits),
            fast_commits: get(&self.fast_commits),
            cache_misses: get(&self.cache_misses),
            inline_busy: get(&self.inline_busy),
            checkpoints: get(&self.checkpoints),
            direct_reads: get(&self.direct_reads),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the one-call commit did.
enum Fast {
    /// Committed the group: each caller's result.
    Done(Vec<Result<CommitOutcome, Error>>),
    /// Found a slot changed since the committer saw it: nothing written.
    Missed,
    /// Could not be tried (nothing assumed, too large, too many slots).
    NotTried,
}

/// The committer's connections, and what it remembers of the slots it wrote.
pub struct SqliteWriter {
    pub(crate) conn: WriteConn,
    pub(crate) counters: Arc<Counters>,
    /// What each slot held after this committer's last transaction touching it. Every write
    /// made from it is guarded by it, so a stale entry costs a retry, never a lost update.
    pub(crate) cache: cache::KnownCache,
    /// Whether to try the one-call guarded commit (off after a miss, until a read refreshed
    /// the cache).
    pub(crate) optimistic: bool,
}

impl SqliteWriter {
    /// Copies the WAL back into the database file as SQLite's automatic checkpoint would (it
    /// is off on the direct connection: it would run inside a commit on this thread), through
    /// sqlx. Best effort: pages a reader still needs are copied at a later try.
    async fn checkpoint(&mut self) {
        bump(&self.counters.checkpoints);
        let outcome: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(self.conn.sqlx())
            .await;
        let complete = matches!(outcome, Ok((0, log, copied)) if log == copied);
        let wal = outcome.ok().and_then(|(_, log, _)| u64::try_from(log).ok());
        tracing::debug!(target: "state", wal_pages = wal, complete, "wal checkpoint");
        state_core::__metric!(counter!("state_wal_checkpoints_total").increment(1));
        self.conn.checkpointed(wal, complete);
    }

    /// What the committer assumes each slot holds, for the one-call commit: `None` when it
    /// should take the read path (after a miss, too many slots, a value too large to
    /// compare in the database).
    fn assumed(&self, slots: &[Slot]) -> Option<Vec<Known>> {
        if !self.optimistic || slots.len() > sql::GUARDED_MAX || slots.is_empty() {
            return None;
        }
        slots
            .iter()
            .map(|s| match self.cache.get(s) {
                Some(cache::Entry::Known(k)) => Some(k.clone()),
                Some(cache::Entry::Large) => None,
                // Never seen: no row, floor 0.
                None => Some((Record::absent(0), false)),
            })
            .collect()
    }

    /// The fast path: commits the group in one statement if every slot still holds what the
    /// committer assumes.
    async fn try_fast(
        &mut self,
        group: &Group<'_>,
        now: Timestamp,
        inline: bool,
    ) -> Result<Fast, SqliteError> {
        let Some(assumed) = self.assumed(group.slots()) else {
            return Ok(Fast::NotTried);
        };
        let loaded: Vec<Result<Known, SqliteError>> = assumed.iter().cloned().map(Ok).collect();
        let PreparedGroup {
            results,
            changes,
            log,
            ..
        } = group.prepare(&loaded, now);
        let Some(statement) = sql::Guarded::new(group.slots(), &assumed, &log, now)? else {
            return Ok(Fast::NotTried);
        };
        let bytes = statement.bytes;
        if self.run_guarded(statement, inline).await? {
            state_sql::telemetry::wrote::<Sqlite>("one_call", 1, log.len(), bytes);
            bump(&self.counters.fast_commits);
            self.remember(changes.into_iter().map(|(s, r)| (s, (r, true))));
            return Ok(Fast::Done(results));
        }
        bump(&self.counters.cache_misses);
        self.optimistic = false;
        for s in group.slots() {
            self.cache.remove(s);
        }
        Ok(Fast::Missed)
    }

    /// One transaction for the group: the one-call commit if it applies, else the read path
    /// in two calls, "BEGIN IMMEDIATE; SELECT …" and "INSERT …; COMMIT" (each a
    /// multi-statement string, one hand-off to sqlx's worker thread). On any error the
    /// committer rolls back ([`state_sql::Writer::recover`]): sqlx does not know about a
    /// transaction begun inside a string.
    async fn group(
        &mut self,
        group: &Group<'_>,
        now: Timestamp,
        inline: bool,
    ) -> Result<Vec<Result<CommitOutcome, Error>>, SqliteError> {
        let missed = match self.try_fast(group, now, inline).await? {
            Fast::Done(results) => return Ok(results),
            Fast::Missed => true,
            Fast::NotTried => false,
        };
        let conn = self.conn.sqlx_checked().await?;
        let loaded = sql::load_raw(conn, group.slots(), sql::ReadIn::NewWriteTransaction).await?;
        let PreparedGroup {
            results,
            changes,
            log,
            ..
        } = group.prepare(&loaded, now);
        let (statements, bytes) = if changes.is_empty() {
            conn.execute("COMMIT").await?;
            (1, 0)
        } else {
            sql::write_commit(conn, &log, now, true).await?
        };
        // The read (with BEGIN) and the writes; after a one-call commit that found the group
        // stale, that one too.
        let path = if missed {
            "one_call_then_read"
        } else {
            "read_then_write"
        };
        state_sql::telemetry::wrote::<Sqlite>(
            path,
            statements + 1 + usize::from(missed),
            log.len(),
            bytes,
        );
        let read: Vec<(Slot, Known)> = group
            .slots()
            .iter()
            .cloned()
            .zip(loaded)
            .filter_map(|(s, k)| k.ok().map(|k| (s, k)))
            .collect();
        self.remember(read);
        self.remember(changes.into_iter().map(|(s, r)| (s, (r, true))));
        self.optimistic = true;
        Ok(results)
    }

    /// Runs the one-call commit on the direct connection, on this thread (unless `inline` is
    /// off: a retry after a lock); through sqlx (whose worker thread waits out a lock) if
    /// another connection holds one.
    async fn run_guarded(
        &mut self,
        statement: sql::Guarded<'_>,
        inline: bool,
    ) -> Result<bool, SqliteError> {
        if inline {
            match statement.run_inline(&mut self.conn).await {
                Err(e) if e.is_busy() => {
                    bump(&self.counters.inline_busy);
                    // The statement must run in autocommit through sqlx too: end any
                    // transaction there first (none is expected; the lock was another's).
                    self.conn.roll_back().await;
                }
                result => return result,
            }
        }
        statement.run_sqlx(self.conn.sqlx_checked().await?).await
    }

    /// Records what slots hold after a commit (bounded: see [`cache::KnownCache`]).
    fn remember(&mut self, known: impl IntoIterator<Item = (Slot, Known)>) {
        for (slot, k) in known {
            self.cache.insert(slot, k);
        }
    }

    async fn admin_write(&mut self, op: &Admin, now: Timestamp) -> Result<u64, SqliteError> {
        let conn = self.conn.sqlx();
        match op {
            Admin::Clear(scope) => sql::clear(conn, scope, now).await,
            Admin::Purge(scope) => sql::purge_scope(conn, scope).await,
            Admin::PurgeExpired => sql::purge_expired(conn, now).await,
            Admin::Restore(records) => {
                sql::write_commit(conn, records, now, false).await?;
                Ok(records.len() as u64)
            }
        }
    }
}

impl state_sql::Writer for SqliteWriter {
    type Error = SqliteError;
    type Conn = sqlx::SqliteConnection;

    fn try_group<'a>(
        &'a mut self,
        group: &'a Group<'a>,
        now: Timestamp,
        attempt: u32,
    ) -> Step<'a, Vec<Result<CommitOutcome, Error>>, SqliteError> {
        // A retry after a lock runs through sqlx: its worker waits for the lock.
        let inline = attempt == 0 && self.conn.has_direct();
        boxed(async move { Ok(self.group(group, now, inline).await?) })
    }

    fn recover<'a>(&'a mut self, _failed: &'a SqliteError) -> Fut<'a, ()> {
        boxed(self.conn.roll_back())
    }

    fn begin_admin<'a>(&'a mut self, _op: &'a Admin) -> Step<'a, (), SqliteError> {
        // Clears and purges change many slots at once: forget them all.
        self.cache.clear();
        boxed(async move {
            let conn = self.conn.sqlx_checked().await.map_err(SqliteError::from)?;
            conn.execute("BEGIN IMMEDIATE")
                .await
                .map_err(SqliteError::from)?;
            Ok(())
        })
    }

    fn load<'a>(
        &'a mut self,
        slots: &'a [Slot],
    ) -> Step<'a, Vec<Result<Known, SqliteError>>, SqliteError> {
        boxed(async move {
            let conn = self.conn.sqlx();
            Ok(sql::load_raw(conn, slots, sql::ReadIn::Transaction).await?)
        })
    }

    fn admin<'a>(&'a mut self, op: &'a Admin, now: Timestamp) -> Step<'a, u64, SqliteError> {
        boxed(async move { Ok(self.admin_write(op, now).await?) })
    }

    fn commit(&mut self) -> Step<'_, (), SqliteError> {
        boxed(async move {
            self.conn
                .sqlx()
                .execute("COMMIT")
                .await
                .map_err(SqliteError::from)?;
            Ok(())
        })
    }

    fn roll_back(&mut self) -> Fut<'_, ()> {
        boxed(self.conn.roll_back())
    }

    fn trim_changes(&mut self, cutoff: Timestamp) -> Fut<'_, ()> {
        boxed(async move {
            if sql::trim_changes(self.conn.sqlx(), cutoff).await.is_err() {
                self.conn.roll_back().await;
            }
        })
    }

    fn read_conn(&mut self) -> Fut<'_, Result<&mut sqlx::SqliteConnection, SqliteError>> {
        boxed(async move { self.conn.sqlx_checked().await.map_err(SqliteError::from) })
    }

    fn after_turn(&mut self) -> Fut<'_, ()> {
        boxed(async move {
            if self.conn.checkpoint_due() {
                self.checkpoint().await;
            }
        })
    }
}
