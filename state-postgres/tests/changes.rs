//! The change log on PostgreSQL: sequence numbers are taken in commit order, so a reader of
//! `seq > cursor` never skips a change that commits late; and change streams are woken by
//! `NOTIFY` rather than by their poll.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::Executor;
use state_core::{ChangeFilter, Engine, EngineConfig, Scope, Slot, Store};
use state_postgres::{PgOptions, PgStore};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::app("feed").unwrap(), "Stats", key).unwrap()
}

async fn store(schema: &str) -> Arc<PgStore> {
    Arc::new(
        PgStore::open_with(PgOptions::new(common::url()).schema(schema))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_commits_late_is_never_skipped_by_a_cursor() {
    let schema = common::schema("late");
    let store = store(&schema).await;
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let head = store.last_change().await.unwrap();

    // Another writer logs a change and has not committed yet.
    let mut slow = common::connect().await;
    slow.execute(&*format!("SET search_path = \"{schema}\"; BEGIN"))
        .await
        .unwrap();
    slow.execute(
        "INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at) \
         VALUES ('app', 'feed', '', 'Stats', 'late', 1, '1', 0); \
         SELECT append_changes(ARRAY['app'], ARRAY['feed'], ARRAY[''], ARRAY['Stats'], \
           ARRAY['late'], ARRAY[1::bigint], ARRAY['1'], 0)",
    )
    .await
    .unwrap();

    // This store's commit starts after it and must not get a sequence number that a reader
    // could see before the slow writer's.
    let early = engine.handle::<u64>(slot("early"));
    let commit = tokio::spawn(async move { early.increment(1).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !commit.is_finished(),
        "the commit took a sequence number while an earlier log writer was uncommitted"
    );
    let meanwhile = store
        .read_changes(head, &ChangeFilter::all(), 100)
        .await
        .unwrap();
    assert!(meanwhile.is_empty(), "{meanwhile:?}");

    slow.execute("COMMIT").await.unwrap();
    assert_eq!(commit.await.unwrap().unwrap(), 1);
    let log = store
        .read_changes(head, &ChangeFilter::all(), 100)
        .await
        .unwrap();
    let keys: Vec<&str> = log.iter().map(|c| c.slot.key()).collect();
    assert_eq!(keys, ["late", "early"], "sequence order is commit order");
    assert!(log[0].seq < log[1].seq);
    drop(engine);
    common::drop_schemas(&[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stream_is_woken_by_notify_not_by_its_poll() {
    let schema = common::schema("notify");
    let watcher = store(&schema).await;
    let writer = Engine::with_config(store(&schema).await, EngineConfig::default());
    // The watcher looks on its own only once an hour.
    let engine = Engine::with_config(
        watcher.clone(),
        EngineConfig::default().change_poll(Duration::from_secs(3600)),
    );
    let mut feed = engine.changes(
        engine.change_head().await.unwrap(),
        ChangeFilter::slot(&slot("n")),
    );
    // The listener starts with the feed: wait until it hears commits.
    let before = common::wait_for_listener(&watcher, &writer.handle(slot("warm-up"))).await;
    let h = writer.handle::<u64>(slot("n"));
    for want in 1..=5u64 {
        h.increment(1).await.unwrap();
        let c = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("no NOTIFY woke the stream")
            .unwrap()
            .unwrap();
        assert_eq!((c.version, c.value), (want, Some(want.into())));
    }
    // Each commit was announced (a notification may still be on its way when the stream
    // already read the change it announced).
    for _ in 0..100 {
        if watcher.stats().notifications >= before + 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        watcher.stats().notifications >= before + 5,
        "{before} then {:?}",
        watcher.stats()
    );
    drop((feed, engine, writer));
    common::drop_schemas(&[schema]).await;
}

/// Retention trims a prefix of the log in sequence order. `at` is the writing node's clock:
/// with clocks apart, a change can carry an older time than one before it, and it must not be
/// deleted from under a reader while that earlier one is kept (a hole a cursor would skip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_a_prefix_of_the_log_never_a_hole() {
    let schema = common::schema("retention");
    let t0 = state_core::Timestamp::from_millis(1_000_000_000_000);
    let clock = state_core::ManualClock::new(t0);
    let store = Arc::new(
        PgStore::open_with(
            PgOptions::new(common::url())
                .schema(&schema)
                .clock(clock.clone())
                .change_retention(Some(Duration::from_secs(3600))),
        )
        .await
        .unwrap(),
    );
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let old = engine.handle::<u64>(slot("old"));
    for _ in 0..5 {
        old.increment(1).await.unwrap();
    }
    // A node two hours ahead writes, then one with the old time (clocks apart).
    clock.advance(Duration::from_secs(2 * 3600));
    engine.handle::<u64>(slot("ahead")).set(1).await.unwrap();
    clock.set(t0);
    engine.handle::<u64>(slot("behind")).set(1).await.unwrap();
    // Later: the window keeps the last hour; the log is trimmed every 1024 group commits.
    clock.set(t0);
    clock.advance(Duration::from_secs(2 * 3600 + 1800));
    let new = engine.handle::<u64>(slot("new"));
    for _ in 0..1024 {
        new.increment(1).await.unwrap();
    }
    // A reader from the start is told what it missed (the five `old` changes).
    state_sql::testing::expect_trimmed(store.as_ref(), 0, 5).await;
    let mut feed = engine.changes(4, ChangeFilter::slot(&slot("new")));
    assert!(matches!(
        feed.next().await,
        Some(Err(state_core::Error::ChangesTrimmed { after: 4, .. }))
    ));
    let kept: Vec<String> = state_core::backend::conformance::read_changes_after(
        store.as_ref(),
        5,
        &ChangeFilter::all(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.slot.key().to_owned())
    .collect();
    assert!(
        !kept.contains(&"old".to_owned()),
        "the old prefix was trimmed"
    );
    assert_eq!(
        kept.iter().take(2).collect::<Vec<_>>(),
        ["ahead", "behind"],
        "the change after the first one kept is kept too, whatever its time"
    );
    common::drop_schemas(&[schema]).await;
}

/// A schema whose log was trimmed before the watermark existed (schema 3): the migration counts
/// everything below the oldest change kept, or, with none kept, every sequence number handed
/// out (the schema's own `changes` sequence, found through the search path), as removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_of_a_log_trimmed_before_it_existed() {
    let schema = common::schema("watermark");
    let open = || async {
        PgStore::open_with(PgOptions::new(common::url()).schema(&schema))
            .await
            .unwrap()
    };
    let engine = Engine::new(open().await);
    let h = engine.handle::<u64>(slot("n"));
    for _ in 0..5 {
        h.increment(1).await.unwrap();
    }
    drop((h, engine));
    let to_schema_3 = format!(
        "DROP TRIGGER changes_trimmed_through ON \"{schema}\".changes; \
         DROP FUNCTION \"{schema}\".note_trimmed_changes(); DROP TABLE \"{schema}\".changes_trimmed; \
         DELETE FROM \"{schema}\"._sqlx_migrations WHERE version = 4;"
    );
    let mut conn = common::connect().await;
    conn.execute(to_schema_3.as_str()).await.unwrap();
    conn.execute(format!("DELETE FROM \"{schema}\".changes WHERE seq <= 3").as_str())
        .await
        .unwrap();
    let store = open().await;
    state_core::backend::conformance::assert_trimmed_log(&store, 3, 2, 5).await;
    drop(store);
    conn.execute(to_schema_3.as_str()).await.unwrap();
    conn.execute(format!("DELETE FROM \"{schema}\".changes").as_str())
        .await
        .unwrap();
    let store = open().await;
    // The head of an emptied log is still the newest change it held: a feed from there (a
    // watch from now on) is not told it missed anything.
    state_core::backend::conformance::assert_trimmed_log(&store, 5, 0, 5).await;
    drop(store);
    common::drop_schemas(&[schema]).await;
}
