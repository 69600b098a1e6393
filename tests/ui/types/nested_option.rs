use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    pub reviewer: Option<Option<String>>,
}

fn main() {}
