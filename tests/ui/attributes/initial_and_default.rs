use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    #[state(initial = 0, default)]
    pub attempts: u32,
}

fn main() {}
