//! Derive macros for [`state-core`](https://docs.rs/state-core).
//!
//! `#[derive(StateScope)]` and `#[derive(StatePath)]` land here with issue [B]; until then the
//! crate is an empty proc-macro crate so the workspace shape already shows the architecture.
