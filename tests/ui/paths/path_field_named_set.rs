use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize, Default)]
pub struct Config {
    pub set: Vec<String>,
    pub level: u8,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Agent {
    pub config: Config,
}

async fn use_it(state: AgentState) {
    state.batch(|b| b.config().level().set(3)).await.unwrap();
}

fn main() {
    let _ = use_it;
}
