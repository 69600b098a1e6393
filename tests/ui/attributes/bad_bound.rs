use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
#[state(bound = "T: +")]
pub struct Research<T> {
    pub item: T,
}

fn main() {}
