//! The engine: owns the store, the retry policy and the event bus; hands out typed handles.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::batch::BatchBuilder;
use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::handle::SlotHandle;
use crate::memory::MemoryStore;
use crate::record::{Clock, Record};
use crate::scope::{Scope, ScopeKind, Slot, SlotKey, validate};
use crate::store::{
    Batch, CommitOutcome, DEFAULT_MAX_VALUE_BYTES, IntoStore, Page, Store, Write, WriteOutcome,
};
use crate::telemetry::{self, TraceIds};

/// How `update` retries after a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Re-runs after the first attempt (default 10): at most `1 + max_retries` attempts.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled each retry (default 1 ms).
    pub base_delay: Duration,
    /// The longest backoff (default 50 ms). Each backoff is jittered to 50–100 %.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_retries` retries and the default backoff.
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            ..Self::default()
        }
    }

    /// The same policy with another backoff (`Duration::ZERO` retries at once).
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }

    /// The jittered backoff before retry number `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// The engine's settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Retries of `update` (overridable per handle).
    pub retry: RetryPolicy,
    /// The largest serialized value a write may store (default 1 MiB).
    pub max_value_bytes: usize,
    /// Events buffered per subscriber before a slow one misses some (default 1024).
    pub event_capacity: usize,
    /// How often a change stream at the end of the log looks for other processes' commits
    /// (default [`DEFAULT_CHANGE_POLL`](crate::DEFAULT_CHANGE_POLL)).
    pub change_poll: Duration,
    /// How scope ids and keys appear in spans and events (default: as they are; see
    /// [`telemetry`](crate::telemetry)).
    pub trace_ids: TraceIds,
    /// With the `metrics` feature: one commit in this many, on each thread, is timed for the
    /// `state_commit_seconds` histogram (default 8; 1 times every commit). Every commit is
    /// counted in `state_commits_total` either way. Timing one is two clock reads and a
    /// histogram record, which cost more than a memory store's whole commit; a sample keeps
    /// the quantiles and `_sum / _count` true, while `_count` is the timed commits only.
    pub commit_timing: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::default(),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            event_capacity: 1024,
            change_poll: crate::changes::DEFAULT_CHANGE_POLL,
            trace_ids: TraceIds::Plain,
            commit_timing: 8,
        }
    }
}

impl EngineConfig {
    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the value size limit.
    #[must_use]
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Sets how often change streams look for other processes' commits.
    #[must_use]
    pub fn change_poll(mut self, every: Duration) -> Self {
        self.change_poll = every;
        self
    }

    /// Sets how scope ids and keys appear in spans and events: as they are, hashed, or
    /// left out ([`TraceIds`]).
    #[must_use]
    pub fn trace_ids(mut self, ids: TraceIds) -> Self {
        self.trace_ids = ids;
        self
    }

    /// Times one commit in `every` (at least 1) for the `state_commit_seconds` histogram
    /// ([`EngineConfig::commit_timing`]).
    #[must_use]
    pub fn commit_timing(mut self, every: u32) -> Self {
        self.commit_timing = every.max(1);
        self
    }

    /// Sets the event buffer per subscriber (at least 1).
    #[must_use]
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }
}

/// Something that happened to a slot, as seen by this engine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A write committed.
    Change {
        /// The slot.
        slot: Slot,
        /// Its version before.
        old_version: u64,
        /// Its version after.
        new_version: u64,
    },
    /// An `update` attempt conflicted with another writer and will be retried (or give up).
    Conflict {
        /// The slot.
        slot: Slot,
        /// Which attempt conflicted (1-based).
        attempt: u32,
    },
    /// An `update` gave up after every attempt conflicted.
    Exhausted {
        /// The slot.
        slot: Slot,
        /// Attempts made.
        attempts: u32,
    },
    /// Every live slot of a scope was deleted at once (a clear: each gets a tombstone one
    /// version up; the change log has one change per slot).
    Cleared {
        /// The scope.
        scope: Scope,
        /// How many slots.
        count: u64,
    },
    /// Every slot of a scope was physically removed (a purge; later writes continue above
    /// the scope's version floor).
    Purged {
        /// The scope.
        scope: Scope,
        /// How many rows.
        count: u64,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// How many.
        missed: u64,
    },
}

impl Event {
    /// The slot the event concerns (`None` for scope-wide events and `Lagged`).
    pub fn slot(&self) -> Option<&Slot> {
        match self {
            Event::Change { slot, .. }
            | Event::Conflict { slot, .. }
            | Event::Exhausted { slot, .. } => Some(slot),
            Event::Cleared { .. } | Event::Purged { .. } | Event::Lagged { .. } => None,
        }
    }

    /// The scope the event concerns (a slot's, or a scope-wide event's; `None` for `Lagged`).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Event::Cleared { scope, .. } | Event::Purged { scope, .. } => Some(scope),
            other => other.slot().map(Slot::scope),
        }
    }

    /// Whether the event concerns `slot`: its own events, and its scope's scope-wide ones.
    fn concerns(&self, slot: &Slot) -> bool {
        match self.slot() {
            Some(s) => s == slot,
            None => self.scope() == Some(slot.scope()),
        }
    }
}

/// A stream of [`Event`]s from the moment it was created.
pub struct Events(BoxStream<'static, Event>);

impl Events {
    fn new(rx: broadcast::Receiver<Event>, only: Option<Slot>) -> Self {
        let stream = futures::stream::unfold((rx, only), |(mut rx, only)| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if only.as_ref().is_none_or(|s| ev.concerns(s)) {
                            return Some((ev, (rx, only)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Some((Event::Lagged { missed }, (rx, only)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Events(Box::pin(stream))
    }
}

impl Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

/// The state engine: a store, a retry policy and an event bus. Cheap to clone (one `Arc`);
/// every handle owns a clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope, Slot};
/// let engine = Engine::new(MemoryStore::new());
/// let slot = Slot::new(Scope::execution("run-1")?, "Research", "attempts")?;
/// let attempts = engine.handle::<u32>(slot).with_initial(&0)?;
/// assert_eq!(attempts.get().await?, Some(0));
/// assert_eq!(attempts.increment(1).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    config: EngineConfig,
    events: broadcast::Sender<Event>,
    meter: Arc<telemetry::CommitMeter>,
    /// An invocation-local engine: in a batch, its writes apply after the durable commit.
    deferred: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `store` (a store, an `Arc` of one, or an `Arc<dyn Store>`) with the
    /// default configuration.
    pub fn new(store: impl IntoStore) -> Self {
        Self::with_config(store, EngineConfig::default())
    }

    /// An engine over `store` (as for [`new`](Self::new)) with `config`, built from
    /// [`EngineConfig::default`] by its setters.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use state_core::{Engine, EngineConfig, MemoryStore, RetryPolicy};
    /// let store = Arc::new(MemoryStore::new());
    /// let config = EngineConfig::default().retry(RetryPolicy::new(3));
    /// let engine = Engine::with_config(store.clone(), config);
    /// let same_store = Engine::new(store);
    /// # let _ = (engine, same_store);
    /// ```
    pub fn with_config(store: impl IntoStore, config: EngineConfig) -> Self {
        let store = store.into_store();
        let meter = Arc::new(telemetry::CommitMeter::new(config.commit_timing));
        Self::build(store, config, meter, false)
    }

    /// An engine; invocation-local and session engines share their parent's `meter` (its
    /// metric handles are registered once).
    fn build(
        store: Arc<dyn Store>,
        config: EngineConfig,
        meter: Arc<telemetry::CommitMeter>,
        deferred: bool,
    ) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        Engine(Arc::new(Inner {
            store,
            config,
            events,
            meter,
            deferred,
        }))
    }

    /// A fresh invocation-local engine (in memory, on this engine's clock and config) for
    /// state that is never persisted. In a batch its writes apply only after the durable
    /// store's commit succeeded.
    pub fn local(&self) -> Engine {
        let store = MemoryStore::with_clock(self.clock());
        let meter = self.0.meter.clone();
        Self::build(Arc::new(store), self.0.config.clone(), meter, true)
    }

    /// A fresh in-memory engine for session state, and its store (for checkpoints). Its
    /// retries never sleep, so its futures complete at their first poll (the synchronous
    /// session API relies on it).
    pub(crate) fn session(&self) -> (Engine, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::with_clock(self.clock()));
        let config = self
            .0
            .config
            .clone()
            .retry(RetryPolicy::new(10).with_backoff(Duration::ZERO, Duration::ZERO));
        let meter = self.0.meter.clone();
        (Self::build(store.clone(), config, meter, true), store)
    }

    /// Whether this is an invocation-local engine (see [`local`](Self::local)).
    pub fn is_deferred(&self) -> bool {
        self.0.deferred
    }

    /// Whether two engine values are the same engine.
    pub fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The store.
    pub(crate) fn change_poll(&self) -> Duration {
        self.0.config.change_poll
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.0.config
    }

    /// The store's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.store.clock()
    }

    /// A typed, writable handle on one slot.
    pub fn handle<T>(&self, slot: Slot) -> SlotHandle<T>
    where
        T: Serialize + DeserializeOwned,
    {
        SlotHandle::new(self.clone(), slot)
    }

    /// A keyed collection: typed handles for any key of `namespace` in `scope` (rate limits
    /// per user, login sessions, feature flags).
    pub fn collection<V>(&self, scope: Scope, namespace: impl Into<String>) -> Result<Collection<V>>
    where
        V: Serialize + DeserializeOwned,
    {
        let namespace = namespace.into();
        validate(
            crate::error::IdPart::Namespace,
            &namespace,
            crate::scope::MAX_NAME_BYTES,
        )?;
        Ok(Collection::new(self.clone(), scope, namespace))
    }

    /// A typed, atomic batch of writes across any handles of this engine.
    pub fn batch(&self) -> BatchBuilder {
        BatchBuilder::new()
    }

    /// Every engine event from now on.
    pub fn events(&self) -> Events {
        Events::new(self.0.events.subscribe(), None)
    }

    pub(crate) fn slot_events(&self, slot: &Slot) -> Events {
        Events::new(self.0.events.subscribe(), Some(slot.clone()))
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        if self.0.events.receiver_count() > 0 {
            // Sending fails only when every receiver is gone in the meantime: nobody listens.
            let _ = self.0.events.send(event());
        }
    }

    /// Loads one slot as a reader sees it now.
    pub async fn load(&self, slot: &Slot) -> Result<Record> {
        self.0.store.load(slot).await
    }

    /// Loads many slots in one store call.
    pub async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>> {
        self.0.store.load_many(slots).await
    }

    /// Commits untyped writes as one atomic batch (the admin API and the CLI use this).
    ///
    /// A CAS write whose version does not match fails the whole batch with
    /// [`Error::VersionMismatch`] naming the first such slot; nothing is written.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        match self.commit_batch(writes).await? {
            CommitOutcome::Committed(outcomes) => Ok(outcomes),
            CommitOutcome::Conflict(conflicts) => match conflicts.into_iter().next() {
                Some(c) => Err(c.into_error()),
                // A store's bug, reported rather than a panic.
                None => Err(Error::store(std::io::Error::other(
                    "the store reported a conflict without naming a slot",
                ))),
            },
        }
    }

    /// Commits a batch and emits a change event per committed write.
    pub(crate) async fn commit_batch(&self, writes: Vec<Write>) -> Result<CommitOutcome> {
        let listening = self.0.events.receiver_count() > 0;
        let slots: Vec<Slot> = if listening {
            writes.iter().map(|w| w.slot.clone()).collect()
        } else {
            Vec::new()
        };
        let span = telemetry::commit_span(&self.0.config.trace_ids, &writes);
        let metering = self.0.meter.start(&writes);
        let commit = self.0.store.commit(Batch {
            writes,
            max_value_bytes: self.0.config.max_value_bytes,
        });
        // No subscriber wants the span: no wrapper to enter on every poll.
        let outcome = match &span {
            Some(span) => commit.instrument(span.clone()).await,
            None => commit.await,
        };
        if let Some(span) = &span {
            telemetry::record_commit_span(span, &outcome);
        }
        self.0.meter.finish(metering, &outcome);
        let outcome = outcome?;
        if let CommitOutcome::Committed(outcomes) = &outcome {
            for (slot, o) in slots.into_iter().zip(outcomes) {
                self.emit(|| Event::Change {
                    slot,
                    old_version: o.previous_version,
                    new_version: o.version,
                });
            }
        }
        Ok(outcome)
    }

    /// Lists keys holding a live value in `scope` (optionally one namespace), paginated.
    pub async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>> {
        self.0.store.list_keys(scope, namespace, after, limit).await
    }

    /// Lists scopes holding a live value (optionally of one kind), paginated.
    pub async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>> {
        self.0.store.list_scopes(kind, after, limit).await
    }

    /// Deletes every live slot of a scope (tombstones, versions raised). Returns how many.
    pub async fn clear(&self, scope: &Scope) -> Result<u64> {
        let count = self.0.store.clear(scope).await?;
        self.admin_event("scope cleared", scope, count);
        if count > 0 {
            self.emit(|| Event::Cleared {
                scope: scope.clone(),
                count,
            });
        }
        Ok(count)
    }

    /// Physically removes an execution's state (its `execution` scope and nothing else); its
    /// version floor keeps later writes above every version it had. Returns rows removed.
    pub async fn purge_execution(&self, execution_id: &str) -> Result<u64> {
        self.purge_scope(&Scope::execution(execution_id)?).await
    }

    /// Physically removes every slot of `scope`, keeping its version floor.
    pub async fn purge_scope(&self, scope: &Scope) -> Result<u64> {
        let count = self.0.store.purge_scope(scope).await?;
        self.admin_event("scope purged", scope, count);
        if count > 0 {
            self.emit(|| Event::Purged {
                scope: scope.clone(),
                count,
            });
        }
        Ok(count)
    }

    /// Physically removes expired slots, keeping version floors. Returns rows removed.
    pub async fn purge_expired(&self) -> Result<u64> {
        let count = self.0.store.purge_expired().await?;
        if count > 0 {
            tracing::info!(target: "state", count, "expired slots purged");
        } else {
            tracing::debug!(target: "state", count, "expired slots purged");
        }
        Ok(count)
    }

    /// The `INFO` event of a clear or purge of `scope`.
    fn admin_event(&self, what: &'static str, scope: &Scope, count: u64) {
        let ids = &self.0.config.trace_ids;
        tracing::info!(
            target: "state",
            kind = scope.kind().as_str(),
            scope = %ids.scope(scope),
            count,
            "{what}"
        );
    }
}
