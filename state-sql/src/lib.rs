//! The engine the SQL stores of `state-core` share, as sqlx-core is sqlx's: everything a
//! SQL backend does alike, written once.
//!
//! - [`SqlStore`] is the [`state_core::Store`]: it checks every batch, queues it for the
//!   committer and waits; it runs reads on the backend's read connections, retried while
//!   the database is locked.
//! - The committer owns the write connection and runs every write transaction, one turn at a
//!   time, by whichever caller finds it idle ([`state_core::backend::leader::Leader`]: no hand-off to
//!   another task when writes do not overlap). Commits that arrive while a transaction runs
//!   are merged into the next one (a group); each caller's batch is still all-or-nothing on
//!   its own. A transaction that failed safely (a lock, a deadlock, a connection lost before
//!   `COMMIT`) runs again after a growing, jittered pause ([`backoff`]) until the backend's
//!   retry time has passed; one whose `COMMIT` may or may not have applied is reported as
//!   such and never run again. Admin writes (clear, purge, restore — checked here against
//!   what the slots hold) and the change log's trimming run there too.
//! - Reads other than a point read ([`reads`]: rows, key and scope listings, the change log, a
//!   slot's history) are one SQL text each, in every dialect; the migration runner
//!   ([`migrate`]) applies a backend's embedded migrations and keeps sqlx's history table.
//! - A backend ([`Backend`], [`Writer`], [`BackendError`]) is what differs: its options, its
//!   point read, the two statements its dialect spells its own way, its migrations, the
//!   shape of its write transaction (how it reads and locks the slots a group touches), and
//!   how its errors classify. `state-sqlite` and `state-postgres` are the two.
//!
//! Nothing here names a database: what differs is the backend's.

use std::future::Future;

mod backend;
pub mod columns;
mod committer;
mod macros;
pub mod migrate;
pub mod reads;
mod stats;
mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::backend::{
    Backend, BackendError, CommitterConfig, CommitterGone, Conn, Failure, Fut, Known, Loaded,
    Opened, Row, Rows, Step, Writer,
};
pub use crate::committer::{Admin, Group, backoff};
pub use crate::reads::Param;
pub use crate::stats::{Counters, Stats};
pub use crate::store::SqlStore;

/// Pins a future with an explicit `Send` bound. sqlx's executor impls carry higher-ranked
/// lifetimes that rustc cannot see through when it infers `Send` for an enclosing `async fn`
/// used generically (rust-lang/rust#102211); boxing checks `Send` where lifetimes are
/// concrete, so every future a backend hands this crate is `Send` for callers.
pub fn boxed<'a, T>(f: impl Future<Output = T> + Send + 'a) -> Fut<'a, T> {
    Box::pin(f)
}
