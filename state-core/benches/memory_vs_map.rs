//! Memory-store increments against a bare `Mutex<HashMap>` read-modify-write of the same
//! JSON (parse, add, serialize), in one run. Prints medians of 5 runs and their ratio.
//!
//! `cargo bench -p state-core --bench memory_vs_map`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use state_core::{Engine, MemoryStore, NumKind, Op, Path, Scope, Slot};

const OPS: u32 = 200_000;
const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A realistic agent-state document (~0.5 KB) with a counter inside.
fn document() -> serde_json::Value {
    serde_json::json!({
        "attempts": 0,
        "profile": {"name": "Ada Lovelace", "age": 36, "email": "ada@example.com"},
        "articles": (0..8).map(|i| format!("https://news.example/2026/11/{i}/analytical-engines")).collect::<Vec<_>>(),
        "total_cost": 1.25,
    })
}

/// Bare map: parse the stored JSON, add 1 at `path`, serialize it back.
fn bare_map(start_doc: serde_json::Value, path: &[&str]) -> f64 {
    let map = Mutex::new(HashMap::<String, String>::new());
    let key = "execution/run-1/Research/state".to_string();
    map.lock()
        .unwrap()
        .insert(key.clone(), start_doc.to_string());
    let start = Instant::now();
    for _ in 0..OPS {
        let mut m = map.lock().unwrap();
        let stored = m.get_mut(black_box(&key)).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(stored).unwrap();
        let mut at = &mut v;
        for seg in path {
            at = &mut at[*seg];
        }
        *at = (at.as_u64().unwrap().checked_add(1).unwrap()).into();
        *stored = serde_json::to_string(&v).unwrap();
    }
    f64::from(OPS) / start.elapsed().as_secs_f64()
}

/// The memory store: an Apply increment at `path` through the engine.
fn memory_store(rt: &tokio::runtime::Runtime, start_doc: serde_json::Value, path: &[&str]) -> f64 {
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        let slot = Slot::new(Scope::execution("run-1").unwrap(), "Research", "state").unwrap();
        let h = engine.handle::<serde_json::Value>(slot);
        h.set(start_doc).await.unwrap();
        let op = Op::increment(Path::new(path.iter().copied()), 1u64.into(), NumKind::U64);
        let start = Instant::now();
        for _ in 0..OPS {
            black_box(
                engine
                    .commit(vec![h.target().write(vec![op.clone()])])
                    .await
                    .unwrap(),
            );
        }
        let rate = f64::from(OPS) / start.elapsed().as_secs_f64();
        let mut got = h.get().await.unwrap().unwrap();
        for seg in path {
            got = got[*seg].take();
        }
        assert_eq!(got, serde_json::json!(OPS));
        rate
    })
}

fn typed_counter(rt: &tokio::runtime::Runtime) -> f64 {
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        let slot = Slot::new(Scope::execution("run-1").unwrap(), "Research", "attempts").unwrap();
        let h = engine.handle::<u64>(slot);
        let start = Instant::now();
        for _ in 0..OPS {
            black_box(h.increment(1).await.unwrap());
        }
        let rate = f64::from(OPS) / start.elapsed().as_secs_f64();
        assert_eq!(h.get().await.unwrap(), Some(u64::from(OPS)));
        rate
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases: [(&str, serde_json::Value, &[&str]); 2] = [
        ("counter", serde_json::json!(0), &[]),
        ("document", document(), &["attempts"]),
    ];
    println!(
        "{:<12} {:>16} {:>16} {:>16} {:>7}",
        "workload", "bare map ops/s", "memory ops/s", "typed handle", "ratio"
    );
    for (name, doc, path) in cases {
        let (mut map, mut mem, mut typed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            map.push(bare_map(doc.clone(), path));
            mem.push(memory_store(&rt, doc.clone(), path));
            if path.is_empty() {
                typed.push(typed_counter(&rt));
            }
        }
        let (map, mem) = (median(map), median(mem));
        let typed = if typed.is_empty() {
            String::from("-")
        } else {
            format!("{:.0}", median(typed))
        };
        println!(
            "{name:<12} {map:>16.0} {mem:>16.0} {typed:>16} {:>7.2}",
            mem / map
        );
        println!(
            "RESULT memory_increment_{name} memory ops_per_s={mem:.0} ratio={:.2}",
            mem / map
        );
        println!("RESULT memory_increment_{name} bare_map ops_per_s={map:.0} ratio=1.00");
    }
}
