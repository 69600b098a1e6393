//! The contract of DESIGN.md that the core can hold, one module per concern, one binary.

mod admin;
mod changes;
mod common;
mod concurrency;
#[path = "../support/delegate.rs"]
mod delegate;
mod ids;
mod ops;
mod send;
mod update;
mod versions;
