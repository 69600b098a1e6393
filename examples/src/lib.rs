//! Runnable scenarios. Each module has a `run()` that its example binary and a test call.

pub mod quickstart;
