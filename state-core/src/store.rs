//! The `Store` trait every backend implements and the write and commit types it speaks. The
//! rules a commit follows, shared by every backend, are in [`backend`](crate::backend).

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::changes::{Change, ChangeFilter};
use crate::error::{Error, Result};
use crate::op::Op;
use crate::record::{Clock, Record, Ttl};
use crate::scope::{Scope, ScopeKind, Slot, SlotKey};

/// The default limit on a value's serialized size: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// What a write does to its slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WriteKind {
    /// Strict compare-and-swap: store `value` (`None`: a tombstone) only if the slot is at
    /// version `expected`; otherwise the whole batch reports a conflict and nothing changes.
    Cas {
        /// The version the write is conditional on (0: never written).
        expected: u64,
        /// The new value, or `None` to delete.
        value: Option<Value>,
    },
    /// Apply `ops` to the slot's current value inside the commit: no read round trip, no
    /// conflict between commutative writers.
    Apply {
        /// The ops, applied in order, all or nothing.
        ops: Vec<Op>,
        /// Where the ops start on a slot never written (version 0). After a delete or expiry
        /// they start from their neutral value instead (unless
        /// [`Write::initial_after_delete`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        initial: Option<Value>,
    },
}

/// One slot's part of a commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Write {
    /// The slot written.
    pub slot: Slot,
    /// CAS or Apply.
    #[serde(flatten)]
    pub kind: WriteKind,
    /// How the slot's expiry changes.
    #[serde(default)]
    pub ttl: Ttl,
    /// Whether the outcome should carry the slot's new record (for snapshots to refresh).
    #[serde(default)]
    pub return_record: bool,
    /// Session state (Weft's session rule, where `initial` comes back after a delete): an
    /// Apply write starts from `initial` whenever the slot holds no live value (deleted,
    /// tombstoned by a CAS write, expired), not only when it was never written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initial_after_delete: bool,
}

impl Write {
    /// A strict CAS write.
    pub fn cas(slot: Slot, expected: u64, value: Option<Value>) -> Self {
        Write {
            slot,
            kind: WriteKind::Cas { expected, value },
            ttl: Ttl::Keep,
            return_record: false,
            initial_after_delete: false,
        }
    }

    /// An Apply write of `ops`.
    pub fn apply(slot: Slot, ops: Vec<Op>) -> Self {
        Write {
            slot,
            kind: WriteKind::Apply { ops, initial: None },
            ttl: Ttl::Keep,
            return_record: false,
            initial_after_delete: false,
        }
    }

    /// Sets where an Apply write starts on a slot never written.
    #[must_use]
    pub fn with_initial(mut self, value: Option<Value>) -> Self {
        if let WriteKind::Apply { initial, .. } = &mut self.kind {
            *initial = value;
        }
        self
    }

    /// Sets how the write changes the slot's expiry.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// Asks for the slot's new record in the outcome.
    #[must_use]
    pub fn returning_record(mut self) -> Self {
        self.return_record = true;
        self
    }
}

/// Writes committed together: every one applies, or none does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Batch {
    /// The writes, applied in order (two writes to one slot see each other).
    pub writes: Vec<Write>,
    /// The largest serialized value the commit may store.
    pub max_value_bytes: usize,
}

impl Batch {
    /// A batch of `writes` held to the default value size limit
    /// ([`DEFAULT_MAX_VALUE_BYTES`]).
    pub fn new(writes: Vec<Write>) -> Self {
        Batch {
            writes,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }

    /// The same batch held to `bytes` instead.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }
}

/// Records restored together (an import, a copy between stores), all or nothing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Restore {
    /// The records, each exactly as exported: value or tombstone, version, expiry.
    pub records: Vec<(Slot, Record)>,
    /// The largest serialized value the restore may store (a write's limit).
    pub max_value_bytes: usize,
}

impl Restore {
    /// A restore of `records` under the default value limit ([`DEFAULT_MAX_VALUE_BYTES`]).
    pub fn new(records: Vec<(Slot, Record)>) -> Self {
        Restore {
            records,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }

    /// Sets the largest serialized value the restore may store.
    #[must_use]
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }
}

/// What one committed write did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WriteOutcome {
    /// The slot's version before the write.
    pub previous_version: u64,
    /// The slot's version after it (`previous_version + 1`).
    pub version: u64,
    /// One output per op of an Apply write (removed item, previous value, new number); empty
    /// for a CAS write.
    pub outputs: Vec<Option<Value>>,
    /// The slot's new record, if the write asked for it.
    pub record: Option<Record>,
}

impl WriteOutcome {
    /// A write that took the slot from `previous_version` to `version` with its ops'
    /// `outputs` (no record attached; set `record` when the write asked for it).
    pub fn new(previous_version: u64, version: u64, outputs: Vec<Option<Value>>) -> Self {
        WriteOutcome {
            previous_version,
            version,
            outputs,
            record: None,
        }
    }
}

/// A CAS write whose expected version did not match.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionConflict {
    /// The slot.
    pub slot: Slot,
    /// The version the write expected.
    pub expected: u64,
    /// The version the slot is at.
    pub actual: u64,
}

impl VersionConflict {
    /// The typed error a caller gets for it.
    pub(crate) fn into_error(self) -> Error {
        Error::VersionMismatch {
            slot: self.slot,
            expected: self.expected,
            actual: self.actual,
        }
    }

    /// A CAS write to `slot` that expected `expected` where the slot is at `actual`.
    pub fn new(slot: Slot, expected: u64, actual: u64) -> Self {
        VersionConflict {
            slot,
            expected,
            actual,
        }
    }
}

/// The result of a commit that ran to completion.
#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    /// Every write applied; one outcome per write, in order.
    Committed(Vec<WriteOutcome>),
    /// At least one CAS write saw another version; nothing was written.
    Conflict(Vec<VersionConflict>),
}

/// One page of a listing. Pass `next` back as `after` for the following page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<T>,
}

impl<T: Clone> Page<T> {
    /// A page of at most `limit` items from `items` (read one past the limit to learn whether
    /// another page follows: backends fetch `limit + 1` rows).
    pub fn from_iter(items: impl IntoIterator<Item = T>, limit: usize) -> Self {
        let mut items: Vec<T> = items.into_iter().take(limit.saturating_add(1)).collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().cloned()
        } else {
            None
        };
        Page { items, next }
    }
}

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 10_000;

/// Checks a page size: 1 to [`MAX_PAGE`].
pub fn check_page_limit(limit: usize) -> Result<()> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "page size {limit} is outside 1..={MAX_PAGE}"
        )))
    }
}

/// A storage backend. Object-safe: the engine holds it as `Arc<dyn Store>`.
///
/// Every backend must hold the contract of the design (versions +1 per committed write,
/// tombstones, version floors across physical removal, atomic batches, expiry read as a
/// tombstone that keeps its version) — the conformance suite checks them all. Backends get
/// the write rules for free by running [`prepare_commit`](crate::backend::prepare_commit) inside their transaction.
///
/// Cancellation: `commit` must be all-or-nothing even if its future is dropped mid-way (a
/// backend that awaits inside a transaction runs the commit in a task of its own). The caller
/// then cannot know whether it applied.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads one slot as a reader sees it now (absent: a record at the scope's version floor,
    /// 0 if never written; expired: no value, version kept).
    async fn load(&self, slot: &Slot) -> Result<Record> {
        let mut records = self.load_many(std::slice::from_ref(slot)).await?;
        records.pop().ok_or_else(|| {
            Error::store(io::Error::other(
                "load_many returned no record for one slot",
            ))
        })
    }

    /// Loads many slots in one call; one record per slot, in order.
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>>;

    /// Loads every stored slot of a scope (tombstones and expired slots included, as absent
    /// values with their versions), optionally of one namespace, ordered by namespace and key.
    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> Result<Vec<(SlotKey, Record)>>;

    /// Loads every stored slot of `scope` (`None`: of the whole store) as
    /// [`load_scope`](Store::load_scope) sees it, ordered by scope, namespace and key, row by
    /// row: a row that cannot be read (a hand edit, a flipped bit) comes back as its own
    /// error — naming its slot when its identity is readable, with the backend's malformed-row
    /// error (its version, its stored text) as the source — and the other rows still come
    /// back. What an export reads: one damaged row never stops a backup of the rest. The
    /// memory, SQLite and PostgreSQL stores read it in one snapshot, so a backup never splits
    /// an atomic batch; this default reads scope by scope and is not one.
    async fn load_rows(&self, scope: Option<&Scope>) -> Result<Vec<Result<(Slot, Record)>>> {
        let scopes = match scope {
            Some(s) => vec![s.clone()],
            None => {
                let mut all = Vec::new();
                let mut after = None;
                loop {
                    let p = self
                        .list_stored_scopes(None, after.as_ref(), MAX_PAGE)
                        .await?;
                    all.extend(p.items);
                    match p.next {
                        Some(n) => after = Some(n),
                        None => break all,
                    }
                }
            }
        };
        let mut rows = Vec::new();
        for s in scopes {
            for (key, record) in self.load_scope(&s, None).await? {
                rows.push(Slot::new(s.clone(), key.namespace, key.key).map(|slot| (slot, record)));
            }
        }
        Ok(rows)
    }

    /// Commits a batch atomically.
    async fn commit(&self, batch: Batch) -> Result<CommitOutcome>;

    /// Lists the keys of a scope holding a live value, optionally of one namespace, after the
    /// cursor, at most `limit` (1 to [`MAX_PAGE`]).
    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>>;

    /// Lists scopes holding at least one live value, optionally of one kind, after the cursor.
    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>>;

    /// Lists scopes holding any stored slot — tombstones and expired slots included (what an
    /// export must visit), optionally of one kind, after the cursor.
    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>>;

    /// Restores records exactly as exported (value or tombstone, version, expiry), all or
    /// nothing: every slot must be below the restored version (absent, or older), so a version
    /// never goes down and a stale version token never matches again. Otherwise
    /// [`Error::VersionMismatch`] names the first slot (`expected`: the version to restore,
    /// `actual`: the slot's) and nothing is written. Every value is held to the limits a
    /// write's is ([`check_restored`](crate::backend::check_restored): depth and
    /// `restore.max_value_bytes`). Returns how many slots were restored.
    async fn restore(&self, restore: Restore) -> Result<u64>;

    /// Deletes every live slot of a scope (a tombstone each, version +1). Returns how many.
    async fn clear(&self, scope: &Scope) -> Result<u64>;

    /// Physically removes every slot of a scope, raising the scope's version floor one above
    /// the highest version removed: every purged slot reads as absent there, so no token from
    /// before the purge matches again. Returns how many rows.
    async fn purge_scope(&self, scope: &Scope) -> Result<u64>;

    /// Physically removes every expired slot, raising each scope's version floor likewise.
    async fn purge_expired(&self) -> Result<u64>;

    /// The clock this store reads for expiry.
    fn clock(&self) -> Arc<dyn Clock>;

    /// Reads the change log: changes with a sequence number above `after` that pass
    /// `filter`, in sequence order, at most `limit`. Every committed write (clears and
    /// restores included) is in the log, written in the same transaction; a sequence number
    /// is never visible before every smaller one that will ever be. If the log's retention
    /// removed a change above `after`, fails with [`Error::ChangesTrimmed`] (checked in the
    /// same snapshot as the read: a reader is never handed a log with a hole silently). Stores
    /// without a log return an error.
    async fn read_changes(
        &self,
        after: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let _ = (after, filter, limit);
        Err(Error::no_change_log())
    }

    /// The newest versions of `slot` in the change log, newest first, below sequence number
    /// `before` (`None`: from the newest), at most `limit`.
    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let _ = (slot, before, limit);
        Err(Error::no_change_log())
    }

    /// The sequence number of the newest change in the log (0: none).
    async fn last_change(&self) -> Result<u64> {
        Err(Error::no_change_log())
    }

    /// A signal that changes from outside this process may have arrived (PostgreSQL's
    /// `NOTIFY`, say): the counter rises; change streams at the end of the log then look
    /// again at once instead of at their next poll. `None` (the default): the store has no
    /// such signal, and streams see other processes' commits at their next poll
    /// ([`EngineConfig::change_poll`](crate::EngineConfig::change_poll)).
    ///
    /// Called from within a tokio runtime; a store may start a listener task on the first
    /// call.
    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// What an engine can be made over: a store, an `Arc` of one, or an `Arc<dyn Store>` already
/// shared with other code ([`Engine::new`](crate::Engine::new),
/// [`Engine::with_config`](crate::Engine::with_config)).
pub trait IntoStore {
    /// The store, shared.
    fn into_store(self) -> Arc<dyn Store>;
}

impl<S: Store> IntoStore for S {
    fn into_store(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

impl<S: Store> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

impl IntoStore for Arc<dyn Store> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}
