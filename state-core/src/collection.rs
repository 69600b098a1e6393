//! Keyed collections: typed handles for any key of one namespace in one scope.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::{Mode, ReadOnly, ReadWrite, SlotHandle};
use crate::record::Ttl;
use crate::scope::{Scope, Slot, SlotKey};
use crate::store::{Page, Write};

/// How many entries [`Collection::clear`] deletes per commit.
const CLEAR_PAGE: usize = 256;

/// How often [`Collection::clear`] reads and tries one entry again after other writers.
const CLEAR_ATTEMPTS: u32 = 10;

/// A page of a collection's live entries ([`Collection::entries`]): keys and values, in key
/// order, and the key to continue after.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EntryPage<V> {
    /// The entries, in key order.
    pub items: Vec<(String, V)>,
    /// The key to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
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

    /// Live entries decoded as `V`, in key order, after `after`, at most `limit` (1 to
    /// [`MAX_PAGE`](crate::MAX_PAGE); keyset pages: one listing and one load of the page's
    /// slots). An entry deleted or expired
    /// between the two is left out; a stored value that no longer fits `V` is
    /// [`Error::Decode`](crate::Error::Decode) naming its slot.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use state_core::{Engine, MemoryStore, Scope};
    /// let engine = Engine::new(MemoryStore::new());
    /// let stock = engine.collection::<u32>(Scope::group("inventory")?, "Stock")?;
    /// for (item, n) in [("apples", 3), ("pears", 0), ("plums", 7)] {
    ///     stock.entry(item)?.set(n).await?;
    /// }
    /// stock.entry("pears")?.delete().await?;
    /// let page = stock.entries(None, 10).await?;
    /// assert_eq!(page.items, vec![("apples".into(), 3), ("plums".into(), 7)]);
    /// assert_eq!(page.next, None);
    /// # Ok(()) }
    /// ```
    pub async fn entries(&self, after: Option<&str>, limit: usize) -> Result<EntryPage<V>> {
        let keys = self.keys(after, limit).await?;
        let slots = keys
            .items
            .iter()
            .map(|k| Slot::new(self.scope.clone(), self.namespace.clone(), k.clone()))
            .collect::<Result<Vec<Slot>>>()?;
        let records = self.engine.load_many(&slots).await?;
        let mut items = Vec::with_capacity(records.len());
        for (slot, record) in slots.into_iter().zip(records) {
            let handle = SlotHandle::<V, M>::new(self.engine.clone(), slot);
            if let Some(value) = handle.decode_record(&record)? {
                items.push((handle.slot().key().to_owned(), value));
            }
        }
        Ok(EntryPage {
            items,
            next: keys.next,
        })
    }

    /// Deletes every live entry (tombstones, version +1 each, in the change log like any
    /// delete) and returns how many it deleted. Each page of up to 256 entries is one atomic
    /// commit of compare-and-swap deletes at the versions just read, so an entry someone else
    /// deleted meanwhile is neither counted nor tombstoned twice, and one written again is
    /// read again and deleted. The pages go forward in key order, so a clear ends however
    /// fast others write: an entry written behind the page the clear has reached survives
    /// it. Other namespaces of the scope are untouched (the whole scope: [`Engine::clear`]).
    /// A page that met another writer is cleared entry by entry; an entry rewritten on each
    /// of 10 attempts is [`Error::Conflict`](crate::Error::Conflict), with what came before
    /// it cleared.
    pub async fn clear(&self) -> Result<u64>
    where
        M: crate::handle::CanWrite,
    {
        let (mut deleted, mut after) = (0, None::<String>);
        loop {
            let page = self.keys(after.as_deref(), CLEAR_PAGE).await?;
            let Some(last) = page.items.last().cloned() else {
                return Ok(deleted);
            };
            deleted += self.clear_page(page.items).await?;
            after = Some(last);
        }
    }

    /// Deletes the entries of `keys` that are live, at the versions read, in one commit; if
    /// another writer got there first, entry by entry instead (an entry deleted meanwhile is
    /// skipped, one written again is read again).
    async fn clear_page(&self, keys: Vec<String>) -> Result<u64> {
        let slots = keys
            .into_iter()
            .map(|k| Slot::new(self.scope.clone(), self.namespace.clone(), k))
            .collect::<Result<Vec<Slot>>>()?;
        let records = self.engine.load_many(&slots).await?;
        let writes: Vec<Write> = slots
            .iter()
            .zip(&records)
            .filter(|(_, r)| r.value.is_some())
            .map(|(slot, r)| Write::cas(slot.clone(), r.version, None))
            .collect();
        let n = writes.len() as u64;
        if n == 0 {
            return Ok(0);
        }
        match self.engine.commit(writes).await {
            Ok(_) => Ok(n),
            Err(Error::VersionMismatch { .. }) => {
                let mut deleted = 0;
                for slot in slots {
                    deleted += u64::from(self.clear_entry(slot).await?);
                }
                Ok(deleted)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes one entry if it is live, at the version read; whether it did.
    async fn clear_entry(&self, slot: Slot) -> Result<bool> {
        for _ in 0..CLEAR_ATTEMPTS {
            let record = self.engine.load(&slot).await?;
            if record.value.is_none() {
                return Ok(false);
            }
            let write = Write::cas(slot.clone(), record.version, None);
            match self.engine.commit(vec![write]).await {
                Ok(_) => return Ok(true),
                Err(Error::VersionMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            slot,
            attempts: CLEAR_ATTEMPTS,
        })
    }

    /// Keys holding a live value, in order, after `after`, at most `limit` (1 to
    /// [`MAX_PAGE`](crate::MAX_PAGE)).
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
