//! A type parameter used only by a field the patch leaves out (skipped by serde) still
//! compiles: the patch carries a marker for it.
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use state_core::StatePath;

#[derive(StatePath, Serialize, Deserialize, Default)]
#[serde(bound = "")]
pub struct Tagged<T> {
    pub count: u32,
    #[serde(skip)]
    pub tag: PhantomData<T>,
}

fn main() {
    let patch: TaggedPatch<String> = TaggedPatch {
        count: Some(1),
        ..Default::default()
    };
    let _ = patch;
}
