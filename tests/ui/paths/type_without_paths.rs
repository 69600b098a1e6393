use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(Serialize, Deserialize)]
pub enum Level {
    Low,
    High,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    pub level: Level,
}

fn main() {}
