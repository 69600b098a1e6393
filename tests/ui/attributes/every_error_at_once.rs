use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
#[state(namespace = "")]
pub struct Research {
    #[state(intial = 0)]
    pub attempts: u32,
    #[state(user, app)]
    pub theme: Option<String>,
    #[state(rename = "attempts")]
    pub tries: u32,
}

fn main() {}
