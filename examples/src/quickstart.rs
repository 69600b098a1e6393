//! A research workflow: fan-out workers record their work in shared, typed execution state.
//!
//! Runs on the in-memory store for now; issue [C] makes it persist to SQLite.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, MemoryStore, Result, StatePath, StateScope};

/// Who reviews the research.
#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Reviewer {
    /// Display name.
    pub name: String,
    /// Reviews done.
    pub reviews: u32,
}

/// The workflow's state: each field is a slot; the struct's name is their namespace.
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Research {
    /// Fetch attempts (and reviews) so far.
    #[state(initial = 0)]
    pub attempts: u32,
    /// Articles collected.
    #[state(default)]
    pub articles: Vec<String>,
    /// Money spent on model calls.
    #[state(initial = 0.0)]
    pub total_cost: f64,
    /// Article counts per source.
    #[state(default)]
    pub by_source: BTreeMap<String, u32>,
    /// The reviewer, once one is assigned.
    pub reviewer: Option<Reviewer>,
    /// Shared by every execution of this user.
    #[state(user)]
    pub theme: Option<String>,
    /// Never persisted: gone when the invocation ends.
    #[state(temp)]
    pub last_response: Option<String>,
}

/// Runs the workflow: 8 concurrent workers × 5 articles each, a CAS tally, then a review
/// committed as one atomic batch. Returns the final state.
pub async fn run() -> Result<Research> {
    let engine = Engine::new(MemoryStore::new());
    let ctx = Context::new(engine, "research-run-1")?.with_user("newsroom", "ada")?;
    let state = ctx.state::<Research>()?;
    state.theme().set("dark".into()).await?;

    // Fan out: increments and appends are applied by the store, so concurrent workers never
    // conflict and never lose a write.
    let mut workers = Vec::new();
    for w in 0..8 {
        let state = state.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..5 {
                state.attempts().increment(1).await?;
                state
                    .articles()
                    .append(format!("https://news.example/{w}/{i}"))
                    .await?;
                state.total_cost().increment(0.25).await?;
                state
                    .last_response()
                    .set(format!("worker {w} item {i}"))
                    .await?;
            }
            Ok::<_, state_core::Error>(())
        }));
    }
    for w in workers {
        w.await.map_err(state_core::Error::store)??;
    }

    // A read-modify-write that depends on another slot: the CAS loop, re-run on conflict.
    let collected = state.articles().get().await?.unwrap_or_default();
    state
        .by_source()
        .update(move |current| {
            let mut counts = current.cloned().unwrap_or_default();
            for url in &collected {
                let source = url.split('/').nth(3).unwrap_or("?").to_string();
                *counts.entry(source).or_insert(0) += 1;
            }
            Ok(Some(counts))
        })
        .await?;

    // One atomic commit across three slots, with a path-checked nested op.
    state
        .reviewer()
        .set(Reviewer {
            name: "Grace".into(),
            reviews: 0,
        })
        .await?;
    state
        .batch(|b| {
            b.attempts()
                .increment(1)
                .total_cost()
                .increment(0.5)
                .reviewer()
                .reviews()
                .increment(1)
        })
        .await?;

    // Every field in one store call, as the struct.
    state.load().await?.to_value()
}
