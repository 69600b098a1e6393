// `#[state(crate = "…")]` points generated code at a re-export of state-core.
pub mod reexport {
    pub use state_core as core_again;
}

use serde::{Deserialize, Serialize};

#[derive(state_core::StateScope, Serialize, Deserialize)]
#[state(crate = "crate::reexport::core_again")]
pub struct Research {
    pub attempts: u32,
}

#[derive(state_core::StatePath, Serialize, Deserialize)]
#[state(crate = "crate::reexport::core_again")]
pub struct Profile {
    pub age: u32,
}

fn main() {
    let _ = <Research as state_core::StateScope>::NAMESPACE;
}
