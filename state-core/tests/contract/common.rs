//! Helpers shared by the contract tests: engines on a manual clock, and store wrappers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use state_core::{
    Batch, Clock, CommitOutcome, Engine, EngineConfig, ManualClock, MemoryStore, Page, Record,
    Result, RetryPolicy, Scope, ScopeKind, Slot, SlotKey, Store, Timestamp, async_trait,
};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// An engine over a memory store on a manual clock, with instant retries.
pub fn engine() -> (Engine, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    let config = EngineConfig::default()
        .retry(RetryPolicy::new(10).with_backoff(Duration::ZERO, Duration::ZERO));
    (Engine::with_config(Arc::new(store), config), clock)
}

pub fn exec(id: &str) -> Scope {
    Scope::execution(id).unwrap()
}

pub fn slot(scope: &Scope, key: &str) -> Slot {
    Slot::new(scope.clone(), "Test", key).unwrap()
}

/// Counts the calls a store receives.
#[derive(Default, Debug)]
pub struct Counts {
    pub loads: AtomicU64,
    pub commits: AtomicU64,
    /// Commits the store answered with a version conflict.
    pub conflicts: AtomicU64,
}

/// A store that counts loads and commits and otherwise delegates to a `MemoryStore`.
/// If `interfere` names a slot, every commit is preceded by another writer's write to it.
pub struct Wrapped {
    pub inner: MemoryStore,
    pub counts: Arc<Counts>,
    pub interfere: Option<Slot>,
}

impl Wrapped {
    pub fn new(interfere: Option<Slot>) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let store = Wrapped {
            inner: MemoryStore::new(),
            counts: counts.clone(),
            interfere,
        };
        (store, counts)
    }
}

#[async_trait]
impl Store for Wrapped {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_many(slots).await
    }
    async fn load_scope(&self, s: &Scope, ns: Option<&str>) -> Result<Vec<(SlotKey, Record)>> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_scope(s, ns).await
    }
    async fn commit(&self, batch: Batch) -> Result<CommitOutcome> {
        self.counts.commits.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = &self.interfere {
            let w = state_core::Write::apply(
                slot.clone(),
                vec![state_core::Op::set(state_core::Path::root(), 999.into())],
            );
            self.inner
                .commit(Batch {
                    writes: vec![w],
                    max_value_bytes: batch.max_value_bytes,
                })
                .await?;
        }
        let outcome = self.inner.commit(batch).await?;
        if let CommitOutcome::Conflict(_) = outcome {
            self.counts.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }
    async fn list_keys(
        &self,
        s: &Scope,
        ns: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>> {
        self.inner.list_keys(s, ns, after, limit).await
    }
    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>> {
        self.inner.list_scopes(kind, after, limit).await
    }
    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>> {
        self.inner.list_stored_scopes(kind, after, limit).await
    }
    async fn restore(&self, records: Vec<(Slot, Record)>) -> Result<u64> {
        self.inner.restore(records).await
    }
    async fn clear(&self, s: &Scope) -> Result<u64> {
        self.inner.clear(s).await
    }
    async fn purge_scope(&self, s: &Scope) -> Result<u64> {
        self.inner.purge_scope(s).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }
}
