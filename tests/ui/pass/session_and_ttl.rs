use serde::{Deserialize, Serialize};
use state_core::{Context, StateScope};

#[derive(StateScope, Serialize, Deserialize)]
pub struct Agent {
    /// Checkpoint-local and synchronous.
    #[state(session, initial = 0)]
    pub turns: u32,
    #[state(session)]
    pub scratch: Vec<String>,
    /// Expires 30 minutes after each write.
    #[state(user, ttl = "30m")]
    pub token: Option<String>,
}

fn run(ctx: Context) -> state_core::Result<()> {
    let state = ctx.state::<Agent>()?;
    let n: u32 = state.turns().increment(1)?; // synchronous
    state.scratch().append(format!("turn {n}"))?;
    let _ = state.token(); // an async handle
    Ok(())
}

fn main() {
    let _ = run;
}
