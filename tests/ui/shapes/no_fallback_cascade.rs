use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research(u32);

// Code using the broken type gets no follow-on "StateScope is not implemented" error.
fn bind(ctx: &state_core::Context) {
    let _ = ctx.state::<Research>();
}

fn main() {}
