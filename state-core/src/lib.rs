//! Typed, compile-time-checked state for durable workflows and AI agents: the core.
//!
//! Every typed call in this project compiles down to one small untyped core, defined here:
//!
//! - a [`Slot`] — `(scope, namespace, key)`, every part validated and stored apart;
//! - a [`Record`] — a JSON value or a tombstone, a version that rises by exactly one per
//!   committed write, an optional expiry;
//! - a commit of [`Write`]s — each a strict compare-and-swap or a list of path [`Op`]s the
//!   store applies to the current value — all of which apply, or none;
//! - the [`Store`] trait that backends implement ([`MemoryStore`] here; SQLite and
//!   PostgreSQL in their own crates), and the [`Engine`] that owns a store, retries
//!   `update` on conflict and publishes [`Event`]s.
//!
//! What only a store implementer needs — the write rules every backend runs inside its
//! transaction, the group committer's machinery, the shared row checks of SQL backends and
//! the conformance suite — is in [`backend`].
//!
//! On top of it sit typed handles: [`SlotHandle<T>`] has `increment` only if `T` is a number,
//! `append` only if it is a sequence, and no mutating method at all in a [`ReadOnly`] view.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
//! use state_core::{Engine, MemoryStore, Scope, Slot};
//!
//! let engine = Engine::new(MemoryStore::new());
//! let run = Scope::execution("run-42")?;
//! let attempts = engine
//!     .handle::<u32>(Slot::new(run.clone(), "Research", "attempts")?)
//!     .with_initial(&0)?;
//!
//! attempts.increment(1).await?;                       // applied by the store, no read
//! let v = attempts.get_versioned().await?;
//! assert_eq!((v.value, v.version), (Some(1), 1));
//! attempts.set_if(v.version, 5).await?;               // strict compare-and-swap
//! assert!(attempts.set_if(v.version, 6).await.is_err()); // stale version
//! assert_eq!(attempts.delete().await?, Some(5));      // returns the previous value
//! assert_eq!(attempts.get().await?, None);            // `initial` does not come back
//! # Ok(()) }
//! ```
//!
//! Misuse does not compile:
//!
//! ```compile_fail
//! # async fn f(engine: state_core::Engine, slot: state_core::Slot) {
//! let name = engine.handle::<String>(slot);
//! name.increment("x".to_string()).await; // `String` is not a number
//! # }
//! ```
//!
//! ```compile_fail
//! # async fn f(engine: state_core::Engine, slot: state_core::Slot) {
//! let view = engine.handle::<u32>(slot).read_only();
//! view.set(3).await; // state is read-only in a shared handler
//! # }
//! ```

mod admin;
pub mod backend;
mod batch;
mod changes;
mod collection;
mod context;
mod engine;
mod error;
mod finite;
mod handle;
pub mod json;
/// Guides for users of the systems this library learns from: their state calls, section by
/// section, and the same thing here (each snippet is a doctest). Also under `docs/guides/`.
pub mod guides {
    #[doc = include_str!("../../docs/guides/coming-from-restate.md")]
    pub mod restate {}

    #[doc = include_str!("../../docs/guides/coming-from-adk.md")]
    pub mod adk {}

    #[doc = include_str!("../../docs/guides/coming-from-motia.md")]
    pub mod motia {}

    #[doc = include_str!("../../docs/guides/coming-from-weft.md")]
    pub mod weft {}
}
mod limits;
mod memory;
mod op;
pub mod path;
mod record;
mod scope;
mod session;
mod store;
mod target;
pub mod telemetry;

#[cfg(feature = "metrics")]
#[doc(hidden)]
pub use metrics as __metrics;

pub use admin::ScopeAdmin;
pub use batch::{BatchBuilder, BatchCommit, BatchSink, SlotBatch};
pub use changes::{
    Change, ChangeFilter, ChangeStream, Consumer, DEFAULT_CHANGE_POLL, DEFAULT_CHANGE_RETENTION,
    HistoryEntry, Trigger,
};
pub use collection::{Collection, EntryPage};
pub use context::{Checkpoint, Context, FieldScope, StateScope};
pub use engine::{Engine, EngineConfig, Event, Events, RetryPolicy};
pub use error::{Abort, BoxError, Error, IdPart, Result};
pub use handle::{
    CanWrite, Mode, Numeric, ReadOnly, ReadWrite, Sequence, SlotHandle, StateFuture, StringMap,
    Versioned,
};
pub use limits::MAX_DEPTH;
pub use memory::{MEMORY_LOG_MAX, MemoryStore};
pub use op::{NumKind, Op, OpKind, Path};
pub use path::{At, CanDelete, Cursor, Deletable, PathTarget, Required};
pub use record::{Clock, ManualClock, Record, SystemClock, Timestamp, Ttl};
pub use scope::{MAX_ID_BYTES, MAX_NAME_BYTES, Scope, ScopeKind, Slot, SlotKey};
pub use session::{AsSlot, SessionHandle};
pub use store::{
    Batch, CommitOutcome, DEFAULT_MAX_VALUE_BYTES, IntoStore, MAX_PAGE, Page, Restore, Store,
    VersionConflict, Write, WriteKind, WriteOutcome,
};
pub use telemetry::TraceIds;

#[cfg(feature = "derive")]
pub use state_macros::*;

/// Support for generated code. Not public API: no stability guarantees.
#[doc(hidden)]
pub mod __private;
