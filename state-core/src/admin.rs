//! Admin access outside workflows: any scope, typed or untyped.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::{Context, StateScope};
use crate::engine::Engine;
use crate::error::Result;
use crate::handle::{ReadOnly, ReadWrite, SlotHandle};
use crate::op::{Op, Path};
use crate::record::Record;
use crate::scope::{Scope, Slot, SlotKey};
use crate::store::{Page, Write, WriteOutcome};

/// One scope opened outside a workflow (an operator's tool, a migration, a test).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Engine, MemoryStore, Scope};
/// let engine = Engine::new(MemoryStore::new());
/// let user = engine.scope(Scope::user("shop", "alice")?);
/// user.set("Prefs", "theme", serde_json::json!("dark")).await?;
/// assert_eq!(user.get("Prefs", "theme").await?.value, Some(serde_json::json!("dark")));
/// assert_eq!(user.handle::<String>("Prefs", "theme")?.get().await?.as_deref(), Some("dark"));
/// assert_eq!(user.keys(None, None, 10).await?.items.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ScopeAdmin {
    engine: Engine,
    scope: Scope,
}

impl Engine {
    /// Opens `scope` for admin access: raw reads and writes, typed handles, listing, clear,
    /// purge.
    pub fn scope(&self, scope: Scope) -> ScopeAdmin {
        ScopeAdmin {
            engine: self.clone(),
            scope,
        }
    }
}

impl ScopeAdmin {
    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn slot(&self, namespace: &str, key: &str) -> Result<Slot> {
        Slot::new(self.scope.clone(), namespace, key)
    }

    /// A typed handle on one slot of the scope.
    pub fn handle<T: Serialize + DeserializeOwned>(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<SlotHandle<T>> {
        Ok(self.engine.handle(self.slot(namespace, key)?))
    }

    /// The typed state of `T` in this scope: its fields' handles with the namespace, keys,
    /// `initial` values, TTLs and retries of the derive — nothing repeated by hand to drift
    /// from the attributes. Every field of `T` must live in this scope's kind (binding is
    /// all-or-nothing, as through a [`Context`](crate::Context)); one that lives elsewhere is
    /// [`Error::MissingScope`](crate::Error::MissingScope) naming it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use serde::{Deserialize, Serialize};
    /// use state_core::{Engine, MemoryStore, Scope, StateScope};
    /// #[derive(StateScope, Serialize, Deserialize)]
    /// #[state(object)]
    /// struct Cart { #[state(initial = 0)] total_cents: u64 }
    /// let engine = Engine::new(MemoryStore::new());
    /// let cart = engine.scope(Scope::object("cart", "ada")?).state::<Cart>()?;
    /// assert_eq!(cart.total_cents().get().await?, Some(0)); // the derive's initial
    /// cart.total_cents().increment(250).await?;
    /// # Ok(()) }
    /// ```
    pub fn state<T: StateScope>(&self) -> Result<T::State<ReadWrite>> {
        T::bind(&Context::for_admin(
            self.engine.clone(),
            self.scope.clone(),
        )?)
    }

    /// [`state`](Self::state), read-only.
    pub fn view<T: StateScope>(&self) -> Result<T::State<ReadOnly>> {
        T::bind(&Context::for_admin(
            self.engine.clone(),
            self.scope.clone(),
        )?)
    }

    /// One slot's raw record.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Record> {
        self.engine.load(&self.slot(namespace, key)?).await
    }

    /// Every stored slot of the scope (optionally one namespace), tombstones included.
    pub async fn load(&self, namespace: Option<&str>) -> Result<Vec<(SlotKey, Record)>> {
        self.engine.store().load_scope(&self.scope, namespace).await
    }

    /// Stores raw JSON unconditionally.
    pub async fn set(&self, namespace: &str, key: &str, value: Value) -> Result<WriteOutcome> {
        let write = Write::apply(
            self.slot(namespace, key)?,
            vec![Op::set(Path::root(), value)],
        );
        self.one(write).await
    }

    /// Stores raw JSON only if the slot is at version `expected`.
    pub async fn set_if(
        &self,
        namespace: &str,
        key: &str,
        expected: u64,
        value: Value,
    ) -> Result<WriteOutcome> {
        self.one(Write::cas(
            self.slot(namespace, key)?,
            expected,
            Some(value),
        ))
        .await
    }

    /// Applies untyped ops (validated by the store) to one slot, atomically.
    pub async fn apply(&self, namespace: &str, key: &str, ops: Vec<Op>) -> Result<WriteOutcome> {
        self.one(Write::apply(self.slot(namespace, key)?, ops))
            .await
    }

    /// Deletes one slot (a tombstone).
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<WriteOutcome> {
        let write = Write::apply(self.slot(namespace, key)?, vec![Op::delete(Path::root())]);
        self.one(write).await
    }

    async fn one(&self, write: Write) -> Result<WriteOutcome> {
        let mut out = self.engine.commit(vec![write]).await?;
        out.pop()
            .ok_or_else(|| crate::Error::store(std::io::Error::other("commit returned no outcome")))
    }

    /// Keys holding a live value, paginated.
    pub async fn keys(
        &self,
        namespace: Option<&str>,
        after: Option<&SlotKey>,
        limit: usize,
    ) -> Result<Page<SlotKey>> {
        self.engine
            .list_keys(&self.scope, namespace, after, limit)
            .await
    }

    /// Deletes every live slot (tombstones). Returns how many.
    pub async fn clear(&self) -> Result<u64> {
        self.engine.clear(&self.scope).await
    }

    /// Physically removes every slot, keeping the version floor. Returns how many rows.
    pub async fn purge(&self) -> Result<u64> {
        self.engine.purge_scope(&self.scope).await
    }
}
