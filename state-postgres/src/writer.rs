//! The shape of PostgreSQL's write transactions, run by the shared committer
//! ([`state_sql::Writer`]): `BEGIN`; one `SELECT … FOR UPDATE` of every slot involved (rows
//! locked in key order); one statement updating the existing rows and inserting the new ones;
//! `COMMIT` — four round trips however many slots. Two processes creating the same slot at
//! once are told apart by `INSERT … ON CONFLICT DO NOTHING`: the loser rolls back and runs
//! again on what it then reads. Purges and restores lock the table against writers (readers
//! go on).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection};
use state_core::backend::rows::RowError;
use state_core::{CommitOutcome, Error, Slot, Timestamp};
use state_sql::{Admin, Failure, Fut, Group, Known, Step, boxed};

use crate::Pg;
use crate::error::{self, PgError};
use crate::sql;

/// What the PostgreSQL backend counts beyond the shared stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgCounts {
    /// Group transactions committed.
    pub commits: u64,
    /// Connections the committer opened after losing one.
    pub reconnects: u64,
    /// Change notifications (`NOTIFY`) the store's listener received for its schema, from
    /// any process; see [`state_core::Store::change_signal`].
    pub notifications: u64,
}

/// The backend's counters, shared by the store, its writer and its listener.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    commits: AtomicU64,
    reconnects: AtomicU64,
    pub(crate) notifications: Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn counts(&self) -> PgCounts {
        PgCounts {
            commits: self.commits.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
        }
    }
}

/// The committer's connection (`None` after it was lost: the next transaction connects).
pub struct PgWriter {
    pub(crate) conn: Option<PgConnection>,
    pub(crate) connect: PgConnectOptions,
    pub(crate) connect_timeout: Duration,
    pub(crate) server: String,
    pub(crate) counters: Arc<Counters>,
}

/// Connects one connection, mapping failures to typed errors.
pub(crate) async fn connect_once(
    connect: PgConnectOptions,
    timeout: Duration,
    server: String,
) -> Result<PgConnection, PgError> {
    match tokio::time::timeout(timeout, connect.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(crate::connect_error(e, &server)),
        Err(_) => Err(PgError::Unreachable {
            server,
            source: Arc::new(sqlx::Error::PoolTimedOut),
        }),
    }
}

/// Sends `COMMIT`; a connection lost on the way makes the outcome unknown.
async fn commit(conn: &mut PgConnection) -> Result<(), Failure<PgError>> {
    match conn.execute("COMMIT").await {
        Ok(_) => Ok(()),
        Err(e) if error::is_connection(&e) => {
            Err(Failure::Unknown(PgError::CommitOutcomeUnknown {
                source: Arc::new(e),
            }))
        }
        Err(e) => Err(Failure::Failed(e.into())),
    }
}

impl PgWriter {
    /// The connection, connecting first if it was lost.
    async fn conn(&mut self) -> Result<&mut PgConnection, PgError> {
        match self.conn {
            Some(ref mut conn) => Ok(conn),
            None => {
                let (connect, server) = (self.connect.clone(), self.server.clone());
                let conn = boxed(connect_once(connect, self.connect_timeout, server)).await?;
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                state_sql::telemetry::reconnected::<Pg>();
                Ok(self.conn.insert(conn))
            }
        }
    }

    /// The connection of a transaction in progress (one was begun on it).
    fn open(&mut self) -> Result<&mut PgConnection, PgError> {
        self.conn.as_mut().ok_or_else(|| {
            PgError::Sql(Arc::new(sqlx::Error::Protocol(
                "the transaction's connection is gone".into(),
            )))
        })
    }

    /// Lock and read every slot, prepare each batch on the records as the batches before it
    /// left them, write, commit.
    async fn group(
        &mut self,
        group: &Group<'_>,
        now: Timestamp,
    ) -> Result<Vec<Result<CommitOutcome, Error>>, Failure<PgError>> {
        let conn = self.conn().await?;
        conn.execute("BEGIN").await.map_err(PgError::from)?;
        let loaded = sql::load_raw(conn, group.slots(), true).await?;
        let prepared = group.prepare(&loaded, now);
        let existed: Vec<bool> = prepared
            .changes
            .iter()
            .map(|(slot, _)| match group.loaded(&loaded, slot) {
                Some(Ok((_, row))) => *row,
                // A malformed row exists (and is locked).
                Some(Err(_)) => true,
                None => false,
            })
            .collect();
        let Some(bytes) = sql::write(conn, &prepared.changes, &existed, &prepared.log, now).await?
        else {
            // Another transaction created one of the new slots first: run again on what is
            // there now.
            return Err(Failure::Failed(PgError::Contended));
        };
        commit(conn).await?;
        // BEGIN, the locking read, the write, COMMIT.
        let versions = prepared.log.len();
        state_sql::telemetry::wrote::<Pg>("lock_read_write", 4, versions, bytes);
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(prepared.results)
    }

    async fn admin_write(&mut self, op: &Admin, now: Timestamp) -> Result<u64, PgError> {
        let conn = self.open()?;
        match op {
            Admin::Clear(scope) => sql::clear(conn, scope, now).await,
            Admin::Purge(scope) => sql::purge_scope(conn, scope).await,
            Admin::PurgeExpired => sql::purge_expired(conn, now).await,
            Admin::Restore(records) => {
                let slots: Vec<Slot> = records.iter().map(|(s, _)| s.clone()).collect();
                sql::delete_rows(conn, &slots).await?;
                let fresh = vec![false; records.len()];
                if sql::write(conn, records, &fresh, records, now)
                    .await?
                    .is_none()
                {
                    return Err(PgError::MalformedRow(RowError::new(
                        "a restored slot appeared during the restore",
                    )));
                }
                Ok(records.len() as u64)
            }
        }
    }

    /// Rolls back; a connection that cannot even do that is not reused.
    async fn roll_back_or_drop(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && conn.execute("ROLLBACK").await.is_err()
        {
            self.conn = None;
        }
    }
}

impl state_sql::Writer for PgWriter {
    type Error = PgError;
    type Conn = PgConnection;

    fn try_group<'a>(
        &'a mut self,
        group: &'a Group<'a>,
        now: Timestamp,
        _attempt: u32,
    ) -> Step<'a, Vec<Result<CommitOutcome, Error>>, PgError> {
        boxed(self.group(group, now))
    }

    fn recover<'a>(&'a mut self, failed: &'a PgError) -> Fut<'a, ()> {
        boxed(async move {
            if failed.is_connection() || matches!(failed, PgError::CommitOutcomeUnknown { .. }) {
                self.conn = None;
            } else {
                self.roll_back_or_drop().await;
            }
        })
    }

    fn begin_admin<'a>(&'a mut self, op: &'a Admin) -> Step<'a, (), PgError> {
        boxed(async move {
            let conn = self.conn().await?;
            conn.execute("BEGIN").await.map_err(PgError::from)?;
            if !matches!(op, Admin::Clear(_)) {
                // Purges change scope floors and restores write exact versions: no writer may
                // read a floor or a slot meanwhile (readers go on).
                conn.execute("LOCK TABLE slots IN EXCLUSIVE MODE")
                    .await
                    .map_err(PgError::from)?;
            }
            Ok(())
        })
    }

    fn load<'a>(&'a mut self, slots: &'a [Slot]) -> Step<'a, Vec<Result<Known, PgError>>, PgError> {
        boxed(async move { Ok(sql::load_raw(self.open()?, slots, false).await?) })
    }

    fn admin<'a>(&'a mut self, op: &'a Admin, now: Timestamp) -> Step<'a, u64, PgError> {
        boxed(async move { Ok(self.admin_write(op, now).await?) })
    }

    fn commit(&mut self) -> Step<'_, (), PgError> {
        boxed(async move { commit(self.open()?).await })
    }

    fn roll_back(&mut self) -> Fut<'_, ()> {
        boxed(self.roll_back_or_drop())
    }

    fn trim_changes(&mut self, cutoff: Timestamp) -> Fut<'_, ()> {
        boxed(async move {
            if let Some(conn) = self.conn.as_mut() {
                // Best effort: a failure trims at a later turn.
                let _ = sql::trim_changes(conn, cutoff).await;
            }
        })
    }

    fn read_conn(&mut self) -> Fut<'_, Result<&mut PgConnection, PgError>> {
        boxed(self.conn())
    }
}
