//! A `Store` that delegates everything but `commit` to a `MemoryStore` field named `inner`:
//! the test stores (counting, interfering, deliberately broken) differ only in `commit`.

/// `delegate_store!(Type, commit |this, batch| body)` implements `Store` for `Type`; `body` is
/// `commit` (returning `Result<CommitOutcome>`), with `this` bound to `&Type` and `batch` to the
/// `Batch` (a pattern, so `mut batch` works). An optional `load |this| expr` runs before every
/// load (to count them).
macro_rules! delegate_store {
    ($ty:ty, commit |$this:ident, $batch:pat_param| $commit:expr) => {
        delegate_store!($ty, load | _this | (), commit | $this, $batch | $commit);
    };
    ($ty:ty, load |$lthis:ident| $on_load:expr, commit |$this:ident, $batch:pat_param| $commit:expr) => {
        delegate_store!(
            $ty,
            load | $lthis | $on_load,
            changes | _this,
            _after | Ok(()),
            commit | $this,
            $batch | $commit
        );
    };
    // `changes |this, after| expr` (a `Result<()>`) runs before every read of the change log
    // (`after`: `Some` cursor) and of its head (`None`); the log is the inner store's.
    ($ty:ty, changes |$cthis:ident, $after:ident| $on_changes:expr, commit |$this:ident, $batch:pat_param| $commit:expr) => {
        delegate_store!(
            $ty,
            load | _this | (),
            changes | $cthis,
            $after | $on_changes,
            commit | $this,
            $batch | $commit
        );
    };
    ($ty:ty, load |$lthis:ident| $on_load:expr, changes |$cthis:ident, $after:ident| $on_changes:expr, commit |$this:ident, $batch:pat_param| $commit:expr) => {
        #[state_core::backend::async_trait]
        impl state_core::Store for $ty {
            async fn load_many(
                &self,
                slots: &[state_core::Slot],
            ) -> state_core::Result<Vec<state_core::Record>> {
                let $lthis = self;
                $on_load;
                self.inner.load_many(slots).await
            }
            async fn load_scope(
                &self,
                scope: &state_core::Scope,
                namespace: Option<&str>,
            ) -> state_core::Result<Vec<(state_core::SlotKey, state_core::Record)>> {
                let $lthis = self;
                $on_load;
                self.inner.load_scope(scope, namespace).await
            }
            async fn commit(
                &self,
                batch: state_core::Batch,
            ) -> state_core::Result<state_core::CommitOutcome> {
                let $this = self;
                let $batch = batch;
                $commit
            }
            async fn list_keys(
                &self,
                scope: &state_core::Scope,
                namespace: Option<&str>,
                after: Option<&state_core::SlotKey>,
                limit: usize,
            ) -> state_core::Result<state_core::Page<state_core::SlotKey>> {
                self.inner.list_keys(scope, namespace, after, limit).await
            }
            async fn list_scopes(
                &self,
                kind: Option<state_core::ScopeKind>,
                after: Option<&state_core::Scope>,
                limit: usize,
            ) -> state_core::Result<state_core::Page<state_core::Scope>> {
                self.inner.list_scopes(kind, after, limit).await
            }
            async fn list_stored_scopes(
                &self,
                kind: Option<state_core::ScopeKind>,
                after: Option<&state_core::Scope>,
                limit: usize,
            ) -> state_core::Result<state_core::Page<state_core::Scope>> {
                self.inner.list_stored_scopes(kind, after, limit).await
            }
            async fn restore(&self, restore: state_core::Restore) -> state_core::Result<u64> {
                self.inner.restore(restore).await
            }
            async fn clear(&self, scope: &state_core::Scope) -> state_core::Result<u64> {
                self.inner.clear(scope).await
            }
            async fn purge_scope(&self, scope: &state_core::Scope) -> state_core::Result<u64> {
                self.inner.purge_scope(scope).await
            }
            async fn purge_expired(&self) -> state_core::Result<u64> {
                self.inner.purge_expired().await
            }
            fn clock(&self) -> std::sync::Arc<dyn state_core::Clock> {
                self.inner.clock()
            }
            async fn read_changes(
                &self,
                after: u64,
                filter: &state_core::ChangeFilter,
                limit: usize,
            ) -> state_core::Result<Vec<state_core::Change>> {
                let $cthis = self;
                let $after = Some(after);
                $on_changes?;
                self.inner.read_changes(after, filter, limit).await
            }
            async fn last_change(&self) -> state_core::Result<u64> {
                let $cthis = self;
                let $after: Option<u64> = None;
                $on_changes?;
                self.inner.last_change().await
            }
        }
    };
}

pub(crate) use delegate_store;
