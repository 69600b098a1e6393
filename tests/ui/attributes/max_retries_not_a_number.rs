use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Job {
    #[state(max_retries = "3")]
    pub attempts: u32,
}

fn main() {}
