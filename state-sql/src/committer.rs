//! The committer: owns the write connection and runs every write transaction, one turn at a
//! time, by whichever caller finds it idle ([`Leader`]). A turn takes the queued commits as a
//! group (up to `max_group`), runs them in one transaction through the backend's
//! [`Writer`], runs it again after a safe failure (with a growing, jittered pause) until
//! `retry_for` has passed, and answers every caller.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_core::backend::PreparedGroup;
use state_core::backend::leader::Leader;
use state_core::backend::rows::LoadError;
use state_core::{Batch, CommitOutcome, Error, Record, Scope, Slot, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::backend::{Backend, BackendError, CommitterConfig, Failure, Known, Writer};
use crate::stats::Counters;
use crate::store::{Read, ReadOut, serve_read};
use crate::telemetry;

/// An admin write, run in a transaction of its own.
#[derive(Debug)]
pub enum Admin {
    /// Tombstones every live slot of the scope.
    Clear(Scope),
    /// Deletes every row of the scope and raises its floor.
    Purge(Scope),
    /// Deletes expired rows.
    PurgeExpired,
    /// Writes these records as they are (checked by the engine: each is a new version).
    Restore(Vec<(Slot, Record)>),
}

/// What the committer is asked to do.
pub(crate) enum Request {
    Commit(Batch, oneshot::Sender<Result<CommitOutcome, Error>>),
    Admin(Admin, oneshot::Sender<Result<u64, Error>>),
    /// A read of a store whose reads have no connection but the committer's.
    Read(Read, oneshot::Sender<Result<ReadOut, Error>>),
}

/// One caller's batch in a group, and where its answer goes.
pub(crate) type Pending = (Batch, oneshot::Sender<Result<CommitOutcome, Error>>);

/// The caller batches one transaction commits, and every slot they touch.
pub struct Group<'a> {
    pending: &'a [Pending],
    slots: Vec<Slot>,
    index: HashMap<&'a Slot, usize>,
}

impl<'a> Group<'a> {
    fn new(pending: &'a [Pending]) -> Self {
        let mut index: HashMap<&Slot, usize> = HashMap::new();
        let mut slots: Vec<Slot> = Vec::new();
        for (batch, _) in pending {
            for w in &batch.writes {
                index.entry(&w.slot).or_insert_with(|| {
                    slots.push(w.slot.clone());
                    slots.len() - 1
                });
            }
        }
        Group {
            pending,
            slots,
            index,
        }
    }

    /// Every slot the group touches, once each, in the order first touched.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Prepares every batch on the records `loaded` (indexed like [`Self::slots`]), each
    /// batch seeing the changes of the accepted batches before it; a refused batch
    /// contributes nothing.
    pub fn prepare<E: LoadError>(
        &self,
        loaded: &[Result<Known, E>],
        now: Timestamp,
    ) -> PreparedGroup {
        let batches = self.pending.iter().map(|(b, _)| b);
        state_core::backend::rows::prepare_loaded_group(batches, now, |slot| {
            let loaded = self.loaded(loaded, slot)?;
            Some(loaded.as_ref().map(|(r, _)| r))
        })
    }

    /// What `loaded` (indexed like [`Self::slots`]) holds for `slot`.
    pub fn loaded<'l, E>(
        &self,
        loaded: &'l [Result<Known, E>],
        slot: &Slot,
    ) -> Option<&'l Result<Known, E>> {
        self.index.get(slot).and_then(|&i| loaded.get(i))
    }
}

/// Owns the write connection and runs every write transaction; run by one caller or task at
/// a time ([`Leader`]).
pub(crate) struct Committer<B: Backend> {
    writer: B::Writer,
    rx: mpsc::Receiver<Request>,
    config: CommitterConfig,
    counters: Arc<Counters>,
    /// A request taken from the queue that did not fit the last group.
    next: Option<Request>,
}

impl<B: Backend> state_core::backend::leader::GroupCommitter for Committer<B> {
    fn serve(self) -> impl Future<Output = Self> + Send + 'static {
        self.serve_one()
    }

    fn is_idle(&self) -> bool {
        self.next.is_none() && self.rx.is_empty()
    }
}

/// The shape of a retry loop's answer: the result, or the error to report.
type Attempt<T, E> = Result<T, Failure<E>>;

impl<B: Backend> Committer<B> {
    pub(crate) fn start(
        writer: B::Writer,
        config: CommitterConfig,
        counters: Arc<Counters>,
    ) -> (mpsc::Sender<Request>, Arc<Leader<Self>>) {
        let (tx, rx) = mpsc::channel(4096);
        let committer = Committer {
            writer,
            rx,
            config,
            counters,
            next: None,
        };
        (tx, Leader::new(committer))
    }

    /// Serves one queued request (a commit merged with the commits queued behind it), if any.
    async fn serve_one(mut self) -> Self {
        let request = match self.next.take() {
            Some(r) => r,
            None => match self.rx.try_recv() {
                Ok(r) => r,
                Err(_) => return self,
            },
        };
        match request {
            Request::Commit(batch, reply) => {
                // Merge what the callers answered last queue meanwhile; never wait for
                // company (a timer).
                state_core::backend::gather_yield(&self.rx).await;
                let group = self.gather(batch, reply);
                self.commit_group(group).await;
                self.trim_if_due().await;
            }
            Request::Admin(op, reply) => {
                let result = self.admin(&op).await;
                let _ = reply.send(result);
            }
            Request::Read(op, reply) => {
                let now = self.config.clock.now();
                let read = match self.writer.read_conn().await {
                    Ok(conn) => serve_read::<B>(conn, &op, now).await,
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(read);
            }
        }
        self.writer.after_turn().await;
        self
    }

    /// The commits queued behind the first, up to `max_group`.
    fn gather(
        &mut self,
        batch: Batch,
        reply: oneshot::Sender<Result<CommitOutcome, Error>>,
    ) -> Vec<Pending> {
        let mut group: Vec<Pending> = vec![(batch, reply)];
        while group.len() < self.config.max_group {
            match self.rx.try_recv() {
                Ok(Request::Commit(b, r)) => group.push((b, r)),
                Ok(other) => {
                    self.next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Every 1024 groups, deletes the changes older than the retention.
    async fn trim_if_due(&mut self) {
        if let Some(keep) = self.config.change_retention
            && self.counters.groups().is_multiple_of(1024)
        {
            let cutoff = self.config.clock.now().saturating_sub(keep);
            self.writer.trim_changes(cutoff).await;
            telemetry::trimmed::<B>(keep);
        }
    }

    /// Runs `group` in one transaction, running it again after safe failures, and answers
    /// every caller.
    async fn commit_group(&mut self, pending: Vec<Pending>) {
        self.counters.group(pending.len() as u64);
        let group = Group::new(&pending);
        let span = telemetry::group_span::<B>(pending.len(), group.slots().len());
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let now = self.config.clock.now();
            let tried = self
                .writer
                .try_group(&group, now, attempt)
                .instrument(span.clone())
                .await;
            match self.settle(tried, started).instrument(span.clone()).await {
                Some(result) => break result,
                None => attempt += 1,
            }
        };
        let sizes = (pending.len(), group.slots().len());
        telemetry::group_done::<B, _>(&span, &result, sizes, attempt, started);
        drop(group);
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in pending.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                for (_, reply) in pending {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }

    /// After an attempt: its result, or `None` to run it again (it failed safely and
    /// `retry_for` has not passed; the pause is taken here).
    async fn settle<T>(
        &mut self,
        tried: Attempt<T, B::Error>,
        started: Instant,
    ) -> Option<Result<T, B::Error>> {
        let e = match tried {
            Ok(t) => return Some(Ok(t)),
            Err(Failure::Unknown(e)) => {
                telemetry::outcome_unknown::<B>(&e);
                self.writer.recover(&e).await;
                return Some(Err(e));
            }
            Err(Failure::Failed(e)) => e,
        };
        self.writer.recover(&e).await;
        if e.is_retryable() && started.elapsed() < self.config.retry_for {
            self.counters.retried();
            let pause = backoff(started);
            telemetry::retrying::<B>(&e, started.elapsed(), pause);
            tokio::time::sleep(pause).await;
            return None;
        }
        telemetry::gave_up::<B>(&e, started.elapsed());
        Some(Err(e.gave_up(started.elapsed())))
    }

    /// Runs one admin write in its own transaction, run again after safe failures.
    async fn admin(&mut self, op: &Admin) -> Result<u64, Error> {
        let span = telemetry::admin_span::<B>(op);
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let tried = self.admin_once(op).instrument(span.clone()).await;
            if let Some(result) = self.settle(tried, started).instrument(span.clone()).await {
                let result = result.unwrap_or_else(|e| Err(e.into()));
                telemetry::admin_done::<B>(&span, op, &result, retries);
                return result;
            }
            retries += 1;
        }
    }

    /// One admin transaction. `Ok(Err(_))`: the input was refused, nothing written.
    async fn admin_once(&mut self, op: &Admin) -> Attempt<Result<u64, Error>, B::Error> {
        self.writer.begin_admin(op).await?;
        // Read once the transaction holds its locks (it may have waited for them).
        let now = self.config.clock.now();
        if let Admin::Restore(records) = op
            && let Err(refused) = self.check_restore(records).await?
        {
            self.writer.roll_back().await;
            return Ok(Err(refused));
        }
        let n = self.writer.admin(op, now).await?;
        self.writer.commit().await?;
        Ok(Ok(n))
    }

    /// Whether `records` may be restored over what the slots hold now: each a new version,
    /// and room left for the next write (a clear raises versions in SQL, where
    /// `MAX_VERSION + 1` must still be an integer).
    async fn check_restore(
        &mut self,
        records: &[(Slot, Record)],
    ) -> Attempt<Result<(), Error>, B::Error> {
        if let Some((slot, r)) = records
            .iter()
            .find(|(_, r)| r.version > state_core::backend::rows::MAX_VERSION)
        {
            let refused = B::Error::version_range(r.version);
            return Ok(Err(refused.into_state(Some(slot.clone()))));
        }
        let slots: Vec<Slot> = records.iter().map(|(s, _)| s.clone()).collect();
        let loaded = self.writer.load(&slots).await?;
        let mut current = loaded.into_iter();
        Ok(state_core::backend::check_restore(
            records,
            |slot| match current.next() {
                Some(Ok((record, _))) => Ok(record),
                Some(Err(e)) => Err(e.into_state(Some(slot.clone()))),
                None => Err(Error::store(std::io::Error::other("slot was not loaded"))),
            },
        ))
    }
}

/// A jittered, growing pause between retries: about 1 ms at first, up to 50 ms after a
/// second of retrying (a lock held by another process, a server restarting).
pub fn backoff(started: Instant) -> Duration {
    let ms = (started.elapsed().as_millis() / 20).clamp(1, 50) as u64;
    Duration::from_micros(ms * 500 + fastrand::u64(..=ms * 500))
}
