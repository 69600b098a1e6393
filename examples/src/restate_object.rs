//! Restate: a virtual object (a shopping cart per key) with an exclusive handler that writes,
//! run one at a time per key, and a shared handler that only reads — its state is a read-only
//! view, so a write there does not compile.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, Result, StateScope};
use tokio::sync::Mutex;

/// One cart's state (object scope: service `cart`, key = the cart id).
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[state(object)]
pub struct Cart {
    /// Quantity per item.
    #[state(default)]
    pub items: BTreeMap<String, u32>,
    /// Price total in cents.
    #[state(initial = 0)]
    pub total_cents: u64,
}

/// The `cart` service: exclusive handlers are serialized per key (Restate's single writer).
#[derive(Clone, Default)]
pub struct CartService {
    engine: Option<Engine>,
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl CartService {
    /// The service on `engine`.
    pub fn new(engine: Engine) -> Self {
        CartService {
            engine: Some(engine),
            locks: Arc::default(),
        }
    }

    fn ctx(&self, key: &str, invocation: &str) -> Result<Context> {
        let engine = self
            .engine
            .clone()
            .ok_or_else(|| state_core::Error::InvalidArgument("no engine".into()))?;
        Context::new(engine, invocation)?.with_object("cart", key)
    }

    /// Exclusive handler: adds `qty` of an item priced `cents` (a read-modify-write that is
    /// safe because no other exclusive handler of this key runs meanwhile).
    pub async fn add(&self, key: &str, item: &str, qty: u32, cents: u64) -> Result<u64> {
        let lock = self
            .locks
            .lock()
            .await
            .entry(key.to_owned())
            .or_default()
            .clone();
        let _exclusive = lock.lock().await;
        let state = self
            .ctx(key, &format!("add-{key}-{item}"))?
            .state::<Cart>()?;
        let mut items = state.items().get().await?.unwrap_or_default();
        *items.entry(item.to_owned()).or_insert(0) += qty;
        let total = state.total_cents().get().await?.unwrap_or(0) + cents * u64::from(qty);
        state
            .batch(|b| b.items().set(items).total_cents().set(total))
            .await?;
        Ok(total)
    }

    /// Shared handler: reads concurrently with anything; its state cannot be written.
    pub async fn total(&self, key: &str) -> Result<u64> {
        let view = self.ctx(key, &format!("total-{key}"))?.view::<Cart>()?;
        // view.total_cents().set(0) — does not compile: state is read-only in a shared handler.
        Ok(view.total_cents().get().await?.unwrap_or(0))
    }
}

/// 40 concurrent `add`s on two carts while shared readers poll. Returns each cart's final
/// state and whether every total a reader saw was one an exclusive handler had committed.
pub async fn run(engine: Engine) -> Result<(Cart, Cart, bool)> {
    let service = CartService::new(engine);
    let mut writers = Vec::new();
    for i in 0..40u64 {
        let s = service.clone();
        let key = if i % 2 == 0 { "cart-a" } else { "cart-b" };
        writers.push(tokio::spawn(async move {
            s.add(key, &format!("item-{}", i % 5), 1, 100).await
        }));
    }
    let reader = {
        let s = service.clone();
        tokio::spawn(async move {
            let mut consistent = true;
            for _ in 0..20 {
                let t = s.total("cart-a").await?;
                consistent &= t % 100 == 0 && t <= 2000;
                tokio::task::yield_now().await;
            }
            Ok::<_, state_core::Error>(consistent)
        })
    };
    for w in writers {
        w.await.map_err(state_core::Error::store)??;
    }
    let consistent = reader.await.map_err(state_core::Error::store)??;
    let read = |key: &'static str| {
        let s = service.clone();
        async move {
            s.ctx(key, "final")?
                .view::<Cart>()?
                .load()
                .await?
                .to_value()
        }
    };
    Ok((read("cart-a").await?, read("cart-b").await?, consistent))
}
