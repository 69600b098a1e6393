//! The engine over the store: `update` retries, events, typed handles, collections,
//! sessions and triggers, as a user of the store meets them.

#[allow(unused_imports)]
use super::prelude::*;

checks!();
