//! Typed handles on one slot, access modes, and keyed collections.
//!
//! A [`SlotHandle<T, M>`] reads and writes one slot as `T`. Convenience methods exist only
//! where `T` supports them — `increment` on numbers, `append` on sequences, `merge` on maps —
//! and every mutating method needs the mode `M` to be [`ReadWrite`]. Misuse does not compile,
//! and the compiler says why in the domain's words.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::engine::{Engine, Events, RetryPolicy};
use crate::error::{Abort, Error, Result};
use crate::op::{NumKind, Op, Path};
use crate::record::{Record, Ttl};
use crate::scope::{Scope, Slot, SlotKey};
use crate::store::{Page, Write, WriteOutcome};

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
    note = "`increment` and `decrement` exist on fields of type u8…u64, i8…i64, f32 and f64; use `set` or `update` to change other values"
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

/// A value with the version it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// The value (after `initial` and expiry rules), if any.
    pub value: Option<T>,
    /// The slot's version (0: never written).
    pub version: u64,
}

/// A typed handle on one slot. `Clone + Send + Sync + 'static`; owns a clone of the engine,
/// so it moves into spawned tasks.
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
    engine: Engine,
    slot: Slot,
    initial: Option<Arc<Value>>,
    ttl: Ttl,
    retry: Option<RetryPolicy>,
    _marker: PhantomData<fn() -> (T, M)>,
}

impl<T, M> SlotHandle<T, M> {
    /// The same handle in another mode.
    fn with_mode<M2>(&self) -> SlotHandle<T, M2> {
        SlotHandle {
            engine: self.engine.clone(),
            slot: self.slot.clone(),
            initial: self.initial.clone(),
            ttl: self.ttl,
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
            .field("slot", &self.slot)
            .field("type", &std::any::type_name::<T>())
            .field("initial", &self.initial)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<T, M> SlotHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    pub(crate) fn new(engine: Engine, slot: Slot) -> Self {
        SlotHandle {
            engine,
            slot,
            initial: None,
            ttl: Ttl::Keep,
            retry: None,
            _marker: PhantomData,
        }
    }

    /// The slot.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Sets the value `get` returns, and Apply writes start from, while the slot was never
    /// written. After a delete or expiry it does not come back.
    pub fn with_initial(mut self, initial: &T) -> Result<Self> {
        self.initial = Some(Arc::new(self.encode(initial)?));
        Ok(self)
    }

    /// [`with_initial`](Self::with_initial) from raw JSON.
    #[must_use]
    pub fn with_initial_raw(mut self, initial: Option<Value>) -> Self {
        self.initial = initial.map(Arc::new);
        self
    }

    /// Sets how this handle's writes change the slot's expiry (default: keep it).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// Overrides the engine's retry policy for this handle's `update`.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// A read-only handle on the same slot.
    pub fn read_only(&self) -> SlotHandle<T, ReadOnly> {
        self.with_mode()
    }

    /// Events of this slot (changes, conflicts, exhaustion) from now on.
    pub fn events(&self) -> Events {
        self.engine.slot_events(&self.slot)
    }

    /// The value: `Some` if stored; the initial value if never written; `None` after a delete
    /// or expiry. A stored value that no longer fits `T` is [`Error::Decode`].
    pub async fn get(&self) -> Result<Option<T>> {
        Ok(self.get_versioned().await?.value)
    }

    /// The value and the version it was read at (for [`set_if`](Self::set_if)).
    pub async fn get_versioned(&self) -> Result<Versioned<T>> {
        let record = self.engine.load(&self.slot).await?;
        let version = record.version;
        Ok(Versioned {
            value: self.decode_record(&record)?,
            version,
        })
    }

    /// The raw record (JSON value, version, expiry), for repair and migration.
    pub async fn get_raw(&self) -> Result<Record> {
        self.engine.load(&self.slot).await
    }

    /// Decodes a record as `get` would: the value, else the initial value at version 0.
    pub fn decode_record(&self, record: &Record) -> Result<Option<T>> {
        match (&record.value, &self.initial) {
            (Some(v), _) => self.decode(v.clone(), record.version).map(Some),
            (None, Some(init)) if record.version == 0 => {
                self.decode(Value::clone(init), 0).map(Some)
            }
            (None, _) => Ok(None),
        }
    }

    fn encode<V: Serialize>(&self, v: &V) -> Result<Value> {
        serde_json::to_value(v).map_err(|source| Error::Encode {
            slot: self.slot.clone(),
            type_name: std::any::type_name::<V>(),
            source,
        })
    }

    fn decode<V: DeserializeOwned>(&self, v: Value, version: u64) -> Result<V> {
        serde_json::from_value(v).map_err(|source| Error::Decode {
            slot: self.slot.clone(),
            version,
            type_name: std::any::type_name::<V>(),
            source,
        })
    }

    /// Commits one Apply write of `ops` on this slot.
    async fn apply(&self, ops: Vec<Op>) -> Result<WriteOutcome> {
        let mut outcomes = self.engine.commit(vec![self.write(ops)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| Error::store(std::io::Error::other("commit returned no outcome")))
    }

    /// The first op output of a write, decoded as `V` (at the version it was produced at).
    fn output<V: DeserializeOwned>(&self, mut o: WriteOutcome, version: u64) -> Result<Option<V>> {
        match o.outputs.drain(..).next().flatten() {
            Some(v) => self.decode(v, version).map(Some),
            None => Ok(None),
        }
    }
}

/// Writes. Each needs a writable handle.
impl<T, M> SlotHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    /// Stores `value` unconditionally (an Apply write: no read, version +1). Returns the new
    /// version.
    pub async fn set(&self, value: T) -> Result<u64>
    where
        M: CanWrite,
    {
        let v = self.encode(&value)?;
        Ok(self.apply(vec![Op::set(Path::root(), v)]).await?.version)
    }

    /// Stores raw JSON unconditionally, bypassing `T` (repair and migration). Returns the new
    /// version.
    pub async fn set_raw(&self, value: Value) -> Result<u64>
    where
        M: CanWrite,
    {
        Ok(self
            .apply(vec![Op::set(Path::root(), value)])
            .await?
            .version)
    }

    /// Stores `value` only if the slot is at version `expected` (strict CAS; no retry).
    /// Otherwise [`Error::VersionMismatch`] and nothing is written. Returns the new version.
    pub async fn set_if(&self, expected: u64, value: T) -> Result<u64>
    where
        M: CanWrite,
    {
        let v = self.encode(&value)?;
        self.cas(expected, Some(v)).await
    }

    /// Deletes unconditionally (a tombstone, version +1) and returns the previous value.
    ///
    /// The delete commits even if the previous value no longer fits `T`; the method then
    /// returns [`Error::Decode`] for it (use [`get_raw`](Self::get_raw) first to repair).
    pub async fn delete(&self) -> Result<Option<T>>
    where
        M: CanWrite,
    {
        let o = self.apply(vec![Op::delete(Path::root())]).await?;
        let prev = o.previous_version;
        self.output(o, prev)
    }

    /// Deletes only if the slot is at version `expected` (strict CAS). Returns the new version.
    pub async fn delete_if(&self, expected: u64) -> Result<u64>
    where
        M: CanWrite,
    {
        self.cas(expected, None).await
    }

    async fn cas(&self, expected: u64, value: Option<Value>) -> Result<u64> {
        let write = Write::cas(self.slot.clone(), expected, value).with_ttl(self.ttl);
        let mut outcomes = self.engine.commit(vec![write]).await?;
        outcomes
            .pop()
            .map(|o| o.version)
            .ok_or_else(|| Error::store(std::io::Error::other("commit returned no outcome")))
    }

    /// The CAS loop: runs `f` on the current value (`initial` if never written) and commits
    /// its result (`None` deletes) if the version is unchanged; on conflict re-runs `f` on the
    /// fresh value, up to the retry policy's limit, then [`Error::Conflict`]. An `Err` from
    /// `f` stops without writing ([`Error::Aborted`]). Returns the committed value.
    pub async fn update<F>(&self, f: F) -> Result<Option<T>>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort>,
        M: CanWrite,
    {
        self.update_from(None, f).await.map(|(v, _)| v)
    }

    /// [`update`](Self::update) whose first attempt runs on `first` (a snapshot's record)
    /// instead of a fresh read. Returns the committed value and the write's outcome.
    pub async fn update_from<F>(
        &self,
        first: Option<Record>,
        mut f: F,
    ) -> Result<(Option<T>, WriteOutcome)>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort>,
        M: CanWrite,
    {
        self.engine
            .update_loop(&self.slot, self.retry, self.ttl, first, |record| {
                let current = self.decode_record(record)?;
                let next = f(current.as_ref()).map_err(|a| Error::Aborted {
                    slot: self.slot.clone(),
                    source: a.into_inner(),
                })?;
                let raw = next.as_ref().map(|v| self.encode(v)).transpose()?;
                Ok((raw, next))
            })
            .await
    }

    /// Adds `by` inside the store (an Apply write: no read, no conflict between concurrent
    /// incrementers). Overflow of `T` is [`Error::Overflow`] and writes nothing. Returns the
    /// new value.
    pub async fn increment(&self, by: T) -> Result<T>
    where
        T: Numeric,
        M: CanWrite,
    {
        self.arith(by, false).await
    }

    /// Subtracts `by` inside the store; see [`increment`](Self::increment).
    pub async fn decrement(&self, by: T) -> Result<T>
    where
        T: Numeric,
        M: CanWrite,
    {
        self.arith(by, true).await
    }

    async fn arith(&self, by: T, negate: bool) -> Result<T>
    where
        T: Numeric,
    {
        let o = self.apply(vec![self.numeric_op(by, negate)?]).await?;
        let version = o.version;
        self.output(o, version)?
            .ok_or_else(|| Error::store(std::io::Error::other("a numeric op returned no value")))
    }

    /// Appends `item` inside the store. Returns the new version.
    pub async fn append(&self, item: T::Item) -> Result<u64>
    where
        T: Sequence,
        M: CanWrite,
    {
        let v = self.encode(&item)?;
        Ok(self.apply(vec![Op::append(Path::root(), v)]).await?.version)
    }

    /// Removes and returns the first item (`None` if the sequence is empty or absent).
    pub async fn remove_first(&self) -> Result<Option<T::Item>>
    where
        T: Sequence,
        M: CanWrite,
    {
        let o = self.apply(vec![Op::remove_first(Path::root())]).await?;
        let prev = o.previous_version;
        self.output(o, prev)
    }

    /// Removes and returns the last item (`None` if the sequence is empty or absent).
    pub async fn remove_last(&self) -> Result<Option<T::Item>>
    where
        T: Sequence,
        M: CanWrite,
    {
        let o = self.apply(vec![Op::remove_last(Path::root())]).await?;
        let prev = o.previous_version;
        self.output(o, prev)
    }

    /// Inserts every entry into the map inside the store (shallow merge). Returns the new
    /// version.
    pub async fn merge<K, I>(&self, entries: I) -> Result<u64>
    where
        T: StringMap,
        K: Into<String>,
        I: IntoIterator<Item = (K, T::Value)>,
        M: CanWrite,
    {
        let mut map = Map::new();
        for (k, v) in entries {
            map.insert(k.into(), self.encode(&v)?);
        }
        Ok(self
            .apply(vec![Op::merge(Path::root(), map)])
            .await?
            .version)
    }

    /// Inserts one entry into the map inside the store. Returns the new version.
    pub async fn insert(&self, key: impl Into<String>, value: T::Value) -> Result<u64>
    where
        T: StringMap,
        M: CanWrite,
    {
        self.merge([(key.into(), value)]).await
    }

    /// Removes one entry from the map inside the store and returns it.
    pub async fn remove(&self, key: impl Into<String>) -> Result<Option<T::Value>>
    where
        T: StringMap,
        M: CanWrite,
    {
        // The empty merge makes an absent map `{}` so the nested delete has a parent.
        let ops = vec![
            Op::merge(Path::root(), Map::new()),
            Op::delete(Path::root().child(key)),
        ];
        let mut o = self.apply(ops).await?;
        let prev = o.previous_version;
        let removed = o.outputs.pop().flatten();
        removed.map(|v| self.decode(v, prev)).transpose()
    }
}

/// Typed handles for any key of one namespace in one scope (rate limits per user, login
/// sessions, feature flags).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope};
/// let engine = Engine::new(MemoryStore::new());
/// let flags = engine.collection::<bool>(Scope::app("shop")?, "flags")?;
/// flags.entry("new-checkout")?.set(true).await?;
/// assert_eq!(flags.entry("new-checkout")?.get().await?, Some(true));
/// assert_eq!(flags.keys(None, 10).await?.items, vec!["new-checkout".to_string()]);
/// # Ok(()) }
/// ```
pub struct Collection<V, M = ReadWrite> {
    engine: Engine,
    scope: Scope,
    namespace: String,
    ttl: Ttl,
    _marker: PhantomData<fn() -> (V, M)>,
}

impl<V, M> Collection<V, M> {
    /// The same collection in another mode.
    fn with_mode<M2>(&self) -> Collection<V, M2> {
        Collection {
            engine: self.engine.clone(),
            scope: self.scope.clone(),
            namespace: self.namespace.clone(),
            ttl: self.ttl,
            _marker: PhantomData,
        }
    }
}

impl<V, M> Clone for Collection<V, M> {
    fn clone(&self) -> Self {
        self.with_mode()
    }
}

impl<V, M> fmt::Debug for Collection<V, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("scope", &self.scope)
            .field("namespace", &self.namespace)
            .field("type", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

impl<V, M> Collection<V, M>
where
    V: Serialize + DeserializeOwned,
    M: Mode,
{
    pub(crate) fn new(engine: Engine, scope: Scope, namespace: String) -> Self {
        Collection {
            engine,
            scope,
            namespace,
            ttl: Ttl::Keep,
            _marker: PhantomData,
        }
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Gives every entry handle this TTL (e.g. login sessions that expire).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// A read-only view of the collection.
    pub fn read_only(&self) -> Collection<V, ReadOnly> {
        self.with_mode()
    }

    /// The handle of one entry (the key is validated: non-empty, ≤ 256 bytes, no NUL).
    pub fn entry(&self, key: impl Into<String>) -> Result<SlotHandle<V, M>> {
        let slot = Slot::new(self.scope.clone(), self.namespace.clone(), key)?;
        Ok(SlotHandle::new(self.engine.clone(), slot).with_ttl(self.ttl))
    }

    /// Keys holding a live value, in order, after `after`, at most `limit`.
    pub async fn keys(&self, after: Option<&str>, limit: usize) -> Result<Page<String>> {
        let after = after.map(|k| SlotKey {
            namespace: self.namespace.clone(),
            key: k.to_owned(),
        });
        let page = self
            .engine
            .list_keys(&self.scope, Some(&self.namespace), after.as_ref(), limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|k| k.key).collect(),
            next: page.next.map(|k| k.key),
        })
    }
}

/// A typed, atomic batch of Apply writes across any slots: every op applies, or none does.
/// Ops on one slot join one write (one version step for that slot).
///
/// Building never fails; a value that cannot be encoded (or a NaN amount) is reported by
/// [`commit`](Self::commit), which then writes nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope, Slot};
/// let engine = Engine::new(MemoryStore::new());
/// let run = Scope::execution("run-1")?;
/// let attempts = engine.handle::<u32>(Slot::new(run.clone(), "R", "attempts")?);
/// let cost = engine.handle::<f64>(Slot::new(run, "R", "cost")?);
/// engine.batch().increment(&attempts, 1).increment(&cost, 0.25).commit().await?;
/// assert_eq!((attempts.get().await?, cost.get().await?), (Some(1), Some(0.25)));
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until `commit` is awaited"]
pub struct BatchBuilder {
    engine: Engine,
    writes: Vec<Write>,
    error: Option<Error>,
}

impl fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("writes", &self.writes)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl BatchBuilder {
    pub(crate) fn new(engine: Engine) -> Self {
        BatchBuilder {
            engine,
            writes: Vec::new(),
            error: None,
        }
    }

    /// Adds `op` on `handle`'s slot (joining an earlier write to the same slot), or records
    /// the first error.
    pub fn op<T, M>(mut self, handle: &SlotHandle<T, M>, op: Result<Op>) -> Self
    where
        T: Serialize + DeserializeOwned,
        M: CanWrite,
    {
        let op = match op {
            Ok(op) => op,
            Err(e) => {
                self.error.get_or_insert(e);
                return self;
            }
        };
        let existing = self.writes.iter_mut().find(|w| w.slot == handle.slot);
        match existing.map(|w| &mut w.kind) {
            Some(crate::store::WriteKind::Apply { ops, .. }) => ops.push(op),
            _ => self.writes.push(handle.write(vec![op])),
        }
        self
    }

    /// `set` on `handle`.
    pub fn set<T: Serialize + DeserializeOwned, M: CanWrite>(
        self,
        handle: &SlotHandle<T, M>,
        value: T,
    ) -> Self {
        let op = handle.encode(&value).map(|v| Op::set(Path::root(), v));
        self.op(handle, op)
    }

    /// `delete` on `handle` (the previous value is in the outcome's outputs).
    pub fn delete<T: Serialize + DeserializeOwned, M: CanWrite>(
        self,
        handle: &SlotHandle<T, M>,
    ) -> Self {
        self.op(handle, Ok(Op::delete(Path::root())))
    }

    /// `increment` on `handle`.
    pub fn increment<T: Numeric, M: CanWrite>(self, handle: &SlotHandle<T, M>, by: T) -> Self {
        let op = handle.numeric_op(by, false);
        self.op(handle, op)
    }

    /// `decrement` on `handle`.
    pub fn decrement<T: Numeric, M: CanWrite>(self, handle: &SlotHandle<T, M>, by: T) -> Self {
        let op = handle.numeric_op(by, true);
        self.op(handle, op)
    }

    /// `append` on `handle`.
    pub fn append<T, M>(self, handle: &SlotHandle<T, M>, item: T::Item) -> Self
    where
        T: Sequence + Serialize + DeserializeOwned,
        M: CanWrite,
    {
        let op = handle.encode(&item).map(|v| Op::append(Path::root(), v));
        self.op(handle, op)
    }

    /// `insert` of one map entry on `handle`.
    pub fn insert<T, M>(
        self,
        handle: &SlotHandle<T, M>,
        key: impl Into<String>,
        value: T::Value,
    ) -> Self
    where
        T: StringMap + Serialize + DeserializeOwned,
        M: CanWrite,
    {
        let op = handle.encode(&value).map(|v| {
            let mut m = Map::new();
            m.insert(key.into(), v);
            Op::merge(Path::root(), m)
        });
        self.op(handle, op)
    }

    /// The writes collected so far.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Commits every write atomically. Returns one outcome per slot written, in the order the
    /// slots were first touched.
    pub async fn commit(self) -> Result<Vec<WriteOutcome>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.engine.commit(self.writes).await
    }
}

impl<T, M> SlotHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    /// An Apply write of `ops` on this slot, with this handle's initial value and TTL.
    pub fn write(&self, ops: Vec<Op>) -> Write {
        Write::apply(self.slot.clone(), ops)
            .with_initial(self.initial.as_deref().cloned())
            .with_ttl(self.ttl)
    }

    fn numeric_op(&self, by: T, negate: bool) -> Result<Op>
    where
        T: Numeric,
    {
        let op = if negate { "decrement" } else { "increment" };
        let n = by.to_number().ok_or_else(|| Error::NotFinite {
            slot: self.slot.clone(),
            path: Path::root(),
            op,
            kind: T::KIND,
        })?;
        Ok(if negate {
            Op::decrement(Path::root(), n, T::KIND)
        } else {
            Op::increment(Path::root(), n, T::KIND)
        })
    }
}
