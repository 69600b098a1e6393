//! No lost update: concurrent Apply writers never conflict; concurrent CAS writers retry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use state_core::{Engine, EngineConfig, Event, RetryPolicy};

use crate::common::{Wrapped, exec, slot};
use crate::delegate::delegate_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_times_a_thousand_increments_lose_nothing_and_never_read() {
    let (store, counts) = Wrapped::new(None);
    let engine = Engine::new(store);
    let h = engine.handle::<u64>(slot(&exec("e"), "counter"));
    let mut events = engine.events();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    h.increment(1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        counts.loads.load(Ordering::SeqCst),
        0,
        "increments are Apply writes: no reads"
    );
    assert_eq!(counts.commits.load(Ordering::SeqCst), 64_000);
    assert_eq!(
        counts.conflicts.load(Ordering::SeqCst),
        0,
        "no commit conflicted"
    );
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(64_000), 64_000));
    assert_eq!(
        counts.loads.load(Ordering::SeqCst),
        1,
        "the wrapper does count loads"
    );
    // Drain what the (bounded) event buffer kept: changes or lag markers, never a conflict.
    drop(engine);
    drop(h);
    let mut conflicts = 0;
    let mut changes = 0;
    while let Some(ev) = tokio::time::timeout(Duration::from_millis(50), events.next())
        .await
        .ok()
        .flatten()
    {
        match ev {
            Event::Conflict { .. } | Event::Exhausted { .. } => conflicts += 1,
            Event::Change { .. } => changes += 1,
            _ => {}
        }
    }
    assert_eq!(conflicts, 0);
    assert!(changes > 0, "change events were published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_updates_retry_until_every_one_lands() {
    let engine = Engine::with_config(
        Arc::new(state_core::MemoryStore::new()),
        EngineConfig::default().retry(RetryPolicy::new(1_000)),
    );
    let h = engine.handle::<u64>(slot(&exec("e"), "cas"));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    h.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1)))
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(800), 800));
}

/// A group-committing backend's committer lets ready callers queue before it takes a group,
/// and returns at once when nobody else is ready.
#[tokio::test(flavor = "current_thread")]
async fn gather_yield_lets_ready_callers_queue_first() {
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(64);
    // Alone: nothing queues, one yield.
    state_core::backend::gather_yield(&rx).await;
    assert_eq!(rx.len(), 0);
    // Ten callers ready to run (as the callers answered by the last group are), each
    // queueing a commit, yielding, and queueing another: all twenty get in before the group
    // is taken, the second ten on a later yield (the queue kept growing).
    for i in 0..10 {
        let tx = tx.clone();
        tokio::spawn(async move {
            tx.send(i).await.unwrap();
            tokio::task::yield_now().await;
            tx.send(10 + i).await.unwrap();
        });
    }
    assert_eq!(rx.len(), 0, "spawned tasks have not run yet");
    state_core::backend::gather_yield(&rx).await;
    assert_eq!(rx.len(), 20);
}

/// A durable store whose commits first let another task write a `temp` slot (as a concurrent
/// task of the same invocation might while the durable commit is in flight).
struct Meddling {
    inner: state_core::MemoryStore,
    meddle: std::sync::Mutex<Option<state_core::SlotHandle<u8>>>,
}

crate::delegate::delegate_store!(
    Meddling,
    commit | this,
    batch | {
        let meddler = this.meddle.lock().unwrap().take();
        if let Some(h) = meddler {
            h.set(255).await?;
        }
        this.inner.commit(batch).await
    }
);

/// A batch's `temp` part is checked before the durable commit and applied after it; if it
/// fails then (another task pushed the `u8` to its top meanwhile), the error says the durable
/// writes committed, with their outcomes, instead of looking like nothing happened.
#[tokio::test]
async fn a_local_part_failing_after_the_durable_commit_says_what_committed() {
    let store = Arc::new(Meddling {
        inner: state_core::MemoryStore::new(),
        meddle: std::sync::Mutex::new(None),
    });
    let durable = Engine::with_config(store.clone(), EngineConfig::default());
    let local = durable.local();
    let attempts = durable.handle::<u32>(slot(&exec("e"), "attempts"));
    let scratch = local.handle::<u8>(slot(&exec("e"), "scratch"));
    scratch.set(250).await.unwrap();
    // Without meddling the batch commits whole.
    durable
        .batch()
        .increment(&attempts, 1)
        .increment(&scratch, 1)
        .commit()
        .await
        .unwrap();
    *store.meddle.lock().unwrap() = Some(scratch.clone());
    let e = durable
        .batch()
        .increment(&attempts, 1)
        .increment(&scratch, 1)
        .commit()
        .await
        .unwrap_err();
    match &e {
        state_core::Error::LocalPartFailed {
            slot,
            committed,
            source,
        } => {
            assert_eq!(slot, scratch.slot());
            assert_eq!(committed.len(), 1);
            assert_eq!(committed[0].version, 2, "the durable increment committed");
            assert!(
                matches!(**source, state_core::Error::Overflow { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected LocalPartFailed, got {other:?}"),
    }
    assert_eq!(attempts.get().await.unwrap(), Some(2));
    assert_eq!(scratch.get().await.unwrap(), Some(255));
}

/// A store whose change log fails to read `failures` times (a lost connection, say), then
/// reads again.
struct FlakyLog {
    inner: state_core::MemoryStore,
    failures: std::sync::atomic::AtomicU32,
}

delegate_store!(
    FlakyLog,
    changes | this,
    _after | {
        let left = this.failures.load(Ordering::SeqCst);
        if left > 0 {
            this.failures.store(left - 1, Ordering::SeqCst);
            Err(state_core::Error::store(std::io::Error::other(
                "connection lost",
            )))
        } else {
            Ok(())
        }
    },
    commit | this,
    batch | this.inner.commit(batch).await
);

/// A change stream (and a typed watch on it) goes on after a store failure, from where it
/// was: it reports the error and misses no version (it used to end, and a watch, which gives
/// out no sequence numbers, could not resume without a gap).
#[tokio::test]
async fn a_change_stream_goes_on_after_a_store_failure_and_misses_nothing() {
    let store = Arc::new(FlakyLog {
        inner: state_core::MemoryStore::new(),
        failures: std::sync::atomic::AtomicU32::new(0),
    });
    let engine = Engine::with_config(
        store.clone(),
        EngineConfig::default().change_poll(Duration::from_millis(5)),
    );
    let h = engine.handle::<u64>(slot(&exec("e"), "n"));
    let mut feed = engine.changes(0, state_core::ChangeFilter::all());
    h.increment(1).await.unwrap();
    assert_eq!(feed.next().await.unwrap().unwrap().version, 1);
    store.failures.store(2, Ordering::SeqCst);
    h.increment(1).await.unwrap();
    h.increment(1).await.unwrap();
    let mut errors = 0;
    let mut versions = Vec::new();
    while versions.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("the stream stalled")
        {
            Some(Ok(c)) => versions.push(c.version),
            Some(Err(e)) => {
                assert!(e.to_string().contains("connection lost"), "{e}");
                errors += 1;
            }
            None => panic!("the stream ended after a store failure"),
        }
    }
    assert_eq!((errors, versions), (2, vec![2, 3]));
}

/// A store that keeps no change log (every read of it says so).
struct NoLog {
    inner: state_core::MemoryStore,
}

delegate_store!(
    NoLog,
    changes | _this,
    _after
        | Err(state_core::Error::InvalidArgument(
            "this store keeps no change log".into()
        )),
    commit | this,
    batch | this.inner.commit(batch).await
);

/// A trigger whose handler panics keeps running: the panic is a failure (counted, retried),
/// and the change is handled once the handler succeeds. A store without a change log refuses
/// a trigger at once instead of running a task that retries for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_trigger_handler_is_retried_and_a_store_without_a_log_refuses_triggers() {
    let engine = Engine::new(state_core::MemoryStore::new());
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let trigger = engine
        .trigger(
            "panicky",
            state_core::ChangeFilter::all(),
            |_| true,
            move |_c| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "the first call panics");
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    engine
        .handle::<u64>(slot(&exec("e"), "n"))
        .increment(1)
        .await
        .unwrap();
    for _ in 0..2000 {
        if trigger.handled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        (trigger.handled(), trigger.failures(), trigger.is_finished()),
        (1, 1, false)
    );
    trigger.stop_and_wait().await;

    let none = Engine::new(NoLog {
        inner: state_core::MemoryStore::new(),
    });
    let e = none
        .trigger(
            "t",
            state_core::ChangeFilter::all(),
            |_| true,
            |_c| async { Ok::<(), String>(()) },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no change log"), "{e}");
}

/// `stop_and_wait` returns only once the trigger's task has ended: no handler call of it is
/// still running (its future has been dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_wait_leaves_no_handler_call_running() {
    struct Running(Arc<std::sync::atomic::AtomicI32>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let engine = Engine::new(state_core::MemoryStore::new());
    let running = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let counter = running.clone();
    let trigger = engine
        .trigger(
            "slow",
            state_core::ChangeFilter::all(),
            |_| true,
            move |_c| {
                counter.fetch_add(1, Ordering::SeqCst);
                let guard = Running(counter.clone());
                async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(guard);
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    engine
        .handle::<u64>(slot(&exec("e"), "n"))
        .increment(1)
        .await
        .unwrap();
    for _ in 0..2000 {
        if running.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(running.load(Ordering::SeqCst), 1, "the handler is running");
    trigger.stop_and_wait().await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "a handler call outlived the stop"
    );
}

/// A store that records the cursor of every read of its change log.
struct RecordingLog {
    inner: state_core::MemoryStore,
    cursors: std::sync::Mutex<Vec<u64>>,
}

delegate_store!(
    RecordingLog,
    changes | this,
    after | {
        if let Some(after) = after {
            this.cursors.lock().unwrap().push(after);
        }
        Ok::<(), state_core::Error>(())
    },
    commit | this,
    batch | this.inner.commit(batch).await
);

/// A stream whose filter matches nothing for a long stretch moves its cursor past the changes
/// it looked at (it used to read from its last match on every wake, rescanning ever more of
/// the log), and still sees the next change that matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_filter_moves_its_cursor_past_what_it_looked_at() {
    let store = Arc::new(RecordingLog {
        inner: state_core::MemoryStore::new(),
        cursors: std::sync::Mutex::new(Vec::new()),
    });
    let engine = Engine::with_config(
        store.clone(),
        EngineConfig::default().change_poll(Duration::from_millis(2)),
    );
    let quiet = slot(&exec("e"), "quiet");
    let busy = engine.handle::<u64>(slot(&exec("e"), "busy"));
    let mut feed = engine.changes(0, state_core::ChangeFilter::slot(&quiet));
    let next = tokio::spawn(async move { feed.next().await });
    for _ in 0..200 {
        busy.increment(1).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let furthest = store.cursors.lock().unwrap().iter().copied().max();
    assert!(
        furthest.is_some_and(|c| c >= 150),
        "the cursor stayed behind: furthest read after {furthest:?} of 200 changes"
    );
    engine.handle::<u64>(quiet).increment(1).await.unwrap();
    let c = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("the quiet slot's change was not seen")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((c.seq, c.version), (201, 1));
}
