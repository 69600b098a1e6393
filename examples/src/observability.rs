//! A contended counter as an operator sees it: twelve tasks increment one shop-wide order
//! count with read-modify-write `update`s, eight patient (the default retry policy) and four
//! impatient (no retry: a conflict gives up). The spans, events and metrics it leaves are the
//! example binary's output; the counts are checked by its test.

use state_core::{Engine, Error, RetryPolicy, Scope, Slot};

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// The counter after the run.
    pub orders: u64,
    /// `update`s acknowledged.
    pub acknowledged: u64,
    /// Impatient `update`s that gave up on a conflict.
    pub gave_up: u64,
}

/// Runs the twelve tasks to completion on `engine`.
pub async fn run(engine: Engine) -> Result<Report, Error> {
    let orders = Slot::new(Scope::app("shop")?, "Stats", "orders")?;
    let before = engine
        .handle::<u64>(orders.clone())
        .get()
        .await?
        .unwrap_or(0);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..12 {
        let patient = task < 8;
        let h = engine.handle::<u64>(orders.clone());
        let h = if patient {
            h
        } else {
            h.with_retry(RetryPolicy::new(0))
        };
        tasks.spawn(async move {
            let (mut acknowledged, mut gave_up) = (0u64, 0u64);
            for _ in 0..if patient { 25 } else { 5 } {
                match h.update(|n| Ok(Some(n.copied().unwrap_or(0) + 1))).await {
                    Ok(_) => acknowledged += 1,
                    Err(Error::Conflict { .. }) => gave_up += 1,
                    Err(e) => return Err(e),
                }
            }
            Ok((acknowledged, gave_up))
        });
    }
    let (mut acknowledged, mut gave_up) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (a, g) = done.map_err(|e| Error::store(std::io::Error::other(e.to_string())))??;
        acknowledged += a;
        gave_up += g;
    }
    let after = engine.handle::<u64>(orders).get().await?.unwrap_or(0);
    Ok(Report {
        orders: after - before,
        acknowledged,
        gave_up,
    })
}
