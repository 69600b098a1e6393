use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Login {
    #[state(ttl = "soon")]
    pub token: Option<String>,
}

fn main() {}
