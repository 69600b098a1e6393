use serde::{Deserialize, Serialize};
use state_core::StateScope;

#[derive(StateScope, Serialize, Deserialize)]
pub enum Research {
    Running { attempts: u32 },
    Done,
}

fn main() {}
