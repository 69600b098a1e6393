//! The one error type of the state layer. Every variant that concerns a slot names it.

use std::fmt;

use crate::op::{NumKind, Path};
use crate::scope::Slot;

/// A boxed error from a store backend or from a user's `update` closure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, state_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which part of an identity failed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdPart {
    /// A scope kind name (`"execution"`, `"user"`, …).
    ScopeKind,
    /// One part of a scope id.
    ScopeId,
    /// A namespace.
    Namespace,
    /// A key.
    Key,
}

impl fmt::Display for IdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdPart::ScopeKind => "scope kind",
            IdPart::ScopeId => "scope id",
            IdPart::Namespace => "namespace",
            IdPart::Key => "key",
        })
    }
}

/// Everything that can go wrong reading or writing state.
///
/// A failed commit changes nothing, whatever the variant, except
/// [`LocalPartFailed`](Error::LocalPartFailed), which says what did commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scope id, namespace or key is empty, too long or contains NUL.
    #[error("invalid {part} {value:?}: {reason}")]
    InvalidId {
        /// Which part was rejected.
        part: IdPart,
        /// The rejected value (at most 64 bytes of it).
        value: String,
        /// Why.
        reason: String,
    },

    /// A batch's durable writes committed, but its invocation-local part (`temp` or `session`
    /// state), checked before the durable commit, failed when applied after it: another task
    /// changed those slots in between, or a value expired. The durable writes stand (their
    /// outcomes are in `committed`); retrying the whole batch would apply them twice.
    #[error(
        "state slot {slot}: the batch's durable writes committed, but its local part failed after them: {source}"
    )]
    LocalPartFailed {
        /// The local slot whose write failed (the part's first, if the failure names none).
        slot: Slot,
        /// The outcomes of what committed, in the batch's order.
        committed: Vec<crate::store::WriteOutcome>,
        /// Why the local part failed.
        source: Box<Error>,
    },

    /// A read-modify-write (`update`, a collection's `clear`) met a conflicting writer on
    /// every attempt and gave up.
    #[error(
        "state slot {slot}: gave up after {attempts} attempt(s), each conflicting with another writer"
    )]
    Conflict {
        /// The contended slot.
        slot: Slot,
        /// Attempts made (the first plus every retry).
        attempts: u32,
    },

    /// A strict compare-and-swap (`set_if`, `delete_if`, a CAS write) found another version.
    #[error("state slot {slot}: expected version {expected}, but it is at version {actual}")]
    VersionMismatch {
        /// The slot.
        slot: Slot,
        /// The version the write was conditional on.
        expected: u64,
        /// The version the slot is at.
        actual: u64,
    },

    /// A stored value no longer deserializes into the field's type.
    #[error(
        "state slot {slot} at version {version}: stored value does not fit `{type_name}`: {source}"
    )]
    Decode {
        /// The slot.
        slot: Slot,
        /// The version of the value that failed to decode.
        version: u64,
        /// The Rust type it was decoded as.
        type_name: &'static str,
        /// serde's reason.
        source: serde_json::Error,
    },

    /// A value could not be serialized to JSON.
    #[error("state slot {slot}: value of type `{type_name}` does not serialize to JSON: {source}")]
    Encode {
        /// The slot.
        slot: Slot,
        /// The Rust type being serialized.
        type_name: &'static str,
        /// serde's reason.
        source: serde_json::Error,
    },

    /// A path does not lead anywhere in the stored value (an absent parent, an unknown field).
    #[error("state slot {slot}: invalid path {path}: {reason}")]
    InvalidPath {
        /// The slot.
        slot: Slot,
        /// The path of the op.
        path: Path,
        /// Why.
        reason: String,
    },

    /// An op met a value of another JSON type than it works on.
    #[error("state slot {slot}: `{op}` at {path} needs {expected}, but the value there is {found}")]
    TypeMismatch {
        /// The slot.
        slot: Slot,
        /// The path of the op.
        path: Path,
        /// The op's name.
        op: &'static str,
        /// What the op needs.
        expected: String,
        /// What it found.
        found: String,
    },

    /// A numeric op would leave the range of the field's number type.
    #[error("state slot {slot}: `{op}` at {path} would overflow `{kind}`")]
    Overflow {
        /// The slot.
        slot: Slot,
        /// The path of the op.
        path: Path,
        /// `increment` or `decrement`.
        op: &'static str,
        /// The field's number type.
        kind: NumKind,
    },

    /// A float op's operand or result is NaN or infinite.
    #[error("state slot {slot}: `{op}` at {path} would store a non-finite `{kind}`")]
    NotFinite {
        /// The slot.
        slot: Slot,
        /// The path of the op.
        path: Path,
        /// The op's name.
        op: &'static str,
        /// The field's number type.
        kind: NumKind,
    },

    /// An op is malformed (an amount outside its number kind, `set` of JSON null at the root, …).
    #[error("state slot {slot}: invalid `{op}` at {path}: {reason}")]
    InvalidOp {
        /// The slot.
        slot: Slot,
        /// The path of the op.
        path: Path,
        /// The op's name.
        op: &'static str,
        /// Why.
        reason: String,
    },

    /// A value is larger than the engine's limit once serialized.
    #[error(
        "state slot {slot}: value serializes to more than the limit of {limit} bytes (at least {size})"
    )]
    TooLarge {
        /// The slot.
        slot: Slot,
        /// Bytes serialized before the limit was passed (a lower bound of the full size).
        size: usize,
        /// The limit in force.
        limit: usize,
    },

    /// A value nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) arrays and objects — deeper
    /// than every store can read back — once its ops applied, or in a value given to write.
    #[error(
        "state slot {slot}: the value nests deeper than {limit} levels at {path}: flatten it (the deepest a stored value may be is {limit})"
    )]
    TooDeep {
        /// The slot.
        slot: Slot,
        /// Where the first array or object past the limit sits in the slot's value.
        path: Path,
        /// The limit in force ([`MAX_DEPTH`](crate::MAX_DEPTH)).
        limit: usize,
    },

    /// An integer outside `i64`/`u64`: JSON text of it reads back as a float, so it would
    /// not be stored exactly.
    #[error(
        "state slot {slot}: the integer {literal} at {path} is outside the range of i64 and u64: it cannot be stored exactly (store it as a string)"
    )]
    OutOfRange {
        /// The slot.
        slot: Slot,
        /// Where it sits in the slot's value.
        path: Path,
        /// The integer, as written.
        literal: String,
    },

    /// The `update` closure returned an error; nothing was written.
    #[error("state slot {slot}: update aborted: {source}")]
    Aborted {
        /// The slot.
        slot: Slot,
        /// The closure's error (downcast it to get your own type back).
        source: BoxError,
    },

    /// A field needs a scope id the context does not have (a `#[state(user)]` field in a
    /// context without a user, …).
    #[error("field `{field}` of `{type_name}` is `#[state({scope})]`, but the context has {needs}")]
    MissingScope {
        /// The state struct.
        type_name: &'static str,
        /// The field.
        field: &'static str,
        /// The field's scope.
        scope: crate::context::FieldScope,
        /// What is missing and how to supply it.
        needs: &'static str,
    },

    /// A required field has no value when a snapshot is turned into its struct: never
    /// written and no `initial`, or deleted or expired, and no `#[state(default)]`.
    #[error(
        "state slot {slot}: required field of type `{type_name}` has no value (add `#[state(initial = …)]` or `#[state(default)]`, or make it an `Option`)"
    )]
    Missing {
        /// The slot.
        slot: Slot,
        /// The field's type.
        type_name: &'static str,
    },

    /// An argument outside a slot is unusable (a page size of 0, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A reader of the change log fell behind the log's retention: changes after its cursor
    /// `after`, up to sequence number `trimmed_through`, were removed before it read them
    /// (whether any of them passed the reader's filter is not known). Resume after
    /// `trimmed_through` (accepting the gap), or rebuild what the reader derives from the log
    /// from the current state.
    #[error(
        "the change log no longer holds every change after {after}: its retention removed them up to sequence number {trimmed_through} (resume from {trimmed_through}, accepting the gap, or resynchronize from the current state)"
    )]
    ChangesTrimmed {
        /// The reader's cursor.
        after: u64,
        /// The newest sequence number the retention removed.
        trimmed_through: u64,
    },

    /// The store failed (I/O, a malformed row, a lost connection). `slot` names the slot when
    /// the failure concerns one.
    #[error("state store failed{}: {source}", .slot.as_ref().map(|s| format!(" on slot {s}")).unwrap_or_default())]
    Store {
        /// The slot concerned, if any.
        slot: Option<Slot>,
        /// The backend's error.
        source: BoxError,
    },
}

impl Error {
    /// A store failure not tied to one slot.
    pub fn store(source: impl Into<BoxError>) -> Self {
        Error::Store {
            slot: None,
            source: source.into(),
        }
    }

    /// What kind of error this is, in a word (`conflict`, `version_mismatch`, `decode`,
    /// `store`…): the error's class in spans, events and metric labels, which never carry its
    /// message (serde's messages quote values).
    pub fn class(&self) -> &'static str {
        match self {
            Error::InvalidId { .. } => "invalid_id",
            Error::LocalPartFailed { .. } => "local_part_failed",
            Error::Conflict { .. } => "conflict",
            Error::VersionMismatch { .. } => "version_mismatch",
            Error::Decode { .. } => "decode",
            Error::Encode { .. } => "encode",
            Error::InvalidPath { .. } => "invalid_path",
            Error::TypeMismatch { .. } => "type_mismatch",
            Error::Overflow { .. } => "overflow",
            Error::NotFinite { .. } => "not_finite",
            Error::InvalidOp { .. } => "invalid_op",
            Error::TooLarge { .. } => "too_large",
            Error::TooDeep { .. } => "too_deep",
            Error::OutOfRange { .. } => "out_of_range",
            Error::Aborted { .. } => "aborted",
            Error::MissingScope { .. } => "missing_scope",
            Error::Missing { .. } => "missing",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::ChangesTrimmed { .. } => "changes_trimmed",
            Error::Store { .. } => "store",
        }
    }

    /// The slot this error concerns, if any.
    pub fn slot(&self) -> Option<&Slot> {
        match self {
            Error::Conflict { slot, .. }
            | Error::VersionMismatch { slot, .. }
            | Error::Decode { slot, .. }
            | Error::Encode { slot, .. }
            | Error::InvalidPath { slot, .. }
            | Error::TypeMismatch { slot, .. }
            | Error::Overflow { slot, .. }
            | Error::NotFinite { slot, .. }
            | Error::InvalidOp { slot, .. }
            | Error::TooLarge { slot, .. }
            | Error::TooDeep { slot, .. }
            | Error::OutOfRange { slot, .. }
            | Error::Aborted { slot, .. }
            | Error::Missing { slot, .. }
            | Error::LocalPartFailed { slot, .. } => Some(slot),
            Error::Store { slot, .. } => slot.as_ref(),
            Error::InvalidId { .. }
            | Error::InvalidArgument(_)
            | Error::MissingScope { .. }
            | Error::ChangesTrimmed { .. } => None,
        }
    }
}

/// The error an `update` closure returns to stop without writing.
///
/// Any `std::error::Error + Send + Sync` converts into it with `?` or `.into()`; the engine
/// reports it as [`Error::Aborted`], whose `source` downcasts back to your type.
///
/// ```
/// # use state_core::Abort;
/// #[derive(Debug)]
/// struct Insufficient;
/// impl std::fmt::Display for Insufficient {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("insufficient funds")
///     }
/// }
/// impl std::error::Error for Insufficient {}
///
/// let abort: Abort = Insufficient.into();
/// assert_eq!(abort.to_string(), "insufficient funds");
/// let plain = Abort::new("balance would go negative");
/// assert_eq!(plain.to_string(), "balance would go negative");
/// ```
#[derive(Debug)]
pub struct Abort(BoxError);

impl Abort {
    /// Wraps any error, or a message (`Abort::new("balance would go negative")`).
    pub fn new(reason: impl Into<BoxError>) -> Self {
        Abort(reason.into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Abort {
    fn from(e: E) -> Self {
        Abort(Box::new(e))
    }
}
