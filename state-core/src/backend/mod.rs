//! For store implementers: the machinery every backend shares, so a rule of the contract is
//! written once.
//!
//! A user of handles, scopes and contexts never needs this module. A backend implements
//! [`Store`](crate::Store) and, inside its own transaction, lets this module decide:
//!
//! - [`prepare_commit`] / [`prepare_group`] run a batch's (or a group's) writes against the
//!   current records and return what to write, or the conflict; [`check_restore`] holds a
//!   restore to the same rules. [`check_batch`], [`check_value`] and [`check_restored`] are
//!   the limits every value is held to before a store touches it.
//! - [`leader`] runs a group committer without a task of its own; [`gather_yield`] lets a
//!   group grow before it is taken.
//! - [`rows`] turns stored rows back into records, scopes and changes with the same checks
//!   in every SQL backend.
//! - `conformance` (feature `conformance`) is the suite every backend runs with one line,
//!   so each rule of the store contract is checked on every store.

mod commit;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod leader;
pub mod rows;

pub use crate::limits::{check_batch, check_restored, check_value, dispose};
pub use crate::op::apply_ops;
pub use crate::store::check_page_limit;
/// Re-exported so every backend names one `async_trait` for its [`Store`](crate::Store) impl.
pub use async_trait::async_trait;
pub(crate) use commit::check_records;
pub use commit::{
    PreparedCommit, PreparedGroup, check_restore, gather_yield, prepare_commit, prepare_group,
};
