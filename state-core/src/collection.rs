//! Keyed collections: typed handles for any key of one namespace in one scope.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Engine;
use crate::error::Result;
use crate::handle::{Mode, ReadOnly, ReadWrite, SlotHandle};
use crate::record::Ttl;
use crate::scope::{Scope, Slot, SlotKey};
use crate::store::Page;

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
