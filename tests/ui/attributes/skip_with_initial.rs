use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    #[serde(skip)]
    #[state(skip, initial = 0)]
    pub cache: u32,
}

fn main() {}
