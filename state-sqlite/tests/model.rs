//! Model-based property test: random sequences of typed and untyped operations give identical
//! outcomes, values and versions on `MemoryStore`, on SQLite, and on a plain model written
//! here without the crate's op application.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use state_core::{Engine, EngineConfig, MemoryStore, NumKind, Op, Path, Scope, Slot, Store, Write};
use state_sqlite::{SqliteOptions, SqliteStore};

const COUNTERS: usize = 3;
const LISTS: usize = 2;

#[derive(Debug, Clone)]
enum MOp {
    /// Typed `set` of a counter.
    Set(usize, u8),
    /// Typed `increment` (u8).
    Inc(usize, u8),
    /// Untyped `decrement` op (u8).
    Dec(usize, u8),
    /// Typed `delete`.
    Del(usize),
    /// Typed `set_if` at the current version plus an offset (-1, 0, +1).
    Cas(usize, i8, u8),
    /// Untyped `append` to a list.
    Push(usize, u8),
    /// Typed `remove_first`.
    Pop(usize),
    /// One atomic batch: increment a counter and append to a list.
    Batch(usize, u8, usize, u8),
}

fn op() -> impl Strategy<Value = MOp> {
    prop_oneof![
        (0..COUNTERS, any::<u8>()).prop_map(|(k, v)| MOp::Set(k, v)),
        (0..COUNTERS, 0u8..120).prop_map(|(k, v)| MOp::Inc(k, v)),
        (0..COUNTERS, 0u8..60).prop_map(|(k, v)| MOp::Dec(k, v)),
        (0..COUNTERS).prop_map(MOp::Del),
        (0..COUNTERS, -1i8..=1, any::<u8>()).prop_map(|(k, o, v)| MOp::Cas(k, o, v)),
        (0..LISTS, any::<u8>()).prop_map(|(k, v)| MOp::Push(k, v)),
        (0..LISTS).prop_map(MOp::Pop),
        (0..COUNTERS, 0u8..120, 0..LISTS, any::<u8>())
            .prop_map(|(a, b, l, i)| MOp::Batch(a, b, l, i)),
    ]
}

/// The model: each slot's value and version, with the contract's rules spelled out.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    counters: [(Option<u8>, u64); COUNTERS],
    lists: [(Option<Vec<u8>>, u64); LISTS],
}

impl Model {
    /// Applies `op`; `false` if it must fail (and then nothing changed).
    fn apply(&mut self, op: &MOp) -> bool {
        match *op {
            MOp::Set(k, v) => {
                self.counters[k] = (Some(v), self.counters[k].1 + 1);
                true
            }
            MOp::Inc(k, by) => self.add(k, i32::from(by)),
            MOp::Dec(k, by) => self.add(k, -i32::from(by)),
            MOp::Del(k) => {
                self.counters[k] = (None, self.counters[k].1 + 1);
                true
            }
            MOp::Cas(k, offset, v) => {
                let version = self.counters[k].1;
                let expected = version as i64 + i64::from(offset);
                if expected == version as i64 {
                    self.counters[k] = (Some(v), version + 1);
                    true
                } else {
                    false
                }
            }
            MOp::Push(l, item) => {
                let (list, version) = &self.lists[l];
                let mut list = list.clone().unwrap_or_default();
                list.push(item);
                self.lists[l] = (Some(list), version + 1);
                true
            }
            MOp::Pop(l) => {
                let (list, version) = &self.lists[l];
                let mut list = list.clone().unwrap_or_default();
                if !list.is_empty() {
                    list.remove(0);
                }
                self.lists[l] = (Some(list), version + 1);
                true
            }
            MOp::Batch(k, by, l, item) => {
                let before = self.clone();
                if !self.add(k, i32::from(by)) {
                    *self = before;
                    return false;
                }
                self.apply(&MOp::Push(l, item))
            }
        }
    }

    /// A u8 counter plus `delta`, starting from 0 when absent; out of range fails.
    fn add(&mut self, k: usize, delta: i32) -> bool {
        let (value, version) = self.counters[k];
        let next = i32::from(value.unwrap_or(0)) + delta;
        match u8::try_from(next) {
            Ok(n) => {
                self.counters[k] = (Some(n), version + 1);
                true
            }
            Err(_) => false,
        }
    }

    fn snapshot(&self) -> Vec<(Option<Value>, u64)> {
        self.counters
            .iter()
            .map(|(v, ver)| (v.map(|n| json!(n)), *ver))
            .chain(
                self.lists
                    .iter()
                    .map(|(v, ver)| (v.as_ref().map(|l| json!(l)), *ver)),
            )
            .collect()
    }
}

fn counter(k: usize) -> Slot {
    Slot::new(Scope::execution("model").unwrap(), "M", format!("c{k}")).unwrap()
}

fn list(k: usize) -> Slot {
    Slot::new(Scope::execution("model").unwrap(), "M", format!("l{k}")).unwrap()
}

/// Runs `op` on a real store; `true` if it committed.
async fn run_op(engine: &Engine, op: &MOp) -> bool {
    match *op {
        MOp::Set(k, v) => engine.handle::<u8>(counter(k)).set(v).await.is_ok(),
        MOp::Inc(k, by) => engine.handle::<u8>(counter(k)).increment(by).await.is_ok(),
        MOp::Dec(k, by) => {
            let w = Write::apply(
                counter(k),
                vec![Op::decrement(Path::root(), by.into(), NumKind::U8)],
            );
            engine.commit(vec![w]).await.is_ok()
        }
        MOp::Del(k) => engine.handle::<u8>(counter(k)).delete().await.is_ok(),
        MOp::Cas(k, offset, v) => {
            let h = engine.handle::<u8>(counter(k));
            let version = h.get_versioned().await.unwrap().version;
            let expected = version as i64 + i64::from(offset);
            match u64::try_from(expected) {
                Ok(e) => h.set_if(e, v).await.is_ok(),
                Err(_) => false,
            }
        }
        MOp::Push(l, item) => {
            let w = Write::apply(list(l), vec![Op::append(Path::root(), json!(item))]);
            engine.commit(vec![w]).await.is_ok()
        }
        MOp::Pop(l) => engine
            .handle::<Vec<u8>>(list(l))
            .remove_first()
            .await
            .is_ok(),
        MOp::Batch(k, by, l, item) => {
            let c = engine.handle::<u8>(counter(k));
            let li = engine.handle::<Vec<u8>>(list(l));
            engine
                .batch()
                .increment(&c, by)
                .append(&li, item)
                .commit()
                .await
                .is_ok()
        }
    }
}

async fn snapshot(store: &dyn Store) -> Vec<(Option<Value>, u64)> {
    let slots: Vec<Slot> = (0..COUNTERS)
        .map(counter)
        .chain((0..LISTS).map(list))
        .collect();
    store
        .load_many(&slots)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.value, r.version))
        .collect()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_sqlite_and_the_model_agree(ops in proptest::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteOptions::memory()).await.unwrap());
            let engines = [memory.clone(), sqlite.clone()]
                .map(|s| Engine::with_config(s, EngineConfig::default()));
            let mut model = Model::default();
            for (i, op) in ops.iter().enumerate() {
                let expected = model.apply(op);
                for (engine, name) in engines.iter().zip(["memory", "sqlite"]) {
                    let committed = run_op(engine, op).await;
                    prop_assert_eq!(committed, expected, "step {} {:?} on {}", i, op, name);
                }
                let want = model.snapshot();
                prop_assert_eq!(&snapshot(&*memory).await, &want, "memory after step {} {:?}", i, op);
                prop_assert_eq!(&snapshot(&*sqlite).await, &want, "sqlite after step {} {:?}", i, op);
            }
            Ok(())
        })?;
    }
}
