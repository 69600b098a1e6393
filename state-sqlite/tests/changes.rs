//! The change feed on a SQLite file: consumers resume from their acknowledged cursor across a
//! restart, history is typed, and a state trigger acts once per threshold crossing, also
//! across a restart.

use std::sync::Arc;
use std::time::Duration;

use state_core::{Change, ChangeFilter, Engine, EngineConfig, Scope, Slot};
use state_sqlite::SqliteStore;

fn slot(key: &str) -> Slot {
    Slot::new(Scope::app("feed").unwrap(), "Stats", key).unwrap()
}

async fn engine(path: &std::path::Path) -> Engine {
    Engine::with_config(
        Arc::new(SqliteStore::open(path).await.unwrap()),
        EngineConfig::default().change_poll(Duration::from_millis(5)),
    )
}

async fn take(consumer: &mut state_core::Consumer, n: usize, ack: bool) -> Vec<Change> {
    let mut got = Vec::new();
    for _ in 0..n {
        let c = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("the consumer stalled")
            .unwrap()
            .unwrap();
        if ack {
            consumer.ack(&c).await.unwrap();
        }
        got.push(c);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_from_its_acknowledged_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.db");
    let filter = ChangeFilter::slot(&slot("hits"));
    {
        let engine = engine(&path).await;
        let hits = engine.handle::<u64>(slot("hits"));
        for _ in 0..10 {
            hits.increment(1).await.unwrap();
        }
        let mut acked = engine.consumer("acked", filter.clone()).await.unwrap();
        let first = take(&mut acked, 4, true).await;
        assert_eq!(
            first.iter().map(|c| c.version).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let mut unacked = engine.consumer("unacked", filter.clone()).await.unwrap();
        take(&mut unacked, 6, false).await;
        // "Killed": the store and engine are dropped with both consumers mid-stream.
    }
    let engine = engine(&path).await;
    let hits = engine.handle::<u64>(slot("hits"));
    for _ in 0..2 {
        hits.increment(1).await.unwrap();
    }
    // With acknowledgements: exactly the rest, once, in order.
    let mut acked = engine.consumer("acked", filter.clone()).await.unwrap();
    let rest = take(&mut acked, 8, true).await;
    assert_eq!(
        rest.iter().map(|c| c.version).collect::<Vec<_>>(),
        (5..=12).collect::<Vec<_>>()
    );
    assert!(rest.windows(2).all(|w| w[0].seq < w[1].seq));
    // Without: from the start again (at-least-once).
    let mut unacked = engine.consumer("unacked", filter).await.unwrap();
    let again = take(&mut unacked, 12, false).await;
    assert_eq!(again[0].version, 1);
    assert_eq!(again[11].version, 12);
    // History, typed, newest first.
    let history = hits.history(3).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| (h.version, h.value))
            .collect::<Vec<_>>(),
        [(12, Some(12)), (11, Some(11)), (10, Some(10))]
    );
    // The next page back starts below the last entry of this one.
    let older = hits.history_before(Some(history[2].seq), 2).await.unwrap();
    assert_eq!(older.iter().map(|h| h.version).collect::<Vec<_>>(), [9, 8]);
}

/// The trigger's action: record the crossing under its sequence number (the idempotency
/// key), so a handler that runs twice for one change acts once.
async fn alert(
    engine: Engine,
    change: Change,
    fail_first: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    let alerts = engine.handle::<std::collections::BTreeMap<String, u64>>(slot("alerts"));
    alerts
        .update(|m| {
            let mut m = m.cloned().unwrap_or_default();
            m.insert(change.seq.to_string(), change.version);
            Ok(Some(m))
        })
        .await
        .map_err(|e| e.to_string())?;
    // The first call fails after acting: the retry must not act twice.
    if fail_first.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Err("flaky downstream".into());
    }
    Ok(())
}

async fn register(engine: &Engine, fail_first: bool) -> state_core::Trigger {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(fail_first));
    let e = engine.clone();
    engine
        .trigger(
            "threshold",
            ChangeFilter::slot(&slot("load")),
            // Crossing 10 upwards: counters move by one, so the crossing is the change to 10.
            |c: &Change| c.value == Some(10.into()),
            move |c| alert(e.clone(), c, flag.clone()),
        )
        .await
        .unwrap()
}

async fn alerts(engine: &Engine) -> usize {
    engine
        .handle::<std::collections::BTreeMap<String, u64>>(slot("alerts"))
        .get()
        .await
        .unwrap()
        .map_or(0, |m| m.len())
}

async fn wait_for(engine: &Engine, n: usize) {
    for _ in 0..1000 {
        if alerts(engine).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the trigger did not act {n} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_acts_once_per_threshold_crossing_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trigger.db");
    let load = slot("load");
    {
        let engine = engine(&path).await;
        let trigger = register(&engine, true).await;
        let h = engine.handle::<u64>(load.clone());
        for _ in 0..15 {
            h.increment(1).await.unwrap();
        }
        wait_for(&engine, 1).await;
        // The handler writes the alert before it fails: its failure is counted just after.
        for _ in 0..1000 {
            if trigger.failures() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(trigger.failures() >= 1, "the failing call was retried");
        // Back under, then a second crossing while the trigger is stopped ("restart").
        trigger.stop();
        h.set(0).await.unwrap();
        for _ in 0..12 {
            h.increment(1).await.unwrap();
        }
    }
    let engine = engine(&path).await;
    let trigger = register(&engine, false).await;
    wait_for(&engine, 2).await;
    // Let it run over everything else; nothing more happens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(alerts(&engine).await, 2, "one action per crossing");
    trigger.stop();
}

/// Two triggers watching everything: each acknowledgement writes a cursor, which both filters
/// cover; cursor changes are not delivered, so each handles the one real change once and the
/// log stops growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_watching_everything_do_not_feed_on_their_own_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("cursors.db")).await;
    let start = engine.change_head().await.unwrap();
    let mut triggers = Vec::new();
    for name in ["a", "b"] {
        let t = engine
            .trigger(
                name,
                ChangeFilter::all(),
                |_| true,
                |_c| async { Ok::<(), String>(()) },
            )
            .await
            .unwrap();
        triggers.push(t);
    }
    engine
        .handle::<u64>(slot("hits"))
        .increment(1)
        .await
        .unwrap();
    for _ in 0..2000 {
        if triggers.iter().all(|t| t.handled() >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let them run: a trigger fed by cursor writes would keep handling and writing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let handled: Vec<u64> = triggers.iter().map(|t| t.handled()).collect();
    assert_eq!(handled, [1, 1], "each handled the one real change once");
    let logged = engine.change_head().await.unwrap() - start;
    assert_eq!(logged, 3, "the change and one cursor write per trigger");
    for t in triggers {
        t.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_changes_older_than_the_window_and_keeps_the_rest() {
    use state_sqlite::SqliteOptions;
    let dir = tempfile::tempdir().unwrap();
    let clock = state_core::ManualClock::new(state_core::Timestamp::from_millis(1_000_000_000));
    let store = SqliteStore::open_with(
        SqliteOptions::file(dir.path().join("retention.db"))
            .clock(clock.clone())
            .change_retention(Some(Duration::from_secs(3600))),
    )
    .await
    .unwrap();
    let engine = Engine::new(store);
    let old = engine.handle::<u64>(slot("old"));
    for _ in 0..10 {
        old.increment(1).await.unwrap();
    }
    // A purged slot's history is kept by its chain's head (migration 0009) until the
    // retention trims past it; then the head goes too.
    let gone = Slot::new(Scope::execution("run-1").unwrap(), "S", "n").unwrap();
    engine
        .handle::<u64>(gone.clone())
        .increment(1)
        .await
        .unwrap();
    engine.purge_execution("run-1").await.unwrap();
    let heads = || async {
        let url = format!("sqlite:{}", dir.path().join("retention.db").display());
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM purged_heads")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n
    };
    assert_eq!(heads().await, 1);
    assert_eq!(versions_in_history(&engine, &gone).await, [1]);
    clock.advance(Duration::from_secs(2 * 3600));
    // The log is trimmed every 1024 group commits.
    let new = engine.handle::<u64>(slot("new"));
    for _ in 0..1024 {
        new.increment(1).await.unwrap();
    }
    assert_eq!(heads().await, 0, "the purged slot's head, trimmed past");
    assert!(versions_in_history(&engine, &gone).await.is_empty());
    // A reader from the start is told what it missed, in every form of reader.
    let store = engine.store();
    state_sql::testing::expect_trimmed(store.as_ref(), 0, 11).await;
    assert!(matches!(
        store
            .read_changes(9, &ChangeFilter::slot(&slot("new")), 10)
            .await,
        Err(state_core::Error::ChangesTrimmed { after: 9, .. })
    ));
    let mut feed = engine.changes(0, ChangeFilter::all());
    assert!(matches!(
        futures::StreamExt::next(&mut feed).await,
        Some(Err(state_core::Error::ChangesTrimmed { .. }))
    ));
    // The rest reads from the watermark on.
    let mut kept = Vec::new();
    let mut after = 11;
    loop {
        let page = store
            .read_changes(after, &ChangeFilter::all(), 300)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        kept.extend(
            page.into_iter()
                .map(|c| (c.slot.key().to_owned(), c.version)),
        );
    }
    assert!(
        kept.iter().all(|(k, _)| k == "new"),
        "changes older than the window survived: {:?}",
        &kept[..kept.len().min(5)]
    );
    let versions: Vec<u64> = kept.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        versions,
        (1..=1024).collect::<Vec<_>>(),
        "recent changes were lost"
    );
    // The slots themselves are untouched by retention.
    assert_eq!(old.get().await.unwrap(), Some(10));
}

/// A database whose log was trimmed before the watermark existed (schema 6): the migration
/// counts everything below the oldest change kept, or, with none kept, every sequence number
/// handed out, as removed.
#[tokio::test]
async fn the_watermark_of_a_log_trimmed_before_it_existed() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    let h = engine.handle::<u64>(slot("n"));
    for _ in 0..5 {
        h.increment(1).await.unwrap();
    }
    drop((h, engine));
    // Back to schema 6, with the first three changes trimmed.
    let undo = |sql: &'static str| {
        let path = path.clone();
        async move {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            conn.execute(sql).await.unwrap();
            conn.close().await.unwrap();
        }
    };
    let to_schema_6 = "DROP TABLE changes_trimmed; DELETE FROM _sqlx_migrations WHERE version = 7;";
    undo(to_schema_6).await;
    undo("DELETE FROM changes WHERE seq <= 3").await;
    let store = SqliteStore::open(&path).await.unwrap();
    state_core::backend::conformance::assert_trimmed_log(&store, 3, 2, 5).await;
    drop(store);
    // Every change trimmed: every sequence number handed out.
    undo(to_schema_6).await;
    undo("DELETE FROM changes").await;
    let store = SqliteStore::open(&path).await.unwrap();
    // The head of an emptied log is still the newest change it held: a feed from there (a
    // watch from now on) is not told it missed anything.
    state_core::backend::conformance::assert_trimmed_log(&store, 5, 0, 5).await;
}

/// Back to schema 8: the history index and the triggers of migrations 0005 and 0006, no chain.
const TO_SCHEMA_8: &str = "\
    DROP TRIGGER slots_purged; DROP TRIGGER changes_to_slots; DROP TRIGGER changes_to_new_slots; \
    CREATE TRIGGER changes_to_slots AFTER INSERT ON changes WHEN NEW.superseded IS NULL BEGIN \
      INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, \
                         updated_at, expires_at) \
      VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version, \
              NEW.value, NEW.at, NEW.expires_at) \
      ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE SET \
        version = excluded.version, value = excluded.value, \
        updated_at = excluded.updated_at, expires_at = excluded.expires_at; END; \
    CREATE TRIGGER changes_to_new_slots AFTER INSERT ON changes WHEN NEW.superseded = 2 BEGIN \
      INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, \
                         updated_at, expires_at) \
      VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version, \
              NEW.value, NEW.at, NEW.expires_at); END; \
    CREATE INDEX changes_slot ON changes (kind, scope_id, scope_sub, namespace, key, seq); \
    ALTER TABLE changes DROP COLUMN prev_seq; ALTER TABLE changes DROP COLUMN prev_back; \
    ALTER TABLE slots DROP COLUMN last_seq; DROP TABLE purged_heads; \
    DELETE FROM _sqlx_migrations WHERE version = 9;";

async fn versions_in_history(engine: &Engine, slot: &Slot) -> Vec<u64> {
    let history = engine.store().slot_history(slot, None, 100).await.unwrap();
    history.iter().map(|c| c.version).collect()
}

/// A store from before the history chain (schema 8, slot history by an index): migration 0009
/// links every logged version to the one before it, live slots and purged ones, and writes
/// after it continue each slot's chain.
#[tokio::test]
async fn migration_0009_chains_the_history_logged_before_it() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    let run = Scope::execution("run-1").unwrap();
    let (live, gone) = (slot("n"), Slot::new(run.clone(), "S", "n").unwrap());
    let bump = |engine: &Engine| {
        let slots = [live.clone(), gone.clone()];
        let engine = engine.clone();
        async move {
            for s in slots {
                engine.handle::<u64>(s).increment(1).await.unwrap();
            }
        }
    };
    for _ in 0..3 {
        bump(&engine).await;
    }
    engine.purge_execution("run-1").await.unwrap();
    drop(engine);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    conn.execute(TO_SCHEMA_8).await.unwrap();
    conn.close().await.unwrap();
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    assert_eq!(versions_in_history(&engine, &live).await, [3, 2, 1]);
    assert_eq!(
        versions_in_history(&engine, &gone).await,
        [3, 2, 1],
        "purged"
    );
    bump(&engine).await;
    assert_eq!(versions_in_history(&engine, &live).await, [4, 3, 2, 1]);
    assert_eq!(versions_in_history(&engine, &gone).await, [5, 3, 2, 1]);
}
