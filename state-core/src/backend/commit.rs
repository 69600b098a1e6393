//! The contract's write rules, run by every backend inside its own transaction:
//! [`prepare_commit`] for one batch, [`prepare_group`] for a group committed together, and
//! [`check_restore`] for a restore.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::op::{Op, OpKind, apply_ops};
use crate::record::{Record, Timestamp};
use crate::scope::Slot;
use crate::store::{Batch, CommitOutcome, VersionConflict, Write, WriteKind, WriteOutcome};

/// What a store writes for a batch that [`prepare_commit`] accepted.
#[derive(Debug)]
#[non_exhaustive]
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
    let mut overlay = Overlay::new(batch.writes.len());
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
        let pos = overlay.position(&write.slot);
        // A version this batch made is replaced by this write: keep it for the log.
        let replaced = pos.map(|i| overlay.records[i].clone());
        // The current record, owned: a slot written earlier in this batch is taken out of the
        // overlay (and put back on conflict; on error the whole overlay is discarded).
        let mut cur = match pos {
            Some(i) => std::mem::take(&mut overlay.records[i].1),
            None => current(&write.slot)?,
        };
        let live = cur.is_live(now);
        let live_expiry = if live { cur.expires_at } else { None };
        let (value, outputs) = match written_value(write, &mut cur, live)? {
            Written::Value(value, outputs) => (value, outputs),
            Written::Conflict { expected } => {
                conflicts.push(VersionConflict {
                    slot: write.slot.clone(),
                    expected,
                    actual: cur.version,
                });
                if let Some(i) = pos {
                    overlay.records[i].1 = cur;
                }
                continue;
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
        let record = Record::new(value, version, expires_at);
        outcomes.push(WriteOutcome {
            previous_version: cur.version,
            version,
            outputs,
            record: write.return_record.then(|| record.clone()),
        });
        match pos {
            Some(i) => {
                overlay.records[i].1 = record;
                superseded.extend(replaced);
            }
            None => overlay.push(write.slot.clone(), record),
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
        changes: overlay.records,
        superseded,
    })
}

/// Records of the slots a batch already wrote, in first-touched order. Batches are usually
/// small: an index is built only for large ones.
struct Overlay {
    records: Vec<(Slot, Record)>,
    index: Option<HashMap<Slot, usize>>,
}

impl Overlay {
    fn new(writes: usize) -> Self {
        Overlay {
            records: Vec::new(),
            index: (writes > 16).then(HashMap::new),
        }
    }

    fn position(&self, slot: &Slot) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(slot).copied(),
            None => self.records.iter().position(|(s, _)| s == slot),
        }
    }

    fn push(&mut self, slot: Slot, record: Record) {
        if let Some(ix) = &mut self.index {
            ix.insert(slot.clone(), self.records.len());
        }
        self.records.push((slot, record));
    }
}

/// What one write does to a slot.
enum Written {
    /// The value it leaves (`None`: a tombstone) and its ops' outputs.
    Value(Option<Value>, Vec<Option<Value>>),
    /// A CAS write expected another version.
    Conflict { expected: u64 },
}

/// What one write does to a slot holding `cur` (its value is taken out by ops).
fn written_value(write: &Write, cur: &mut Record, live: bool) -> Result<Written> {
    let null_at_root = |op, reason: &str| Error::InvalidOp {
        slot: write.slot.clone(),
        path: crate::op::Path::root(),
        op,
        reason: reason.into(),
    };
    match &write.kind {
        WriteKind::Cas { expected, .. } if *expected != cur.version => Ok(Written::Conflict {
            expected: *expected,
        }),
        WriteKind::Cas {
            value: Some(Value::Null),
            ..
        } => Err(null_at_root(
            "set",
            "JSON null is not stored at the root: absence is a delete",
        )),
        WriteKind::Cas { value, .. } => Ok(Written::Value(value.clone(), Vec::new())),
        WriteKind::Apply { ops, initial } => {
            let start = if cur.version == 0 || (write.initial_after_delete && !live) {
                initial.clone()
            } else if live {
                cur.value.take()
            } else {
                None
            };
            let applied = if write.initial_after_delete {
                apply_restarting(&write.slot, start, ops, initial)?
            } else {
                apply_ops(&write.slot, start, ops)?
            };
            match applied {
                (Some(Value::Null), _) => Err(null_at_root(
                    "apply",
                    "the result is JSON null, which is not stored at the root: absence is a delete",
                )),
                (value, outputs) => Ok(Written::Value(value, outputs)),
            }
        }
    }
}

/// [`apply_ops`] for a write whose slot restarts from `initial` after a delete (session
/// state): an op after a whole-value delete in the same write starts from `initial`, as it
/// would in the next write; the delete itself leaves a tombstone.
fn apply_restarting(
    slot: &Slot,
    start: Option<Value>,
    ops: &[Op],
    initial: &Option<Value>,
) -> Result<(Option<Value>, Vec<Option<Value>>)> {
    let mut doc = start;
    let mut outputs = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let (after, out) = apply_ops(slot, doc, std::slice::from_ref(op))?;
        outputs.extend(out);
        let deleted = op.path.is_root() && matches!(op.kind, OpKind::Delete);
        doc = if deleted && i + 1 < ops.len() {
            initial.clone()
        } else {
            after
        };
    }
    Ok((doc, outputs))
}

/// What [`prepare_group`] decided for a group of batches committed in one transaction.
#[derive(Debug)]
#[non_exhaustive]
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
/// a timer: a lone caller's commit is delayed by one yield. Groups grow to about the number
/// of concurrent writers (BENCHMARKS.md has the figures).
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
                Some(Op { path, kind: OpKind::Set { .. } }) if path.is_root()
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
