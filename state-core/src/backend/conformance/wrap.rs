//! A store around the store under test, for checks that must count its calls, interfere
//! with its commits or fail its change-log reads: every call goes to the inner store, after
//! the hooks a check switched on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use std::future::Future;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::prelude::*;
use crate::{Change, Page, Record, Restore};

/// Calls the store received.
#[derive(Default, Debug)]
pub(super) struct Counts {
    pub(super) loads: AtomicU64,
    pub(super) commits: AtomicU64,
    /// Commits the store answered with a version conflict.
    pub(super) conflicts: AtomicU64,
}

/// The store under test with hooks.
pub(super) struct Wrapped {
    inner: Arc<dyn Store>,
    pub(super) counts: Counts,
    /// Every commit is preceded by another writer's write of 999 to this slot.
    interfere: Option<Slot>,
    /// The next commit first runs this (another writer's commit, say).
    meddle: Mutex<Option<BoxFuture<'static, crate::Result<()>>>>,
    /// This many reads of the change log fail (a lost connection), then they read again.
    pub(super) log_failures: AtomicU32,
    /// Every read of the change log says the store keeps none.
    no_log: bool,
    /// The cursor of every read of the change log.
    pub(super) cursors: Mutex<Vec<u64>>,
}

impl Wrapped {
    /// `inner` with every hook off.
    pub(super) fn new(inner: Arc<dyn Store>) -> Self {
        Wrapped {
            inner,
            counts: Counts::default(),
            interfere: None,
            meddle: Mutex::new(None),
            log_failures: AtomicU32::new(0),
            no_log: false,
            cursors: Mutex::new(Vec::new()),
        }
    }

    /// Every commit conflicts on `slot`: another writer writes it first.
    pub(super) fn interfering(mut self, slot: Slot) -> Self {
        self.interfere = Some(slot);
        self
    }

    /// A store that keeps no change log.
    pub(super) fn without_log(mut self) -> Self {
        self.no_log = true;
        self
    }

    /// The next commit first awaits `meddle` (which may commit through this store too).
    pub(super) fn before_next_commit(
        &self,
        meddle: impl Future<Output = crate::Result<()>> + Send + 'static,
    ) {
        *self.meddle.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(meddle));
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// The hooks of a change-log read (`after`: its cursor; `None` for the log's head).
    fn on_log_read(&self, after: Option<u64>) -> crate::Result<()> {
        if self.no_log {
            return Err(Error::InvalidArgument(
                "this store keeps no change log".into(),
            ));
        }
        let failing = self
            .log_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(Error::store(std::io::Error::other("connection lost")));
        }
        if let Some(after) = after {
            self.cursors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(after);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Wrapped {
    async fn load_many(&self, slots: &[Slot]) -> crate::Result<Vec<Record>> {
        Self::count(&self.counts.loads);
        self.inner.load_many(slots).await
    }

    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> crate::Result<Vec<(SlotKey, Record)>> {
        Self::count(&self.counts.loads);
        self.inner.load_scope(scope, namespace).await
    }

    async fn load_rows(
        &self,
        scope: Option<&Scope>,
    ) -> crate::Result<Vec<crate::Result<(Slot, Record)>>> {
        self.inner.load_rows(scope).await
    }

    async fn commit(&self, batch: Batch) -> crate::Result<CommitOutcome> {
        Self::count(&self.counts.commits);
        let meddler = self.meddle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(meddle) = meddler {
            meddle.await?;
        }
        if let Some(slot) = &self.interfere {
            let w = Write::apply(slot.clone(), vec![Op::set(Path::root(), 999.into())]);
            let other = Batch::new(vec![w]).max_value_bytes(batch.max_value_bytes);
            self.inner.commit(other).await?;
        }
        let outcome = self.inner.commit(batch).await?;
        if let CommitOutcome::Conflict(_) = outcome {
            Self::count(&self.counts.conflicts);
        }
        Ok(outcome)
    }

    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> crate::Result<Page<SlotKey>> {
        self.inner.list_keys(scope, namespace, after, limit).await
    }

    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> crate::Result<Page<Scope>> {
        self.inner.list_scopes(kind, after, limit).await
    }

    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> crate::Result<Page<Scope>> {
        self.inner.list_stored_scopes(kind, after, limit).await
    }

    async fn restore(&self, restore: Restore) -> crate::Result<u64> {
        self.inner.restore(restore).await
    }

    async fn clear(&self, scope: &Scope) -> crate::Result<u64> {
        self.inner.clear(scope).await
    }

    async fn purge_scope(&self, scope: &Scope) -> crate::Result<u64> {
        self.inner.purge_scope(scope).await
    }

    async fn purge_expired(&self) -> crate::Result<u64> {
        self.inner.purge_expired().await
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }

    async fn read_changes(
        &self,
        after: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> crate::Result<Vec<Change>> {
        self.on_log_read(Some(after))?;
        self.inner.read_changes(after, filter, limit).await
    }

    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> crate::Result<Vec<Change>> {
        self.inner.slot_history(slot, before, limit).await
    }

    async fn last_change(&self) -> crate::Result<u64> {
        self.on_log_read(None)?;
        self.inner.last_change().await
    }

    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.change_signal()
    }
}
