//! Generated code is lint-clean under strict lints.
#![deny(missing_docs, unused_qualifications, warnings)]
#![deny(clippy::all)]

use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

/// A nested value.
#[derive(StatePath, Serialize, Deserialize, Debug)]
pub struct Profile {
    /// Age.
    pub age: u32,
    /// Nick.
    pub nick: Option<String>,
}

/// A level.
#[derive(StatePath, Serialize, Deserialize, Debug)]
pub enum Level {
    /// Low.
    Low,
    /// High.
    High,
}

/// The state.
#[derive(StateScope, Serialize, Deserialize, Debug)]
pub struct Research {
    /// Attempts so far.
    #[state(initial = 0)]
    pub attempts: u32,
    undocumented: Vec<String>,
    /// The profile.
    pub profile: Profile,
    /// The level.
    pub level: Option<Level>,
    /// Temp.
    #[state(temp)]
    pub raw: Option<String>,
}

fn main() {}
