//! The engine over the store: `update` retries, events, typed handles, collections,
//! sessions and triggers, as a user of the store meets them.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    clears_and_purges_are_events_for_the_scope_and_its_handles,
    update_retries_then_exhausts_with_the_right_events,
    per_handle_retry_policy_overrides_the_engine,
    update_succeeds_after_a_conflict_and_reports_changes,
    an_aborting_closure_writes_nothing_and_keeps_its_error,
    update_returning_none_deletes,
    a_loaded_record_is_the_first_attempt,
    a_local_part_failing_after_the_durable_commit_says_what_committed,
);

/// A clear or a purge changes every slot of a scope: the engine says so, to its own
/// subscribers and to every handle in that scope (a cache driven by events would go stale).
async fn clears_and_purges_are_events_for_the_scope_and_its_handles(env: &Env) -> CheckResult {
    use crate::Event;
    use futures::StreamExt;
    let engine = env.engine.clone();
    let sc = exec("e");
    let h = engine.handle::<u32>(slot(&sc, "a"));
    let elsewhere = engine.handle::<u32>(slot(&exec("other"), "a"));
    h.set(1).await.unwrap();
    engine.handle::<u32>(slot(&sc, "b")).set(2).await.unwrap();
    let mut all = engine.events();
    let mut mine = h.events();
    let mut theirs = elsewhere.events();
    assert_eq!(engine.scope(sc.clone()).clear().await.unwrap(), 2);
    let cleared = Event::Cleared {
        scope: sc.clone(),
        count: 2,
    };
    assert_eq!(all.next().await, Some(cleared.clone()));
    assert_eq!(mine.next().await, Some(cleared));
    assert_eq!(engine.scope(sc.clone()).purge().await.unwrap(), 2);
    let purged = Event::Purged {
        scope: sc.clone(),
        count: 2,
    };
    assert_eq!(all.next().await, Some(purged.clone()));
    assert_eq!(mine.next().await, Some(purged));
    // Another scope's handle hears nothing of it.
    elsewhere.set(5).await.unwrap();
    assert!(matches!(
        theirs.next().await,
        Some(Event::Change { new_version: 1, .. })
    ));
    Ok(())
}

async fn update_retries_then_exhausts_with_the_right_events(env: &Env) -> CheckResult {
    let target = slot(&exec("e"), "hot");
    // Every commit is preceded by another writer's write to the slot: every CAS conflicts.
    let store = Arc::new(Wrapped::new(env.store.clone()).interfering(target.clone()));
    let counts = &store.counts;
    // The default policy's attempts, without its waits.
    let retry = RetryPolicy::default().with_backoff(Duration::ZERO, Duration::ZERO);
    let engine = Engine::with_config(store.clone(), EngineConfig::default().retry(retry));
    let h = engine.handle::<u32>(target.clone());
    let mut engine_events = engine.events();
    let mut slot_events = h.events();
    let mut runs = 0;
    let err = h
        .update(|v| {
            runs += 1;
            Ok(Some(v.copied().unwrap_or(0) + 1))
        })
        .await
        .unwrap_err();
    match &err {
        Error::Conflict { slot, attempts } => {
            assert_eq!(slot, &target);
            assert_eq!(*attempts, 11, "the first attempt plus 10 retries");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("after 11 attempt(s)"));
    assert_eq!(runs, 11, "the closure re-ran on each fresh value");
    assert_eq!(counts.commits.load(Ordering::SeqCst), 11);
    assert_eq!(counts.conflicts.load(Ordering::SeqCst), 11);
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(slot_events.next().await.unwrap());
    }
    let expected: Vec<Event> = (1..=11)
        .map(|attempt| Event::Conflict {
            slot: target.clone(),
            attempt,
        })
        .chain([Event::Exhausted {
            slot: target.clone(),
            attempts: 11,
        }])
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(engine_events.next().await.unwrap(), expected[0]);
    // Nothing of ours was written: the value is the other writer's.
    assert_eq!(h.get().await.unwrap(), Some(999));
    Ok(())
}

async fn per_handle_retry_policy_overrides_the_engine(env: &Env) -> CheckResult {
    let target = slot(&exec("e"), "hot");
    let store = Arc::new(Wrapped::new(env.store.clone()).interfering(target.clone()));
    let counts = &store.counts;
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let h = engine
        .handle::<u32>(target)
        .with_retry(RetryPolicy::new(2).with_backoff(Duration::ZERO, Duration::ZERO));
    let err = h.update(|_| Ok(Some(1))).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(counts.commits.load(Ordering::SeqCst), 3);
    Ok(())
}

async fn update_succeeds_after_a_conflict_and_reports_changes(env: &Env) -> CheckResult {
    let store = Arc::new(Wrapped::new(env.store.clone()));
    let engine = Engine::with_config(store.clone(), env.engine.config().clone());
    let h = engine
        .handle::<u32>(slot(&exec("e"), "n"))
        .with_initial(&10)
        .unwrap();
    let other = h.clone();
    let mut events = h.events();
    // Another writer commits between our read and our write.
    store.before_next_commit(async move { other.increment(5).await.map(drop) });
    let got = h
        .update(|v| Ok(Some(v.copied().unwrap() * 2)))
        .await
        .unwrap();
    assert_eq!(got, Some(30), "re-ran on the fresh value 15");
    assert_eq!(h.get_versioned().await.unwrap().version, 2);
    let evs: Vec<Event> = events.by_ref().take(3).collect().await;
    assert_eq!(
        evs,
        vec![
            Event::Change {
                slot: h.slot().clone(),
                old_version: 0,
                new_version: 1
            },
            Event::Conflict {
                slot: h.slot().clone(),
                attempt: 1
            },
            Event::Change {
                slot: h.slot().clone(),
                old_version: 1,
                new_version: 2
            },
        ]
    );
    Ok(())
}

async fn an_aborting_closure_writes_nothing_and_keeps_its_error(env: &Env) -> CheckResult {
    #[derive(Debug)]
    struct Insufficient(u32);
    impl std::fmt::Display for Insufficient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "balance {} is too low", self.0)
        }
    }
    impl std::error::Error for Insufficient {}

    let engine = env.engine.clone();
    let balance = engine.handle::<u32>(slot(&exec("e"), "balance"));
    balance.set(5).await.unwrap();
    let err = balance
        .update(|b| {
            let b = *b.unwrap();
            if b < 10 {
                return Err(Insufficient(b).into());
            }
            Ok(Some(b - 10))
        })
        .await
        .unwrap_err();
    match err {
        Error::Aborted { source, slot } => {
            assert_eq!(&slot, balance.slot());
            assert_eq!(source.downcast_ref::<Insufficient>().unwrap().0, 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(balance.get_versioned().await.unwrap().version, 1);
    let err = balance.update(|_| Err(Abort::new("no"))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("state slot {}: update aborted: no", balance.slot())
    );
    Ok(())
}

async fn update_returning_none_deletes(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<String>(slot(&exec("e"), "s"));
    h.set("x".into()).await.unwrap();
    assert_eq!(h.update(|_| Ok(None)).await.unwrap(), None);
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (None, 2));
    Ok(())
}

async fn a_loaded_record_is_the_first_attempt(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<u32>(slot(&exec("e"), "n"));
    h.set(1).await.unwrap();
    let snapshot = h.get_raw().await.unwrap();
    h.set(2).await.unwrap(); // the snapshot is now stale
    let mut seen = Vec::new();
    let (v, outcome) = h
        .update_from(Some(snapshot), |v| {
            seen.push(v.copied());
            Ok(Some(v.copied().unwrap() + 10))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        vec![Some(1), Some(2)],
        "first the snapshot, then the fresh value"
    );
    assert_eq!((v, outcome.version), (Some(12), 3));
    Ok(())
}

/// A batch's `temp` part is checked before the durable commit and applied after it; if it
/// fails then (another task pushed the `u8` to its top meanwhile), the error says the durable
/// writes committed, with their outcomes, instead of looking like nothing happened.
async fn a_local_part_failing_after_the_durable_commit_says_what_committed(
    env: &Env,
) -> CheckResult {
    let store = Arc::new(Wrapped::new(env.store.clone()));
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
    let meddler = scratch.clone();
    store.before_next_commit(async move { meddler.set(255).await.map(drop) });
    let e = durable
        .batch()
        .increment(&attempts, 1)
        .increment(&scratch, 1)
        .commit()
        .await
        .unwrap_err();
    match &e {
        Error::LocalPartFailed {
            slot,
            committed,
            source,
        } => {
            assert_eq!(slot, scratch.slot());
            assert_eq!(committed.len(), 1);
            assert_eq!(committed[0].version, 2, "the durable increment committed");
            assert!(matches!(**source, Error::Overflow { .. }), "{source:?}");
        }
        other => panic!("expected LocalPartFailed, got {other:?}"),
    }
    assert_eq!(attempts.get().await.unwrap(), Some(2));
    assert_eq!(scratch.get().await.unwrap(), Some(255));
    Ok(())
}
