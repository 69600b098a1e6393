use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    #[state(initial = "zero", initial = 0)]
    pub attempts: u32,
}

fn main() {}
