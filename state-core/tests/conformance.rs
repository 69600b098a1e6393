//! The conformance suite against `MemoryStore` — and against three deliberately broken stores,
//! each of which it must catch.

use std::sync::Arc;

use state_core::conformance::{self, Failure};
use state_core::{
    Batch, Clock, CommitOutcome, MemoryStore, Op, Page, Path, Record, Result, Scope, ScopeKind,
    Slot, SlotKey, Store, WriteKind, async_trait,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance::assert_conformance(&|clock| async move {
        Arc::new(MemoryStore::with_clock(clock)) as Arc<dyn Store>
    })
    .await;
}

/// How a broken store deviates from the contract.
#[derive(Clone, Copy)]
enum Defect {
    /// Treats every CAS write as unconditional.
    IgnoresVersions,
    /// Starts Apply writes from `initial` after a tombstone, not only at version 0.
    InitialAfterTombstone,
    /// Commits a batch write by write, keeping the writes before a failing one.
    NonAtomic,
}

struct Broken {
    inner: MemoryStore,
    defect: Defect,
}

#[async_trait]
impl Store for Broken {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>> {
        self.inner.load_many(slots).await
    }
    async fn load_scope(&self, s: &Scope, ns: Option<&str>) -> Result<Vec<(SlotKey, Record)>> {
        self.inner.load_scope(s, ns).await
    }
    async fn commit(&self, mut batch: Batch) -> Result<CommitOutcome> {
        match self.defect {
            Defect::IgnoresVersions => {
                for w in &mut batch.writes {
                    if let WriteKind::Cas { value, .. } = &w.kind {
                        let op = match value {
                            Some(v) => Op::set(Path::root(), v.clone()),
                            None => Op::delete(Path::root()),
                        };
                        w.kind = WriteKind::Apply {
                            ops: vec![op],
                            initial: None,
                        };
                    }
                }
                self.inner.commit(batch).await
            }
            Defect::InitialAfterTombstone => {
                for w in &mut batch.writes {
                    if let WriteKind::Apply {
                        ops,
                        initial: Some(init),
                    } = &mut w.kind
                    {
                        let current = self.inner.load(&w.slot).await?;
                        if current.version > 0 && current.value.is_none() {
                            ops.insert(0, Op::set(Path::root(), init.clone()));
                        }
                    }
                }
                self.inner.commit(batch).await
            }
            Defect::NonAtomic => {
                let mut outcomes = Vec::new();
                for w in batch.writes {
                    let one = Batch {
                        writes: vec![w],
                        max_value_bytes: batch.max_value_bytes,
                    };
                    match self.inner.commit(one).await? {
                        CommitOutcome::Committed(o) => outcomes.extend(o),
                        conflict => return Ok(conflict),
                    }
                }
                Ok(CommitOutcome::Committed(outcomes))
            }
        }
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

async fn failures_of(defect: Defect) -> Vec<&'static str> {
    let result = conformance::run(&move |clock| async move {
        Arc::new(Broken {
            inner: MemoryStore::with_clock(clock),
            defect,
        }) as Arc<dyn Store>
    })
    .await;
    let failures: Vec<Failure> = result.expect_err("a broken store passed the conformance suite");
    failures.iter().map(|f| f.check).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_ignoring_versions_fails() {
    let failed = failures_of(Defect::IgnoresVersions).await;
    assert!(
        failed.contains(&"cas_is_strict_and_tombstones_stay"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"a_cas_conflict_fails_the_whole_batch"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"purging_a_scope_keeps_versions_rising"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_returning_initial_after_a_tombstone_fails() {
    let failed = failures_of(Defect::InitialAfterTombstone).await;
    assert!(
        failed.contains(&"initial_only_before_the_first_write"),
        "{failed:?}"
    );
    // The same defect after an expiry (which reads as a tombstone) is caught too.
    assert!(
        failed.contains(&"expired_slots_read_as_tombstones"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_committing_batches_non_atomically_fails() {
    let failed = failures_of(Defect::NonAtomic).await;
    assert!(
        failed.contains(&"a_failing_op_fails_the_whole_batch"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"a_cas_conflict_fails_the_whole_batch"),
        "{failed:?}"
    );
}

#[test]
fn the_suite_covers_the_contract() {
    assert!(conformance::CHECKS.len() >= 20, "{:?}", conformance::CHECKS);
}
