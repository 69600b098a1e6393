//! Typed handles on one slot, access modes, and keyed collections.
//!
//! A [`SlotHandle<T, M>`] reads and writes one slot as `T`. Convenience methods exist only
//! where `T` supports them — `increment` on numbers, `append` on sequences, `merge` on maps —
//! and every mutating method needs the mode `M` to be [`ReadWrite`]. Misuse does not compile,
//! and the compiler says why in the domain's words.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::engine::{Engine, Events, RetryPolicy};
use crate::error::{Abort, Error, Result};
use crate::op::{NumKind, Op, Path};
use crate::record::{Record, Ttl};
use crate::scope::Slot;
use crate::store::WriteOutcome;
use crate::target::WriteTarget;

mod sealed {
    pub trait Sealed {}
}

/// An access mode: [`ReadWrite`] or [`ReadOnly`].
pub trait Mode: sealed::Sealed + Send + Sync + 'static {}

/// The mode of handles that may write.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadWrite;

/// The mode of handles in a shared (read-only) handler: no mutating method compiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOnly;

impl sealed::Sealed for ReadWrite {}
impl sealed::Sealed for ReadOnly {}
impl Mode for ReadWrite {}
impl Mode for ReadOnly {}

/// Modes that may write. Only [`ReadWrite`] is one.
#[diagnostic::on_unimplemented(
    message = "state is read-only in a shared handler",
    label = "this handle came from a read-only view",
    note = "shared handlers may only read; write from the exclusive handler's state instead"
)]
pub trait CanWrite: Mode {}
impl CanWrite for ReadWrite {}

/// Number types whose fields have `increment` and `decrement`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number, so this field has no `increment` or `decrement`",
    label = "not a number",
    note = "`increment` and `decrement` exist on fields of type u8…u64, usize, i8…i64, isize, f32 and f64; use `set` or `update` to change other values"
)]
pub trait Numeric: Serialize + DeserializeOwned + Copy + Send + Sync + 'static {
    /// The number kind the store checks overflow against.
    const KIND: NumKind;
    /// The value as a JSON number (`None` for NaN and infinities).
    fn to_number(self) -> Option<Number>;
}

macro_rules! numeric {
    ($($t:ty => $k:ident, $conv:expr;)*) => {$(
        impl Numeric for $t {
            const KIND: NumKind = NumKind::$k;
            fn to_number(self) -> Option<Number> {
                #[allow(clippy::redundant_closure_call)]
                ($conv)(self)
            }
        }
    )*};
}

numeric! {
    u8 => U8, |v| Some(Number::from(v));
    u16 => U16, |v| Some(Number::from(v));
    u32 => U32, |v| Some(Number::from(v));
    u64 => U64, |v| Some(Number::from(v));
    i8 => I8, |v| Some(Number::from(v));
    i16 => I16, |v| Some(Number::from(v));
    i32 => I32, |v| Some(Number::from(v));
    i64 => I64, |v| Some(Number::from(v));
    f32 => F32, |v: f32| Number::from_f64(f64::from(v));
    f64 => F64, Number::from_f64;
}

/// `usize` is checked at the pointer width of the target it runs on (`u64` on 64-bit ones).
impl Numeric for usize {
    const KIND: NumKind = if usize::BITS == 64 {
        NumKind::U64
    } else {
        NumKind::U32
    };
    fn to_number(self) -> Option<Number> {
        Some(Number::from(self))
    }
}

/// `isize` is checked at the pointer width of the target it runs on (`i64` on 64-bit ones).
impl Numeric for isize {
    const KIND: NumKind = if isize::BITS == 64 {
        NumKind::I64
    } else {
        NumKind::I32
    };
    fn to_number(self) -> Option<Number> {
        Some(Number::from(self))
    }
}

/// Sequence types whose fields have `append`, `remove_first` and `remove_last`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sequence, so this field has no `append`, `remove_first` or `remove_last`",
    label = "not a sequence",
    note = "sequence ops exist on fields of type `Vec<T>` and `VecDeque<T>`"
)]
pub trait Sequence {
    /// The item type.
    type Item: Serialize + DeserializeOwned;
}

impl<I: Serialize + DeserializeOwned> Sequence for Vec<I> {
    type Item = I;
}
impl<I: Serialize + DeserializeOwned> Sequence for VecDeque<I> {
    type Item = I;
}

/// Map types with string keys, whose fields have `merge`, `insert` and `remove`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a map with `String` keys, so this field has no `merge`, `insert` or `remove`",
    label = "not a string-keyed map",
    note = "map ops exist on fields of type `HashMap<String, V>` and `BTreeMap<String, V>`"
)]
pub trait StringMap {
    /// The value type.
    type Value: Serialize + DeserializeOwned;
}

impl<V: Serialize + DeserializeOwned, S> StringMap for HashMap<String, V, S> {
    type Value = V;
}
impl<V: Serialize + DeserializeOwned> StringMap for BTreeMap<String, V> {
    type Value = V;
}

/// The future of a write through a typed handle: boxed, so that a misuse (an `increment`
/// on a string, a write through a read-only view) is reported once, where the method is
/// called.
pub type StateFuture<'a, T> = futures::future::BoxFuture<'a, Result<T>>;

/// A value with the version it was read at.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Versioned<T> {
    /// The value (after `initial` and expiry rules), if any.
    pub value: Option<T>,
    /// The slot's version (0: never written).
    pub version: u64,
}

/// A typed handle on one slot. `Clone + Send + Sync + 'static`; owns a clone of the engine,
/// so it moves into spawned tasks.
///
/// A handle is *lazy* (every read goes to the store) unless it was made *eager* with
/// [`eager`](Self::eager) or came from a loaded snapshot: an eager handle reads its cached
/// record, and every write through it refreshes that record from the commit's result.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope, Slot};
/// let engine = Engine::new(MemoryStore::new());
/// let scope = Scope::execution("run-7")?;
/// let articles = engine.handle::<Vec<String>>(Slot::new(scope.clone(), "Research", "articles")?);
/// articles.append("https://a".into()).await?;
/// articles.append("https://b".into()).await?;
/// assert_eq!(articles.remove_first().await?, Some("https://a".to_string()));
///
/// let cost = engine.handle::<f64>(Slot::new(scope, "Research", "total_cost")?);
/// cost.update(|c| Ok(Some(c.copied().unwrap_or(0.0) + 0.25))).await?;
/// assert_eq!(cost.get().await?, Some(0.25));
/// # Ok(()) }
/// ```
pub struct SlotHandle<T, M = ReadWrite> {
    target: WriteTarget,
    retry: Option<RetryPolicy>,
    _marker: PhantomData<fn() -> (T, M)>,
}

impl<T, M> SlotHandle<T, M> {
    /// The same handle in another mode.
    fn with_mode<M2>(&self) -> SlotHandle<T, M2> {
        SlotHandle {
            target: self.target.clone(),
            retry: self.retry,
            _marker: PhantomData,
        }
    }
}

impl<T, M> Clone for SlotHandle<T, M> {
    fn clone(&self) -> Self {
        self.with_mode()
    }
}

impl<T, M> fmt::Debug for SlotHandle<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotHandle")
            .field("type", &std::any::type_name::<T>())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<T, M> SlotHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    /// A lazy handle on `slot` of `engine` (usually made by [`Engine::handle`]).
    pub fn new(engine: Engine, slot: Slot) -> Self {
        SlotHandle {
            target: WriteTarget::new(engine, slot),
            retry: None,
            _marker: PhantomData,
        }
    }

    /// The slot.
    pub fn slot(&self) -> &Slot {
        &self.target.slot
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.target.engine
    }

    /// The write target (slot, engine, initial value, TTL) behind this handle.
    pub fn target(&self) -> &WriteTarget {
        &self.target
    }

    pub(crate) fn target_mut(&mut self) -> &mut WriteTarget {
        &mut self.target
    }

    /// Sets the value `get` returns, and Apply writes start from, while the slot was never
    /// written. After a delete or expiry it does not come back.
    pub fn with_initial(mut self, initial: &T) -> Result<Self> {
        self.target.initial = Some(Arc::new(self.target.encode(initial)?));
        Ok(self)
    }

    /// [`with_initial`](Self::with_initial) from raw JSON.
    #[must_use]
    pub fn with_initial_raw(mut self, initial: Option<Value>) -> Self {
        self.target.initial = initial.map(Arc::new);
        self
    }

    /// Sets how this handle's writes change the slot's expiry (default: keep it).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.target.ttl = ttl;
        self
    }

    /// Retries this handle's `update` at most `n` times after the first attempt, with the
    /// engine's backoff (`#[state(max_retries = n)]` on a field).
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        let mut policy = self.retry.unwrap_or(self.engine().config().retry);
        policy.max_retries = n;
        self.retry = Some(policy);
        self
    }

    /// Overrides the engine's retry policy for this handle's `update`.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// An eager copy of this handle that reads `record` (a loaded snapshot's) instead of the
    /// store; every write through it refreshes the record from the commit.
    #[must_use]
    pub fn eager(&self, record: Record) -> Self {
        let mut h = self.clone();
        h.target.cache = Some(Arc::new(Mutex::new(record)));
        h
    }

    /// A lazy copy of this handle: every read goes to the store.
    #[must_use]
    pub fn lazy(&self) -> Self {
        let mut h = self.clone();
        h.target.cache = None;
        h
    }

    /// Whether reads come from a loaded record rather than the store.
    pub fn is_eager(&self) -> bool {
        self.target.cache.is_some()
    }

    /// A read-only handle on the same slot.
    pub fn read_only(&self) -> SlotHandle<T, ReadOnly> {
        self.with_mode()
    }

    /// Events of this slot (changes, conflicts, exhaustion) from now on.
    pub fn events(&self) -> Events {
        self.target.engine.slot_events(&self.target.slot)
    }

    /// The value: `Some` if stored; the initial value if never written; `None` after a delete
    /// or expiry. A stored value that no longer fits `T` is [`Error::Decode`].
    pub async fn get(&self) -> Result<Option<T>> {
        Ok(self.get_versioned().await?.value)
    }

    /// Every version of this slot committed from now on (the call) — by this process or any other on
    /// the same store — typed, in order: `(version, value)`, `None` for a delete. Reads the
    /// store's change log (see [`Engine::changes`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use futures::StreamExt;
    /// use state_core::{Engine, MemoryStore, Scope, Slot};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let attempts = engine.handle::<u32>(Slot::new(Scope::execution("run-1")?, "Job", "attempts")?);
    /// let mut watch = attempts.watch().await?; // from now on
    /// let writer = attempts.clone();
    /// tokio::spawn(async move { writer.increment(1).await });
    /// assert_eq!(watch.next().await.unwrap()?, (1, Some(1)));
    /// # Ok(()) }
    /// ```
    pub async fn watch(&self) -> Result<BoxStream<'static, Result<(u64, Option<T>)>>>
    where
        T: Send + 'static,
    {
        let head = self.engine().change_head().await?;
        Ok(self.watch_from(head))
    }

    /// Like [`watch`](Self::watch), from the change after sequence number `after` (resume a
    /// watch from the `seq` of a [`Change`](crate::Change) or a [`HistoryEntry`](crate::HistoryEntry)).
    pub fn watch_from(&self, after: u64) -> BoxStream<'static, Result<(u64, Option<T>)>>
    where
        T: Send + 'static,
    {
        self.engine()
            .changes(after, crate::ChangeFilter::slot(self.slot()))
            .map(|c| c.and_then(|c| Ok((c.version, crate::changes::decode::<T>(&c)?))))
            .boxed()
    }

    /// The slot's most recent versions from the change log, newest first, at most `limit`
    /// (ADK's per-event state deltas, typed). Versions older than the store's retention are
    /// gone.
    pub async fn history(&self, limit: usize) -> Result<Vec<crate::HistoryEntry<T>>> {
        self.history_before(None, limit).await
    }

    /// [`history`](Self::history) older than the change `before` (a `seq`: the last entry of
    /// a page, to read the next one back); `None`: from the newest.
    pub async fn history_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::HistoryEntry<T>>> {
        let changes = self
            .engine()
            .store()
            .slot_history(self.slot(), before, limit)
            .await?;
        changes
            .iter()
            .map(|c| {
                Ok(crate::HistoryEntry {
                    seq: c.seq,
                    version: c.version,
                    value: crate::changes::decode::<T>(c)?,
                    at: c.at,
                })
            })
            .collect()
    }

    /// The value and the version it was read at (for [`set_if`](Self::set_if)).
    pub async fn get_versioned(&self) -> Result<Versioned<T>> {
        let record = self.target.load().await?;
        self.versioned(&record)
    }

    /// An eager handle's cached value and version, read without waiting; `None` on a lazy
    /// handle.
    pub fn cached(&self) -> Option<Result<Versioned<T>>> {
        self.target.cached().map(|r| self.versioned(&r))
    }

    fn versioned(&self, record: &Record) -> Result<Versioned<T>> {
        Ok(Versioned {
            value: self.target.decode_record(record)?,
            version: record.version,
        })
    }

    /// The raw record (JSON value, version, expiry), for repair and migration.
    pub async fn get_raw(&self) -> Result<Record> {
        self.target.load().await
    }

    /// Decodes a record as `get` would: the value, else the initial value at version 0.
    pub fn decode_record(&self, record: &Record) -> Result<Option<T>> {
        self.target.decode_record(record)
    }

    /// Commits one Apply write of `ops` on this slot.
    async fn apply(&self, ops: Vec<Op>) -> Result<WriteOutcome> {
        self.target.commit_one(self.target.write(ops)).await
    }

    /// The first op output of a write, decoded as `V` (at the version it was produced at).
    fn output<V: DeserializeOwned>(&self, o: WriteOutcome, version: u64) -> Result<Option<V>> {
        match o.outputs.into_iter().next().flatten() {
            Some(v) => self.target.decode(v, version).map(Some),
            None => Ok(None),
        }
    }

    /// The Apply op `increment`/`decrement` by `by` at `path`, checked as `N`.
    pub(crate) fn numeric_op<N: Numeric>(
        target: &WriteTarget,
        path: Path,
        by: N,
        negate: bool,
    ) -> Result<Op> {
        let op = if negate { "decrement" } else { "increment" };
        let n = by.to_number().ok_or_else(|| Error::NotFinite {
            slot: target.slot.clone(),
            path: path.clone(),
            op,
            kind: N::KIND,
        })?;
        Ok(if negate {
            Op::decrement(path, n, N::KIND)
        } else {
            Op::increment(path, n, N::KIND)
        })
    }

    /// Stores `value` unconditionally (an Apply write: no read, version +1). Returns the new
    /// version.
    pub fn set(&self, value: T) -> StateFuture<'_, u64>
    where
        M: CanWrite,
    {
        let v = self.target.encode(&value);
        Box::pin(async move { Ok(self.apply(vec![Op::set(Path::root(), v?)]).await?.version) })
    }

    /// Stores raw JSON unconditionally, bypassing `T` (repair and migration). Returns the new
    /// version.
    pub fn set_raw(&self, value: Value) -> StateFuture<'_, u64>
    where
        M: CanWrite,
    {
        Box::pin(async move {
            Ok(self
                .apply(vec![Op::set(Path::root(), value)])
                .await?
                .version)
        })
    }

    /// Stores `value` only if the slot is at version `expected` (strict CAS; no retry).
    /// Otherwise [`Error::VersionMismatch`] and nothing is written. Returns the new version.
    pub fn set_if(&self, expected: u64, value: T) -> StateFuture<'_, u64>
    where
        M: CanWrite,
    {
        let v = self.target.encode(&value);
        Box::pin(async move {
            let w = self.target.cas_write(expected, Some(v?));
            Ok(self.target.commit_one(w).await?.version)
        })
    }

    /// Deletes unconditionally (a tombstone, version +1) and returns the previous value.
    ///
    /// The delete commits even if the previous value no longer fits `T`; the method then
    /// returns [`Error::Decode`] for it (use [`get_raw`](Self::get_raw) first to repair).
    pub fn delete(&self) -> StateFuture<'_, Option<T>>
    where
        T: Send,
        M: CanWrite,
    {
        Box::pin(async move {
            let o = self.apply(vec![Op::delete(Path::root())]).await?;
            let prev = o.previous_version;
            self.output(o, prev)
        })
    }

    /// Deletes only if the slot is at version `expected` (strict CAS). Returns the new version.
    pub fn delete_if(&self, expected: u64) -> StateFuture<'_, u64>
    where
        M: CanWrite,
    {
        let w = self.target.cas_write(expected, None);
        Box::pin(async move { Ok(self.target.commit_one(w).await?.version) })
    }

    /// The CAS loop: runs `f` on the current value (`initial` if never written) and commits
    /// its result (`None` deletes) if the version is unchanged; on conflict re-runs `f` on the
    /// fresh value, up to the retry policy's limit, then [`Error::Conflict`]. An `Err` from
    /// `f` stops without writing ([`Error::Aborted`]). Returns the committed value.
    ///
    /// On an eager handle the first attempt runs on the loaded record.
    pub fn update<'a, F>(&'a self, f: F) -> StateFuture<'a, Option<T>>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort> + Send + 'a,
        T: Send,
        M: CanWrite,
    {
        let first = self.target.cached();
        Box::pin(async move { self.update_inner(first, f).await.map(|(v, _)| v) })
    }

    /// [`update`](Self::update) whose first attempt runs on `first` instead of a fresh read.
    /// Returns the committed value and the write's outcome.
    pub fn update_from<'a, F>(
        &'a self,
        first: Option<Record>,
        f: F,
    ) -> StateFuture<'a, (Option<T>, WriteOutcome)>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort> + Send + 'a,
        T: Send,
        M: CanWrite,
    {
        Box::pin(self.update_inner(first, f))
    }

    async fn update_inner<F>(
        &self,
        first: Option<Record>,
        mut f: F,
    ) -> Result<(Option<T>, WriteOutcome)>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort>,
    {
        let t = &self.target;
        let (value, outcome) = t
            .update_loop(self.retry, first, |record| {
                let current = t.decode_record(record)?;
                let next = f(current.as_ref()).map_err(|a| Error::Aborted {
                    slot: t.slot.clone(),
                    source: a.into_inner(),
                })?;
                let raw = next.as_ref().map(|v| t.encode(v)).transpose()?;
                Ok((raw, next))
            })
            .await?;
        t.refresh(&outcome);
        Ok((value, outcome))
    }

    /// Adds `by` inside the store (an Apply write: no read, no conflict between concurrent
    /// incrementers). Overflow of `T` is [`Error::Overflow`] and writes nothing. Returns the
    /// new value.
    pub fn increment(&self, by: T) -> StateFuture<'_, T>
    where
        T: Numeric,
        M: CanWrite,
    {
        self.arith(by, false)
    }

    /// Subtracts `by` inside the store; see [`increment`](Self::increment).
    pub fn decrement(&self, by: T) -> StateFuture<'_, T>
    where
        T: Numeric,
        M: CanWrite,
    {
        self.arith(by, true)
    }

    fn arith(&self, by: T, negate: bool) -> StateFuture<'_, T>
    where
        T: Numeric,
    {
        let op = Self::numeric_op(&self.target, Path::root(), by, negate);
        Box::pin(async move {
            let o = self.apply(vec![op?]).await?;
            let version = o.version;
            self.output(o, version)?.ok_or_else(|| {
                Error::store(std::io::Error::other("a numeric op returned no value"))
            })
        })
    }

    /// Appends `item` inside the store. Returns the new version.
    pub fn append(&self, item: T::Item) -> StateFuture<'_, u64>
    where
        T: Sequence,
        M: CanWrite,
    {
        let op = self
            .target
            .encode_at("append", &Path::root(), &item)
            .map(|v| Op::append(Path::root(), v));
        Box::pin(async move { Ok(self.apply(vec![op?]).await?.version) })
    }

    /// Removes and returns the first item (`None` if the sequence is empty or absent).
    pub fn remove_first(&self) -> StateFuture<'_, Option<T::Item>>
    where
        T: Sequence,
        T::Item: Send,
        M: CanWrite,
    {
        self.removed(vec![Op::remove_first(Path::root())])
    }

    /// Removes and returns the last item (`None` if the sequence is empty or absent).
    pub fn remove_last(&self) -> StateFuture<'_, Option<T::Item>>
    where
        T: Sequence,
        T::Item: Send,
        M: CanWrite,
    {
        self.removed(vec![Op::remove_last(Path::root())])
    }

    /// Commits `ops` and decodes the last op's output (a removed item or entry) as `V`.
    fn removed<V: DeserializeOwned + Send>(&self, ops: Vec<Op>) -> StateFuture<'_, Option<V>> {
        Box::pin(async move {
            let mut o = self.apply(ops).await?;
            let prev = o.previous_version;
            let removed = o.outputs.pop().flatten();
            removed.map(|v| self.target.decode(v, prev)).transpose()
        })
    }

    /// Inserts every entry into the map inside the store (shallow merge). Returns the new
    /// version.
    pub fn merge<K, I>(&self, entries: I) -> StateFuture<'_, u64>
    where
        T: StringMap,
        K: Into<String>,
        I: IntoIterator<Item = (K, T::Value)>,
        M: CanWrite,
    {
        let op = encode_entries(&self.target, &Path::root(), entries)
            .map(|m| Op::merge(Path::root(), m));
        Box::pin(async move { Ok(self.apply(vec![op?]).await?.version) })
    }

    /// Inserts one entry into the map inside the store. Returns the new version.
    pub fn insert(&self, key: impl Into<String>, value: T::Value) -> StateFuture<'_, u64>
    where
        T: StringMap,
        M: CanWrite,
    {
        self.merge([(key.into(), value)])
    }

    /// Removes one entry from the map inside the store and returns it.
    pub fn remove(&self, key: impl Into<String>) -> StateFuture<'_, Option<T::Value>>
    where
        T: StringMap,
        T::Value: Send,
        M: CanWrite,
    {
        self.removed(map_remove_ops(Path::root(), key.into()))
    }
}

/// Encodes map entries for a `merge` op at `at`.
pub(crate) fn encode_entries<K, V, I>(
    target: &WriteTarget,
    at: &Path,
    entries: I,
) -> Result<Map<String, Value>>
where
    K: Into<String>,
    V: Serialize,
    I: IntoIterator<Item = (K, V)>,
{
    let mut map = Map::new();
    for (k, v) in entries {
        let k = k.into();
        let v = target.encode_at("merge", &at.clone().child(k.clone()), &v)?;
        map.insert(k, v);
    }
    Ok(map)
}

/// The ops removing `key` from the map at `path`: an empty merge first makes an absent map
/// `{}`, so the nested delete always has a parent.
pub(crate) fn map_remove_ops(path: Path, key: String) -> Vec<Op> {
    vec![
        Op::merge(path.clone(), Map::new()),
        Op::delete(path.child(key)),
    ]
}
