//! Helpers shared by the contract tests: engines on a manual clock, and store wrappers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use state_core::{
    Batch, CommitOutcome, Engine, EngineConfig, ManualClock, MemoryStore, Op, Path, RetryPolicy,
    Scope, Slot, Timestamp, Write,
};

use crate::delegate::delegate_store;

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

delegate_store!(
    Wrapped,
    load | this | this.counts.loads.fetch_add(1, Ordering::SeqCst),
    commit | this,
    batch | {
        this.counts.commits.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = &this.interfere {
            let w = Write::apply(slot.clone(), vec![Op::set(Path::root(), 999.into())]);
            this.inner
                .commit(Batch::new(vec![w]).max_value_bytes(batch.max_value_bytes))
                .await?;
        }
        let outcome = this.inner.commit(batch).await?;
        if let CommitOutcome::Conflict(_) = outcome {
            this.counts.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }
);
