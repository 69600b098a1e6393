//! Concurrency: concurrent writers lose nothing.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    concurrent_increments_lose_nothing,
    sixty_four_tasks_times_a_thousand_increments_lose_nothing_and_never_read,
    concurrent_cas_updates_retry_until_every_one_lands,
);

async fn concurrent_increments_lose_nothing(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "counter");
    // A `JoinSet`: a check that fails midway aborts its tasks, so they cannot disturb the
    // checks after it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let h = env.engine.handle::<u64>(s.clone());
        tasks.spawn(async move {
            for _ in 0..50 {
                h.increment(1).await?;
            }
            Ok::<_, Error>(())
        });
    }
    let cas = env.engine.handle::<u64>(s.clone());
    for _ in 0..20 {
        cas.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1)))
            .await
            .ctx("update")?;
    }
    while let Some(t) = tasks.join_next().await {
        t.map_err(|e| format!("task: {e}"))?.ctx("increment")?;
    }
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(820)) && r.version == 820,
        "16×50 increments + 20 updates: {r:?}"
    );
    // Every version is in the change log, in order, even where a store merged concurrent
    // callers' batches into one transaction.
    let logged: Vec<(u64, Option<Value>)> =
        read_all_changes(env.store.as_ref(), &ChangeFilter::slot(&s))
            .await
            .ctx("read_changes")?
            .into_iter()
            .map(|c| (c.version, c.value))
            .collect();
    let want: Vec<(u64, Option<Value>)> = (1..=820).map(|v| (v, Some(json!(v)))).collect();
    ensure!(
        logged == want,
        "the log holds {} versions of the counter, not each of 1..=820 in order: {:?}…",
        logged.len(),
        logged.iter().take(8).collect::<Vec<_>>()
    );
    Ok(())
}

async fn sixty_four_tasks_times_a_thousand_increments_lose_nothing_and_never_read(
    env: &Env,
) -> CheckResult {
    let store = Arc::new(Wrapped::new(env.store.clone()));
    let counts = &store.counts;
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let h = engine.handle::<u64>(slot(&exec("e"), "counter"));
    let mut events = engine.events();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let h = h.clone();
        tasks.spawn(async move {
            for _ in 0..1000 {
                h.increment(1).await.unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
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
    Ok(())
}

async fn concurrent_cas_updates_retry_until_every_one_lands(env: &Env) -> CheckResult {
    let engine = Engine::with_config(
        env.store.clone(),
        EngineConfig::default().retry(RetryPolicy::new(1_000)),
    );
    let h = engine.handle::<u64>(slot(&exec("e"), "cas"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let h = h.clone();
        tasks.spawn(async move {
            for _ in 0..50 {
                h.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1)))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(800), 800));
    Ok(())
}
