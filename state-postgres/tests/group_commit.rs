//! Group commit on PostgreSQL: concurrent commits share transactions, a refused batch leaves
//! the rest of its group alone, and stores racing to create the same slots lose nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::Executor;
use state_core::{
    Batch, CommitOutcome, Engine, Error, NumKind, Op, Path, Scope, Slot, Store, Write,
};
use state_postgres::{PgOptions, PgStore};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::app("group").unwrap(), "Test", key).unwrap()
}

fn increment(key: &str, by: u64, kind: NumKind) -> Batch {
    Batch::new(vec![Write::apply(
        slot(key),
        vec![Op::increment(Path::root(), by.into(), kind)],
    )])
    .max_value_bytes(state_core::DEFAULT_MAX_VALUE_BYTES)
}

async fn open(schema: &str) -> Arc<PgStore> {
    Arc::new(
        PgStore::open_with(PgOptions::new(common::url()).schema(schema))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_share_transactions_and_count_exactly() {
    let schema = common::schema("group");
    let store = open(&schema).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let hot = engine.handle::<u64>(slot("hot"));
    state_sql::testing::increment_concurrently(&hot, 64, 50).await;
    let record = store.load(&slot("hot")).await.unwrap();
    assert_eq!((record.value, record.version), (Some(json!(3200)), 3200));
    let stats = store.stats();
    assert_eq!(stats.batches, 3200);
    assert!(
        stats.groups < stats.batches && stats.max_group > 1,
        "commits were grouped: {stats:?}"
    );
    common::drop_schemas(&[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_leaves_the_rest_of_its_group() {
    let schema = common::schema("refused");
    let store = open(&schema).await;
    store
        .commit(increment("hot", 250, NumKind::U8))
        .await
        .unwrap();
    // Hold the slot's row lock from another connection, so the commits queue up behind the
    // first and run as one group when it is released.
    let mut holder = common::connect().await;
    holder
        .execute(&*format!(
            "BEGIN; SELECT 1 FROM \"{schema}\".slots WHERE key = 'hot' FOR UPDATE"
        ))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        // Batch 40 would take the u8 past 255: refused alone.
        let batch = if i == 40 {
            increment("hot", 10, NumKind::U8)
        } else {
            increment(&format!("k{i}"), 1, NumKind::U64)
        };
        let mut batch = batch;
        batch.writes.push(Write::apply(
            slot("hot"),
            vec![Op::increment(Path::root(), 0u64.into(), NumKind::U8)],
        ));
        pending.push(tokio::spawn(async move { store.commit(batch).await }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    holder.execute("COMMIT").await.unwrap();
    let mut committed = 0;
    for (i, p) in pending.into_iter().enumerate() {
        match p.await.unwrap() {
            Ok(CommitOutcome::Committed(_)) => committed += 1,
            Err(Error::Overflow { .. }) if i == 40 => {}
            other => panic!("batch {i}: {other:?}"),
        }
    }
    assert_eq!(committed, 63);
    assert_eq!(store.load(&slot("k40")).await.unwrap().version, 0);
    assert_eq!(
        store.load(&slot("k41")).await.unwrap().value,
        Some(json!(1))
    );
    assert_eq!(
        store.load(&slot("hot")).await.unwrap().value,
        Some(json!(250))
    );
    assert!(store.stats().max_group >= 32, "{:?}", store.stats());
    common::drop_schemas(&[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_creating_the_same_slots_at_once_lose_nothing() {
    let schema = common::schema("race");
    let (a, b) = (open(&schema).await, open(&schema).await);
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        for t in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    // Both stores create the same fresh slots at about the same time.
                    let key = format!("s{}", (i * 8 + t) % 100);
                    store
                        .commit(increment(&key, 1, NumKind::U64))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for i in 0..100 {
        let r = a.load(&slot(&format!("s{i}"))).await.unwrap();
        let v = r.value.and_then(|v| v.as_u64()).unwrap_or(0);
        assert_eq!(r.version, v, "one version per increment on s{i}");
        total += v;
    }
    assert_eq!(total, 2 * 8 * 40);
    eprintln!(
        "(retries after lost races: {} + {})",
        a.stats().retries,
        b.stats().retries
    );
    common::drop_schemas(&[schema]).await;
}

/// The committer runs in the task of the caller that found it idle (`state_core::backend::leader`):
/// that caller left pending and unpolled mid-commit must not hold up another writer, and a
/// cancelled one must not take its commit (or the committer) with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_running_the_committer_can_stall_or_vanish_without_harm() {
    let schema = common::schema("leader");
    let store = open(&schema).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let (a, b, c) = (
        engine.handle::<u64>(slot("a")),
        engine.handle::<u64>(slot("b")),
        engine.handle::<u64>(slot("c")),
    );
    // Polls a commit once (it queues and starts running the committer) and leaves it.
    async fn poll_once<F: Future + Unpin>(fut: &mut F) {
        std::future::poll_fn(|cx| {
            assert!(std::pin::Pin::new(&mut *fut).poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await
    }
    // Polled once, then stalls.
    let mut stalled = Box::pin(a.increment(1));
    poll_once(&mut stalled).await;
    tokio::time::timeout(Duration::from_secs(30), b.increment(1))
        .await
        .expect("a write waited for a commit future nobody polled")
        .unwrap();
    stalled.await.unwrap();
    // Cancelled while it runs the committer: the commit finishes in a task.
    let mut cancelled = Box::pin(c.increment(1));
    poll_once(&mut cancelled).await;
    drop(cancelled);
    b.increment(1).await.unwrap();
    assert_eq!(a.get().await.unwrap(), Some(1));
    assert_eq!(b.get().await.unwrap(), Some(2));
    // Served before b's second increment, which queued after it.
    assert_eq!(c.get().await.unwrap(), Some(1));
}

/// The committer's spans and metrics on PostgreSQL: each commit is a `state.commit` span and
/// each transaction a root `state.group_commit` span naming its backend, size, path and bytes;
/// each transaction is counted with its backend, its callers measured, and the JSON bytes of
/// the versions it wrote added up (the writer's `lock_read_write` path records them).
#[test]
fn transactions_are_spans_and_counted_with_their_callers_and_bytes() {
    use state_sql::testing::{metric, observe, spans};
    let schema = common::schema("metrics");
    let ((), seen, recorded) = observe(async {
        let store = open(&schema).await;
        let engine = Engine::with_config(store, Default::default());
        for (i, value) in [json!("abc"), json!(12345)].into_iter().enumerate() {
            let writes = vec![Write::cas(slot(&format!("k{i}")), 0, Some(value))];
            engine.commit(writes).await.unwrap();
        }
        common::drop_schemas(std::slice::from_ref(&schema)).await;
    });
    let commits = spans(&seen, "state.commit");
    assert_eq!(commits.len(), 2, "{commits:#?}");
    for (c, key) in commits.iter().zip(["k0", "k1"]) {
        assert_eq!(c.field("key"), Some(key), "{c:#?}");
        assert_eq!(c.field("ops"), Some("cas"));
        assert_eq!(c.field("outcome"), Some("committed"));
        assert_eq!(c.field("version"), Some("1"));
    }
    let groups = spans(&seen, "state.group_commit");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    for (g, bytes) in groups.iter().zip(["5", "5"]) {
        for (field, want) in [
            ("backend", "postgres"),
            ("callers", "1"),
            ("versions", "1"),
            ("path", "lock_read_write"),
            ("outcome", "ok"),
            ("bytes", bytes),
        ] {
            assert_eq!(g.field(field), Some(want), "{field} of {g:#?}");
        }
    }
    let postgres = [("backend", "postgres")];
    let count = |name, labels: &[(&str, &str)]| metric(&recorded, name, labels).map(|m| m.count());
    let ok = [("backend", "postgres"), ("outcome", "ok")];
    assert_eq!(count("state_group_commits_total", &ok), Some(2));
    assert_eq!(
        count("state_bytes_written_total", &postgres),
        Some(10),
        "\"abc\" and 12345"
    );
    assert_eq!(
        count("state_group_callers", &postgres),
        Some(2),
        "one observation each"
    );
}
