use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    #[state(user, app)]
    pub theme: Option<String>,
}

fn main() {}
