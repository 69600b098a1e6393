//! Session state: private to one execution, local to the invocation, read and written
//! synchronously, saved with `ctx.checkpoint()` and restored from it (Weft's `session`).

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Abort, Result};
use crate::handle::{
    CanWrite, Mode, Numeric, ReadOnly, ReadWrite, Sequence, SlotHandle, StringMap, Versioned,
};
use crate::record::Ttl;
use crate::scope::Slot;
use crate::target::WriteTarget;

/// A synchronous handle on a session field. Unlike stored state, a deleted session field
/// reads as its `initial` value again (Weft's session rule).
///
/// Its methods are plain functions: session state lives in the invocation's memory, so
/// nothing waits. The same slot is also reachable asynchronously ([`as_slot`](Self::as_slot)),
/// which is how batches and snapshots include it.
#[derive(Debug)]
pub struct SessionHandle<T, M = ReadWrite> {
    inner: SlotHandle<T, M>,
}

impl<T, M> Clone for SessionHandle<T, M> {
    fn clone(&self) -> Self {
        SessionHandle {
            inner: self.inner.clone(),
        }
    }
}

/// Runs a session future: the session engine never suspends (memory store, no backoff), so
/// the future completes at its first poll.
fn now<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

impl<T, M> SessionHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    pub(crate) fn new(mut inner: SlotHandle<T, M>) -> Self {
        inner.target_mut().initial_after_delete = true;
        SessionHandle { inner }
    }

    /// The slot (in the session engine).
    pub fn slot(&self) -> &Slot {
        self.inner.slot()
    }

    /// The write target, for batches.
    pub fn target(&self) -> &WriteTarget {
        self.inner.target()
    }

    /// The same slot through the asynchronous handle API.
    pub fn as_slot(&self) -> &SlotHandle<T, M> {
        &self.inner
    }

    /// Sets the initial value (returned until the first write and after every delete).
    pub fn with_initial(self, initial: &T) -> Result<Self> {
        Ok(SessionHandle {
            inner: self.inner.with_initial(initial)?,
        })
    }

    /// Sets how writes change the slot's expiry.
    #[must_use]
    pub fn with_ttl(self, ttl: Ttl) -> Self {
        SessionHandle {
            inner: self.inner.with_ttl(ttl),
        }
    }

    /// A read-only handle on the same field.
    pub fn read_only(&self) -> SessionHandle<T, ReadOnly> {
        SessionHandle {
            inner: self.inner.read_only(),
        }
    }

    /// The value, or the initial value if never written or deleted.
    pub fn get(&self) -> Result<Option<T>> {
        now(self.inner.get())
    }

    /// The value and its version.
    pub fn get_versioned(&self) -> Result<Versioned<T>> {
        now(self.inner.get_versioned())
    }

    /// Stores `value`. Returns the new version.
    pub fn set(&self, value: T) -> Result<u64>
    where
        M: CanWrite,
    {
        now(self.inner.set(value))
    }

    /// Stores raw JSON (repair). Returns the new version.
    pub fn set_raw(&self, value: Value) -> Result<u64>
    where
        M: CanWrite,
    {
        now(self.inner.set_raw(value))
    }

    /// Stores `value` only if the field is at version `expected` (strict compare-and-swap;
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) otherwise). Returns the new
    /// version.
    pub fn set_if(&self, expected: u64, value: T) -> Result<u64>
    where
        M: CanWrite,
    {
        now(self.inner.set_if(expected, value))
    }

    /// Deletes only if the field is at version `expected`; the initial value comes back.
    /// Returns the new version.
    pub fn delete_if(&self, expected: u64) -> Result<u64>
    where
        M: CanWrite,
    {
        now(self.inner.delete_if(expected))
    }

    /// Changes and conflicts of this field from now on (the session engine's events).
    pub fn events(&self) -> crate::Events {
        self.inner.events()
    }

    /// Deletes and returns the previous value; the initial value (if any) comes back.
    pub fn delete(&self) -> Result<Option<T>>
    where
        T: Send,
        M: CanWrite,
    {
        now(self.inner.delete())
    }

    /// Runs `f` on the current value and stores its result (`None` deletes).
    pub fn update<F>(&self, f: F) -> Result<Option<T>>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>, Abort> + Send,
        T: Send,
        M: CanWrite,
    {
        now(self.inner.update(f))
    }

    /// Adds `by`. Returns the new value.
    pub fn increment(&self, by: T) -> Result<T>
    where
        T: Numeric,
        M: CanWrite,
    {
        now(self.inner.increment(by))
    }

    /// Subtracts `by`. Returns the new value.
    pub fn decrement(&self, by: T) -> Result<T>
    where
        T: Numeric,
        M: CanWrite,
    {
        now(self.inner.decrement(by))
    }

    /// Appends `item`. Returns the new version.
    pub fn append(&self, item: T::Item) -> Result<u64>
    where
        T: Sequence,
        M: CanWrite,
    {
        now(self.inner.append(item))
    }

    /// Removes and returns the first item.
    pub fn remove_first(&self) -> Result<Option<T::Item>>
    where
        T: Sequence,
        T::Item: Send,
        M: CanWrite,
    {
        now(self.inner.remove_first())
    }

    /// Removes and returns the last item.
    pub fn remove_last(&self) -> Result<Option<T::Item>>
    where
        T: Sequence,
        T::Item: Send,
        M: CanWrite,
    {
        now(self.inner.remove_last())
    }

    /// Inserts one map entry. Returns the new version.
    pub fn insert(&self, key: impl Into<String>, value: T::Value) -> Result<u64>
    where
        T: StringMap,
        M: CanWrite,
    {
        now(self.inner.insert(key, value))
    }

    /// Merges `entries` into the map (a shallow merge). Returns the new version.
    pub fn merge<K, I>(&self, entries: I) -> Result<u64>
    where
        T: StringMap,
        K: Into<String>,
        I: IntoIterator<Item = (K, T::Value)>,
        M: CanWrite,
    {
        now(self.inner.merge(entries))
    }

    /// Removes one map entry and returns it.
    pub fn remove(&self, key: impl Into<String>) -> Result<Option<T::Value>>
    where
        T: StringMap,
        T::Value: Send,
        M: CanWrite,
    {
        now(self.inner.remove(key))
    }
}

/// Both handle kinds of a generated state struct, seen as the asynchronous handle.
pub trait AsSlot<T, M> {
    /// The asynchronous handle.
    fn as_slot(&self) -> &SlotHandle<T, M>;
}

impl<T, M> AsSlot<T, M> for SlotHandle<T, M> {
    fn as_slot(&self) -> &SlotHandle<T, M> {
        self
    }
}

impl<T, M> AsSlot<T, M> for SessionHandle<T, M>
where
    T: Serialize + DeserializeOwned,
    M: Mode,
{
    fn as_slot(&self) -> &SlotHandle<T, M> {
        &self.inner
    }
}
