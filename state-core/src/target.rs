//! `WriteTarget`: everything a write to one slot needs besides its ops — the engine, the
//! slot, the initial value, the TTL, and (for eager handles) the cached record to refresh.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::{Engine, Event, RetryPolicy};
use crate::error::{Error, Result};
use crate::finite::Found;
use crate::op::{Op, Path};
use crate::record::{Record, Ttl};
use crate::scope::Slot;
use crate::store::{CommitOutcome, Write, WriteOutcome};
use crate::telemetry;

/// One slot as a destination of writes. Typed handles and batch cursors are built on it.
#[derive(Clone)]
pub struct WriteTarget {
    pub(crate) engine: Engine,
    pub(crate) slot: Slot,
    pub(crate) initial: Option<Arc<Value>>,
    pub(crate) ttl: Ttl,
    /// Present on eager handles: the loaded record, refreshed by every commit through them.
    pub(crate) cache: Option<Arc<Mutex<Record>>>,
    /// Session state (Weft's rule): after a delete the initial value comes back.
    pub(crate) initial_after_delete: bool,
}

impl fmt::Debug for WriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTarget")
            .field("slot", &self.slot)
            .field("initial", &self.initial)
            .field("ttl", &self.ttl)
            .field("eager", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Record>) -> MutexGuard<'_, Record> {
    // A record is replaced whole under the lock: a poisoned lock still holds a whole record.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteTarget {
    pub(crate) fn new(engine: Engine, slot: Slot) -> Self {
        WriteTarget {
            engine,
            slot,
            initial: None,
            ttl: Ttl::Keep,
            cache: None,
            initial_after_delete: false,
        }
    }

    /// The slot.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The engine the slot lives in.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The CAS loop behind every `update`: `step` maps the current record to the new value
    /// (`None`: delete) and a result; the write commits only if the version is unchanged,
    /// else `step` re-runs on the fresh record, up to `1 + max_retries` attempts.
    pub(crate) async fn update_loop<R>(
        &self,
        retry: Option<RetryPolicy>,
        first: Option<Record>,
        mut step: impl FnMut(&Record) -> Result<(Option<Value>, R)>,
    ) -> Result<(R, WriteOutcome)> {
        let (engine, slot) = (&self.engine, &self.slot);
        let policy = retry.unwrap_or(engine.config().retry);
        let attempts = policy.max_retries.saturating_add(1);
        let mut record = match first {
            Some(r) => r,
            None => engine.load(slot).await?,
        };
        for attempt in 1..=attempts {
            let (value, result) = step(&record)?;
            let write = self.cas_write(record.version, value);
            match engine.commit_batch(vec![write]).await? {
                CommitOutcome::Committed(mut outcomes) => {
                    let outcome = outcomes.pop().ok_or_else(|| {
                        Error::store(std::io::Error::other("commit returned no outcome"))
                    })?;
                    return Ok((result, outcome));
                }
                CommitOutcome::Conflict(_) => {
                    engine.emit(|| Event::Conflict {
                        slot: slot.clone(),
                        attempt,
                    });
                    let kind = slot.scope().kind().as_str();
                    let _ = kind;
                    crate::__metric!(
                        counter!("state_update_conflicts_total", "kind" => kind).increment(1)
                    );
                    if attempt == attempts {
                        break;
                    }
                    let delay = policy.delay(attempt);
                    crate::__metric!(
                        counter!("state_update_retries_total", "kind" => kind).increment(1)
                    );
                    telemetry::slot_event!(
                        debug,
                        &engine.config().trace_ids,
                        slot,
                        attempt,
                        backoff_us = delay.as_micros() as u64,
                        "update conflicted, retrying"
                    );
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    record = engine.load(slot).await?;
                }
            }
        }
        engine.emit(|| Event::Exhausted {
            slot: slot.clone(),
            attempts,
        });
        crate::__metric!(
            counter!("state_update_exhausted_total", "kind" => slot.scope().kind().as_str())
                .increment(1)
        );
        telemetry::slot_event!(
            warn,
            &engine.config().trace_ids,
            slot,
            attempts,
            "update gave up"
        );
        Err(Error::Conflict {
            slot: slot.clone(),
            attempts,
        })
    }

    /// An Apply write of `ops` carrying this target's initial value and TTL. On session
    /// state ([`Write::initial_after_delete`]) a deleted slot stays a tombstone — a checkpoint
    /// holds its version and no value — and reads and ops start from the initial value the
    /// code has then, not one frozen in at the delete (Weft's session rule).
    pub fn write(&self, ops: Vec<Op>) -> Write {
        let mut w = Write::apply(self.slot.clone(), ops)
            .with_initial(self.initial.as_deref().cloned())
            .with_ttl(self.ttl);
        w.initial_after_delete = self.initial_after_delete;
        if self.cache.is_some() {
            w.returning_record()
        } else {
            w
        }
    }

    pub(crate) fn cas_write(&self, expected: u64, value: Option<Value>) -> Write {
        let w = Write::cas(self.slot.clone(), expected, value).with_ttl(self.ttl);
        if self.cache.is_some() {
            w.returning_record()
        } else {
            w
        }
    }

    /// Refreshes the cached record (if any) from a committed write's outcome.
    pub(crate) fn refresh(&self, outcome: &WriteOutcome) {
        if let (Some(cache), Some(record)) = (&self.cache, &outcome.record) {
            let mut cached = lock(cache);
            if record.version >= cached.version {
                *cached = record.clone();
            }
        }
    }

    /// The cached record as a reader sees it now, for eager targets.
    pub(crate) fn cached(&self) -> Option<Record> {
        let cache = self.cache.as_ref()?;
        let record = lock(cache).clone();
        Some(record.visible(self.engine.clock().now()))
    }

    /// The current record: the cache of an eager target, else a store read.
    pub(crate) async fn load(&self) -> Result<Record> {
        match self.cached() {
            Some(r) => Ok(r),
            None => self.engine.load(&self.slot).await,
        }
    }

    /// Commits `writes` (each built from this target) and refreshes the cache.
    pub(crate) async fn commit_one(&self, write: Write) -> Result<WriteOutcome> {
        let mut outcomes = self.engine.commit(vec![write]).await?;
        let outcome = outcomes
            .pop()
            .ok_or_else(|| Error::store(std::io::Error::other("commit returned no outcome")))?;
        self.refresh(&outcome);
        Ok(outcome)
    }

    /// Serializes a value for this slot (a whole value to `set`). A NaN or infinite float in
    /// it is [`Error::NotFinite`] (JSON has no such numbers, and serde_json would write
    /// `null`), an `i128`/`u128` outside `i64`/`u64` [`Error::OutOfRange`], and nesting past
    /// [`MAX_DEPTH`](crate::MAX_DEPTH) [`Error::TooDeep`], found before anything is encoded.
    pub fn encode<V: Serialize>(&self, v: &V) -> Result<Value> {
        self.encode_at("set", &Path::root(), v)
    }

    /// [`encode`](Self::encode) for the value `op` writes at `at` (errors name the path of a
    /// non-finite float below it).
    pub(crate) fn encode_at<V: Serialize>(
        &self,
        op: &'static str,
        at: &Path,
        v: &V,
    ) -> Result<Value> {
        if let Some(f) = crate::finite::find(v) {
            let slot = self.slot.clone();
            let path = at.join(&f.path);
            return Err(match f.found {
                Found::NonFinite(kind) => Error::NotFinite {
                    slot,
                    path,
                    op,
                    kind,
                },
                Found::OutOfRange(literal) => Error::OutOfRange {
                    slot,
                    path,
                    literal,
                },
                Found::TooDeep => Error::TooDeep {
                    slot,
                    path,
                    limit: crate::MAX_DEPTH,
                },
            });
        }
        serde_json::to_value(v).map_err(|source| Error::Encode {
            slot: self.slot.clone(),
            type_name: std::any::type_name::<V>(),
            source,
        })
    }

    /// Deserializes a value of this slot read at `version`.
    pub fn decode<V: DeserializeOwned>(&self, v: Value, version: u64) -> Result<V> {
        self.decoded(serde_json::from_value(v), version)
    }

    /// [`Self::decode`] of a borrowed value: deserialized in place, never cloned first.
    pub fn decode_ref<V: DeserializeOwned>(&self, v: &Value, version: u64) -> Result<V> {
        self.decoded(V::deserialize(v), version)
    }

    fn decoded<V>(&self, r: serde_json::Result<V>, version: u64) -> Result<V> {
        r.map_err(|source| Error::Decode {
            slot: self.slot.clone(),
            version,
            type_name: std::any::type_name::<V>(),
            source,
        })
    }

    /// Decodes a record as `get` does: the value, else the initial value at version 0 (on
    /// session state: whenever absent).
    pub fn decode_record<V: DeserializeOwned>(&self, record: &Record) -> Result<Option<V>> {
        match (&record.value, &self.initial) {
            (Some(v), _) => self.decode_ref(v, record.version).map(Some),
            (None, Some(init)) if record.version == 0 || self.initial_after_delete => {
                self.decode_ref(init, 0).map(Some)
            }
            (None, _) => Ok(None),
        }
    }
}

/// Loads the records of many targets with one store call per engine (the durable store gets
/// exactly one), in the targets' order.
pub async fn load_targets(targets: &[&WriteTarget]) -> Result<Vec<Record>> {
    let mut records: Vec<Option<Record>> = vec![None; targets.len()];
    let mut done = vec![false; targets.len()];
    for i in 0..targets.len() {
        if done[i] {
            continue;
        }
        let engine = &targets[i].engine;
        let group: Vec<usize> = (i..targets.len())
            .filter(|&j| !done[j] && targets[j].engine.same(engine))
            .collect();
        let slots: Vec<Slot> = group.iter().map(|&j| targets[j].slot.clone()).collect();
        let loaded = engine.load_many(&slots).await?;
        if loaded.len() != group.len() {
            return Err(Error::store(std::io::Error::other(format!(
                "load_many returned {} records for {} slots",
                loaded.len(),
                group.len()
            ))));
        }
        if group.len() == targets.len() {
            // One engine (the usual case): its records are already in the targets' order.
            return Ok(loaded);
        }
        for (j, r) in group.into_iter().zip(loaded) {
            records[j] = Some(r);
            done[j] = true;
        }
    }
    Ok(records.into_iter().map(Option::unwrap_or_default).collect())
}
