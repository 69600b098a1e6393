//! Weft: a workflow step retried until it succeeds, with its attempt counter, last error and
//! status in execution state, a workflow-wide retry total, and a checkpointed session cursor.

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, Error, Result, StatePath, StateScope};

/// Where a step is.
#[derive(StatePath, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Not started.
    #[default]
    Pending,
    /// Being attempted.
    Running,
    /// Succeeded.
    Done,
}

/// One execution's state of the `fetch-report` workflow.
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FetchReport {
    /// Attempts of the flaky step.
    #[state(initial = 0)]
    pub attempts: u32,
    /// The last failure, cleared on success.
    pub last_error: Option<String>,
    /// The step's status.
    #[state(initial = Status::Pending)]
    pub status: Status,
    /// Retries across every run of the workflow.
    #[state(workflow, initial = 0)]
    pub total_retries: u64,
    /// How far this execution got (checkpoint-local).
    #[state(session, initial = 0)]
    pub cursor: u32,
}

/// A service that fails `failures` times, then answers.
struct Flaky {
    failures: u32,
}

impl Flaky {
    fn call(&mut self) -> std::result::Result<String, String> {
        if self.failures > 0 {
            self.failures -= 1;
            Err(format!(
                "503 from upstream ({} failures left)",
                self.failures
            ))
        } else {
            Ok("report body".into())
        }
    }
}

/// Runs one execution whose step fails `failures` times first. Returns its final state.
pub async fn run(engine: Engine, execution: &str, failures: u32) -> Result<FetchReport> {
    let ctx = Context::new(engine.clone(), execution)?.with_workflow("fetch-report")?;
    let state = ctx.state::<FetchReport>()?;
    let mut upstream = Flaky { failures };
    // Pending → Running, only if nobody else started it (a strict compare-and-swap).
    let status = state.status().get_versioned().await?;
    if status.value != Some(Status::Pending) {
        return Err(Error::InvalidArgument(format!("{execution} already ran")));
    }
    state
        .status()
        .set_if(status.version, Status::Running)
        .await?;
    loop {
        let attempt = state.attempts().increment(1).await?;
        state.cursor().set(attempt)?; // synchronous session state
        match upstream.call() {
            Ok(_body) => {
                state
                    .batch(|b| b.status().set(Status::Done).last_error().delete())
                    .await?;
                break;
            }
            Err(e) if attempt < 5 => {
                // One atomic commit: the error and the workflow-wide counter move together.
                state
                    .batch(|b| b.last_error().set(e).total_retries().increment(1))
                    .await?;
            }
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "gave up after {attempt}: {e}"
                )));
            }
        }
    }
    // A restart would restore the session cursor from the checkpoint.
    let checkpoint = ctx.checkpoint();
    let resumed = Context::new(engine, execution)?.with_workflow("fetch-report")?;
    resumed.restore(&checkpoint)?;
    let value = resumed.state::<FetchReport>()?.load().await?.to_value()?;
    Ok(value)
}
