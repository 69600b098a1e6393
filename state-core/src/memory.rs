//! `MemoryStore`: the contract held in a process's memory, for tests and ephemeral state.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use crate::backend::{check_page_limit, check_restore, prepare_commit};
use crate::changes::{Change, ChangeFilter};
use crate::error::{Error, Result};
use crate::record::{Clock, Record, SystemClock, Timestamp};
use crate::scope::{Scope, ScopeKind, Slot, SlotKey};
use crate::store::{Batch, CommitOutcome, Page, Restore, Store};

/// A [`Store`] in memory. Commits take one lock and never await, so a dropped commit future
/// can never leave a batch half-applied.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope, Slot};
/// let engine = Engine::new(MemoryStore::new());
/// let hits = engine.handle::<u64>(Slot::new(Scope::app("shop")?, "Stats", "hits")?);
/// hits.increment(2).await?;
/// assert_eq!(hits.get().await?, Some(2));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct Inner {
    scopes: BTreeMap<Scope, ScopeData>,
    /// The change log (the newest `log_limit` changes).
    log: std::collections::VecDeque<Logged>,
    /// The newest sequence number dropped from the log (0: none).
    trimmed_through: u64,
    /// How many changes the log keeps ([`MemoryStore::change_log_limit`]).
    log_limit: usize,
    /// The last sequence number handed out.
    seq: u64,
}

/// A stored value. Scalars are held inline; strings, arrays and objects behind an `Arc`, so
/// the slot map and the change log share one copy of a version's value instead of each
/// holding a deep clone.
#[derive(Clone, Debug)]
enum Stored {
    Inline(Value),
    Shared(Arc<Value>),
}

impl Stored {
    fn new(value: Value) -> Self {
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => Stored::Inline(value),
            _ => Stored::Shared(Arc::new(value)),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Stored::Inline(v) => v.clone(),
            Stored::Shared(v) => Value::clone(v),
        }
    }
}

/// A slot's record as the memory store keeps it (raw: expiry not applied).
#[derive(Clone, Debug)]
struct Kept {
    value: Option<Stored>,
    version: u64,
    expires_at: Option<Timestamp>,
}

impl Kept {
    fn new(record: Record) -> Self {
        Kept {
            value: record.value.map(Stored::new),
            version: record.version,
            expires_at: record.expires_at,
        }
    }

    fn absent(version: u64) -> Self {
        Kept {
            value: None,
            version,
            expires_at: None,
        }
    }

    fn record(&self) -> Record {
        Record {
            value: self.value.as_ref().map(Stored::to_value),
            version: self.version,
            expires_at: self.expires_at,
        }
    }

    fn is_live(&self, now: Timestamp) -> bool {
        self.value.is_some() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// One entry of the change log; its value is shared with the slot map.
#[derive(Debug)]
struct Logged {
    seq: u64,
    slot: Slot,
    version: u64,
    value: Option<Stored>,
    at: Timestamp,
}

impl Logged {
    fn change(&self) -> Change {
        Change {
            seq: self.seq,
            slot: self.slot.clone(),
            version: self.version,
            value: self.value.as_ref().map(Stored::to_value),
            at: self.at,
        }
    }
}

/// The most changes a memory store's log keeps by default (older ones are dropped; see
/// [`MemoryStore::change_log_limit`]).
pub const MEMORY_LOG_MAX: usize = 100_000;

impl Inner {
    fn log(&mut self, slot: &Slot, kept: &Kept, at: Timestamp) {
        self.seq += 1;
        while self.log.len() >= self.log_limit.max(1)
            && let Some(dropped) = self.log.pop_front()
        {
            self.trimmed_through = dropped.seq;
        }
        self.log.push_back(Logged {
            seq: self.seq,
            slot: slot.clone(),
            version: kept.version,
            value: kept.value.clone(),
            at,
        });
    }

    /// The current raw record of `slot` (expiry not applied).
    fn record(&self, slot: &Slot) -> Record {
        self.scopes
            .get(slot.scope())
            .map_or_else(|| Record::absent(0), |s| s.record(slot))
    }

    /// Stores `kept` as `slot`'s record and logs it.
    fn put(&mut self, slot: &Slot, kept: Kept, at: Timestamp) {
        self.log(slot, &kept, at);
        let data = match self.scopes.get_mut(slot.scope()) {
            Some(data) => data,
            None => self.scopes.entry(slot.scope().clone()).or_default(),
        };
        let keys = match data.slots.get_mut(slot.namespace()) {
            Some(keys) => keys,
            None => data.slots.entry(slot.namespace().to_owned()).or_default(),
        };
        match keys.get_mut(slot.key()) {
            Some(r) => *r = kept,
            None => {
                keys.insert(slot.key().to_owned(), kept);
            }
        }
    }
}

#[derive(Debug, Default)]
struct ScopeData {
    /// One above the highest version ever physically removed from this scope: where its
    /// absent slots read, so no token from before a purge matches again.
    floor: u64,
    /// namespace → key → record (raw: expiry not applied).
    slots: BTreeMap<String, BTreeMap<String, Kept>>,
}

impl ScopeData {
    fn record(&self, slot: &Slot) -> Record {
        self.slots
            .get(slot.namespace())
            .and_then(|ns| ns.get(slot.key()))
            .map_or_else(|| Record::absent(self.floor), Kept::record)
    }

    /// Removes rows matching `pred`, raising the floor one above their highest version.
    fn purge(&mut self, mut pred: impl FnMut(&Kept) -> bool) -> u64 {
        let mut removed = 0;
        let floor = &mut self.floor;
        for keys in self.slots.values_mut() {
            keys.retain(|_, r| {
                let gone = pred(r);
                if gone {
                    *floor = (*floor).max(r.version + 1);
                    removed += 1;
                }
                !gone
            });
        }
        self.slots.retain(|_, keys| !keys.is_empty());
        removed
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store reading time from `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        MemoryStore {
            inner: Mutex::new(Inner {
                log_limit: MEMORY_LOG_MAX,
                ..Inner::default()
            }),
            clock,
        }
    }

    /// Keeps the newest `changes` changes in the change log (at least 1; default
    /// [`MEMORY_LOG_MAX`]). A reader whose cursor falls further behind is told
    /// ([`Error::ChangesTrimmed`]).
    #[must_use]
    pub fn change_log_limit(self, changes: usize) -> Self {
        self.lock().log_limit = changes.max(1);
        self
    }

    /// Every stored record of `scope` (raw: expiry not applied), for checkpoints.
    pub fn export(&self, scope: &Scope) -> Vec<(SlotKey, Record)> {
        let inner = self.lock();
        inner.scopes.get(scope).map_or_else(Vec::new, |d| {
            d.slots
                .iter()
                .flat_map(|(ns, keys)| {
                    keys.iter().map(move |(k, r)| {
                        let key = SlotKey {
                            namespace: ns.clone(),
                            key: k.clone(),
                        };
                        (key, r.record())
                    })
                })
                .collect()
        })
    }

    /// Replaces every record of `scope` with `records` (restoring a checkpoint of session
    /// state). Unlike [`Store::restore`], this may lower versions: it rolls the scope back to
    /// the checkpoint, which is what checkpoint-local state means. Do not use it on shared
    /// state, where a version must never go down.
    ///
    /// The records are checked first, as a restore's are (valid namespaces and keys, no slot
    /// twice, no version 0, no JSON null at the root): a checkpoint read back from elsewhere
    /// may hold anything. On an error nothing changes.
    pub fn import(&self, scope: &Scope, records: Vec<(SlotKey, Record)>) -> Result<()> {
        let slots = records
            .iter()
            .map(|(k, _)| Slot::new(scope.clone(), k.namespace.clone(), k.key.clone()))
            .collect::<Result<Vec<_>>>()?;
        crate::backend::check_records(slots.iter().zip(records.iter().map(|(_, r)| r)))?;
        let mut inner = self.lock();
        let data = inner.scopes.entry(scope.clone()).or_default();
        data.slots.clear();
        for (k, r) in records {
            data.slots
                .entry(k.namespace)
                .or_default()
                .insert(k.key, Kept::new(r));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (commits write only
        // after every check passed), so a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load_many(&self, slots: &[Slot]) -> Result<Vec<Record>> {
        let now = self.clock.now();
        let inner = self.lock();
        Ok(slots
            .iter()
            .map(|slot| inner.record(slot).visible(now))
            .collect())
    }

    async fn load_scope(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
    ) -> Result<Vec<(SlotKey, Record)>> {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(data) = inner.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        Ok(data
            .slots
            .iter()
            .filter(|(ns, _)| namespace.is_none_or(|n| n == ns.as_str()))
            .flat_map(|(ns, keys)| {
                keys.iter().map(move |(k, r)| {
                    let key = SlotKey {
                        namespace: ns.clone(),
                        key: k.clone(),
                    };
                    (key, r.record().visible(now))
                })
            })
            .collect())
    }

    async fn load_rows(&self, scope: Option<&Scope>) -> Result<Vec<Result<(Slot, Record)>>> {
        let now = self.clock.now();
        let inner = self.lock();
        let mut rows = Vec::new();
        let scopes = inner
            .scopes
            .iter()
            .filter(|(s, _)| scope.is_none_or(|wanted| wanted == *s));
        for (s, data) in scopes {
            for (ns, keys) in &data.slots {
                for (k, r) in keys {
                    let slot = Slot::new(s.clone(), ns.clone(), k.clone());
                    rows.push(slot.map(|slot| (slot, r.record().visible(now))));
                }
            }
        }
        Ok(rows)
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome> {
        let batch = crate::backend::check_batch(batch)?;
        let now = self.clock.now();
        let mut inner = self.lock();
        let prepared = prepare_commit(&batch, now, |slot| Ok(inner.record(slot)))?;
        for (slot, record) in prepared.superseded {
            inner.log(&slot, &Kept::new(record), now);
        }
        for (slot, record) in prepared.changes {
            inner.put(&slot, Kept::new(record), now);
        }
        Ok(prepared.outcome)
    }

    async fn list_keys(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>> {
        check_page_limit(limit)?;
        let now = self.clock.now();
        let inner = self.lock();
        let Some(data) = inner.scopes.get(scope) else {
            return Ok(Page::from_iter([], limit));
        };
        let live = data
            .slots
            .iter()
            .filter(|(ns, _)| namespace.is_none_or(|n| n == ns.as_str()))
            .flat_map(|(ns, keys)| keys.iter().map(move |(k, r)| (ns, k, r)))
            .filter(|(ns, k, r)| {
                r.is_live(now)
                    && after.is_none_or(|a| {
                        (ns.as_str(), k.as_str()) > (a.namespace.as_str(), a.key.as_str())
                    })
            })
            .map(|(ns, k, _)| SlotKey {
                namespace: ns.clone(),
                key: k.clone(),
            });
        Ok(Page::from_iter(live, limit))
    }

    async fn list_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>> {
        check_page_limit(limit)?;
        let now = self.clock.now();
        let inner = self.lock();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let live = inner
            .scopes
            .range::<Scope, _>((lower, Bound::Unbounded))
            .filter(|(s, _)| kind.is_none_or(|k| s.kind() == k))
            .filter(|(_, d)| {
                d.slots
                    .values()
                    .any(|keys| keys.values().any(|r| r.is_live(now)))
            })
            .map(|(scope, _)| scope.clone());
        Ok(Page::from_iter(live, limit))
    }

    async fn list_stored_scopes(
        &self,
        kind: Option<ScopeKind>,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Page<Scope>> {
        check_page_limit(limit)?;
        let inner = self.lock();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let stored = inner
            .scopes
            .range::<Scope, _>((lower, Bound::Unbounded))
            .filter(|(s, d)| kind.is_none_or(|k| s.kind() == k) && !d.slots.is_empty())
            .map(|(scope, _)| scope.clone());
        Ok(Page::from_iter(stored, limit))
    }

    async fn restore(&self, restore: Restore) -> Result<u64> {
        let records = crate::backend::check_restored(restore.records, restore.max_value_bytes)?;
        let mut inner = self.lock();
        check_restore(&records, |slot| Ok(inner.record(slot)))?;
        let n = records.len() as u64;
        let now = self.clock.now();
        for (slot, record) in records {
            inner.put(&slot, Kept::new(record), now);
        }
        Ok(n)
    }

    async fn clear(&self, scope: &Scope) -> Result<u64> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Some(data) = inner.scopes.get_mut(scope) else {
            return Ok(0);
        };
        let live = |r: &Kept| r.is_live(now);
        let records = || data.slots.values().flat_map(|keys| keys.values());
        if records().any(|r| live(r) && r.version == u64::MAX) {
            return Err(Error::InvalidArgument(format!(
                "scope {scope} holds a slot at version u64::MAX; nothing was cleared"
            )));
        }
        let mut cleared = Vec::new();
        for (ns, keys) in data.slots.iter_mut() {
            for (key, r) in keys.iter_mut() {
                if live(r) {
                    *r = Kept::absent(r.version + 1);
                    cleared.push((
                        Slot::new(scope.clone(), ns.clone(), key.clone())?,
                        r.clone(),
                    ));
                }
            }
        }
        for (slot, r) in &cleared {
            inner.log(slot, r, now);
        }
        Ok(cleared.len() as u64)
    }

    async fn purge_scope(&self, scope: &Scope) -> Result<u64> {
        let mut inner = self.lock();
        Ok(inner.scopes.get_mut(scope).map_or(0, |d| d.purge(|_| true)))
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = self.clock.now();
        let mut inner = self.lock();
        Ok(inner
            .scopes
            .values_mut()
            .map(|d| d.purge(|r| r.value.is_some() && !r.is_live(now)))
            .sum())
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn read_changes(
        &self,
        after: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let inner = self.lock();
        crate::backend::rows::check_not_trimmed(after, inner.trimmed_through)?;
        // The log is in sequence order: skip to `after` by binary search.
        let start = inner.log.partition_point(|c| c.seq <= after);
        Ok(inner
            .log
            .range(start..)
            .filter(|c| filter.matches_slot(&c.slot))
            .take(limit)
            .map(Logged::change)
            .collect())
    }

    async fn slot_history(
        &self,
        slot: &Slot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let inner = self.lock();
        Ok(inner
            .log
            .iter()
            .rev()
            .filter(|c| before.is_none_or(|b| c.seq < b) && &c.slot == slot)
            .take(limit)
            .map(Logged::change)
            .collect())
    }

    async fn last_change(&self) -> Result<u64> {
        Ok(self.lock().seq)
    }
}
