//! A research workflow: fan-out workers record their work in shared, typed execution state;
//! workflow-wide totals and the user's preferences carry over from run to run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, Result, StatePath, StateScope};

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

/// Shared by every run of the research workflow: it outlives each execution.
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[state(workflow)]
pub struct ResearchTotals {
    /// Runs started so far (each numbers its execution).
    #[state(initial = 0)]
    pub runs: u64,
    /// Runs finished so far: raised in one atomic batch with `articles`, so the two agree
    /// even when a run was interrupted or two ran at once.
    #[state(initial = 0)]
    pub finished: u64,
    /// Articles collected by every finished run.
    #[state(initial = 0)]
    pub articles: u64,
}

/// What one run ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// This run's number (1 on a fresh store).
    pub run: u64,
    /// This run's execution state.
    pub research: Research,
    /// The workflow's totals after this run.
    pub totals: ResearchTotals,
}

/// Runs the workflow once on `engine`: 8 concurrent workers × 5 articles each, a CAS tally,
/// then a review committed as one atomic batch.
pub async fn run(engine: Engine) -> Result<Report> {
    // Workflow-wide state needs only the workflow type: it numbers the runs.
    let workflow = Context::new(engine.clone(), "research-bootstrap")?.with_workflow("research")?;
    let totals = workflow.state::<ResearchTotals>()?;
    let run = totals.runs().increment(1).await?;

    let ctx = Context::new(engine, format!("research-run-{run}"))?
        .with_workflow("research")?
        .with_user("newsroom", "ada")?;
    let state = ctx.state::<Research>()?;
    if state.theme().get().await?.is_none() {
        state.theme().set("dark".into()).await?; // the user's choice, kept across runs
    }

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

    let research = state.load().await?.to_value()?;
    let collected = research.articles.len() as u64;
    totals
        .batch(|b| b.finished().increment(1).articles().increment(collected))
        .await?;
    Ok(Report {
        run,
        research,
        totals: totals.load().await?.to_value()?,
    })
}
