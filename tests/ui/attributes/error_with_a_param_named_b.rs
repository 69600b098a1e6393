use serde::{Deserialize, Serialize};
use state_core::StatePath;

// The one error is the attribute's: the fallback impl must not add its own.
#[derive(StatePath, Serialize, Deserialize, Clone)]
pub struct Pair<B> {
    #[state(bogus)]
    pub b: B,
}

fn main() {}
