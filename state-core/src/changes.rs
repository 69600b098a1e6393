//! The change feed: every committed version of every slot, in commit order, durable in the
//! store's change log (written in the same transaction as the commit), resumable from a
//! cursor. On top of it: [`Engine::changes`], typed watches
//! ([`SlotHandle::watch`](crate::SlotHandle::watch)), history
//! ([`SlotHandle::history`](crate::SlotHandle::history)), consumers with durable
//! acknowledgements ([`Engine::consumer`]) and state triggers ([`Engine::trigger`]).
//!
//! Delivery is at-least-once from a cursor: a reader that restarts from the last sequence
//! number it processed misses nothing. Changes older than the store's retention are gone; a
//! reader whose cursor fell behind it is told so ([`Error::ChangesTrimmed`]), never handed
//! the oldest change kept as if nothing were missing. A state trigger counts such a gap
//! ([`Trigger::gaps`]) and goes on after it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::record::Timestamp;
use crate::scope::{Scope, ScopeKind, Slot};

/// One committed version of a slot, as the change log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// The change's position in the log: rises with commit order (gaps are possible). Use it
    /// as the cursor to resume from, and as an idempotency key.
    pub seq: u64,
    /// The slot.
    pub slot: Slot,
    /// The slot's version after the commit.
    pub version: u64,
    /// The value committed; `None`: a tombstone (delete, clear).
    pub value: Option<Value>,
    /// When it was committed (the store's clock).
    pub at: Timestamp,
}

impl Change {
    /// Version `version` of `slot`, committed at `at` as change `seq` (`value`: `None` for a
    /// tombstone). For stores that keep a log, and for tests of change handlers.
    pub fn new(seq: u64, slot: Slot, version: u64, value: Option<Value>, at: Timestamp) -> Self {
        Change {
            seq,
            slot,
            version,
            value,
            at,
        }
    }
}

/// One version of a slot from its history, typed; see
/// [`SlotHandle::history`](crate::SlotHandle::history).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HistoryEntry<T> {
    /// The change's sequence number in the log.
    pub seq: u64,
    /// The slot's version.
    pub version: u64,
    /// The value at that version; `None`: deleted.
    pub value: Option<T>,
    /// When it was committed.
    pub at: Timestamp,
}

/// Which changes a reader wants. Empty: all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeFilter {
    /// Only scopes of this kind.
    pub kind: Option<ScopeKind>,
    /// Only this scope.
    pub scope: Option<Scope>,
    /// Only this namespace (a state struct's name).
    pub namespace: Option<String>,
    /// Only this key (a field's name); usually with `scope` and `namespace`.
    pub key: Option<String>,
}

impl ChangeFilter {
    /// Every change.
    pub fn all() -> Self {
        Self::default()
    }

    /// Changes of scopes of one kind.
    pub fn kind(kind: ScopeKind) -> Self {
        ChangeFilter {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// Changes of one scope.
    pub fn scope(scope: Scope) -> Self {
        ChangeFilter {
            kind: Some(scope.kind()),
            scope: Some(scope),
            ..Self::default()
        }
    }

    /// Changes of one slot.
    pub fn slot(slot: &Slot) -> Self {
        ChangeFilter {
            kind: Some(slot.scope().kind()),
            scope: Some(slot.scope().clone()),
            namespace: Some(slot.namespace().to_owned()),
            key: Some(slot.key().to_owned()),
        }
    }

    /// Narrows to one namespace.
    #[must_use]
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Narrows to one key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Whether `change` passes the filter.
    pub fn matches(&self, change: &Change) -> bool {
        self.matches_slot(&change.slot)
    }

    /// Whether a change of `slot` passes the filter.
    pub(crate) fn matches_slot(&self, slot: &Slot) -> bool {
        self.kind.is_none_or(|k| slot.scope().kind() == k)
            && self.scope.as_ref().is_none_or(|s| slot.scope() == s)
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| slot.namespace() == n)
            && self.key.as_deref().is_none_or(|k| slot.key() == k)
    }
}

/// How long stores keep changes by default: 7 days.
pub const DEFAULT_CHANGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a change stream that reached the end of the log looks again, unless a commit of
/// this process wakes it first, or the store signals other processes' commits (PostgreSQL
/// does, with `LISTEN`/`NOTIFY`; on SQLite they are seen at the next look).
pub const DEFAULT_CHANGE_POLL: Duration = Duration::from_millis(50);

/// The most changes one read of the log returns.
const READ_BATCH: usize = 512;

/// A stream of changes. A store failure is an `Err` item, after which the stream reads again
/// from where it was (one poll interval later); it ends only after another error (a store
/// without a change log, [`Error::ChangesTrimmed`]).
pub type ChangeStream = BoxStream<'static, Result<Change>>;

/// The state of one [`Engine::changes`] stream.
struct Feed {
    engine: Engine,
    after: u64,
    filter: ChangeFilter,
    buffer: VecDeque<Change>,
    wake: crate::engine::Events,
    signal: Option<tokio::sync::watch::Receiver<u64>>,
    failed: bool,
    /// The last read failed: wait a look before the next.
    pause: bool,
    /// The last read found nothing: take the log's head before the next, so that one
    /// finding nothing again moves `after` past every change it looked at (a filter
    /// matching nothing for a long stretch would rescan it all on every wake).
    idle: bool,
}

impl Feed {
    /// The next change or error; `None` once the stream has ended.
    async fn next(&mut self) -> Option<Result<Change>> {
        if self.failed {
            return None;
        }
        if std::mem::take(&mut self.pause) {
            tokio::time::sleep(self.engine.change_poll()).await;
        }
        loop {
            if let Some(c) = self.buffer.pop_front() {
                self.after = c.seq;
                return Some(Ok(c));
            }
            // Whatever was signalled so far, this read sees.
            if let Some(signal) = &mut self.signal {
                signal.borrow_and_update();
            }
            // Every change up to the head is committed and visible once the head is (one
            // writer at a time on SQLite; sequence order is commit order on PostgreSQL).
            let head = if self.idle {
                self.engine.store().last_change().await.ok()
            } else {
                None
            };
            let store = self.engine.store();
            match store
                .read_changes(self.after, &self.filter, READ_BATCH)
                .await
            {
                Ok(batch) if batch.is_empty() => {
                    if let Some(head) = head {
                        self.after = self.after.max(head);
                    }
                    self.idle = true;
                    self.wait().await;
                }
                Ok(batch) => {
                    self.idle = false;
                    self.buffer.extend(batch);
                }
                Err(e) => {
                    // A store failure (a lost connection, a busy database) may pass: the
                    // stream reports it and reads again, from where it was, at its next
                    // look. Anything else (no change log, a cursor out of range or behind
                    // the retention) will not: the stream ends.
                    self.failed = !matches!(e, Error::Store { .. });
                    self.pause = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Waits for a commit of this process, the store's signal of other processes' commits,
    /// or the next look.
    async fn wait(&mut self) {
        let Feed {
            engine,
            wake,
            signal,
            ..
        } = self;
        let sleep = tokio::time::sleep(engine.change_poll());
        let woken = wake.next();
        let signalled = async {
            let open = match signal {
                Some(signal) => signal.changed().await.is_ok(),
                None => false,
            };
            if !open {
                // No signal, or the store's listener is gone: poll.
                futures::future::pending::<()>().await;
            }
        };
        futures::pin_mut!(sleep, signalled);
        futures::future::select(sleep, futures::future::select(woken, signalled)).await;
        // One read answers every commit so far: drop the other wake-ups queued meanwhile (a
        // burst of writes would cost a read each).
        while let Some(Some(_)) = futures::FutureExt::now_or_never(wake.next()) {}
    }
}

impl Engine {
    /// The changes after sequence number `after` (0: from the start of the log) that pass
    /// `filter`, in commit order; waits for new ones at the end of the log. Resume after a
    /// restart from the `seq` of the last change processed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use futures::StreamExt;
    /// use state_core::{ChangeFilter, Engine, MemoryStore, Scope, Slot};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let hits = engine.handle::<u64>(Slot::new(Scope::app("shop")?, "Stats", "hits")?);
    /// hits.increment(1).await?;
    /// hits.increment(1).await?;
    /// let mut feed = engine.changes(0, ChangeFilter::all());
    /// let first = feed.next().await.unwrap()?;
    /// assert_eq!((first.version, first.value), (1, Some(1.into())));
    /// assert_eq!(feed.next().await.unwrap()?.version, 2);
    /// # Ok(()) }
    /// ```
    pub fn changes(&self, after: u64, filter: ChangeFilter) -> ChangeStream {
        let feed = Feed {
            wake: self.events(),
            signal: self.store().change_signal(),
            engine: self.clone(),
            after,
            filter,
            buffer: VecDeque::new(),
            failed: false,
            pause: false,
            idle: false,
        };
        futures::stream::unfold(feed, |mut feed| async move {
            let item = feed.next().await?;
            Some((item, feed))
        })
        .boxed()
    }

    /// The sequence number of the newest change in the log (0 if none): start a feed here to
    /// see only what happens from now on.
    pub async fn change_head(&self) -> Result<u64> {
        self.store().last_change().await
    }

    /// A consumer of the change log with a durable cursor named `name`: it resumes after the
    /// last change it acknowledged, in this process or an earlier one. With an
    /// acknowledgement after each change, each is seen once, in order; a change processed
    /// but not acknowledged when the consumer stopped is seen again (at-least-once).
    ///
    /// The cursor is a slot of the store (scope `app:_consumers`, namespace `Consumer`, key
    /// `name`). Use one consumer per name at a time. Changes to cursors (that scope) are never
    /// delivered to a consumer, whatever its filter: each acknowledgement writes a cursor, so a
    /// consumer (or two) whose filter covers them would feed itself forever.
    pub async fn consumer(&self, name: &str, filter: ChangeFilter) -> Result<Consumer> {
        let cursor = self.handle::<u64>(Slot::new(Scope::app(CONSUMERS)?, "Consumer", name)?);
        let after = cursor.get().await?.unwrap_or(0);
        Ok(Consumer {
            stream: self.changes(after, filter.clone()),
            cursor,
            acked: after,
            filter,
        })
    }

    /// Registers a state trigger: `handler` runs after commit for every change passing
    /// `filter` and `condition`, at-least-once, in order, from a durable cursor named `name`
    /// (it survives restarts: register it again with the same name). Each call receives the
    /// change, whose `seq` is an idempotency key. A failing handler is retried (backoff from
    /// 10 ms to 5 s) without blocking other triggers: each trigger runs in a task of its own.
    /// Needs a tokio runtime.
    pub async fn trigger<C, H, Fut, E>(
        &self,
        name: &str,
        filter: ChangeFilter,
        condition: C,
        handler: H,
    ) -> Result<Trigger>
    where
        C: Fn(&Change) -> bool + Send + Sync + 'static,
        H: Fn(Change) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        // A store without a change log cannot run a trigger: say so now, not by a task that
        // retries for ever. (A cursor behind the retention is a gap, counted and passed.)
        self.change_head().await?;
        let mut consumer = self.consumer(name, filter.clone()).await?;
        let stats = Arc::new(TriggerCounters::default());
        let counters = stats.clone();
        // How far the trigger got: the last change it finished with (handled, or passed over
        // by its condition) and acknowledged.
        let (progress, watched) = tokio::sync::watch::channel(consumer.acked());
        let task = tokio::spawn(async move {
            loop {
                let change = match consumer.next().await {
                    Some(Ok(c)) => c,
                    // Changes were removed before the trigger saw them: count the gap and go
                    // on after it.
                    Some(Err(Error::ChangesTrimmed {
                        trimmed_through, ..
                    })) => {
                        // (The consumer's `next` logged the gap.)
                        counters.gaps.fetch_add(1, Ordering::Relaxed);
                        consumer.skip_to(trimmed_through);
                        continue;
                    }
                    // The log could not be read: look again later.
                    Some(Err(_)) | None => {
                        counters.read_errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        consumer.restart();
                        continue;
                    }
                };
                // A panicking condition or handler is a failure like an error (counted and
                // retried), not the silent end of the trigger's task.
                let mut pause = Duration::from_millis(10);
                loop {
                    let wanted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        condition(&change)
                    }));
                    let failed = match wanted {
                        Ok(false) => break,
                        Ok(true) => {
                            let call = std::panic::AssertUnwindSafe(handler(change.clone()));
                            match futures::FutureExt::catch_unwind(call).await {
                                Ok(Ok(())) => None,
                                Ok(Err(_)) => Some("handler_error"),
                                Err(_) => Some("handler_panic"),
                            }
                        }
                        Err(_) => Some("condition_panic"),
                    };
                    let name = consumer.name();
                    let Some(error) = failed else {
                        counters.handled.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(target: "state", consumer = name, seq = change.seq, "trigger handled a change");
                        crate::__metric!(
                            counter!("state_trigger_handled_total", "consumer" => name.to_owned())
                                .increment(1)
                        );
                        break;
                    };
                    let failures = counters.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    // The handler's error is not shown: its message may quote a value.
                    tracing::warn!(target: "state", consumer = name, seq = change.seq, error, failures, "trigger handler failed, retrying");
                    crate::__metric!(
                        counter!("state_trigger_failures_total", "consumer" => name.to_owned())
                            .increment(1)
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                // Acknowledge (retrying: the change must not run again once done).
                while consumer.ack(&change).await.is_err() {
                    counters.read_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                progress.send_replace(change.seq);
            }
        });
        Ok(Trigger {
            task,
            counters: stats,
            progress: watched,
            engine: self.clone(),
            filter,
        })
    }
}

/// The app scope id holding consumers' cursors.
const CONSUMERS: &str = "_consumers";

/// A reader of the change log with a durable, acknowledged cursor; see [`Engine::consumer`].
pub struct Consumer {
    stream: ChangeStream,
    cursor: crate::SlotHandle<u64>,
    acked: u64,
    filter: ChangeFilter,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("cursor", self.cursor.slot())
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// The next change (waits for one). `Some(Err)` when the log cannot be read: after a
    /// store failure the consumer reads again from where it was at the next call (after one
    /// poll interval); after any other error it returns `None` from then on: a store without a
    /// change log (make a new consumer, or call [`restart`](Self::restart)), or
    /// [`Error::ChangesTrimmed`], when the log's retention removed changes after the last
    /// acknowledged one ([`skip_to`](Self::skip_to) its `trimmed_through` to go on after the
    /// gap). Those changes may not have passed the consumer's filter: its cursor moves only
    /// with acknowledgements, so a consumer whose filter matched nothing for longer than the
    /// retention is told too.
    pub async fn next(&mut self) -> Option<Result<Change>> {
        loop {
            match self.stream.next().await {
                Some(Ok(c)) if c.slot.scope() == self.cursor.slot().scope() => continue,
                Some(Err(Error::ChangesTrimmed {
                    after,
                    trimmed_through,
                })) => {
                    tracing::warn!(
                        target: "state",
                        consumer = self.name(),
                        after,
                        trimmed_through,
                        "changes trimmed before the consumer read them"
                    );
                    return Some(Err(Error::ChangesTrimmed {
                        after,
                        trimmed_through,
                    }));
                }
                other => return other,
            }
        }
    }

    /// Records that `change` (and everything before it) is done: a restart resumes after it.
    pub async fn ack(&mut self, change: &Change) -> Result<()> {
        if change.seq > self.acked {
            // The head before this acknowledgement's own write (a change too): a consumer
            // that read everything lags by 0.
            #[cfg(feature = "metrics")]
            let head = self.cursor.engine().store().last_change().await;
            self.cursor.set(change.seq).await?;
            self.acked = change.seq;
            tracing::debug!(target: "state", consumer = self.name(), seq = change.seq, "consumer acknowledged");
            #[cfg(feature = "metrics")]
            if let Ok(head) = head {
                let lag = head.saturating_sub(self.acked) as f64;
                metrics::gauge!("state_consumer_lag", "consumer" => self.name().to_owned())
                    .set(lag);
            }
        }
        Ok(())
    }

    /// The consumer's name (the key of its durable cursor).
    pub fn name(&self) -> &str {
        self.cursor.slot().key()
    }

    /// Reads on after `seq` (after [`Error::ChangesTrimmed`]: its `trimmed_through`), as if
    /// everything up to it were acknowledged. The durable cursor moves with the next
    /// acknowledgement: writing it now would itself be a change, which a log bounded by a
    /// count of changes (the memory store's) makes room for by dropping the next unread one.
    pub fn skip_to(&mut self, seq: u64) {
        self.acked = self.acked.max(seq);
        self.restart();
    }

    /// The last acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Starts reading again after the last acknowledgement (what a restart does).
    pub fn restart(&mut self) {
        let engine = self.cursor.engine().clone();
        self.stream = engine.changes(self.acked, self.filter.clone());
    }
}

#[derive(Debug, Default)]
struct TriggerCounters {
    handled: AtomicU64,
    failures: AtomicU64,
    read_errors: AtomicU64,
    gaps: AtomicU64,
}

/// A running state trigger; see [`Engine::trigger`]. Dropping it leaves the trigger running;
/// [`stop`](Self::stop) ends it (its cursor keeps what was acknowledged).
#[derive(Debug)]
pub struct Trigger {
    task: tokio::task::JoinHandle<()>,
    counters: Arc<TriggerCounters>,
    progress: tokio::sync::watch::Receiver<u64>,
    /// Where the trigger reads: to tell which changes it still has to handle.
    engine: Engine,
    filter: ChangeFilter,
}

impl Trigger {
    /// Stops the trigger (at its next await; a handler call in progress may still finish:
    /// use [`stop_and_wait`](Self::stop_and_wait) before registering the same name again).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Stops the trigger and waits until its task has ended, so no handler call of it is
    /// running when this returns. An acknowledgement already handed to the store may still
    /// land; a trigger registered again under the same name may see that change once more
    /// (at-least-once), never concurrently with this one.
    pub async fn stop_and_wait(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// The sequence number of the last change the trigger finished with — handled, or passed
    /// over by its condition — and acknowledged (at the start: its stored cursor).
    pub fn handled_through(&self) -> u64 {
        *self.progress.borrow()
    }

    /// Waits until the trigger has finished with (and acknowledged) every change up to `seq`
    /// that its filter matches — what a test or a caller that must see a trigger's effect
    /// waits on, instead of polling its cursor. Changes the filter does not match (other
    /// slots, the trigger's own cursor writes) are not waited for, so `seq` may be any
    /// position, e.g. [`Engine::change_head`] after a write; a `seq` beyond the log's head
    /// waits only for the changes committed by then. Returns [`Error::InvalidArgument`] if
    /// the trigger stopped first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use state_core::{ChangeFilter, Engine, MemoryStore, Scope, Slot};
    /// let engine = Engine::new(MemoryStore::new());
    /// let orders = engine.handle::<u32>(Slot::new(Scope::app("shop")?, "Orders", "n")?);
    /// let audit = engine
    ///     .trigger("audit", ChangeFilter::slot(orders.slot()), |_| true, |c| async move {
    ///         println!("order count is now {:?}", c.value);
    ///         Ok::<(), String>(())
    ///     })
    ///     .await?;
    /// orders.increment(1).await?;
    /// audit.wait_handled_through(engine.change_head().await?).await?;
    /// assert_eq!(audit.handled(), 1);
    /// orders.increment(1).await?;
    /// audit.wait_handled_through(engine.change_head().await?).await?;
    /// assert_eq!(audit.handled(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn wait_handled_through(&self, seq: u64) -> Result<()> {
        let mut progress = self.progress.clone();
        loop {
            let through = *progress.borrow_and_update();
            if through >= seq || !self.pending(through, seq).await? {
                return Ok(());
            }
            // Woken by the trigger's progress, or after a while to look again.
            let moved = tokio::time::timeout(Duration::from_millis(50), progress.changed()).await;
            if let Ok(Err(_)) = moved {
                return Err(Error::InvalidArgument(format!(
                    "the trigger stopped before it reached change {seq}"
                )));
            }
        }
    }

    /// Whether a change the trigger reads lies after `through` and at or before `seq`.
    async fn pending(&self, through: u64, seq: u64) -> Result<bool> {
        match self
            .engine
            .store()
            .read_changes(through, &self.filter, 1)
            .await
        {
            Ok(next) => Ok(next.first().is_some_and(|c| c.seq <= seq)),
            // Trimmed past the cursor: the trigger skips the gap; wait for it to move.
            Err(Error::ChangesTrimmed { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Changes the handler completed.
    pub fn handled(&self) -> u64 {
        self.counters.handled.load(Ordering::Relaxed)
    }

    /// Handler calls that failed, returning an error or panicking (each is retried).
    pub fn failures(&self) -> u64 {
        self.counters.failures.load(Ordering::Relaxed)
    }

    /// Times the change log could not be read, or an acknowledgement not written (each is
    /// retried after 200 ms).
    pub fn read_errors(&self) -> u64 {
        self.counters.read_errors.load(Ordering::Relaxed)
    }

    /// Times the trigger found that the change log's retention had removed changes after its
    /// cursor ([`Error::ChangesTrimmed`]), and went on after them. Whether they passed its
    /// filter is not known: a cursor moves only with changes the trigger handled, so a
    /// trigger whose filter matched nothing for longer than the retention (or one restarted
    /// after such a gap, before handling a change) counts one too.
    pub fn gaps(&self) -> u64 {
        self.counters.gaps.load(Ordering::Relaxed)
    }

    /// Whether the trigger's task has ended (only [`stop`](Self::stop) or the runtime's
    /// shutdown end it).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// A change's value as `T`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(change: &Change) -> Result<Option<T>> {
    change
        .value
        .clone()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| Error::Decode {
                slot: change.slot.clone(),
                version: change.version,
                type_name: std::any::type_name::<T>(),
                source: e,
            })
        })
        .transpose()
}

impl Error {
    /// The error of a store without a change log.
    pub(crate) fn no_change_log() -> Error {
        Error::InvalidArgument("this store keeps no change log".into())
    }
}
