use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    pub attempts: u32,
    #[state(rename = "attempts")]
    pub tries: u32,
}

fn main() {}
