//! The core's own tests: identity and op validation, `Send` bounds, the committer's
//! machinery, and what only the memory store configures (its change log's bound).
//!
//! Every rule of the store contract is checked by the conformance suite
//! (`state_core::backend::conformance`, `tests/conformance.rs`), which every backend runs.

mod committer;
mod common;
mod ids;
mod ops;
mod retention;
mod send;
