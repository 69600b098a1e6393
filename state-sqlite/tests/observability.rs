//! What an operator sees: the spans, events and metrics of real commits on a SQLite file, as
//! a capturing subscriber (at TRACE) and a debugging recorder record them — with the right
//! fields and labels, ids shown as configured, nothing at INFO on a healthy write path, and
//! never a written value, whichever path it took (failing ones included).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use state_core::{
    ChangeFilter, Engine, EngineConfig, Error, RetryPolicy, Scope, Slot, TraceIds, Write,
};
use state_sql::testing::{Metric, Seen, events, metric, observe, spans};
use state_sqlite::SqliteStore;
use tracing::Level;

async fn engine(dir: &std::path::Path, config: EngineConfig) -> Engine {
    let store = SqliteStore::open(dir.join("state.db")).await.unwrap();
    Engine::with_config(Arc::new(store), config)
}

fn slot(run: &str, key: &str) -> Slot {
    Slot::new(Scope::execution(run).unwrap(), "Research", key).unwrap()
}

/// Each commit is a `state.commit` span naming its slot, ops, outcome and new version, and
/// each store transaction a root `state.group_commit` span with its size, path, bytes and
/// duration.
#[test]
fn a_commit_is_a_span_with_its_slot_ops_outcome_and_the_transaction_that_ran_it() {
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, _) = observe(async {
        let e = engine(dir.path(), EngineConfig::default()).await;
        let h = e.handle::<u64>(slot("run-1", "attempts"));
        h.set(7).await.unwrap();
        h.increment(1).await.unwrap();
    });
    let commits = spans(&seen, "state.commit");
    assert_eq!(commits.len(), 2, "{commits:#?}");
    let first = commits[0];
    assert_eq!(first.level, Level::DEBUG);
    assert_eq!(first.target, "state");
    for (field, want) in [
        ("kind", "execution"),
        ("scope", "run-1"),
        ("namespace", "Research"),
        ("key", "attempts"),
        ("slots", "1"),
        ("ops", "set"),
        ("outcome", "committed"),
        ("version", "1"),
    ] {
        assert_eq!(first.field(field), Some(want), "{field} of {first:#?}");
    }
    assert_eq!(commits[1].field("ops"), Some("increment"));
    assert_eq!(commits[1].field("version"), Some("2"));
    let groups = spans(&seen, "state.group_commit");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    for g in groups {
        assert_eq!(g.field("backend"), Some("sqlite"));
        assert_eq!(g.field("callers"), Some("1"));
        assert_eq!(g.field("slots"), Some("1"));
        assert_eq!(g.field("versions"), Some("1"));
        assert_eq!(g.field("outcome"), Some("ok"));
        assert!(g.field("path").is_some_and(|p| !p.is_empty()), "{g:#?}");
        let bytes: usize = g.field("bytes").unwrap().parse().unwrap();
        assert_eq!(bytes, 1, "the JSON of 7 and of 8: {g:#?}");
        assert!(g.field("duration_us").is_some() && g.field("statements").is_some());
    }
}

/// Contended `update`s conflict, retry with their backoff and (with no retries left) give up
/// with a WARN; the metrics count each, labelled by scope kind only.
#[test]
fn contended_updates_report_conflicts_retries_and_give_ups() {
    let dir = tempfile::tempdir().unwrap();
    let (gave_up, seen, metrics) = observe(async {
        let e = engine(dir.path(), EngineConfig::default()).await;
        let s = slot("run-1", "hits");
        let racers = |retries| {
            let h = e
                .handle::<u64>(s.clone())
                .with_retry(RetryPolicy::new(retries));
            async move { h.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1))).await }
        };
        let retried = futures::future::join_all((0..4).map(|_| racers(10))).await;
        assert!(retried.iter().all(Result::is_ok), "{retried:?}");
        let once = futures::future::join_all((0..4).map(|_| racers(0))).await;
        once.iter()
            .filter(|r| matches!(r, Err(Error::Conflict { .. })))
            .count()
    });
    assert!(gave_up > 0, "no update gave up");
    let retries = events(&seen, "update conflicted, retrying");
    assert!(!retries.is_empty());
    for r in &retries {
        assert_eq!(r.level, Level::DEBUG);
        assert_eq!(
            (r.field("kind"), r.field("key")),
            (Some("execution"), Some("hits"))
        );
        assert!(r.field("attempt").is_some() && r.field("backoff_us").is_some());
    }
    let give_ups = events(&seen, "update gave up");
    assert_eq!(give_ups.len(), gave_up);
    assert!(
        give_ups
            .iter()
            .all(|g| g.level == Level::WARN && g.field("attempts") == Some("1"))
    );
    let conflicts = spans(&seen, "state.commit")
        .into_iter()
        .filter(|s| s.field("outcome") == Some("conflict"))
        .count();
    let kind = [("kind", "execution")];
    let counted = |name| metric(&metrics, name, &kind).map_or(0, Metric::count);
    assert_eq!(counted("state_update_conflicts_total"), conflicts as u64);
    assert_eq!(counted("state_update_retries_total"), retries.len() as u64);
    assert_eq!(counted("state_update_exhausted_total"), gave_up as u64);
    let committed = [("kind", "execution"), ("outcome", "committed")];
    assert_eq!(
        metric(&metrics, "state_commits_total", &committed).map(Metric::count),
        Some(8 - gave_up as u64),
        "{metrics:#?}"
    );
}

/// Ids are shown as configured: hashed under a key (stable, not the id), or left out.
#[test]
fn scope_ids_and_keys_are_hashed_or_omitted_as_configured() {
    for (ids, check) in [
        (
            TraceIds::hashed(*b"0123456789abcdef"),
            (|f: &str| f.starts_with("h:") && f.len() == 18) as fn(&str) -> bool,
        ),
        (TraceIds::Omitted, |f: &str| f == "-"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ((), seen, _) = observe(async {
            let e = engine(dir.path(), EngineConfig::default().trace_ids(ids)).await;
            let s = slot("alice@example.com", "email-of-bob");
            e.handle::<u64>(s.clone()).set(1).await.unwrap();
            e.handle::<u64>(s).set(2).await.unwrap();
            e.clear(&Scope::execution("alice@example.com").unwrap())
                .await
                .unwrap();
        });
        let commits = spans(&seen, "state.commit");
        assert_eq!(commits.len(), 2);
        for c in &commits {
            let (scope, key) = (c.field("scope").unwrap(), c.field("key").unwrap());
            assert!(check(scope) && check(key), "{ids:?}: {c:#?}");
        }
        assert_eq!(
            commits[0].fields["scope"], commits[1].fields["scope"],
            "stable"
        );
        assert_eq!(
            commits[0].field("namespace"),
            Some("Research"),
            "code names stay"
        );
        let all = format!("{seen:?}");
        assert!(
            !all.contains("alice") && !all.contains("bob"),
            "{ids:?}: {all}"
        );
        let cleared = events(&seen, "scope cleared");
        assert!(
            cleared.len() == 1
                && cleared[0].level == Level::INFO
                && check(cleared[0].field("scope").unwrap())
        );
    }
}

/// A marker written as a value through every path — set, update, CAS that conflicts, batch,
/// a value over the size limit, an op on the wrong type, a decode into the wrong type, a
/// clear, a purge, a trigger whose handler fails quoting it — appears in no span, no event,
/// no metric name and no label.
#[test]
fn a_written_value_never_appears_in_spans_events_or_labels() {
    const MARKER: &str = "MARKER-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, metrics) = observe(async {
        let config = EngineConfig::default().max_value_bytes(64);
        let e = engine(dir.path(), config).await;
        let s = slot("run-1", "note");
        let h = e.handle::<String>(s.clone());
        h.set(MARKER.into()).await.unwrap();
        h.update(|v| Ok(Some(format!("{}{MARKER}", v.cloned().unwrap_or_default()))))
            .await
            .unwrap();
        assert!(h.set_if(0, MARKER.into()).await.is_err(), "a stale CAS");
        assert!(
            h.set(MARKER.repeat(10)).await.is_err(),
            "over the size limit"
        );
        let n = e.handle::<u64>(s.clone());
        assert!(n.increment(1).await.is_err(), "an increment of a string");
        assert!(n.get().await.is_err(), "a string decoded as a number");
        let batch = vec![
            Write::cas(slot("run-1", "a"), 0, Some(json!({ "v": MARKER }))),
            Write::cas(slot("run-1", "b"), 5, Some(json!(MARKER))),
        ];
        assert!(e.commit(batch).await.is_err(), "a batch with a stale CAS");
        let trigger = e
            .trigger(
                "marker-watch",
                ChangeFilter::all(),
                |_| true,
                |c| async move { Err::<(), String>(format!("cannot handle {:?}", c.value)) },
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.stop_and_wait().await;
        e.clear(&Scope::execution("run-1").unwrap()).await.unwrap();
        e.purge_execution("run-1").await.unwrap();
    });
    assert!(!events(&seen, "trigger handler failed, retrying").is_empty());
    for s in &seen {
        let text = format!("{} {:?}", s.name, s.fields);
        assert!(!text.contains(MARKER), "the value in {s:#?}");
    }
    assert!(!metrics.is_empty());
    for m in &metrics {
        let text = format!("{} {:?}", m.name, m.labels);
        assert!(!text.contains(MARKER), "the value in {m:?}");
        for banned in ["run-1", "note", "Research"] {
            assert!(
                !m.labels.values().any(|v| v == banned),
                "an id as a label: {m:?}"
            );
        }
    }
}

/// A healthy write path — 64 writers on distinct slots, merged into groups — emits nothing
/// at INFO or above; its groups are counted with their sizes.
#[test]
fn many_writers_emit_nothing_at_info_and_count_their_groups() {
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, metrics) = observe(async {
        let e = engine(dir.path(), EngineConfig::default()).await;
        let writers = (0..64).map(|i| {
            let h = e.handle::<u64>(slot("run-1", &format!("k{i}")));
            async move {
                for v in 1..=4 {
                    h.set_if(v - 1, v).await.unwrap();
                }
            }
        });
        futures::future::join_all(writers).await;
    });
    let loud: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.target.starts_with("state") && s.level <= Level::INFO)
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    let groups = spans(&seen, "state.group_commit");
    let callers: usize = groups
        .iter()
        .map(|g| g.field("callers").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(callers, 256);
    assert!(groups.len() < 256, "no commit was merged");
    let backend = [("backend", "sqlite")];
    for histogram in [
        "state_group_callers",
        "state_group_slots",
        "state_group_seconds",
    ] {
        let observed = metric(&metrics, histogram, &backend).map(Metric::count);
        assert_eq!(observed, Some(groups.len() as u64), "{histogram}");
    }
    let ok = [("backend", "sqlite"), ("outcome", "ok")];
    assert_eq!(
        metric(&metrics, "state_group_commits_total", &ok).map(Metric::count),
        Some(groups.len() as u64)
    );
    let bytes = metric(&metrics, "state_bytes_written_total", &backend).unwrap();
    assert_eq!(bytes.count(), 256, "one byte per version (1…4)");
}

/// Every commit is counted by kind and outcome; one in `commit_timing` (per thread) is timed
/// — every one when it is 1 — and an invocation-local engine counts into its parent's
/// metrics.
#[test]
fn every_commit_is_counted_and_one_in_commit_timing_is_timed() {
    for (every, timed) in [(8, 8), (1, 64), (64, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let ((), _, metrics) = observe(async {
            let config = EngineConfig::default().commit_timing(every);
            let e = engine(dir.path(), config).await;
            let h = e.handle::<u64>(slot("run-1", "n"));
            for _ in 0..48 {
                h.increment(1).await.unwrap();
            }
            let local = e.local();
            let h = local.handle::<u64>(slot("run-1", "temp"));
            for _ in 0..16 {
                h.increment(1).await.unwrap();
            }
        });
        let committed = [("kind", "execution"), ("outcome", "committed")];
        let commits = metric(&metrics, "state_commits_total", &committed);
        assert_eq!(commits.map(Metric::count), Some(64), "every {every}");
        let seconds = metric(
            &metrics,
            "state_commit_seconds",
            &[("outcome", "committed")],
        );
        assert_eq!(seconds.map(Metric::count), Some(timed), "every {every}");
    }
}

/// The store's own WAL checkpoints (it turns SQLite's automatic one off on its write
/// connection) are DEBUG events with the WAL's size and whether every page was copied back,
/// each counted.
#[test]
fn wal_checkpoints_are_debug_events_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, metrics) = observe(async {
        let e = engine(dir.path(), EngineConfig::default()).await;
        let h = e.handle::<u64>(slot("run-1", "n"));
        for _ in 0..200 {
            h.increment(1).await.unwrap();
        }
    });
    let checkpoints = events(&seen, "wal checkpoint");
    assert!(!checkpoints.is_empty(), "200 commits ran no checkpoint");
    for c in &checkpoints {
        assert_eq!(c.level, Level::DEBUG);
        let pages: u64 = c.field("wal_pages").unwrap().parse().unwrap();
        assert!(pages > 0, "{c:#?}");
        assert_eq!(c.field("complete"), Some("true"), "no reader held it back");
    }
    let counted = metric(&metrics, "state_wal_checkpoints_total", &[]).map(Metric::count);
    assert_eq!(counted, Some(checkpoints.len() as u64));
}

/// A consumer's acknowledgements and a trigger's progress are events, and the consumer's lag
/// a gauge labelled by its name.
#[test]
fn consumers_and_triggers_report_progress_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, metrics) = observe(async {
        let e = engine(dir.path(), EngineConfig::default()).await;
        let h = e.handle::<u64>(slot("run-1", "n"));
        for _ in 0..3 {
            h.increment(1).await.unwrap();
        }
        let mut c = e.consumer("billing", ChangeFilter::all()).await.unwrap();
        let first = c.next().await.unwrap().unwrap();
        c.ack(&first).await.unwrap();
        let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = handled.clone();
        let t = e
            .trigger(
                "audit",
                ChangeFilter::slot(h.slot()),
                |_| true,
                move |_| {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async { Ok::<(), String>(()) }
                },
            )
            .await
            .unwrap();
        while handled.load(std::sync::atomic::Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        t.stop_and_wait().await;
    });
    let acks = events(&seen, "consumer acknowledged");
    assert!(
        acks.iter()
            .any(|a| a.field("consumer") == Some("billing") && a.field("seq") == Some("1"))
    );
    let handled = events(&seen, "trigger handled a change");
    assert_eq!(handled.len(), 3);
    assert!(handled.iter().all(|h| h.field("consumer") == Some("audit")));
    let lag = metric(&metrics, "state_consumer_lag", &[("consumer", "billing")]).unwrap();
    assert_eq!(lag.count(), 2, "two changes after the acknowledged one");
    let done = metric(
        &metrics,
        "state_trigger_handled_total",
        &[("consumer", "audit")],
    );
    assert_eq!(done.map(Metric::count), Some(3));
}

/// A file another connection holds locked makes the committer retry the transaction: each
/// retry is a DEBUG event naming the error's class, counted by class, and the group's span
/// says how many retries it took.
#[test]
fn a_locked_file_is_retried_and_reported_by_its_class() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ((), seen, metrics) = observe(async {
        let options = state_sqlite::SqliteOptions::file(&path).busy_timeout(Duration::ZERO);
        let store = SqliteStore::open_with(options).await.unwrap();
        let e = Engine::with_config(Arc::new(store), EngineConfig::default());
        let h = e.handle::<u64>(slot("run-1", "n"));
        h.set(1).await.unwrap();
        let url = format!("sqlite://{}", path.display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        other.execute("BEGIN IMMEDIATE").await.unwrap();
        let release = async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            other.execute("COMMIT").await.unwrap();
        };
        let (written, ()) = tokio::join!(h.set(2), release);
        written.unwrap();
    });
    let retries = events(&seen, "store busy, retrying");
    assert!(!retries.is_empty(), "no retry reported");
    for r in &retries {
        assert_eq!(
            (r.field("backend"), r.field("class")),
            (Some("sqlite"), Some("busy"))
        );
        assert!(r.field("backoff_us").is_some() && r.field("waited_ms").is_some());
    }
    let last = *spans(&seen, "state.group_commit").last().unwrap();
    assert_eq!(
        last.field("retries"),
        Some(retries.len().to_string().as_str())
    );
    assert_eq!(last.field("outcome"), Some("ok"));
    let busy = [("backend", "sqlite"), ("class", "busy")];
    let counted = metric(&metrics, "state_store_retries_total", &busy).map(Metric::count);
    assert_eq!(counted, Some(retries.len() as u64));
}

/// Admin work and the change log's retention, as an operator sees them: a clear and a purge
/// are INFO events and `state.admin` spans counted by op; a purge of expired slots is INFO
/// when it removed some (DEBUG when none); the retention's trims are DEBUG events, counted; a
/// consumer whose cursor the retention passed gets a WARN.
#[test]
fn admin_work_and_log_trims_are_reported_and_counted() {
    use state_core::{ManualClock, Timestamp, Ttl};
    use state_sqlite::SqliteOptions;
    let dir = tempfile::tempdir().unwrap();
    let ((), seen, metrics) = observe(async {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000_000));
        let options = SqliteOptions::file(dir.path().join("state.db"))
            .clock(clock.clone())
            .change_retention(Some(Duration::from_secs(3600)));
        let e = Engine::new(SqliteStore::open_with(options).await.unwrap());
        let mut late = e.consumer("late", ChangeFilter::all()).await.unwrap();
        for key in ["a", "b"] {
            e.handle::<u64>(slot("run-1", key)).set(1).await.unwrap();
        }
        e.clear(&Scope::execution("run-1").unwrap()).await.unwrap();
        e.purge_execution("run-1").await.unwrap();
        e.purge_expired().await.unwrap();
        let brief = e
            .handle::<u64>(slot("run-2", "otp"))
            .with_ttl(Ttl::For(Duration::from_secs(60)));
        brief.set(7).await.unwrap();
        clock.advance(Duration::from_secs(2 * 3600));
        e.purge_expired().await.unwrap();
        // The log is trimmed every 1024 transactions.
        let n = e.handle::<u64>(slot("run-3", "n"));
        for _ in 0..1024 {
            n.increment(1).await.unwrap();
        }
        late.next().await.unwrap().unwrap_err();
    });
    let info = |message| {
        let found = events(&seen, message);
        assert!(!found.is_empty(), "no `{message}`");
        found
    };
    let cleared = info("scope cleared");
    assert_eq!(cleared[0].level, Level::INFO);
    assert_eq!(cleared[0].field("count"), Some("2"), "{cleared:#?}");
    assert_eq!(info("scope purged")[0].level, Level::INFO);
    let expired = info("expired slots purged");
    let levels: Vec<(Level, Option<&str>)> = expired
        .iter()
        .map(|e| (e.level, e.field("count")))
        .collect();
    assert_eq!(
        levels,
        [(Level::DEBUG, Some("0")), (Level::INFO, Some("1"))]
    );
    let trims = info("change log trimmed");
    assert_eq!(trims[0].level, Level::DEBUG);
    assert_eq!(trims[0].field("retention_s"), Some("3600"));
    let gap = info("changes trimmed before the consumer read them");
    assert_eq!(gap[0].level, Level::WARN);
    assert_eq!(gap[0].field("consumer"), Some("late"));
    let admin = spans(&seen, "state.admin");
    let ops: Vec<Option<&str>> = admin.iter().map(|s| s.field("op")).collect();
    assert!(
        ops.contains(&Some("clear")) && ops.contains(&Some("purge")),
        "{admin:#?}"
    );
    let clear = [("backend", "sqlite"), ("op", "clear"), ("outcome", "ok")];
    assert_eq!(
        metric(&metrics, "state_admin_total", &clear).map(Metric::count),
        Some(1)
    );
    let trimmed = metric(
        &metrics,
        "state_change_log_trims_total",
        &[("backend", "sqlite")],
    );
    assert_eq!(trimmed.map(Metric::count), Some(trims.len() as u64));
}
