//! A small research workflow: fan-out workers record their work in shared execution state.
//!
//! Runs on the in-memory store for now; issue [C] makes it persist to SQLite.

use std::collections::BTreeMap;

use state_core::{Engine, MemoryStore, Result, Scope, Slot};

/// What the workflow ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// How many fetch attempts the workers made.
    pub attempts: u32,
    /// Articles collected, in the order they were appended.
    pub articles: Vec<String>,
    /// Money spent on model calls.
    pub total_cost: f64,
    /// Per-source article counts.
    pub by_source: BTreeMap<String, u32>,
    /// The version of the `attempts` slot (one per committed write).
    pub attempts_version: u64,
}

/// Runs the workflow: 8 concurrent workers × 5 articles each, then a final review step.
pub async fn run() -> Result<Summary> {
    let engine = Engine::new(MemoryStore::new());
    let run = Scope::execution("research-run-1")?;
    let slot = |key: &str| Slot::new(run.clone(), "Research", key);

    let attempts = engine.handle::<u32>(slot("attempts")?).with_initial(&0)?;
    let articles = engine.handle::<Vec<String>>(slot("articles")?);
    let total_cost = engine.handle::<f64>(slot("total_cost")?);
    let by_source = engine.handle::<BTreeMap<String, u32>>(slot("by_source")?);

    // Fan out: every worker increments and appends concurrently. These are Apply writes:
    // the store applies them to the current value, so concurrent workers never conflict.
    let mut workers = Vec::new();
    for w in 0..8 {
        let (attempts, articles, total_cost) =
            (attempts.clone(), articles.clone(), total_cost.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..5 {
                attempts.increment(1).await?;
                articles
                    .append(format!("https://news.example/{w}/{i}"))
                    .await?;
                total_cost.increment(0.25).await?;
            }
            Ok::<_, state_core::Error>(())
        }));
    }
    for w in workers {
        w.await.map_err(state_core::Error::store)??;
    }

    // A read-modify-write that depends on other slots: the CAS loop `update`.
    let collected = articles.get().await?.unwrap_or_default();
    by_source
        .update(|current| {
            let mut counts = current.cloned().unwrap_or_default();
            for url in &collected {
                let source = url.split('/').nth(3).unwrap_or("?").to_string();
                *counts.entry(source).or_insert(0) += 1;
            }
            Ok(Some(counts))
        })
        .await?;

    // One atomic commit across two slots: a review costs money and counts as an attempt.
    engine
        .batch()
        .increment(&attempts, 1)
        .increment(&total_cost, 0.5)
        .commit()
        .await?;

    let attempts_now = attempts.get_versioned().await?;
    Ok(Summary {
        attempts: attempts_now.value.unwrap_or(0),
        attempts_version: attempts_now.version,
        articles: articles.get().await?.unwrap_or_default(),
        total_cost: total_cost.get().await?.unwrap_or(0.0),
        by_source: by_source.get().await?.unwrap_or_default(),
    })
}
