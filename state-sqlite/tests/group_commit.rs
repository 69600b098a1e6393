//! Group commit: merged transactions, counted by SQLite's commit hook; per-caller atomicity
//! inside them; cancellation; persistence.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, Executor, SqliteConnection};
use state_core::{Engine, Error, NumKind, Op, Path, Scope, Slot, Store, Write};
use state_sqlite::{SqliteOptions, SqliteStore};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::execution("run-1").unwrap(), "Test", key).unwrap()
}

async fn store_in(dir: &tempfile::TempDir) -> (Arc<SqliteStore>, std::path::PathBuf) {
    let path = dir.path().join("state.db");
    (Arc::new(SqliteStore::open(&path).await.unwrap()), path)
}

/// Waits (bounded) until `cond` holds, yielding to the store's tasks.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Two stores on one file: `a` (configured by `options`) and another connection's, each with
/// an engine.
async fn two_stores(
    dir: &tempfile::TempDir,
    options: impl FnOnce(SqliteOptions) -> SqliteOptions,
) -> (Arc<SqliteStore>, Engine, Engine) {
    let path = dir.path().join("state.db");
    let a = Arc::new(
        SqliteStore::open_with(options(SqliteOptions::file(&path)))
            .await
            .unwrap(),
    );
    let b = SqliteStore::open(&path).await.unwrap();
    let ea = Engine::with_config(a.clone(), Default::default());
    (a, ea, Engine::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_times_500_increments_are_merged_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<u64>(slot("counter"));
    let before = store.stats();
    state_sql::testing::increment_concurrently(&h, 64, 500).await;
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(32_000), 32_000));
    let s = store.stats();
    let commits = s.commits - before.commits;
    let batches = s.batches - before.batches;
    assert_eq!(batches, 32_000);
    eprintln!(
        "64x500: {commits} COMMITs for {batches} caller commits, largest group {}",
        s.max_group
    );
    assert!(
        commits * 8 <= batches,
        "group commit: {commits} COMMITs for {batches} caller commits (groups of up to {})",
        s.max_group
    );
}

#[tokio::test]
async fn an_idle_commit_gets_exactly_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<u64>(slot("n"));
    h.increment(1).await.unwrap(); // warm up
    let before = store.stats();
    h.increment(1).await.unwrap();
    let after = store.stats();
    assert_eq!(after.commits - before.commits, 1, "one real COMMIT");
    assert_eq!(after.groups - before.groups, 1);
    assert_eq!(after.batches - before.batches, 1);
}

/// Holds the database's write lock from a second connection, so the committer's next
/// transaction waits and everything submitted meanwhile is merged into the one after.
async fn hold_write_lock(path: &std::path::Path) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    conn.execute("BEGIN IMMEDIATE").await.unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_batch_merged_with_63_good_ones_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    engine.handle::<u8>(slot("small")).set(255).await.unwrap();
    let groups_before = store.stats().groups;
    let mut blocker = hold_write_lock(&path).await;
    // The probe's transaction waits on the lock; the 64 batches queue behind it.
    let probe = tokio::spawn({
        let engine = engine.clone();
        async move { engine.handle::<u64>(slot("probe")).increment(1).await }
    });
    wait_for("the probe's transaction to start", || {
        store.stats().groups == groups_before + 1
    })
    .await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut writes = vec![Write::apply(
                    slot(&format!("k{i}")),
                    vec![Op::set(Path::root(), json!(i))],
                )];
                if i == 17 {
                    // This batch also overflows a u8: it must fail alone.
                    writes.push(Write::apply(
                        slot("small"),
                        vec![Op::increment(Path::root(), 1u8.into(), NumKind::U8)],
                    ));
                }
                engine.commit(writes).await
            })
        })
        .collect();
    wait_for("64 queued batches", || store.stats().queued == 64).await;
    conn_release(&mut blocker).await;
    probe.await.unwrap().unwrap();
    let mut failed = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(Error::Overflow { slot: s, .. }) => {
                assert_eq!(s.key(), "small");
                failed.push(i);
            }
            Err(e) => panic!("batch {i}: {e}"),
        }
    }
    assert_eq!(failed, vec![17]);
    assert!(
        store.stats().max_group >= 64,
        "the 64 batches shared one transaction: {:?}",
        store.stats()
    );
    let records = store
        .load_many(&(0..64).map(|i| slot(&format!("k{i}"))).collect::<Vec<_>>())
        .await
        .unwrap();
    for (i, r) in records.iter().enumerate() {
        if i == 17 {
            assert_eq!(r.version, 0, "the failing batch wrote its other slot");
        } else {
            assert_eq!((r.version, r.value.clone()), (1, Some(json!(i))));
        }
    }
    assert_eq!(
        engine.handle::<u8>(slot("small")).get().await.unwrap(),
        Some(255)
    );
}

async fn conn_release(conn: &mut SqliteConnection) {
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_commit_future_never_half_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let mut blocker = hold_write_lock(&path).await;
    let batch = state_core::Batch::new(vec![
        Write::apply(slot("a"), vec![Op::set(Path::root(), json!(1))]),
        Write::apply(slot("b"), vec![Op::set(Path::root(), json!(1))]),
    ])
    .max_value_bytes(1 << 20);
    // Start the commit, let it reach the committer, then drop the caller's future.
    let fut = store.commit(batch);
    let _ = tokio::time::timeout(Duration::from_millis(20), fut).await;
    conn_release(&mut blocker).await;
    wait_for("the committer to finish", || {
        store.stats().groups >= 1 && store.stats().queued == 0
    })
    .await;
    // Wait for the group's transaction to end: a read then sees both writes or neither.
    let engine = Engine::with_config(store.clone(), Default::default());
    engine.handle::<u8>(slot("sync")).set(1).await.unwrap();
    let r = store.load_many(&[slot("a"), slot("b")]).await.unwrap();
    assert_eq!(r[0].version, r[1].version, "half-applied: {r:?}");
    assert_eq!(
        r[0].version, 1,
        "the committer owned the batch: it committed"
    );
}

/// The committer runs in the task of the caller that found it idle. Cancelling that caller
/// while other callers' commits wait behind its transaction must not strand them: the work in
/// flight and the queue go to a spawned task (here the followers move the turn there as they
/// arrive; `a_dropped_commit_future_never_half_applies` covers a leader cancelled alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_caller_that_runs_the_committer_strands_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    engine.handle::<u64>(slot("warm")).set(1).await.unwrap();
    let mut blocker = hold_write_lock(&path).await;
    // The leader: its transaction waits for the lock.
    let leader = engine.handle::<u64>(slot("leader"));
    let leading = tokio::spawn(async move { leader.set(7).await });
    wait_for("the leader's group to start", || store.stats().groups >= 2).await;
    // Followers queue behind it.
    let followers: Vec<_> = (0..16u64)
        .map(|i| {
            let h = engine.handle::<u64>(slot(&format!("f{i}")));
            tokio::spawn(async move { h.set(i).await })
        })
        .collect();
    wait_for("the followers to queue", || store.stats().queued == 16).await;
    leading.abort();
    assert!(leading.await.unwrap_err().is_cancelled());
    conn_release(&mut blocker).await;
    for (i, f) in followers.into_iter().enumerate() {
        let done = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("a follower was stranded by the cancelled leader");
        done.unwrap().unwrap();
        let got = engine.handle::<u64>(slot(&format!("f{i}"))).get().await;
        assert_eq!(got.unwrap(), Some(i as u64));
    }
    // The leader's own batch was in flight: the spawned task finished it.
    assert_eq!(
        engine.handle::<u64>(slot("leader")).get().await.unwrap(),
        Some(7)
    );
}

/// Polls `fut` once (it queues its commit and, finding the committer idle, starts running it)
/// and leaves it pending.
async fn poll_once<F: Future + Unpin>(fut: &mut F) {
    std::future::poll_fn(|cx| {
        assert!(
            std::pin::Pin::new(&mut *fut).poll(cx).is_pending(),
            "the commit finished on its first poll"
        );
        std::task::Poll::Ready(())
    })
    .await
}

/// A commit future that was polled once and is then left alive but unpolled (`select!` on a
/// pinned future, a `buffered` stream whose consumer awaits something else) must not hold up
/// the other writes of the process, even when it was running the committer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_left_unpolled_does_not_block_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let (first, second) = (
        engine.handle::<u64>(slot("a")),
        engine.handle::<u64>(slot("b")),
    );
    // Another connection's lock keeps the turn in flight (waiting through sqlx) however
    // fast the commit itself would be.
    let mut blocker = hold_write_lock(&path).await;
    let mut stuck = Box::pin(first.set(1));
    poll_once(&mut stuck).await;
    let other = tokio::spawn(async move { second.set(2).await });
    wait_for("a commit to meet the lock", || {
        store.stats().inline_busy >= 1
    })
    .await;
    conn_release(&mut blocker).await;
    tokio::time::timeout(Duration::from_secs(30), other)
        .await
        .expect("a write waited for a commit future nobody polled")
        .unwrap()
        .unwrap();
    let second = engine.handle::<u64>(slot("b"));
    stuck.await.unwrap();
    assert_eq!(first.get().await.unwrap(), Some(1));
    assert_eq!(second.get().await.unwrap(), Some(2));
}

/// The store belongs to the runtime that opened it: a caller on another runtime (here one
/// that is shut down right after) does not take the committer with it.
#[test]
fn callers_on_another_runtime_do_not_take_the_committer_away() {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = home.block_on(async { store_in(&dir).await.0 });
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<u64>(slot("visits"));
    for round in 0..5u64 {
        let visiting = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        visiting.block_on(async {
            h.increment(1).await.unwrap();
            // Cancelled after its first poll (it may have finished in it): its commit may
            // still apply.
            let mut cancelled = Box::pin(h.increment(1));
            std::future::poll_fn(|cx| {
                let _ = cancelled.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
        });
        drop(visiting);
        // From no runtime at all.
        futures::executor::block_on(h.increment(1)).unwrap();
        let got = home.block_on(h.get()).unwrap().unwrap();
        assert!(
            (round * 2 + 2..=round * 3 + 3).contains(&got),
            "round {round}: {got}"
        );
    }
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
        engine
            .handle::<Vec<String>>(slot("list"))
            .append("a".into())
            .await
            .unwrap();
        engine.handle::<u32>(slot("gone")).set(1).await.unwrap();
        engine.handle::<u32>(slot("gone")).delete().await.unwrap();
    }
    let engine = Engine::new(
        SqliteStore::open_with(SqliteOptions::file(&path))
            .await
            .unwrap(),
    );
    let list = engine
        .handle::<Vec<String>>(slot("list"))
        .get_versioned()
        .await
        .unwrap();
    assert_eq!((list.value, list.version), (Some(vec!["a".to_string()]), 1));
    let gone = engine
        .handle::<u32>(slot("gone"))
        .get_versioned()
        .await
        .unwrap();
    assert_eq!(
        (gone.value, gone.version),
        (None, 2),
        "the tombstone and its version persist"
    );
}

/// A store in `dir` opened with `options`, its counter `n` at 1, and another connection
/// holding the write lock.
async fn counter_behind_a_lock(
    dir: &tempfile::TempDir,
    options: impl FnOnce(SqliteOptions) -> SqliteOptions,
) -> (
    Arc<SqliteStore>,
    state_core::SlotHandle<u64>,
    SqliteConnection,
) {
    let path = dir.path().join("state.db");
    let store = Arc::new(
        SqliteStore::open_with(options(SqliteOptions::file(&path)))
            .await
            .unwrap(),
    );
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<u64>(slot("n"));
    h.increment(1).await.unwrap();
    (store, h, hold_write_lock(&path).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_busy_timeout_is_retried_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, mut blocker) = counter_behind_a_lock(&dir, |o: SqliteOptions| {
        o.busy_timeout(Duration::from_millis(1))
    })
    .await;
    let write = tokio::spawn({
        let h = h.clone();
        async move { h.increment(1).await }
    });
    // Hold the lock far longer than busy_timeout: the committer must keep retrying.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn_release(&mut blocker).await;
    assert_eq!(write.await.unwrap().unwrap(), 2);
    assert!(store.stats().retries > 0, "{:?}", store.stats());
    assert_eq!(h.get_versioned().await.unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_never_released_fails_the_commit_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open_with(
        SqliteOptions::file(&path)
            .busy_timeout(Duration::from_millis(1))
            .retry_for(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let engine = Engine::new(store);
    let h = engine.handle::<u64>(slot("n"));
    let mut blocker = hold_write_lock(&path).await;
    let e = h.increment(1).await.unwrap_err();
    assert!(e.to_string().contains("stayed locked"), "{e}");
    conn_release(&mut blocker).await;
    assert_eq!(
        h.get_versioned().await.unwrap().version,
        0,
        "a failed commit wrote"
    );
    assert_eq!(h.increment(1).await.unwrap(), 1);
}

#[tokio::test]
async fn listing_seeks_the_primary_key_instead_of_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    use state_sql::reads::{list_keys_sql, list_scopes_sql};
    for (ns, after) in [(false, false), (true, false), (false, true), (true, true)] {
        let p = plan(&mut conn, list_keys_sql(ns, after)).await;
        assert!(
            p.contains("SEARCH slots USING PRIMARY KEY (kind=? AND scope_id=? AND scope_sub=?"),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "listing keys sorts: {p}");
        if after {
            assert!(p.contains(">"), "the cursor is not part of the seek: {p}");
        }
        for live in [false, true] {
            let p = plan(&mut conn, list_scopes_sql(live, ns, after)).await;
            assert!(!p.contains("TEMP B-TREE"), "listing scopes sorts: {p}");
            if ns || after {
                assert!(
                    p.contains("SEARCH slots USING PRIMARY KEY"),
                    "listing scopes scans: {p}"
                );
            }
        }
    }
}

async fn plan(conn: &mut SqliteConnection, sql: &str) -> String {
    let q = format!("EXPLAIN QUERY PLAN {sql}");
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&q).fetch_all(conn).await.unwrap();
    rows.into_iter()
        .map(|r| r.3)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn the_one_call_commit_never_overwrites_another_connections_write() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ea, eb) = two_stores(&dir, |o| o).await;
    let ha = ea.handle::<u64>(slot("n"));
    let hb = eb.handle::<u64>(slot("n"));
    ha.increment(1).await.unwrap(); // a now knows the slot: version 1, value 1
    ha.increment(1).await.unwrap();
    let fast = a.stats().fast_commits;
    assert!(
        fast >= 1,
        "the second commit took the one-call path: {:?}",
        a.stats()
    );
    hb.increment(10).await.unwrap(); // another connection moves it to 12, version 3
    assert_eq!(
        ha.increment(1).await.unwrap(),
        13,
        "built on the other connection's write"
    );
    assert_eq!(a.stats().cache_misses, 1, "{:?}", a.stats());
    assert_eq!(ha.get_versioned().await.unwrap().version, 4);
    // A stale CAS from a's point of view is still refused.
    assert!(ha.set_if(3, 0).await.is_err());
    // After a purge by another connection, a's knowledge is stale too: the write starts afresh.
    eb.purge_scope(slot("n").scope()).await.unwrap();
    assert_eq!(
        ha.increment(1).await.unwrap(),
        1,
        "the purged value is gone"
    );
    assert_eq!(
        ha.get_versioned().await.unwrap().version,
        6,
        "above the floor (one above the last version, 4)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_more_slots_than_one_select_takes_is_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let slots: Vec<Slot> = (0..5000).map(|i| slot(&format!("k{i}"))).collect();
    let writes = slots
        .iter()
        .enumerate()
        .map(|(i, s)| Write::apply(s.clone(), vec![Op::set(Path::root(), json!(i))]))
        .collect();
    let engine = Engine::with_config(store.clone(), Default::default());
    engine.commit(writes).await.unwrap();
    let records = store.load_many(&slots).await.unwrap();
    assert_eq!(records.len(), 5000);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.value == Some(json!(i)) && r.version == 1)
    );
}

/// A restore runs in the committer's write transaction; one of more slots than one SELECT
/// takes used to open a second transaction inside it and fail whole (`statectl import` of any
/// realistic export).
#[tokio::test]
async fn a_restore_of_more_slots_than_one_select_takes_commits_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let records: Vec<(Slot, state_core::Record)> = (0..5000)
        .map(|i| {
            let record = state_core::Record::new(Some(json!(i)), 3, None);
            (slot(&format!("r{i}")), record)
        })
        .collect();
    let slots: Vec<Slot> = records.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        store
            .restore(state_core::Restore::new(records))
            .await
            .unwrap(),
        5000
    );
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    let read = reopened.load_many(&slots).await.unwrap();
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, r)| r.value == Some(json!(i)) && r.version == 3),
        "every restored record is stored at its version"
    );
}

/// A read of more slots than one SELECT takes is a read transaction on a pooled reader; a
/// caller that drops it midway (a timeout) must not leave that reader in its old snapshot,
/// where later reads would miss acknowledged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_large_read_leaves_no_reader_in_an_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let slots: Vec<Slot> = (0..9000).map(|i| slot(&format!("k{i}"))).collect();
    let engine = Engine::with_config(store.clone(), Default::default());
    let writes = slots
        .iter()
        .map(|s| Write::apply(s.clone(), vec![Op::set(Path::root(), json!(0))]))
        .collect();
    engine.commit(writes).await.unwrap();
    // Drop large reads at many points, on every reader.
    let mut dropped = 0;
    for i in 0..40u64 {
        let read = store.load_many(&slots);
        if tokio::time::timeout(Duration::from_micros(200 + 150 * i), read)
            .await
            .is_err()
        {
            dropped += 1;
        }
    }
    assert!(
        dropped > 0,
        "no read was dropped midway: the test proves nothing"
    );
    let h = engine.handle::<u64>(slots[0].clone());
    for n in 1..=8u64 {
        h.set(n).await.unwrap();
        // Each read takes some reader of the pool: every one must see the write.
        for _ in 0..4 {
            assert_eq!(h.get().await.unwrap(), Some(n), "a reader missed write {n}");
        }
    }
}

/// The committer runs its commits on the write connection's handle, on the thread of whoever
/// runs it, where it never waits for a lock: one that meets another connection's lock runs
/// again through sqlx, whose worker thread waits it out (the busy timeout) while the runtime
/// goes on. Here the runtime has one thread, which must stay free to release the lock.
#[tokio::test(flavor = "current_thread")]
async fn a_commit_that_meets_a_lock_waits_for_it_without_blocking_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let busy_timeout = Duration::from_secs(10);
    let (store, h, mut blocker) =
        counter_behind_a_lock(&dir, |o| o.busy_timeout(busy_timeout)).await;
    let started = std::time::Instant::now();
    let write = tokio::spawn({
        let h = h.clone();
        async move { h.increment(1).await }
    });
    wait_for("the commit to meet the lock", || {
        store.stats().inline_busy == 1
    })
    .await;
    assert!(
        started.elapsed() < busy_timeout / 2,
        "the runtime's only thread waited for the lock ({:?})",
        started.elapsed()
    );
    assert!(!write.is_finished(), "the commit did not wait for the lock");
    conn_release(&mut blocker).await;
    assert_eq!(write.await.unwrap().unwrap(), 2);
    let s = store.stats();
    assert_eq!(
        (s.inline_busy, s.retries),
        (1, 0),
        "waited out through sqlx's busy timeout, not retried: {s:?}"
    );
    // The next commit runs on the handle again: it meets the next lock there.
    let mut blocker = hold_write_lock(&dir.path().join("state.db")).await;
    let write = tokio::spawn({
        let h = h.clone();
        async move { h.increment(1).await }
    });
    wait_for("the commit to meet the lock", || {
        store.stats().inline_busy == 2
    })
    .await;
    conn_release(&mut blocker).await;
    assert_eq!(write.await.unwrap().unwrap(), 3);
}

/// SQLite's automatic checkpoint would run inside a commit on the committer's thread; the
/// store turns it off on its write connection and checkpoints itself, so the WAL stays
/// bounded, and what was checkpointed reads back after reopening. With commits on sqlx's
/// thread (`inline_commits(false)`), SQLite's own checkpoint does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_with_commits_on_either_thread() {
    for inline in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let options = SqliteOptions::file(&path).inline_commits(inline);
        let store = Arc::new(SqliteStore::open_with(options).await.unwrap());
        let engine = Engine::with_config(store.clone(), Default::default());
        let text = "x".repeat(2000);
        // ~2 pages per commit (the slot row and its log row, 2 KB each): ~6000 pages.
        for i in 0..3000u32 {
            engine
                .handle::<String>(slot(&format!("k{}", i % 100)))
                .set(format!("{i}{text}"))
                .await
                .unwrap();
        }
        let s = store.stats();
        if inline {
            assert!(s.checkpoints >= 3, "{s:?}");
        } else {
            assert_eq!(s.checkpoints, 0, "{s:?}");
        }
        let wal = std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 8 << 20,
            "the WAL grew to {wal} bytes: not checkpointed ({s:?})"
        );
        drop(engine);
        drop(store);
        let reopened = Engine::new(SqliteStore::open(&path).await.unwrap());
        for k in 0..100u32 {
            let v = reopened
                .handle::<String>(slot(&format!("k{k}")))
                .get_versioned()
                .await
                .unwrap();
            assert_eq!(v.value, Some(format!("{}{text}", 2900 + k)));
            assert_eq!(v.version, 30);
        }
    }
}

/// The committer paces its checkpoints by the work its one-call commits do, not by their
/// number: a few large commits (1000 new slots each, ~50 WAL pages) are checkpointed as
/// they come, so the WAL stays near SQLite's 1000 pages, and everything reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_large_commits_are_checkpointed_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let engine = Engine::with_config(store.clone(), Default::default());
    for chunk in 0..60 {
        let writes: Vec<Write> = (0..1000)
            .map(|i| {
                let key = format!("key-{:06}", chunk * 1000 + i);
                Write::apply(slot(&key), vec![Op::set(Path::root(), json!(i))])
            })
            .collect();
        engine.commit(writes).await.unwrap();
    }
    let s = store.stats();
    assert_eq!(s.fast_commits, 60, "one-call commits: {s:?}");
    assert!(s.checkpoints >= 2, "{s:?}");
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(wal < 8 << 20, "the WAL grew to {wal} bytes ({s:?})");
    let keys = store
        .list_keys(slot("x").scope(), None, None, 100)
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 100);
    let last = engine.handle::<u64>(slot("key-059999"));
    assert_eq!(last.get().await.unwrap(), Some(999));
}

/// With `inline_commits(false)` every statement runs on sqlx's worker thread: a commit that
/// meets a lock waits there (no commit ran on the handle to meet it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_inline_commits_off_a_commit_waits_on_sqlxs_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, mut blocker) = counter_behind_a_lock(&dir, |o| o.inline_commits(false)).await;
    let write = tokio::spawn({
        let h = h.clone();
        async move { h.increment(1).await }
    });
    wait_for("the commit to start", || store.stats().groups == 2).await;
    // Inline, the commit would meet the lock at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.stats().inline_busy, 0);
    conn_release(&mut blocker).await;
    assert_eq!(write.await.unwrap().unwrap(), 2);
    let s = store.stats();
    assert_eq!(
        (s.inline_busy, s.retries, s.fast_commits),
        (0, 0, 2),
        "{s:?}"
    );
}

/// Open file descriptors of this process on `path` (the database, its WAL or shared memory).
#[cfg(target_os = "linux")]
fn open_fds_on(path: &std::path::Path) -> usize {
    let path = path
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
        .join(path.file_name().unwrap());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            target
                .to_string_lossy()
                .starts_with(&*path.to_string_lossy())
        })
        .count()
}

/// Dropping a store closes its file, whatever state its write connection was left in: the
/// committer prepares statements on the connection's handle, which must all be finalized
/// before sqlx closes it (SQLite refuses to close a connection with statements open), also
/// when the last thing it did ran through sqlx (here an admin write).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_closes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    for last_through_sqlx in [false, true] {
        let store = SqliteStore::open(&path).await.unwrap();
        let engine = Engine::new(store);
        engine.handle::<u64>(slot("n")).increment(1).await.unwrap();
        if last_through_sqlx {
            engine.purge_expired().await.unwrap();
        }
        assert!(open_fds_on(&path) > 0);
        drop(engine);
        wait_for("the database to be closed", || open_fds_on(&path) == 0).await;
    }
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    assert_eq!(
        engine.handle::<u64>(slot("n")).get().await.unwrap(),
        Some(2)
    );
}

#[tokio::test]
async fn a_value_too_large_to_compare_in_the_database_takes_the_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ea, eb) = two_stores(&dir, |o| o).await;
    let ha = ea.handle::<String>(slot("doc"));
    let large = |c: char| c.to_string().repeat(5000);
    // Never seen: assumed absent, one call.
    ha.set(large('a')).await.unwrap();
    assert_eq!((a.stats().fast_commits, a.stats().cache_misses), (1, 0));
    // Known to hold a value over the guard's limit: read, then written, with no wasted
    // one-call attempt, and built on another connection's write in between.
    ha.set(large('b')).await.unwrap();
    eb.handle::<String>(slot("doc"))
        .set("small".into())
        .await
        .unwrap();
    ha.set(large('c')).await.unwrap();
    let stats = a.stats();
    assert_eq!(
        (stats.fast_commits, stats.cache_misses),
        (1, 0),
        "{stats:?}"
    );
    let got = ha.get_versioned().await.unwrap();
    assert_eq!((got.value, got.version), (Some(large('c')), 4));
    // Small again: back to one call after the read that learns it.
    ha.set("s".into()).await.unwrap();
    ha.set("t".into()).await.unwrap();
    let stats = a.stats();
    assert_eq!(
        (stats.fast_commits, stats.cache_misses),
        (2, 0),
        "{stats:?}"
    );
    assert_eq!(ha.get_versioned().await.unwrap().version, 6);
}

/// A slot the committer never saw is assumed to have no row, and its write stores a new row
/// (migration 0006): a row another connection made meanwhile, or a floor it raised, must make
/// the whole one-call commit write nothing and the group run again on what it reads.
#[tokio::test]
async fn a_slot_assumed_new_that_another_connection_wrote_is_read_before_it_is_written() {
    for inline in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (a, ea, eb) = two_stores(&dir, |o| o.inline_commits(inline)).await;
        let add = |key: &str, n: i64| {
            Write::apply(
                slot(key),
                vec![Op::increment(Path::root(), n.into(), NumKind::U64)],
            )
        };
        // Another connection writes `x`; `a` has never seen it.
        eb.handle::<u64>(slot("x")).set(10).await.unwrap();
        // One commit of `a`: `x` (row there) and `y` (really new) — all or nothing, then read.
        ea.commit(vec![add("x", 1), add("y", 1)]).await.unwrap();
        let stats = a.stats();
        assert_eq!(stats.cache_misses, 1, "inline {inline}: {stats:?}");
        let x = ea.handle::<u64>(slot("x")).get_versioned().await.unwrap();
        let y = ea.handle::<u64>(slot("y")).get_versioned().await.unwrap();
        assert_eq!((x.value, x.version), (Some(11), 2), "inline {inline}");
        assert_eq!((y.value, y.version), (Some(1), 1), "inline {inline}");
        // The log holds exactly the versions made: no trace of the refused attempt.
        let log = ea.store().slot_history(&slot("x"), None, 10).await.unwrap();
        let versions: Vec<u64> = log.iter().map(|c| c.version).collect();
        assert_eq!(versions, [2, 1], "inline {inline}");

        // Another connection writes `z` and purges the scope: no row, but the floor is one
        // above the highest version the scope held (`x`'s 2).
        eb.handle::<u64>(slot("z")).set(5).await.unwrap();
        eb.purge_scope(slot("z").scope()).await.unwrap();
        ea.commit(vec![add("z", 1)]).await.unwrap();
        assert_eq!(
            a.stats().cache_misses,
            2,
            "inline {inline}: {:?}",
            a.stats()
        );
        let z = ea.handle::<u64>(slot("z")).get_versioned().await.unwrap();
        assert_eq!(
            (z.value, z.version),
            (Some(1), 4),
            "inline {inline}: above the floor"
        );
    }
}
