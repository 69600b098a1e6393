use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Inventory {
    #[state(group)]
    pub items: Vec<String>,
}

fn main() {}
