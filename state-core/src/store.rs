//! The `Store` trait every backend implements, the write and commit types it speaks, and
//! [`prepare_commit`], the one implementation of the contract's write rules that every
//! backend runs inside its own transaction.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::changes::{Change, ChangeFilter};
use crate::error::{Error, Result};
use crate::op::{Op, apply_ops};
use crate::record::{Clock, Record, Timestamp, Ttl};
use crate::scope::{Scope, ScopeKind, Slot, SlotKey};

/// The default limit on a value's serialized size: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// What a write does to its slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
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
pub struct Batch {
    /// The writes, applied in order (two writes to one slot see each other).
    pub writes: Vec<Write>,
    /// The largest serialized value the commit may store.
    pub max_value_bytes: usize,
}

/// Records restored together (an import, a copy between stores), all or nothing.
#[derive(Clone, Debug)]
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

/// A CAS write whose expected version did not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionConflict {
    /// The slot.
    pub slot: Slot,
    /// The version the write expected.
    pub expected: u64,
    /// The version the slot is at.
    pub actual: u64,
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
/// the write rules for free by running [`prepare_commit`] inside their transaction.
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
    /// write's is ([`check_restored`](crate::check_restored): depth and
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

/// What a store writes for a batch that [`prepare_commit`] accepted.
#[derive(Debug)]
pub struct PreparedCommit {
    /// The outcome to return to the caller.
    pub outcome: CommitOutcome,
    /// The final record of every slot the batch changes, once each, in first-touched order.
    /// Empty on conflict.
    pub changes: Vec<(Slot, Record)>,
    /// The versions a later write of the same batch replaced (a batch that writes a slot
    /// twice makes two versions), in the order they were made. Not stored, but logged: the
    /// change log records these, then `changes` (every version a caller was told about is
    /// in the log). Usually empty.
    pub superseded: Vec<(Slot, Record)>,
}

/// Runs a batch's writes against the current records and decides the commit: every backend's
/// one implementation of the contract's write rules.
///
/// `current(slot)` returns a slot's stored record — raw, expiry not yet applied; for a slot
/// with no row, [`Record::absent`] at the scope's version floor. Nothing is changed here: on
/// `Ok(PreparedCommit { changes, .. })` the backend writes `changes` in its transaction; on
/// conflict or `Err` it writes nothing.
pub fn prepare_commit(
    batch: &Batch,
    now: Timestamp,
    mut current: impl FnMut(&Slot) -> Result<Record>,
) -> Result<PreparedCommit> {
    // Records of slots this batch already wrote, in first-touched order. Batches are usually
    // small: an index is built only for large ones.
    let mut overlay: Vec<(Slot, Record)> = Vec::new();
    let mut index: Option<HashMap<Slot, usize>> = (batch.writes.len() > 16).then(HashMap::new);
    let mut outcomes = Vec::with_capacity(batch.writes.len());
    let mut conflicts: Vec<VersionConflict> = Vec::new();
    let mut superseded = Vec::new();
    for write in &batch.writes {
        // The batch is refused once a write conflicted: later writes to that slot are not
        // evaluated (their result would rest on a version the caller did not expect, and a
        // backend may hand an unreadable value's placeholder to a batch whose first write to
        // the slot replaces it whole: see `rows::unreadable_value`).
        if conflicts.iter().any(|c| c.slot == write.slot) {
            continue;
        }
        let pos = match &index {
            Some(ix) => ix.get(&write.slot).copied(),
            None => overlay.iter().position(|(s, _)| *s == write.slot),
        };
        // A version this batch made is replaced by this write: keep it for the log.
        let replaced = pos.map(|i| overlay[i].clone());
        // The current record, owned: a slot written earlier in this batch is taken out of the
        // overlay (and put back on conflict; on error the whole overlay is discarded).
        let mut cur = match pos {
            Some(i) => std::mem::take(&mut overlay[i].1),
            None => current(&write.slot)?,
        };
        let live = cur.is_live(now);
        let live_expiry = if live { cur.expires_at } else { None };
        let (value, outputs) = match &write.kind {
            WriteKind::Cas { expected, value } => {
                if *expected != cur.version {
                    conflicts.push(VersionConflict {
                        slot: write.slot.clone(),
                        expected: *expected,
                        actual: cur.version,
                    });
                    if let Some(i) = pos {
                        overlay[i].1 = cur;
                    }
                    continue;
                }
                if let Some(Value::Null) = value {
                    return Err(Error::InvalidOp {
                        slot: write.slot.clone(),
                        path: crate::op::Path::root(),
                        op: "set",
                        reason: "JSON null is not stored at the root: absence is a delete".into(),
                    });
                }
                (value.clone(), Vec::new())
            }
            WriteKind::Apply { ops, initial } => {
                let start = if cur.version == 0 || (write.initial_after_delete && !live) {
                    initial.clone()
                } else if live {
                    cur.value.take()
                } else {
                    None
                };
                let (value, outputs) = apply_ops(&write.slot, start, ops)?;
                if let Some(Value::Null) = value {
                    return Err(Error::InvalidOp {
                        slot: write.slot.clone(),
                        path: crate::op::Path::root(),
                        op: "apply",
                        reason: "the result is JSON null, which is not stored at the root: absence is a delete"
                            .into(),
                    });
                }
                (value, outputs)
            }
        };
        if let Some(v) = &value {
            crate::limits::check_value(&write.slot, v, batch.max_value_bytes)?;
        }
        let version = cur.version.checked_add(1).ok_or_else(|| Error::Overflow {
            slot: write.slot.clone(),
            path: crate::op::Path::root(),
            op: "version",
            kind: crate::op::NumKind::U64,
        })?;
        let expires_at = write
            .ttl
            .expiry_after(live, live_expiry, now, value.is_some());
        let previous_version = cur.version;
        let record = Record {
            value,
            version,
            expires_at,
        };
        outcomes.push(WriteOutcome {
            previous_version,
            version,
            outputs,
            record: write.return_record.then(|| record.clone()),
        });
        match pos {
            Some(i) => {
                overlay[i].1 = record;
                superseded.extend(replaced);
            }
            None => {
                if let Some(ix) = &mut index {
                    ix.insert(write.slot.clone(), overlay.len());
                }
                overlay.push((write.slot.clone(), record));
            }
        }
    }
    if !conflicts.is_empty() {
        return Ok(PreparedCommit {
            outcome: CommitOutcome::Conflict(conflicts),
            changes: Vec::new(),
            superseded: Vec::new(),
        });
    }
    Ok(PreparedCommit {
        outcome: CommitOutcome::Committed(outcomes),
        changes: overlay,
        superseded,
    })
}

/// What [`prepare_group`] decided for a group of batches committed in one transaction.
#[derive(Debug)]
pub struct PreparedGroup {
    /// Each batch's result, in order: its outcome, or why it was refused.
    pub results: Vec<Result<CommitOutcome>>,
    /// The final record of every slot the accepted batches change, once each, in
    /// first-written order. What the backend writes.
    pub changes: Vec<(Slot, Record)>,
    /// What the change log records: each accepted batch's versions (those a later write of
    /// the batch replaced, then its changes), batch by batch. Unlike `changes`, a slot
    /// written by several batches of the group, or several times by one, appears once for
    /// each version: every version a caller was told about is in the log, each slot's in
    /// increasing order.
    pub log: Vec<(Slot, Record)>,
}

/// How many times [`gather_yield`] yields at most.
const GATHER_YIELDS: usize = 8;

/// For a group-committing backend, before it takes a group from its queue: yields to the
/// tasks that are ready to run (the callers the last group answered, queueing their next
/// commits) for as long as that makes the queue grow, at most a few times. Never waits for
/// a timer: a lone caller's commit is delayed by one yield.
///
/// Measured on the SQLite store with 64 writers on 2 cores: the mean group went from 32 to
/// 63 commits and W2 from 56 k to 95 k commits/s.
pub async fn gather_yield<T>(queue: &tokio::sync::mpsc::Receiver<T>) {
    for _ in 0..GATHER_YIELDS {
        let queued = queue.len();
        tokio::task::yield_now().await;
        if queue.len() == queued {
            break;
        }
    }
}

/// Runs [`prepare_commit`] for each batch of a group that a backend commits in one
/// transaction (group commit): each batch sees the changes of the accepted batches before it;
/// a refused batch (a conflict, an error) contributes nothing and the others still commit.
///
/// `current(batch, slot)` returns a slot's stored record as for [`prepare_commit`] (it gets
/// the batch too: a backend may allow a batch that replaces an unreadable value whole, see
/// [`Batch::first_write_reads`]). `check(slot, record)` may refuse a change the backend
/// cannot store (a version out of its integer range); the batch is then refused.
pub fn prepare_group<'a>(
    batches: impl IntoIterator<Item = &'a Batch>,
    now: Timestamp,
    mut current: impl FnMut(&Batch, &Slot) -> Result<Record>,
    mut check: impl FnMut(&Slot, &Record) -> Result<()>,
) -> PreparedGroup {
    let mut changes: Vec<(Slot, Record)> = Vec::new();
    let mut log: Vec<(Slot, Record)> = Vec::new();
    let mut changed: HashMap<Slot, usize> = HashMap::new();
    let mut results = Vec::new();
    for batch in batches {
        let prepared = prepare_commit(batch, now, |slot| match changed.get(slot) {
            Some(&i) => Ok(changes[i].1.clone()),
            None => current(batch, slot),
        })
        .and_then(|p| {
            for (slot, rec) in &p.changes {
                check(slot, rec)?;
            }
            Ok(p)
        });
        match prepared {
            Ok(p) => {
                log.extend(p.superseded);
                log.extend(p.changes.iter().cloned());
                for (slot, rec) in p.changes {
                    match changed.get(&slot) {
                        Some(&i) => changes[i].1 = rec,
                        None => {
                            changed.insert(slot.clone(), changes.len());
                            changes.push((slot, rec));
                        }
                    }
                }
                results.push(Ok(p.outcome));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    PreparedGroup {
        results,
        changes,
        log,
    }
}

impl Batch {
    /// Whether the batch's first write to `slot` reads the slot's current value: any Apply
    /// write except one that starts by setting the whole value. A batch that does not read
    /// it may replace a value the backend cannot decode.
    pub fn first_write_reads(&self, slot: &Slot) -> bool {
        match self
            .writes
            .iter()
            .find(|w| &w.slot == slot)
            .map(|w| &w.kind)
        {
            Some(WriteKind::Apply { ops, .. }) => !matches!(
                ops.first(),
                Some(Op { path, kind: crate::op::OpKind::Set { .. } }) if path.is_root()
            ),
            _ => false,
        }
    }
}

/// The checks every restored (or imported) record passes whatever the store holds: no slot
/// twice, no version 0, no JSON null at the root, no value nested deeper than
/// [`MAX_DEPTH`](crate::MAX_DEPTH).
pub(crate) fn check_records<'a>(
    records: impl IntoIterator<Item = (&'a Slot, &'a Record)>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (slot, record) in records {
        if !seen.insert(slot) {
            return Err(Error::InvalidArgument(format!(
                "slot {slot} appears twice in a restore"
            )));
        }
        if record.version == 0 {
            return Err(Error::InvalidArgument(format!(
                "slot {slot}: version 0 cannot be restored"
            )));
        }
        if let Some(Value::Null) = record.value {
            return Err(Error::InvalidOp {
                slot: slot.clone(),
                path: crate::op::Path::root(),
                op: "restore",
                reason: "JSON null is not stored at the root: absence is a tombstone".into(),
            });
        }
        if let Some(path) = record
            .value
            .as_ref()
            .and_then(|v| crate::limits::depth_past(v, crate::MAX_DEPTH))
        {
            return Err(Error::TooDeep {
                slot: slot.clone(),
                path,
                limit: crate::MAX_DEPTH,
            });
        }
    }
    Ok(())
}

/// Checks a restore against the current records (`current(slot)` as for [`prepare_commit`]):
/// every restored version must be above the slot's, and no slot may appear twice.
pub fn check_restore(
    records: &[(Slot, Record)],
    mut current: impl FnMut(&Slot) -> Result<Record>,
) -> Result<()> {
    check_records(records.iter().map(|(s, r)| (s, r)))?;
    for (slot, record) in records {
        let cur = current(slot)?;
        if cur.version >= record.version {
            return Err(Error::VersionMismatch {
                slot: slot.clone(),
                expected: record.version,
                actual: cur.version,
            });
        }
    }
    Ok(())
}
