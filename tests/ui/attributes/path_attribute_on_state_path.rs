use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(state_core::StatePath, Serialize, Deserialize)]
#[state(namespace = "p")]
pub struct Profile {
    #[state(initial = 1)]
    pub age: u32,
}

fn main() {}
