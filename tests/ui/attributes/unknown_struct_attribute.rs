use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
#[state(namspace = "r")]
pub struct Research {
    pub attempts: u32,
}

fn main() {}
