use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

/// Stored as the map itself: a path `inner.k` would write a key "inner" into it.
#[derive(StatePath, Serialize, Deserialize, Clone)]
#[serde(transparent)]
pub struct Meta {
    pub inner: BTreeMap<String, String>,
}

#[derive(StateScope, Serialize, Deserialize, Clone)]
#[serde(from = "Raw", into = "Raw")]
pub struct Research {
    pub attempts: u32,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Raw {
    pub attempts: u32,
}

impl From<Raw> for Research {
    fn from(r: Raw) -> Self {
        Research { attempts: r.attempts }
    }
}

impl From<Research> for Raw {
    fn from(r: Research) -> Self {
        Raw { attempts: r.attempts }
    }
}

fn main() {}
