//! Runnable scenarios from the seeds. Each module has a `run()` that its example binary and an
//! integration test both call.

pub mod adk_session;
pub mod feature_flags;
pub mod motia_limits;
pub mod observability;
pub mod quickstart;
pub mod research_fanout;
pub mod restate_object;
pub mod weft_retry;
