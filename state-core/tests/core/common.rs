//! Helpers shared by the core's tests.

use state_core::{Scope, Slot};

pub fn exec(id: &str) -> Scope {
    Scope::execution(id).unwrap()
}

pub fn slot(scope: &Scope, key: &str) -> Slot {
    Slot::new(scope.clone(), "Test", key).unwrap()
}
