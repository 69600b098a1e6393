use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Login {
    #[state(ttl = 3600)]
    pub token: Option<String>,
}

fn main() {}
