//! The conformance suite against `MemoryStore` — and against three deliberately broken stores,
//! each of which it must catch.

use std::sync::Arc;

#[path = "support/delegate.rs"]
mod delegate;

use delegate::delegate_store;
use state_core::backend::conformance::{self, Failure};
use state_core::{Batch, CommitOutcome, MemoryStore, Op, Path, Store, WriteKind};

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

delegate_store!(
    Broken,
    commit | this,
    batch | {
        // As every store's commit does first: nothing below may touch a value nested too deep.
        let mut batch = state_core::backend::check_batch(batch)?;
        match this.defect {
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
                this.inner.commit(batch).await
            }
            Defect::InitialAfterTombstone => {
                for w in &mut batch.writes {
                    if let WriteKind::Apply {
                        ops,
                        initial: Some(init),
                    } = &mut w.kind
                    {
                        let current = this.inner.load(&w.slot).await?;
                        if current.version > 0 && current.value.is_none() {
                            ops.insert(0, Op::set(Path::root(), init.clone()));
                        }
                    }
                }
                this.inner.commit(batch).await
            }
            Defect::NonAtomic => {
                let mut outcomes = Vec::new();
                for w in batch.writes {
                    let one = Batch::new(vec![w]).max_value_bytes(batch.max_value_bytes);
                    match this.inner.commit(one).await? {
                        CommitOutcome::Committed(o) => outcomes.extend(o),
                        conflict => return Ok(conflict),
                    }
                }
                Ok(CommitOutcome::Committed(outcomes))
            }
        }
    }
);

async fn failures_of(defect: Defect) -> Vec<&'static str> {
    failures(defect).await.iter().map(|f| f.check).collect()
}

async fn failures(defect: Defect) -> Vec<Failure> {
    let result = conformance::run(&move |clock| async move {
        Arc::new(Broken {
            inner: MemoryStore::with_clock(clock),
            defect,
        }) as Arc<dyn Store>
    })
    .await;
    result.expect_err("a broken store passed the conformance suite")
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

/// A check written with `assert!`s (as the engine-level checks are) fails by panicking: that
/// is a failure of its own, with the panic's message, and the other checks still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_check_is_a_failure_with_its_message() {
    let failures = failures(Defect::IgnoresVersions).await;
    let stale = failures
        .iter()
        .find(|f| f.check == "stale_cas_after_a_delete_fails_and_changes_nothing")
        .expect("a stale CAS that overwrote a tombstone went unnoticed");
    assert!(stale.message.starts_with("panicked: "), "{stale}");
    let names: Vec<&str> = failures.iter().map(|f| f.check).collect();
    assert!(
        names.contains(&"cas_is_strict_and_tombstones_stay"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_returning_initial_after_a_tombstone_fails() {
    let failed = failures_of(Defect::InitialAfterTombstone).await;
    assert!(
        failed.contains(&"initial_only_before_the_first_write"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"initial_only_before_the_first_write_of_a_handle"),
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
        failed.contains(&"a_batch_over_three_slots_whose_third_op_overflows_writes_nothing"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"a_cas_conflict_fails_the_whole_batch"),
        "{failed:?}"
    );
}

#[test]
fn the_suite_covers_the_contract() {
    let names = conformance::check_names();
    assert!(names.len() >= 60, "{names:?}");
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "a check is listed twice");
}
