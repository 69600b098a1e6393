//! This project next to the physical limit, in one run: `cargo bench -p state-bench`.
//!
//! Every workload runs `RUNS` times for `STATE_BENCH_SECS` seconds (default 1) and reports the
//! median. Baselines run in the same process, on the same machine, in the same run: raw
//! rusqlite doing read + conditional UPDATE one op per transaction (WAL, same `synchronous`),
//! raw sqlx issuing the store's own SELECT, and a bare `Mutex<HashMap>`.
//!
//! Output: a table, then one line per result:
//! `RESULT <workload> <system> ops_per_s=<n> ratio=<this/baseline>[ target=<t>]`; the ADK peer
//! rows (see `peers.rs`) add `LOST` lines. `state-bench/plot.py` draws the ratios.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use state_core::{
    Context, Engine, EngineConfig, MemoryStore, NumKind, Op, RetryPolicy, Scope, Slot, StateScope,
    Write,
};
use state_sqlite::{SqliteOptions, SqliteStore, Synchronous};

mod peers;

const RUNS: usize = 3;
const WRITERS: usize = 64;

/// The groups `STATE_BENCH_ONLY` picks from, by any word of their names.
const GROUPS: [&str; 6] = [
    "W1 W2 W3",
    "PG",
    "W4 W5 W6",
    "memory increment counter",
    "memory increment document",
    "A1 ADK",
];

/// `STATE_BENCH_ONLY=W2,ADK` runs only the groups that have one of the words (any case) in
/// their name: `W1 W2 W3`, `PG`, `W4 W5 W6`, `memory increment …`, `A1 ADK`.
fn want(group: &str) -> bool {
    std::env::var("STATE_BENCH_ONLY").map_or(true, |only| {
        let group = group.to_lowercase();
        only.split(',')
            .map(|w| w.trim().to_lowercase())
            .any(|w| !w.is_empty() && group.contains(&w))
    })
}

fn secs() -> Duration {
    let s: f64 = std::env::var("STATE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One line of the report.
struct Row {
    workload: String,
    system: String,
    ops: f64,
    baseline: f64,
    target: Option<f64>,
}

#[derive(Default)]
struct Report(Vec<Row>);

impl Report {
    fn add(&mut self, workload: &str, system: &str, ops: f64, baseline: f64, target: Option<f64>) {
        let ratio = ops / baseline;
        let t = target.map_or(String::new(), |t| {
            format!(
                "  (target ≥ {t}{})",
                if ratio >= t { ", met" } else { ", MISSED" }
            )
        });
        println!("{workload:<34} {system:<22} {ops:>14.0} ops/s  ratio {ratio:>7.2}{t}");
        self.0.push(Row {
            workload: workload.into(),
            system: system.into(),
            ops,
            baseline,
            target,
        });
    }

    fn print_results(&self) {
        println!();
        for r in &self.0 {
            let target = r.target.map_or(String::new(), |t| format!(" target={t}"));
            println!(
                "RESULT {} {} ops_per_s={:.0} ratio={:.2}{target}",
                r.workload.replace(' ', "_"),
                r.system.replace(' ', "_"),
                r.ops,
                r.ops / r.baseline
            );
        }
        let missed: Vec<&Row> = self
            .0
            .iter()
            .filter(|r| r.target.is_some_and(|t| r.ops / r.baseline < t))
            .collect();
        println!(
            "\n{} of {} targets met",
            self.0.iter().filter(|r| r.target.is_some()).count() - missed.len(),
            self.0.iter().filter(|r| r.target.is_some()).count()
        );
    }
}

// ---- raw rusqlite: the physical limit ------------------------------------------------------

fn rusqlite_conn(path: &Path, full: bool) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })
        .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT) WITHOUT ROWID")
        .unwrap();
    // The change log a hand-written equivalent of the store's would keep: every version, with
    // a per-key history index.
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL, \
         version INTEGER NOT NULL, value TEXT, at INTEGER NOT NULL); \
         CREATE INDEX IF NOT EXISTS log_k ON log (k, seq)",
    )
    .unwrap();
    c
}

/// Read + conditional write, one op per transaction, for `secs`: `key(i)` picks the row;
/// `log`: the transaction also appends the new version to a change log.
fn rusqlite_cas(path: &Path, full: bool, log: bool, key: impl Fn(u64) -> String) -> f64 {
    let mut c = rusqlite_conn(path, full);
    let deadline = Instant::now() + secs();
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let k = key(n);
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let version: Option<i64> = tx
            .prepare_cached("SELECT version FROM kv WHERE k = ?1")
            .unwrap()
            .query_row([&k], |r| r.get(0))
            .ok();
        if log {
            tx.prepare_cached("INSERT INTO log (k, version, value, at) VALUES (?1, ?2, ?3, 0)")
                .unwrap()
                .execute(rusqlite::params![
                    k,
                    version.unwrap_or(0) + 1,
                    n.to_string()
                ])
                .unwrap();
        }
        match version {
            None => tx
                .prepare_cached("INSERT INTO kv (k, version, value) VALUES (?1, 1, ?2)")
                .unwrap()
                .execute(rusqlite::params![k, n.to_string()])
                .unwrap(),
            Some(v) => tx
                .prepare_cached(
                    "UPDATE kv SET version = version + 1, value = ?2 WHERE k = ?1 AND version = ?3",
                )
                .unwrap()
                .execute(rusqlite::params![k, n.to_string(), v])
                .unwrap(),
        };
        tx.commit().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One run of rusqlite's CAS loop on a file of its own in `dir`.
fn rusqlite_run(
    dir: &Path,
    full: bool,
    log: bool,
    tag: &str,
    run: usize,
    key: impl Fn(u64) -> String,
) -> f64 {
    rusqlite_cas(
        &dir.join(format!("rusqlite-{tag}-{full}-{log}-{run}.db")),
        full,
        log,
        key,
    )
}

// ---- this project --------------------------------------------------------------------------

async fn sqlite_engine(path: &Path, full: bool) -> (Engine, Arc<SqliteStore>) {
    let sync = if full {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    let store = Arc::new(
        SqliteStore::open_with(SqliteOptions::file(path).synchronous(sync))
            .await
            .unwrap(),
    );
    let config = EngineConfig::default().retry(RetryPolicy::new(1000));
    (Engine::with_config(store.clone(), config), store)
}

fn slot(scope: &Scope, key: String) -> Slot {
    Slot::new(scope.clone(), "Bench", key).unwrap()
}

/// W1: sequential CAS writes by one writer, each on a fresh slot.
async fn w1(engine: &Engine, run: usize) -> f64 {
    let scope = Scope::execution(format!("w1-{run}")).unwrap();
    let deadline = Instant::now() + secs();
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        engine
            .handle::<u64>(slot(&scope, format!("k{n}")))
            .set_if(0, n)
            .await
            .unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// W2: 64 concurrent writers, CAS writes on distinct fresh slots. The keys are the
/// baseline's (`k0`, `k1`, … in one table: here one scope, numbered from a shared counter);
/// `scattered`: each writer has its own scope instead, so one group's rows land on as many
/// B-tree pages as there are writers.
async fn w2(engine: &Engine, run: usize, scattered: bool) -> f64 {
    let start = Instant::now();
    let deadline = start + secs();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let engine = engine.clone();
            let next = next.clone();
            let scope = if scattered {
                Scope::execution(format!("w2s-{run}-{t}"))
            } else {
                Scope::execution(format!("w2-{run}"))
            }
            .unwrap();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let k = if scattered {
                        n
                    } else {
                        next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    };
                    engine
                        .handle::<u64>(slot(&scope, format!("k{k}")))
                        .set_if(0, n)
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    rate_of(start, tasks).await
}

/// W3: 64 concurrent increments of one slot; checks the exact count and that no commit
/// conflicted.
async fn w3(engine: &Engine, run: usize) -> f64 {
    let h = engine.handle::<u64>(slot(
        &Scope::app(format!("w3-{run}")).unwrap(),
        "counter".into(),
    ));
    let mut events = engine.events();
    let start = Instant::now();
    let deadline = start + secs();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    h.increment(1).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let v = h.get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (Some(total), total),
        "W3 lost or duplicated an increment"
    );
    let mut conflicts = 0;
    while let Some(Some(ev)) = events.next().now_or_never() {
        conflicts += u64::from(matches!(ev, state_core::Event::Conflict { .. }));
    }
    assert_eq!(conflicts, 0, "W3 increments conflicted");
    rate
}

/// A 20-field state struct for W5.
#[derive(StateScope, Serialize, Deserialize, Debug)]
struct Wide {
    f00: u64,
    f01: u64,
    f02: u64,
    f03: u64,
    f04: u64,
    f05: u64,
    f06: u64,
    f07: u64,
    f08: u64,
    f09: u64,
    f10: u64,
    f11: u64,
    f12: u64,
    f13: u64,
    f14: u64,
    f15: u64,
    f16: u64,
    f17: u64,
    f18: u64,
    f19: u64,
}

async fn timed<F, Fut>(f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    timed_for(secs(), f).await
}

/// [`timed`] for `span`.
async fn timed_for<F, Fut>(span: Duration, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    let deadline = start + span;
    let mut n = 0u64;
    while Instant::now() < deadline {
        f().await;
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn bare_map_rate(doc: &Value, path: &[&str]) -> f64 {
    let map = Mutex::new(HashMap::<String, String>::new());
    let key = "execution/run-1/Research/state".to_string();
    map.lock().unwrap().insert(key.clone(), doc.to_string());
    let start = Instant::now();
    let deadline = start + secs();
    let mut n = 0u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let mut m = map.lock().unwrap();
            let stored = m.get_mut(black_box(&key)).unwrap();
            let mut v: Value = serde_json::from_str(stored).unwrap();
            let mut at = &mut v;
            for seg in path {
                at = &mut at[*seg];
            }
            *at = (at.as_u64().unwrap() + 1).into();
            *stored = serde_json::to_string(&v).unwrap();
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn memory_rate(doc: &Value, path: &[&str]) -> f64 {
    let engine = Engine::new(MemoryStore::new());
    let h = engine.handle::<Value>(slot(&Scope::app("m").unwrap(), "doc".into()));
    h.set(doc.clone()).await.unwrap();
    let op = Op::increment(
        state_core::Path::new(path.iter().copied()),
        1u64.into(),
        NumKind::U64,
    );
    // Like the bare map: the clock is read once per 1000 ops.
    timed(|| async {
        for _ in 0..1000 {
            let w = h.target().write(vec![op.clone()]);
            black_box(engine.commit(vec![w]).await.unwrap());
        }
    })
    .await
        * 1000.0
}

/// The memory store against a bare map doing the same JSON read-modify-write.
async fn memory_vs_map(report: &mut Report) {
    for (name, doc, path) in [
        ("counter", json!(0), &[][..]),
        (
            "document",
            json!({"attempts": 0, "profile": {"name": "Ada Lovelace", "age": 36},
            "articles": (0..8).map(|i| format!("https://news.example/2026/11/{i}/analytical-engines")).collect::<Vec<_>>()}),
            &["attempts"][..],
        ),
    ] {
        if !want(&format!("memory increment {name}")) {
            continue;
        }
        // Runs alternate between the two, so that both meet the same heap and machine state
        // (both are allocation-bound: run one after the other, the document row measured 0.61
        // to 1.21 across runs).
        let (mut bare, mut mem) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            bare.push(bare_map_rate(&doc, path));
            mem.push(memory_rate(&doc, path).await);
        }
        let bare = median(bare);
        let target = if name == "counter" { 0.4 } else { 0.9 };
        report.add(
            &format!("memory increment {name}"),
            "memory",
            median(mem),
            bare,
            Some(target),
        );
        report.add(
            &format!("memory increment {name}"),
            "bare map",
            bare,
            bare,
            None,
        );
    }
}

/// W6's data: 100 commits of 1000 keys in one scope (returned), then 10 000 one-slot scopes.
async fn w6_seed(engine: &Engine) -> Scope {
    let big = Scope::group("big").unwrap();
    for chunk in 0..100 {
        let writes: Vec<Write> = (0..1000)
            .map(|i| {
                Write::apply(
                    slot(&big, format!("key-{:06}", chunk * 1000 + i)),
                    vec![Op::set(state_core::Path::root(), json!(i))],
                )
            })
            .collect();
        engine.commit(writes).await.unwrap();
    }
    for s in 0..10_000 {
        let scope = Scope::user("bench", format!("user-{s:05}")).unwrap();
        if s % 1000 == 0 {
            // keep the runtime responsive while seeding
            tokio::task::yield_now().await;
        }
        engine
            .handle::<u8>(slot(&scope, "x".into()))
            .set(1)
            .await
            .unwrap();
    }
    big
}

/// W6: lists the 100 000 keys of `big` in pages of 1000; keys per second.
async fn w6_keys(store: &dyn state_core::Store, big: &Scope) -> f64 {
    let start = Instant::now();
    let (mut after, mut n) = (None, 0usize);
    loop {
        let page = store
            .list_keys(big, None, after.as_ref(), 1000)
            .await
            .unwrap();
        n += page.items.len();
        black_box(&page.items);
        match page.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    assert_eq!(n, 100_000);
    n as f64 / start.elapsed().as_secs_f64()
}

/// The W6 keys limit: rusqlite running the store's keyset query for live keys, pages of
/// 1000, each row decoded into a `SlotKey`'s two strings.
fn rusqlite_keys(rq: &rusqlite::Connection) -> f64 {
    let mut stmt = rq
        .prepare_cached(
            "SELECT namespace, key FROM slots WHERE kind = 'group' AND scope_id = 'big' \
             AND scope_sub = '' AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?1) \
             AND (namespace, key) > (?2, ?3) ORDER BY namespace, key LIMIT 1001",
        )
        .unwrap();
    let now = state_core::Clock::now(&state_core::SystemClock).as_millis();
    let start = Instant::now();
    let (mut ns, mut key, mut n) = (String::new(), String::new(), 0usize);
    loop {
        let mut rows: Vec<(String, String)> = stmt
            .query_map(rusqlite::params![now, ns, key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // The 1001st row says another page follows, as the store reads it.
        let more = rows.len() > 1000;
        rows.truncate(1000);
        n += rows.len();
        match (more, rows.last().cloned()) {
            (true, Some(last)) => (ns, key) = last,
            _ => break,
        }
        black_box(rows);
    }
    assert_eq!(n, 100_000);
    n as f64 / start.elapsed().as_secs_f64()
}

/// W6: lists the 10 000 user scopes in pages of 1000; scopes per second.
/// The W6 scopes limit: rusqlite's keyset query for user scopes holding a live value, pages
/// of 1000, each row decoded into a `Scope`.
fn rusqlite_scopes(rq: &rusqlite::Connection) -> f64 {
    let mut stmt = rq
        .prepare_cached(
            "SELECT DISTINCT kind, scope_id, scope_sub FROM slots WHERE value IS NOT NULL \
             AND (expires_at IS NULL OR expires_at > ?1) AND kind = 'user' \
             AND (kind, scope_id, scope_sub) > ('user', ?2, ?3) \
             ORDER BY kind, scope_id, scope_sub LIMIT 1001",
        )
        .unwrap();
    let now = state_core::Clock::now(&state_core::SystemClock).as_millis();
    let start = Instant::now();
    let (mut id, mut sub, mut n) = (String::new(), String::new(), 0usize);
    loop {
        let mut rows: Vec<(String, String, String)> = stmt
            .query_map(rusqlite::params![now, id, sub], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // The 1001st row says another page follows, as the store reads it.
        let more = rows.len() > 1000;
        rows.truncate(1000);
        let last = rows.last().cloned();
        let scopes: Vec<Scope> = rows
            .into_iter()
            .map(|(k, i, s)| state_core::backend::rows::scope_from_columns(&k, i, s).unwrap())
            .collect();
        n += scopes.len();
        black_box(scopes);
        match (more, last) {
            (true, Some((_, i, s))) => (id, sub) = (i, s),
            _ => break,
        }
    }
    assert_eq!(n, 10_000);
    n as f64 / start.elapsed().as_secs_f64()
}

async fn w6_scopes(store: &dyn state_core::Store) -> f64 {
    let start = Instant::now();
    let mut after = None;
    let mut n = 0usize;
    loop {
        let page = store
            .list_scopes(Some(state_core::ScopeKind::User), after.as_ref(), 1000)
            .await
            .unwrap();
        n += page.items.len();
        match page.next {
            Some(s) => after = Some(s),
            None => break,
        }
    }
    assert_eq!(n, 10_000);
    n as f64 / start.elapsed().as_secs_f64()
}

/// `STATE_BENCH_PROFILE=W3` (or `W1`, `W2`, `W2 scattered`, `W4`, `W5`, `W6 keys`; `W3 FULL` for FULL) runs only
/// that workload on the SQLite store, once, for `perf record`; `W6` seeds as the full run
/// does and lists its scopes five times, with the WAL's size; `ALL` (`ALL FULL`) runs W1, W2,
/// W2 scattered and W3 in the full run's order on one file. (`memory` is handled in `main`.)
async fn profile(which: &str, dir: &Path) {
    let full = which.contains("FULL");
    let (engine, store) = sqlite_engine(&dir.join("profile.db"), full).await;
    if which.contains("W4") || which.contains("W5") {
        // W4's point reads or W5's eager loads of the 20-field scope, for `secs()`.
        let ctx = Context::new(engine.clone(), "w4").unwrap();
        let wide = ctx.state::<Wide>().unwrap();
        seed_wide(&wide).await;
        let w5 = which.contains("W5");
        let rate = timed_for(secs(), || {
            let w = &wide;
            async move {
                if w5 {
                    black_box(w.load().await.unwrap());
                } else {
                    black_box(w.f07().get().await.unwrap());
                }
            }
        })
        .await;
        println!("{which}: {rate:.0} ops/s, {:?}", store.stats());
        return;
    }
    if which.contains("W6") {
        // W6's seeding and scope (`W6 keys`: key) listing, five times, with the WAL's size.
        let big = w6_seed(&engine).await;
        if which.contains("keys") {
            for _ in 0..5 {
                let rate = w6_keys(&*store, &big).await;
                println!("W6 keys: {rate:.0} keys/s, {:?}", store.stats());
            }
            return;
        }
        let wal = std::fs::metadata(dir.join("profile.db-wal")).map_or(0, |m| m.len());
        for _ in 0..5 {
            let rate = w6_scopes(&*store).await;
            println!(
                "W6 scopes: {rate:.0} scopes/s, WAL {wal} bytes, {:?}",
                store.stats()
            );
        }
        return;
    }
    if which.contains("ALL") {
        // The full run's order on one file.
        let r1 = w1(&engine, 0).await;
        let r2 = w2(&engine, 0, false).await;
        let r2s = w2(&engine, 0, true).await;
        let r3 = w3(&engine, 0).await;
        println!("{which}: W1 {r1:.0}, W2 {r2:.0}, W2 scattered {r2s:.0}, W3 {r3:.0} ops/s");
        println!("{:?}", store.stats());
        return;
    }
    let ops = if which.contains("W1") {
        w1(&engine, 0).await
    } else if which.contains("W2") {
        w2(&engine, 0, which.contains("scattered")).await
    } else {
        w3(&engine, 0).await
    };
    println!("{which}: {ops:.0} ops/s, {:?}", store.stats());
}

/// The medians of W1–W3 at one durability and of their rusqlite baselines.
struct WriteRates {
    base: f64,
    base_one: f64,
    logged: f64,
    logged_one: f64,
    w1: f64,
    w2: f64,
    w2_scattered: f64,
    w3: f64,
}

/// Runs W1–W3 and their baselines `RUNS` times at one durability.
async fn sqlite_write_runs(dir: &Path, full: bool) -> WriteRates {
    let d = if full { "FULL" } else { "NORMAL" };
    // Each run does the baselines, then the store's workloads, so that a drift of the
    // machine's speed (fsync times above all) meets both sides alike.
    let (mut base, mut base_one, mut logged, mut logged_one) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut r1, mut r2, mut r2s, mut r3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let distinct = |n| format!("k{n}");
        let one = |_| "counter".to_string();
        base.push(rusqlite_run(dir, full, false, "distinct", run, distinct));
        base_one.push(rusqlite_run(dir, full, false, "one", run, one));
        // The same with a change log row per op, as the store writes one per version.
        logged.push(rusqlite_run(dir, full, true, "distinct", run, distinct));
        logged_one.push(rusqlite_run(dir, full, true, "one", run, one));
        let (engine, _) = sqlite_engine(&dir.join(format!("ours-{d}-{run}.db")), full).await;
        r1.push(w1(&engine, run).await);
        r2.push(w2(&engine, run, false).await);
        r2s.push(w2(&engine, run, true).await);
        r3.push(w3(&engine, run).await);
    }
    WriteRates {
        base: median(base),
        base_one: median(base_one),
        logged: median(logged),
        logged_one: median(logged_one),
        w1: median(r1),
        w2: median(r2),
        w2_scattered: median(r2s),
        w3: median(r3),
    }
}

/// W1–W3 at one durability, against rusqlite one op per transaction.
async fn sqlite_writes(dir: &Path, full: bool, report: &mut Report) {
    let d = if full { "FULL" } else { "NORMAL" };
    let WriteRates {
        base,
        base_one,
        logged,
        logged_one,
        w1: m1,
        w2: m2,
        w2_scattered,
        w3: m3,
    } = sqlite_write_runs(dir, full).await;
    report.add(&format!("W1-W2 baseline {d}"), "rusqlite", base, base, None);
    report.add(
        &format!("W3 baseline {d}"),
        "rusqlite",
        base_one,
        base_one,
        None,
    );
    let (t1, t2, t3) = if full {
        (0.7, 10.0, 12.0)
    } else {
        (0.2, 2.0, 8.0)
    };
    report.add(
        &format!("W1 sequential CAS {d}"),
        "sqlite",
        m1,
        base,
        Some(t1),
    );
    report.add(
        &format!("W2 64 writers distinct {d}"),
        "sqlite",
        m2,
        base,
        Some(t2),
    );
    report.add(
        &format!("W3 64 increments one slot {d}"),
        "sqlite",
        m3,
        base_one,
        Some(t3),
    );
    // Against rusqlite doing the store's whole job, change log included (no targets).
    report.add(
        &format!("W1-W2 baseline+log {d}"),
        "rusqlite",
        logged,
        logged,
        None,
    );
    report.add(
        &format!("W3 baseline+log {d}"),
        "rusqlite",
        logged_one,
        logged_one,
        None,
    );
    report.add(&format!("W1 vs +log {d}"), "sqlite", m1, logged, None);
    report.add(&format!("W2 vs +log {d}"), "sqlite", m2, logged, None);
    report.add(&format!("W3 vs +log {d}"), "sqlite", m3, logged_one, None);
    // W2 with a scope per writer: the same group commit, its rows spread over the tree.
    report.add(
        &format!("W2 scattered vs +log {d}"),
        "sqlite",
        w2_scattered,
        logged,
        None,
    );
}

/// W1–W3 on the memory store, against the NORMAL rusqlite baselines (W3's for W3).
async fn memory_writes(base_normal: f64, base_one: f64, report: &mut Report) {
    let engine = Engine::new(MemoryStore::new());
    let m1 = median(
        futures_join(|run| {
            let e = engine.clone();
            async move { w1(&e, run).await }
        })
        .await,
    );
    let m2 = median(
        futures_join(|run| {
            let e = engine.clone();
            async move { w2(&e, run, false).await }
        })
        .await,
    );
    let m3 = median(
        futures_join(|run| {
            let e = engine.clone();
            async move { w3(&e, run).await }
        })
        .await,
    );
    report.add("W1 sequential CAS", "memory", m1, base_normal, None);
    report.add("W2 64 writers distinct", "memory", m2, base_normal, None);
    report.add("W3 64 increments one slot", "memory", m3, base_one, None);
}

/// Writes every field of the W4/W5 scope once.
async fn seed_wide(wide: &WideState) {
    wide.batch(|b| {
        let b = b
            .f00()
            .set(0)
            .f01()
            .set(0)
            .f02()
            .set(0)
            .f03()
            .set(0)
            .f04()
            .set(0);
        let b = b
            .f05()
            .set(0)
            .f06()
            .set(0)
            .f07()
            .set(0)
            .f08()
            .set(0)
            .f09()
            .set(0);
        let b = b
            .f10()
            .set(0)
            .f11()
            .set(0)
            .f12()
            .set(0)
            .f13()
            .set(0)
            .f14()
            .set(0);
        b.f15()
            .set(0)
            .f16()
            .set(0)
            .f17()
            .set(0)
            .f18()
            .set(0)
            .f19()
            .set(0)
    })
    .await
    .unwrap();
}

/// The W4 limit: rusqlite reading the field's row with a prepared point SELECT and decoding
/// its value into the field's type, for `span`.
fn rusqlite_point_reads(rq: &rusqlite::Connection, span: Duration) -> f64 {
    let mut stmt = rq
        .prepare_cached(
            "SELECT version, value, expires_at FROM slots WHERE kind = 'execution' \
             AND scope_id = 'w4' AND scope_sub = '' AND namespace = 'Wide' AND key = ?1",
        )
        .unwrap();
    let start = Instant::now();
    let deadline = start + span;
    let mut n = 0u64;
    while Instant::now() < deadline {
        let (version, value, expires_at): (i64, String, Option<i64>) = stmt
            .query_row(["f07"], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        let v: u64 = serde_json::from_str(&value).unwrap();
        black_box((version, v, expires_at));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// W4: point reads of a typed field, fresh from the store vs rusqlite's prepared point
/// SELECT (the limit) and raw sqlx; and from a snapshot.
async fn w4_reads(path: &Path, wide: &WideState, report: &mut Report) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    let rq =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    // Short runs alternate between the three (fifteen rounds of a fifth of the run time each):
    // their costs drift with the machine's load over seconds.
    let span = secs() / 5;
    let (mut fresh, mut raw, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        direct.push(rusqlite_point_reads(&rq, span));
        fresh.push(
            timed_for(span, || {
                let w = wide;
                async move {
                    black_box(w.f07().get().await.unwrap());
                }
            })
            .await,
        );
        raw.push(
            timed_for(span, || {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.acquire().await.unwrap();
                    let rows = sqlx::query(state_sqlite::__sql::select_slots(1))
                        .bind(0i64)
                        .bind("execution")
                        .bind("w4")
                        .bind("")
                        .bind("Wide")
                        .bind("f07")
                        .fetch_all(&mut *conn)
                        .await
                        .unwrap();
                    black_box(rows);
                }
            })
            .await,
        );
    }
    let (fresh, raw, direct) = (median(fresh), median(raw), median(direct));
    report.add(
        "W4 point read fresh",
        "sqlite typed",
        fresh,
        direct,
        Some(0.5),
    );
    report.add("W4 point read fresh", "raw sqlx", raw, direct, None);
    report.add("W4 point read fresh", "rusqlite", direct, direct, None);
    let snap = wide.load().await.unwrap();
    let snapshot_rate = {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < secs() {
            for _ in 0..1000 {
                black_box(snap.f07().cached().unwrap().unwrap().value);
            }
            n += 1000;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    report.add(
        "W4 point read snapshot",
        "sqlite typed",
        snapshot_rate,
        1_000_000.0,
        Some(1.0),
    );
}

/// The W5 limit: rusqlite reading the 20 rows of the scope's namespace in one SELECT (what a
/// record holds: version, value, expiry), each value decoded into the fields' type.
fn rusqlite_loads(rq: &rusqlite::Connection) -> f64 {
    let mut stmt = rq
        .prepare_cached(
            "SELECT key, version, value, expires_at FROM slots WHERE kind = 'execution' \
             AND scope_id = 'w4' AND scope_sub = '' AND namespace = 'Wide'",
        )
        .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs() {
        type Row = (String, i64, String, Option<i64>);
        let rows: Vec<Row> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 20);
        let values: Vec<(String, i64, u64, Option<i64>)> = rows
            .into_iter()
            .map(|(k, v, text, e)| (k, v, serde_json::from_str(&text).unwrap(), e))
            .collect();
        black_box(values);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// W5: eager load of a 20-field scope vs rusqlite reading the same 20 rows in one SELECT.
async fn w5_loads(path: &Path, wide: &WideState, report: &mut Report) {
    let rq = rusqlite::Connection::open(path).unwrap();
    // Runs alternate between the store and rusqlite.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(
            timed(|| async {
                black_box(wide.load().await.unwrap());
            })
            .await,
        );
        theirs.push(rusqlite_loads(&rq));
    }
    let (loads, rusqlite_loads) = (median(ours), median(theirs));
    report.add(
        "W5 eager load 20 fields",
        "sqlite typed",
        loads,
        rusqlite_loads,
        Some(0.5),
    );
    report.add(
        "W5 eager load 20 fields",
        "rusqlite",
        rusqlite_loads,
        rusqlite_loads,
        None,
    );
}

/// W6: list 100k keys (pages of 1000) and 10k scopes.
async fn w6_lists(path: &Path, engine: &Engine, report: &mut Report) {
    let rq = rusqlite::Connection::open(path).unwrap();
    let big = w6_seed(engine).await;
    let store = engine.store().clone();
    // Runs alternate between the store and rusqlite.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(w6_keys(&*store, &big).await);
        theirs.push(rusqlite_keys(&rq));
    }
    let (list_keys, rusqlite_keys) = (median(ours), median(theirs));
    report.add(
        "W6 list 100k keys",
        "sqlite",
        list_keys,
        rusqlite_keys,
        Some(0.7),
    );
    report.add(
        "W6 list 100k keys",
        "rusqlite",
        rusqlite_keys,
        rusqlite_keys,
        None,
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(w6_scopes(&*store).await);
        theirs.push(rusqlite_scopes(&rq));
    }
    let (list_scopes, rusqlite_scopes) = (median(ours), median(theirs));
    report.add(
        "W6 list 10k scopes",
        "sqlite",
        list_scopes,
        rusqlite_scopes,
        Some(0.7),
    );
    report.add(
        "W6 list 10k scopes",
        "rusqlite",
        rusqlite_scopes,
        rusqlite_scopes,
        None,
    );
}

/// W4–W6 on one SQLite file.
async fn sqlite_reads(dir: &Path, report: &mut Report) {
    let path = dir.join("reads.db");
    let (engine, _) = sqlite_engine(&path, false).await;
    let ctx = Context::new(engine.clone(), "w4").unwrap();
    let wide = ctx.state::<Wide>().unwrap();
    seed_wide(&wide).await;
    w4_reads(&path, &wide, report).await;
    w5_loads(&path, &wide, report).await;
    w6_lists(&path, &engine, report).await;
}

/// `STATE_BENCH_TELEMETRY=info` (in a build with `--features metrics`): what a service in
/// production runs with — a `tracing` subscriber at INFO (formatting to nowhere) and the
/// Prometheus recorder — returned so the run can end by rendering the metrics it recorded.
/// Unset: no subscriber, no recorder.
fn telemetry() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match std::env::var("STATE_BENCH_TELEMETRY").as_deref() {
        Ok("info") if !cfg!(feature = "metrics") => panic!(
            "STATE_BENCH_TELEMETRY=info measures the library's metrics: \
             cargo bench -p state-bench --features metrics"
        ),
        Ok("info") => {
            tracing_subscriber::fmt()
                .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
                .with_writer(std::io::sink)
                .init();
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap();
            state_core::telemetry::describe_metrics();
            Some(handle)
        }
        Ok("") | Err(_) => None,
        Ok(other) => panic!("STATE_BENCH_TELEMETRY={other}: only `info` is known"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let prometheus = telemetry();
    run().await;
    if let Some(handle) = prometheus {
        let rendered = handle.render();
        let commits = rendered
            .lines()
            .filter(|l| l.starts_with("state_commits_total"))
            .count();
        println!(
            "(telemetry: a subscriber at INFO and the Prometheus recorder, {commits} commit series)"
        );
    }
    if cfg!(feature = "uninstrumented") {
        println!("(uninstrumented: every tracing span and event compiled out)");
    }
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = Report::default();
    if let Ok(which) = std::env::var("STATE_BENCH_PROFILE") {
        if which.contains("A1") {
            return peers::profile(dir.path(), &which).await;
        }
        if which == "memory" {
            memory_vs_map(&mut report).await;
            return report.print_results();
        }
        return profile(&which, dir.path()).await;
    }
    if !GROUPS.iter().any(|g| want(g)) {
        let only = std::env::var("STATE_BENCH_ONLY").unwrap_or_default();
        return println!("STATE_BENCH_ONLY={only} names no group; the groups: {GROUPS:?}");
    }
    println!("{:<34} {:<22} {:>20}", "workload", "system", "median of 3");
    if want("W1 W2 W3") {
        for full in [false, true] {
            sqlite_writes(dir.path(), full, &mut report).await;
        }
        memory_writes(report.0[0].ops, report.0[1].ops, &mut report).await;
    }
    if want("PG") {
        match std::env::var("STATE_PG_URL") {
            Ok(url) if !url.is_empty() => postgres(&url, &mut report).await,
            _ => println!(
                "(PostgreSQL workloads not run: set STATE_PG_URL, e.g. eval \"$(scripts/pg-up)\")"
            ),
        }
    }
    if want("W4 W5 W6") {
        sqlite_reads(dir.path(), &mut report).await;
    }
    memory_vs_map(&mut report).await;
    if want("A1 ADK") {
        peers::adk_rows(dir.path(), &mut report).await;
    }
    report.print_results();
}

// ---- PostgreSQL ------------------------------------------------------------------------------

/// Raw sqlx on PostgreSQL: `BEGIN; SELECT … FOR UPDATE; INSERT or conditional UPDATE; COMMIT`,
/// one op per transaction, on `conns` connections at once (`key(task, i)` picks the row).
async fn raw_pg(
    pool: &sqlx::PgPool,
    conns: usize,
    key: impl Fn(usize, u64) -> String + Copy + Send + 'static,
) -> f64 {
    let start = Instant::now();
    let deadline = start + secs();
    let tasks: Vec<_> = (0..conns)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await.unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let k = key(t, n);
                    sqlx::Executor::execute(&mut *conn, "BEGIN").await.unwrap();
                    let version: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM kv WHERE k = $1 FOR UPDATE")
                            .bind(&k)
                            .fetch_optional(&mut *conn)
                            .await
                            .unwrap();
                    match version {
                        None => sqlx::query(
                            "INSERT INTO kv (k, version, value) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(&k)
                        .bind(n.to_string())
                        .execute(&mut *conn)
                        .await
                        .unwrap(),
                        Some(v) => sqlx::query(
                            "UPDATE kv SET version = version + 1, value = $2 WHERE k = $1 AND version = $3",
                        )
                        .bind(&k)
                        .bind(n.to_string())
                        .bind(v)
                        .execute(&mut *conn)
                        .await
                        .unwrap(),
                    };
                    sqlx::Executor::execute(&mut *conn, "COMMIT").await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    rate_of(start, tasks).await
}

/// W1–W3 on PgStore next to raw sqlx against the same server, in fresh schemas.
async fn postgres(url: &str, report: &mut Report) {
    use sqlx::Executor as _;
    use state_postgres::{PgOptions, PgStore};
    let tag = format!("bench_{}", std::process::id());
    let raw_schema = format!("{tag}_raw");
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect_with(options.options([("search_path", raw_schema.as_str())]))
        .await
        .unwrap();
    pool.execute(&*format!("CREATE SCHEMA IF NOT EXISTS {raw_schema}"))
        .await
        .unwrap();
    let mut schemas = vec![raw_schema.clone()];
    let (mut b1, mut b64, mut bone) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        pool.execute("DROP TABLE IF EXISTS kv; CREATE TABLE kv (k TEXT PRIMARY KEY, version BIGINT NOT NULL, value TEXT)")
            .await
            .unwrap();
        b1.push(raw_pg(&pool, 1, |_, n| format!("k{n}")).await);
        b64.push(raw_pg(&pool, WRITERS, |t, n| format!("t{t}-k{n}")).await);
        bone.push(raw_pg(&pool, 1, |_, _| "counter".into()).await);
    }
    let (base, base64, base_one) = (median(b1), median(b64), median(bone));
    report.add("W1-W2 baseline PG", "raw sqlx 1 conn", base, base, None);
    report.add(
        "W2 64 writers distinct PG",
        "raw sqlx 64 conns",
        base64,
        base,
        None,
    );
    report.add(
        "W3 baseline PG",
        "raw sqlx 1 conn",
        base_one,
        base_one,
        None,
    );
    let (mut r1, mut r2, mut r3) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let schema = format!("{tag}_{run}");
        schemas.push(schema.clone());
        let store = PgStore::open_with(PgOptions::new(url).schema(schema))
            .await
            .unwrap();
        let store = Arc::new(store);
        let config = EngineConfig::default().retry(RetryPolicy::new(1000));
        let engine = Engine::with_config(store.clone(), config);
        r1.push(w1(&engine, run).await);
        r2.push(w2(&engine, run, false).await);
        let before = store.stats();
        r3.push(w3(&engine, run).await);
        let after = store.stats();
        println!(
            "(PG run {run}: W3 {} caller commits in {} transactions, largest group {})",
            after.batches - before.batches,
            after.groups - before.groups,
            after.max_group
        );
    }
    report.add("W1 sequential CAS PG", "postgres", median(r1), base, None);
    report.add(
        "W2 64 writers distinct PG",
        "postgres",
        median(r2),
        base,
        None,
    );
    report.add(
        "W3 64 increments one slot PG",
        "postgres",
        median(r3),
        base_one,
        None,
    );
    for schema in schemas {
        pool.execute(&*format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
    }
}

/// Waits for `tasks` (each returns how many ops it did): ops per second since `start`.
async fn rate_of(start: Instant, tasks: Vec<tokio::task::JoinHandle<u64>>) -> f64 {
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Runs `f(run)` for each run, one after another.
async fn futures_join<F, Fut>(mut f: F) -> Vec<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = f64>,
{
    let mut out = Vec::new();
    for run in 0..RUNS {
        out.push(f(run).await);
    }
    out
}
