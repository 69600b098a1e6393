//! Concurrency: concurrent writers lose nothing.

#[allow(unused_imports)]
use super::prelude::*;

checks!(concurrent_increments_lose_nothing,);

async fn concurrent_increments_lose_nothing(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "counter");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let h = env.engine.handle::<u64>(s.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                h.increment(1).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let cas = env.engine.handle::<u64>(s.clone());
    for _ in 0..20 {
        cas.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1)))
            .await
            .ctx("update")?;
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("increment")?;
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
