use serde::{Deserialize, Serialize};
use state_core::StateScope;

pub struct Opaque(u32);

#[derive(StateScope, Serialize, Deserialize)]
pub struct Job {
    pub attempts: u32,
    pub handle: Opaque,
}

fn main() {}
