//! `SqliteStore`, the durable embedded store for `state-core`, lands here with issue [C].
//!
//! Until then this crate only re-exports the core so the workspace builds in its final shape.

pub use state_core;
