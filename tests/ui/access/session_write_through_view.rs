use serde::{Deserialize, Serialize};
use state_core::{Context, StateScope};

#[derive(StateScope, Serialize, Deserialize)]
pub struct Agent {
    #[state(session, initial = 0)]
    pub turns: u32,
}

fn run(ctx: Context) {
    let view = ctx.view::<Agent>().unwrap();
    let _ = view.turns().increment(1);
}

fn main() {}
