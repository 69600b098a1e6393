use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
#[state(namespace = "")]
pub struct Research {
    pub attempts: u32,
}

fn main() {}
