//! Generic parameters with defaults and inline bounds, one named like the derive's own.
#![deny(warnings)]

use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize, Clone, Default)]
pub struct Pair<A, B = u32> {
    pub a: A,
    pub b: B,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Shelf<T: Clone = String> {
    pub item: Option<T>,
    pub pair: Pair<u8>,
}

fn views(v: ShelfView<u8>, w: ShelfView) {
    let _ = (v.item(), w.pair());
}

fn main() {
    let _ = views;
}
