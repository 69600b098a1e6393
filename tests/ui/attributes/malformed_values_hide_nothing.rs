use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    // A malformed value, then an unknown name: both reported.
    #[state(rename = v2, bogus)]
    pub a: u32,
    // Flags given values.
    #[state(default = true)]
    pub b: Vec<u32>,
    #[state(user = "x")]
    pub c: Option<u32>,
}

#[derive(StatePath, Serialize, Deserialize, Clone, Copy)]
pub enum Mode {
    #[state(leaf)]
    Fast,
    Slow(#[state(skip)] u32),
}

#[derive(StatePath, Serialize, Deserialize, Clone)]
pub struct Pair(#[state(rename = "x")] pub u32, pub u32);

fn main() {}
