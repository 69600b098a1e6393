//! Research fan-out: child executions, spawned as tasks, `append` and `merge` into their
//! root's shared execution state; each keeps private session notes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, Result, StateScope};

/// The shared state of one research execution tree.
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Research {
    /// Findings, appended by every child.
    #[state(default)]
    pub findings: Vec<String>,
    /// Findings per source, merged in by every child.
    #[state(default)]
    pub sources: BTreeMap<String, u32>,
    /// Money spent.
    #[state(initial = 0.0)]
    pub cost: f64,
    /// Private to each execution.
    #[state(session, initial = 0)]
    pub my_steps: u32,
}

/// Runs a root that spawns `children` children, each finding `per_child` results.
pub async fn run(engine: Engine, children: u32, per_child: u32) -> Result<(Research, Vec<u32>)> {
    let root = Context::new(engine, "research-1")?;
    let mut tasks = Vec::new();
    for c in 0..children {
        let child = root.child(format!("research-1/child-{c}"))?;
        tasks.push(tokio::spawn(async move {
            let state = child.state::<Research>()?;
            for i in 0..per_child {
                let source = format!("source-{}", i % 3);
                state
                    .batch(|b| {
                        b.findings()
                            .append(format!("child {c} finding {i}"))
                            .sources()
                            .entry(source)
                            .increment(1)
                            .cost()
                            .increment(0.01)
                    })
                    .await?;
                state.my_steps().increment(1)?;
            }
            // The child also merges a summary map in one op.
            state
                .sources()
                .merge([(format!("child-{c}"), per_child)])
                .await?;
            state.my_steps().get().map(|n| n.unwrap_or(0))
        }));
    }
    let mut steps = Vec::new();
    for t in tasks {
        steps.push(t.await.map_err(state_core::Error::store)??);
    }
    let state = root.state::<Research>()?;
    assert_eq!(
        state.my_steps().get()?,
        Some(0),
        "the root's session is its own"
    );
    Ok((state.load().await?.to_value()?, steps))
}
