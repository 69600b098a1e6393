use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Chat {
    #[state(session, max_retries = 3)]
    pub draft: Option<String>,
}

fn main() {}
