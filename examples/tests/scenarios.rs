//! Every example scenario, run as a test.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_counts_every_worker_write_and_carries_state_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quickstart.db");
    for expected_run in 1..=2u64 {
        // A fresh store on the same file each time, as two runs of the binary would be.
        let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
        let report = examples::quickstart::run(engine).await.unwrap();
        let s = &report.research;
        assert_eq!(report.run, expected_run);
        assert_eq!(s.attempts, 41);
        assert_eq!(s.articles.len(), 40);
        let mut sorted = s.articles.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 40, "no append lost or duplicated");
        assert!((s.total_cost - 10.5).abs() < 1e-9, "cost {}", s.total_cost);
        assert_eq!(s.by_source.len(), 8);
        assert!(s.by_source.values().all(|&n| n == 5));
        assert_eq!(s.reviewer.as_ref().map(|r| r.reviews), Some(1));
        assert_eq!(s.theme.as_deref(), Some("dark"));
        assert!(
            s.last_response.is_some(),
            "temp state lives for the invocation"
        );
        assert_eq!(report.totals.runs, expected_run);
        assert_eq!(report.totals.finished, expected_run);
        assert_eq!(
            report.totals.articles,
            40 * expected_run,
            "carried over from run to run"
        );
    }
}

async fn memory_engine() -> Engine {
    Engine::new(SqliteStore::open(SqliteOptions::memory()).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_retry_counts_attempts_and_workflow_retries() {
    use examples::weft_retry::{Status, run};
    let engine = memory_engine().await;
    let first = run(engine.clone(), "fetch-1", 2).await.unwrap();
    assert_eq!(first.attempts, 3);
    assert_eq!(first.status, Status::Done);
    assert_eq!(first.last_error, None, "cleared on success");
    assert_eq!(
        first.cursor, 3,
        "the session cursor came back from the checkpoint"
    );
    assert_eq!(first.total_retries, 2);
    let second = run(engine.clone(), "fetch-2", 1).await.unwrap();
    assert_eq!(
        (second.attempts, second.total_retries),
        (2, 3),
        "retries add up across runs"
    );
    // An execution runs once: its status is no longer Pending.
    assert!(run(engine.clone(), "fetch-1", 0).await.is_err());
    assert!(
        run(engine, "fetch-3", 9).await.is_err(),
        "gives up after 5 attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_children_append_and_merge_into_shared_state() {
    let (r, steps) = examples::research_fanout::run(memory_engine().await, 6, 10)
        .await
        .unwrap();
    assert_eq!(r.findings.len(), 60, "every child's appends landed");
    let mut unique = r.findings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 60);
    assert_eq!(
        (0..3)
            .map(|s| r.sources[&format!("source-{s}")])
            .sum::<u32>(),
        60
    );
    assert!(
        (0..6).all(|c| r.sources[&format!("child-{c}")] == 10),
        "{:?}",
        r.sources
    );
    assert!((r.cost - 0.60).abs() < 1e-9, "{}", r.cost);
    assert_eq!(
        steps,
        vec![10; 6],
        "each child's session counted only its own steps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adk_scopes_follow_the_user_and_the_app() {
    let seen = examples::adk_session::run(memory_engine().await)
        .await
        .unwrap();
    assert!(
        seen.ada_second_session.starts_with("[formal]"),
        "{}",
        seen.ada_second_session
    );
    assert!(
        seen.bob.starts_with("[plain]"),
        "user state is per user: {}",
        seen.bob
    );
    assert_eq!(
        (seen.ada_first_turns, seen.ada_second_turns, seen.bob_turns),
        (5, 2, 2),
        "session state per (app, user, session id): Bob's session-1 is not Ada's"
    );
    assert_eq!(seen.requests, 4, "app state counts every user");
    assert!(!seen.temp_survived, "temp state ends with its invocation");
    assert!(seen.second_create_refused, "a session is created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motia_rate_limits_and_sessions_expire_on_the_clock() {
    use state_core::{ManualClock, Timestamp};
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = SqliteStore::open_with(SqliteOptions::memory().clock(clock.clone()))
        .await
        .unwrap();
    let seen = examples::motia_limits::run(Engine::new(store), clock)
        .await
        .unwrap();
    assert_eq!(
        seen.first_window,
        [true, true, true, true, true, false, false]
    );
    assert!(seen.bob_first, "limits are per user");
    assert!(seen.next_window, "a new window after the old one expired");
    assert_eq!(seen.ada_after_20m.as_deref(), Some("ada"));
    assert_eq!(seen.bob_after_40m, None, "an idle session expired");
    assert!(seen.purged >= 2, "expired rows purged: {}", seen.purged);
    assert_eq!(seen.live_sessions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restate_exclusive_writers_and_shared_readers() {
    let (a, b, consistent) = examples::restate_object::run(memory_engine().await)
        .await
        .unwrap();
    assert_eq!(a.total_cents, 2000, "20 adds of 100 cents, none lost");
    assert_eq!(b.total_cents, 2000);
    assert_eq!(a.items.values().sum::<u32>(), 20);
    assert!(consistent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_flag_rollout_is_gradual_and_monotonic() {
    let (counts, monotonic) = examples::feature_flags::run(memory_engine().await)
        .await
        .unwrap();
    assert!((50..=150).contains(&counts[0]), "10 % of 1000: {counts:?}");
    assert!((420..=580).contains(&counts[1]), "50 % of 1000: {counts:?}");
    assert_eq!(counts[2], 1000);
    assert!(monotonic, "raising the rollout never took the flag away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observability_counts_every_acknowledged_update_of_the_contended_counter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(SqliteStore::open(dir.path().join("s.db")).await.unwrap());
    let report = examples::observability::run(engine).await.unwrap();
    assert_eq!(report.orders, report.acknowledged, "{report:?}");
    assert_eq!(report.acknowledged + report.gave_up, 8 * 25 + 4 * 5);
    assert!(
        report.acknowledged >= 200,
        "every patient update lands: {report:?}"
    );
}
