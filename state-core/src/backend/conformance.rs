//! The conformance suite of the [`Store`] contract: every backend runs it with one line.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use state_core::{MemoryStore, Store};
//! use state_core::backend::conformance;
//!
//! conformance::assert_conformance(&|clock| async move {
//!     Arc::new(MemoryStore::with_clock(clock)) as Arc<dyn Store>
//! })
//! .await;
//! # }
//! ```
//!
//! Each check gets a fresh store on a [`ManualClock`], runs against the untyped store API and
//! typed handles, and reports what broke; [`run`] collects every failure instead of stopping
//! at the first, so a broken store shows which rules it breaks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    Batch, ChangeFilter, Clock, CommitOutcome, Engine, EngineConfig, Error, ManualClock, NumKind,
    Op, Path, RetryPolicy, Scope, ScopeKind, Slot, SlotKey, Store, Timestamp, Ttl, Write,
};

/// Makes a fresh, empty store that reads time from the given clock.
pub trait StoreFactory: Send + Sync {
    /// A fresh, empty store on `clock`.
    fn make(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

impl<F, Fut> StoreFactory for F
where
    F: Fn(Arc<dyn Clock>) -> Fut + Send + Sync,
    Fut: Future<Output = Arc<dyn Store>> + Send + 'static,
{
    fn make(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(self(clock))
    }
}

/// A rule the store broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The check's name (the rule).
    pub check: &'static str,
    /// What was observed.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check, self.message)
    }
}

type CheckResult = Result<(), String>;
type CheckFn = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// What a check works with.
struct Env {
    store: Arc<dyn Store>,
    engine: Engine,
    clock: ManualClock,
}

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// The names of every check, in the order they run.
        pub const CHECKS: &[&str] = &[$(stringify!($name)),*];
        fn all() -> Vec<(&'static str, CheckFn)> {
            vec![$((stringify!($name), |env| Box::pin($name(env)) as _)),*]
        }
    };
}

checks!(
    never_written_slots_read_version_0,
    every_write_raises_the_version_by_one,
    initial_only_before_the_first_write,
    cas_is_strict_and_tombstones_stay,
    a_failing_op_fails_the_whole_batch,
    a_cas_conflict_fails_the_whole_batch,
    writes_to_one_slot_in_a_batch_see_each_other,
    ops_return_their_outputs,
    nested_paths_need_their_parent,
    numbers_are_checked_at_their_width,
    values_over_the_limit_are_refused,
    values_nested_past_the_limit_are_refused,
    restores_are_held_to_the_limits_of_a_write,
    finite_floats_read_back_bit_identical,
    json_null_is_not_stored_at_the_root,
    expired_slots_read_as_tombstones,
    ttl_is_kept_set_or_cleared,
    ttl_keep_or_starts_a_window,
    purging_expired_rows_keeps_versions_rising,
    purging_a_scope_keeps_versions_rising,
    clear_tombstones_live_slots,
    keys_are_listed_in_pages,
    scopes_are_listed_in_pages,
    load_scope_returns_every_stored_slot,
    restores_are_exact_and_never_lower_a_version,
    slot_identities_never_collide,
    concurrent_increments_lose_nothing,
    the_change_log_holds_every_commit_in_order,
);

/// Runs every check on fresh stores from `factory`. Returns how many passed, or every failure.
pub async fn run(factory: &dyn StoreFactory) -> Result<usize, Vec<Failure>> {
    let mut failures = Vec::new();
    let checks = all();
    for (name, check) in &checks {
        let clock = ManualClock::new(T0);
        let store = factory.make(Arc::new(clock.clone())).await;
        let config = EngineConfig::default()
            .retry(RetryPolicy::new(1_000).with_backoff(Duration::ZERO, Duration::from_millis(2)));
        let engine = Engine::with_config(store.clone(), config);
        let env = Env {
            store,
            engine,
            clock,
        };
        if let Err(message) = check(&env).await {
            failures.push(Failure {
                check: name,
                message,
            });
        }
    }
    if failures.is_empty() {
        Ok(checks.len())
    } else {
        Err(failures)
    }
}

/// Runs every check and panics listing every failure.
pub async fn assert_conformance(factory: &dyn StoreFactory) {
    if let Err(failures) = run(factory).await {
        let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
        panic!(
            "the store breaks {} rule(s) of the contract:\n  {}",
            failures.len(),
            list.join("\n  ")
        );
    }
}

// ---- helpers -------------------------------------------------------------------------------

trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for crate::Result<T> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: unexpected error: {e}"))
    }
}

fn exec(id: &str) -> Scope {
    Scope::execution(id).unwrap_or_else(|e| unreachable!("valid test id: {e}"))
}

fn slot(scope: &Scope, key: &str) -> Slot {
    Slot::new(scope.clone(), "Conf", key).unwrap_or_else(|e| unreachable!("valid test slot: {e}"))
}

fn inc(by: u64) -> Op {
    Op::increment(Path::root(), by.into(), NumKind::U64)
}

async fn commit(env: &Env, writes: Vec<Write>) -> crate::Result<CommitOutcome> {
    env.store
        .commit(Batch {
            writes,
            max_value_bytes: crate::DEFAULT_MAX_VALUE_BYTES,
        })
        .await
}

async fn version(env: &Env, s: &Slot) -> Result<u64, String> {
    Ok(env.store.load(s).await.ctx("load")?.version)
}

async fn value(env: &Env, s: &Slot) -> Result<Option<Value>, String> {
    Ok(env.store.load(s).await.ctx("load")?.value)
}

// ---- checks --------------------------------------------------------------------------------

async fn never_written_slots_read_version_0(env: &Env) -> CheckResult {
    let sc = exec("e");
    let slots = [slot(&sc, "a"), slot(&sc, "b"), slot(&sc, "c")];
    env.engine
        .handle::<u32>(slots[1].clone())
        .set(7)
        .await
        .ctx("set")?;
    let records = env.store.load_many(&slots).await.ctx("load_many")?;
    ensure!(
        records.len() == 3,
        "load_many returned {} records for 3 slots",
        records.len()
    );
    ensure!(
        records[0].version == 0 && records[0].value.is_none(),
        "never written: {:?}",
        records[0]
    );
    ensure!(
        records[1].value == Some(json!(7)) && records[1].version == 1,
        "order: {:?}",
        records[1]
    );
    ensure!(records[2].version == 0, "never written: {:?}", records[2]);
    Ok(())
}

async fn every_write_raises_the_version_by_one(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let h = env.engine.handle::<u64>(s.clone());
    let mut expected = 0;
    for step in [
        "set",
        "same set",
        "increment 0",
        "unchanged update",
        "delete",
        "delete again",
    ] {
        match step {
            "set" | "same set" => {
                h.set(5).await.ctx(step)?;
            }
            "increment 0" => {
                h.increment(0).await.ctx(step)?;
            }
            "unchanged update" => {
                h.update(|v| Ok(v.copied())).await.ctx(step)?;
            }
            _ => {
                h.delete().await.ctx(step)?;
            }
        }
        expected += 1;
        let v = version(env, &s).await?;
        ensure!(
            v == expected,
            "after {step}: version {v}, expected {expected}"
        );
    }
    let out = commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
        .await
        .ctx("commit")?;
    match out {
        CommitOutcome::Committed(o) => ensure!(
            o.len() == 1 && o[0].previous_version == 6 && o[0].version == 7,
            "outcome versions: {o:?}"
        ),
        other => return Err(format!("unexpected {other:?}")),
    }
    Ok(())
}

async fn initial_only_before_the_first_write(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let w = || Write::apply(s.clone(), vec![inc(1)]).with_initial(Some(json!(10)));
    commit(env, vec![w()]).await.ctx("first")?;
    ensure!(
        value(env, &s).await? == Some(json!(11)),
        "version 0 starts from initial"
    );
    commit(
        env,
        vec![Write::apply(s.clone(), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    commit(env, vec![w()]).await.ctx("after delete")?;
    let v = value(env, &s).await?;
    ensure!(
        v == Some(json!(1)),
        "after a delete, Apply must start from 0, not initial: got {v:?}"
    );
    Ok(())
}

async fn cas_is_strict_and_tombstones_stay(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "name");
    let h = env.engine.handle::<String>(s.clone());
    ensure!(
        h.set_if(1, "x".into()).await.is_err(),
        "CAS on a fresh slot must expect version 0"
    );
    ensure!(
        h.set_if(0, "a".into()).await.ctx("set_if 0")? == 1,
        "first CAS → version 1"
    );
    match h.set_if(0, "b".into()).await {
        Err(Error::VersionMismatch {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => {
            return Err(format!(
                "stale CAS must fail with the actual version: {other:?}"
            ));
        }
    }
    ensure!(
        h.delete_if(1).await.ctx("delete_if")? == 2,
        "delete_if → version 2"
    );
    // A writer holding the pre-delete version must not resurrect the slot.
    ensure!(
        h.set_if(1, "zombie".into()).await.is_err(),
        "stale CAS resurrected a tombstone"
    );
    ensure!(h.delete_if(1).await.is_err(), "stale delete_if succeeded");
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 2,
        "tombstone changed: {r:?}"
    );
    Ok(())
}

async fn a_failing_op_fails_the_whole_batch(env: &Env) -> CheckResult {
    let sc = exec("e");
    let (a, b, c) = (slot(&sc, "a"), slot(&sc, "b"), slot(&sc, "c"));
    env.engine
        .handle::<u8>(c.clone())
        .set(255)
        .await
        .ctx("set")?;
    let writes = vec![
        Write::apply(a.clone(), vec![inc(1)]),
        Write::apply(b.clone(), vec![Op::append(Path::root(), json!(1))]),
        Write::apply(
            c.clone(),
            vec![Op::increment(Path::root(), 1u8.into(), NumKind::U8)],
        ),
    ];
    match commit(env, writes).await {
        Err(Error::Overflow { .. }) => {}
        other => {
            return Err(format!(
                "the overflowing batch must fail with Overflow: {other:?}"
            ));
        }
    }
    for (s, v) in [(&a, 0), (&b, 0), (&c, 1)] {
        let got = version(env, s).await?;
        ensure!(
            got == v,
            "slot {} was written by a failed batch (version {got})",
            s.key()
        );
    }
    Ok(())
}

async fn a_cas_conflict_fails_the_whole_batch(env: &Env) -> CheckResult {
    let sc = exec("e");
    let (a, b) = (slot(&sc, "a"), slot(&sc, "b"));
    env.engine
        .handle::<u32>(b.clone())
        .set(1)
        .await
        .ctx("set")?;
    let writes = vec![
        Write::cas(a.clone(), 0, Some(json!(1))),
        Write::cas(b.clone(), 0, Some(json!(2))),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Conflict(c) => ensure!(
            c.len() == 1 && c[0].slot == b && c[0].expected == 0 && c[0].actual == 1,
            "conflict must name the slot and its version: {c:?}"
        ),
        other => return Err(format!("expected a conflict, got {other:?}")),
    }
    ensure!(
        version(env, &a).await? == 0,
        "a conflicting batch wrote its other slot"
    );
    ensure!(
        value(env, &b).await? == Some(json!(1)),
        "a conflicting batch wrote the slot"
    );
    Ok(())
}

async fn writes_to_one_slot_in_a_batch_see_each_other(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let writes = vec![
        Write::apply(s.clone(), vec![inc(2)]),
        Write::cas(s.clone(), 1, Some(json!(10))),
        Write::apply(s.clone(), vec![inc(1)]),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Committed(o) => {
            let v: Vec<u64> = o.iter().map(|o| o.version).collect();
            ensure!(v == [1, 2, 3], "versions within one batch: {v:?}");
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    ensure!(value(env, &s).await? == Some(json!(11)), "final value");
    Ok(())
}

async fn ops_return_their_outputs(env: &Env) -> CheckResult {
    let sc = exec("e");
    let list = slot(&sc, "list");
    let n = slot(&sc, "n");
    let ops = vec![
        Op::append(Path::root(), json!("a")),
        Op::append(Path::root(), json!("b")),
        Op::append(Path::root(), json!("c")),
        Op::remove_first(Path::root()),
        Op::remove_last(Path::root()),
    ];
    let writes = vec![
        Write::apply(list.clone(), ops).returning_record(),
        Write::apply(n.clone(), vec![inc(4)]),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Committed(o) => {
            ensure!(
                o[0].outputs[3] == Some(json!("a")),
                "remove_first output: {:?}",
                o[0].outputs
            );
            ensure!(
                o[0].outputs[4] == Some(json!("c")),
                "remove_last output: {:?}",
                o[0].outputs
            );
            let rec = o[0].record.as_ref().ok_or("asked-for record missing")?;
            ensure!(
                rec.value == Some(json!(["b"])) && rec.version == 1,
                "returned record: {rec:?}"
            );
            ensure!(
                o[1].outputs == [Some(json!(4))],
                "increment output: {:?}",
                o[1].outputs
            );
            ensure!(
                o[1].record.is_none(),
                "a record nobody asked for was returned"
            );
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    let del = commit(
        env,
        vec![Write::apply(list.clone(), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    match del {
        CommitOutcome::Committed(o) => {
            ensure!(
                o[0].outputs == [Some(json!(["b"]))],
                "delete returns the previous value"
            )
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    Ok(())
}

async fn nested_paths_need_their_parent(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "doc");
    let nested = |ops| Write::apply(s.clone(), ops);
    let r = commit(
        env,
        vec![nested(vec![Op::set(Path::new(["a", "b"]), json!(1))])],
    )
    .await;
    ensure!(
        matches!(r, Err(Error::InvalidPath { .. })),
        "nested op on an absent slot: {r:?}"
    );
    ensure!(version(env, &s).await? == 0, "a failed nested op wrote");
    commit(
        env,
        vec![nested(vec![Op::set(Path::root(), json!({"a": {"n": 1}}))])],
    )
    .await
    .ctx("set")?;
    let ops = vec![
        Op::increment(Path::new(["a", "n"]), 2u32.into(), NumKind::U32),
        Op::merge(
            Path::new(["a"]),
            serde_json::Map::from_iter([("m".to_string(), json!(true))]),
        ),
        Op::set(Path::new(["x.y"]), json!("dotted key")),
    ];
    commit(env, vec![nested(ops)]).await.ctx("nested ops")?;
    let v = value(env, &s).await?;
    ensure!(
        v == Some(json!({"a": {"n": 3, "m": true}, "x.y": "dotted key"})),
        "nested result: {v:?}"
    );
    let bad = commit(
        env,
        vec![nested(vec![Op::append(Path::new(["a", "n"]), json!(1))])],
    )
    .await;
    ensure!(
        matches!(bad, Err(Error::TypeMismatch { .. })),
        "append on a number: {bad:?}"
    );
    Ok(())
}

async fn numbers_are_checked_at_their_width(env: &Env) -> CheckResult {
    let sc = exec("e");
    let u = env.engine.handle::<u32>(slot(&sc, "u32"));
    u.set(u32::MAX).await.ctx("set")?;
    let r = u.increment(1).await;
    ensure!(
        matches!(
            r,
            Err(Error::Overflow {
                kind: NumKind::U32,
                ..
            })
        ),
        "u32::MAX + 1: {r:?}"
    );
    ensure!(version(env, u.slot()).await? == 1, "an overflow wrote");
    let i = env.engine.handle::<i8>(slot(&sc, "i8"));
    ensure!(
        i.decrement(-127).await.ctx("i8")? == 127,
        "0 - (-127) is i8::MAX"
    );
    let r = i.decrement(-1).await;
    ensure!(
        matches!(
            r,
            Err(Error::Overflow {
                kind: NumKind::I8,
                ..
            })
        ),
        "i8::MAX + 1: {r:?}"
    );
    let f = env.engine.handle::<f64>(slot(&sc, "f64"));
    f.set(f64::MAX).await.ctx("set f64")?;
    let r = f.increment(f64::MAX).await;
    ensure!(
        matches!(r, Err(Error::NotFinite { .. })),
        "f64 overflow must be refused: {r:?}"
    );
    let r = f.increment(f64::NAN).await;
    ensure!(
        matches!(r, Err(Error::NotFinite { .. })),
        "NaN must be refused: {r:?}"
    );
    let bad = Op::increment(Path::root(), 300u32.into(), NumKind::U8);
    let r = commit(env, vec![Write::apply(slot(&sc, "u8"), vec![bad])]).await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "an amount outside its kind: {r:?}"
    );
    Ok(())
}

async fn values_over_the_limit_are_refused(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "big");
    let batch = |v: Value| Batch {
        writes: vec![Write::apply(s.clone(), vec![Op::set(Path::root(), v)])],
        max_value_bytes: 32,
    };
    env.store
        .commit(batch(json!("x".repeat(10))))
        .await
        .ctx("small")?;
    let r = env.store.commit(batch(json!("x".repeat(100)))).await;
    ensure!(
        matches!(r, Err(Error::TooLarge { limit: 32, .. })),
        "oversized value: {r:?}"
    );
    ensure!(
        value(env, &s).await? == Some(json!("x".repeat(10))),
        "oversized write changed the value"
    );
    Ok(())
}

/// `levels` arrays one inside another around a number, built without recursion (`json!`
/// would serialize, recursively, the value it nests).
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |v, _| Value::Array(vec![v]))
}

/// How many arrays of [`nested`] a value holds, one inside another.
fn innermost_depth(mut v: &Value) -> usize {
    let mut n = 0;
    while let Some(inner) = v.as_array().and_then(|a| a.first()) {
        v = inner;
        n += 1;
    }
    n
}

async fn values_nested_past_the_limit_are_refused(env: &Env) -> CheckResult {
    use crate::MAX_DEPTH;
    let s = slot(&exec("e"), "deep");
    let too_deep = |r: &crate::Result<CommitOutcome>| {
        matches!(
            r,
            Err(Error::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        )
    };
    commit(env, vec![Write::cas(s.clone(), 0, Some(nested(MAX_DEPTH)))])
        .await
        .ctx("a value at the limit")?;
    let at_limit = env.store.load(&s).await.ctx("load")?;
    ensure!(
        at_limit.value.as_ref().map(innermost_depth) == Some(MAX_DEPTH),
        "a value at the limit did not read back"
    );
    // Far past it (a recursive clone, drop or encode would overflow the stack), at the root,
    // as an op operand, as an initial value.
    for (what, write) in [
        ("CAS", Write::cas(s.clone(), 1, Some(nested(20_000)))),
        (
            "set",
            Write::apply(s.clone(), vec![Op::set(Path::root(), nested(20_000))]),
        ),
        (
            "initial",
            Write::apply(s.clone(), vec![inc(1)]).with_initial(Some(nested(20_000))),
        ),
    ] {
        let r = commit(env, vec![write]).await;
        ensure!(too_deep(&r), "{what} 20 000 levels deep: {r:?}");
    }
    // Past it only once applied: an item appended inside the value (the root, `a` and the
    // list are 3 levels), a value set at a path.
    let doc = slot(&exec("e"), "doc");
    commit(
        env,
        vec![Write::cas(doc.clone(), 0, Some(json!({"a": {"list": []}})))],
    )
    .await
    .ctx("doc")?;
    let list = Path::new(["a", "list"]);
    let r = commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::append(list.clone(), nested(MAX_DEPTH - 2))],
        )],
    )
    .await;
    ensure!(too_deep(&r), "append past the limit: {r:?}");
    commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::append(list, nested(MAX_DEPTH - 3))],
        )],
    )
    .await
    .ctx("append up to the limit")?;
    let r = commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::set(Path::new(["a"]), nested(MAX_DEPTH))],
        )],
    )
    .await;
    ensure!(too_deep(&r), "set at a path past the limit: {r:?}");
    let r = env
        .store
        .restore(crate::Restore::new(vec![(
            slot(&exec("e"), "restored"),
            crate::Record {
                value: Some(nested(20_000)),
                version: 1,
                expires_at: None,
            },
        )]))
        .await;
    ensure!(
        matches!(r, Err(Error::TooDeep { .. })),
        "restore 20 000 levels deep: {r:?}"
    );
    ensure!(
        version(env, &s).await? == 1,
        "a refused write changed the slot"
    );
    ensure!(
        version(env, &doc).await? == 2,
        "a refused op changed the slot"
    );
    ensure!(
        version(env, &slot(&exec("e"), "restored")).await? == 0,
        "a refused restore wrote"
    );
    Ok(())
}

async fn restores_are_held_to_the_limits_of_a_write(env: &Env) -> CheckResult {
    let kept = slot(&exec("e"), "kept");
    let big = slot(&exec("e"), "big");
    let record = |v: Value| crate::Record {
        value: Some(v),
        version: 3,
        expires_at: None,
    };
    let restore = crate::Restore::new(vec![
        (kept.clone(), record(json!("small"))),
        (big.clone(), record(json!("x".repeat(100)))),
    ])
    .max_value_bytes(32);
    let r = env.store.restore(restore).await;
    ensure!(
        matches!(r, Err(Error::TooLarge { limit: 32, ref slot, .. }) if *slot == big),
        "a value over the restore's limit: {r:?}"
    );
    ensure!(
        version(env, &kept).await? == 0,
        "a refused restore wrote another record"
    );
    let restore = crate::Restore::new(vec![(big.clone(), record(json!("x".repeat(100))))]);
    env.store.restore(restore).await.ctx("under the limit")?;
    ensure!(version(env, &big).await? == 3, "restored");
    Ok(())
}

/// 4 096 floats from a fixed-seed generator over every bit pattern (finite ones kept), plus
/// the edges: each reads back with the same bits, through the store's own encoding.
async fn finite_floats_read_back_bit_identical(env: &Env) -> CheckResult {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut floats = vec![
        938.311_203_578_657_7,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        -0.0,
    ];
    while floats.len() < 4096 {
        // xorshift64*: every bit pattern is reachable.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let f = f64::from_bits(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
        if f.is_finite() {
            floats.push(f);
        }
    }
    for (i, chunk) in floats.chunks(256).enumerate() {
        let s = slot(&exec("floats"), &format!("chunk-{i}"));
        let v = Value::Array(chunk.iter().map(|&f| json!(f)).collect());
        commit(env, vec![Write::cas(s.clone(), 0, Some(v))])
            .await
            .ctx("write")?;
        let back = value(env, &s).await?.unwrap_or_default();
        for (j, &f) in chunk.iter().enumerate() {
            let got = back.get(j).and_then(Value::as_f64);
            ensure!(
                got.map(f64::to_bits) == Some(f.to_bits()),
                "{f:e} ({:#018x}) read back as {got:?}",
                f.to_bits()
            );
        }
    }
    Ok(())
}

async fn json_null_is_not_stored_at_the_root(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "v");
    let r = commit(
        env,
        vec![Write::apply(
            s.clone(),
            vec![Op::set(Path::root(), Value::Null)],
        )],
    )
    .await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "Apply set null: {r:?}"
    );
    let r = commit(env, vec![Write::cas(s.clone(), 0, Some(Value::Null))]).await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "CAS set null: {r:?}"
    );
    ensure!(version(env, &s).await? == 0, "a null write was stored");
    Ok(())
}

async fn expired_slots_read_as_tombstones(env: &Env) -> CheckResult {
    let sc = exec("e");
    let s = slot(&sc, "session");
    let ttl = Ttl::For(Duration::from_secs(60));
    commit(
        env,
        vec![Write::apply(s.clone(), vec![inc(1)]).with_ttl(ttl)],
    )
    .await
    .ctx("write")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.expires_at == Some(T0.saturating_add(Duration::from_secs(60))),
        "expiry: {r:?}"
    );
    env.clock.advance(Duration::from_secs(60));
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 1,
        "an expired slot reads absent, keeping its version: {r:?}"
    );
    let keys = env.store.list_keys(&sc, None, None, 10).await.ctx("list")?;
    ensure!(keys.items.is_empty(), "an expired slot was listed");
    let w = Write::apply(s.clone(), vec![inc(5)]).with_initial(Some(json!(100)));
    commit(env, vec![w]).await.ctx("write after expiry")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(5)) && r.version == 2,
        "after expiry Apply starts from neutral: {r:?}"
    );
    ensure!(
        r.expires_at.is_none(),
        "a write without TTL inherited a dead expiry: {r:?}"
    );
    ensure!(
        commit(env, vec![Write::cas(s.clone(), 2, Some(json!(0)))])
            .await
            .is_ok(),
        "CAS against the current version"
    );
    Ok(())
}

async fn ttl_is_kept_set_or_cleared(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "k");
    let deadline = T0.saturating_add(Duration::from_secs(10));
    let w = |ttl| Write::apply(s.clone(), vec![inc(1)]).with_ttl(ttl);
    commit(env, vec![w(Ttl::For(Duration::from_secs(10)))])
        .await
        .ctx("set ttl")?;
    env.clock.advance(Duration::from_secs(5));
    commit(env, vec![w(Ttl::Keep)]).await.ctx("keep")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.expires_at == Some(deadline),
        "a write without TTL must keep the expiry: {r:?}"
    );
    commit(env, vec![Write::cas(s.clone(), 2, Some(json!(9)))])
        .await
        .ctx("cas keep")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.expires_at == Some(deadline),
        "a CAS write without TTL must keep the expiry: {r:?}"
    );
    commit(env, vec![w(Ttl::Clear)]).await.ctx("clear")?;
    env.clock.advance(Duration::from_secs(3600));
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(10)) && r.expires_at.is_none(),
        "cleared TTL: {r:?}"
    );
    Ok(())
}

async fn ttl_keep_or_starts_a_window(env: &Env) -> CheckResult {
    let window = slot(&exec("e"), "window");
    let ww = || {
        Write::apply(window.clone(), vec![inc(1)]).with_ttl(Ttl::KeepOr(Duration::from_secs(60)))
    };
    commit(env, vec![ww()]).await.ctx("window start")?;
    let started = env.store.load(&window).await.ctx("load")?.expires_at;
    env.clock.advance(Duration::from_secs(30));
    commit(env, vec![ww()]).await.ctx("window hit")?;
    let r = env.store.load(&window).await.ctx("load")?;
    ensure!(
        r.expires_at == started,
        "KeepOr must keep a live window: {r:?}"
    );
    env.clock.advance(Duration::from_secs(30));
    commit(env, vec![ww()]).await.ctx("new window")?;
    let r = env.store.load(&window).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(1))
            && r.expires_at == Some(env.clock.now().saturating_add(Duration::from_secs(60))),
        "KeepOr must start a new window after expiry: {r:?}"
    );
    // A live value without an expiry keeps having none.
    let forever = slot(&exec("e"), "forever");
    commit(env, vec![Write::apply(forever.clone(), vec![inc(1)])])
        .await
        .ctx("plain write")?;
    commit(
        env,
        vec![
            Write::apply(forever.clone(), vec![inc(1)])
                .with_ttl(Ttl::KeepOr(Duration::from_secs(60))),
        ],
    )
    .await
    .ctx("KeepOr on a live value")?;
    let r = env.store.load(&forever).await.ctx("load")?;
    ensure!(
        r.expires_at.is_none(),
        "KeepOr gave a live value without expiry an expiry: {r:?}"
    );
    Ok(())
}

async fn purging_expired_rows_keeps_versions_rising(env: &Env) -> CheckResult {
    let sc = Scope::user("shop", "alice").map_err(|e| e.to_string())?;
    let short = slot(&sc, "token");
    let long = slot(&sc, "name");
    for _ in 0..3 {
        commit(
            env,
            vec![
                Write::apply(short.clone(), vec![inc(1)])
                    .with_ttl(Ttl::For(Duration::from_secs(1))),
            ],
        )
        .await
        .ctx("write")?;
    }
    commit(env, vec![Write::apply(long.clone(), vec![inc(1)])])
        .await
        .ctx("write")?;
    env.clock.advance(Duration::from_secs(2));
    let n = env.store.purge_expired().await.ctx("purge_expired")?;
    ensure!(n == 1, "purge_expired removed {n} rows, expected 1");
    ensure!(
        env.store.purge_expired().await.ctx("again")? == 0,
        "purge_expired is not idempotent"
    );
    ensure!(
        value(env, &long).await? == Some(json!(1)),
        "a live row was purged"
    );
    let r = env.store.load(&short).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 4,
        "a purged slot reads one above its last version (3): {r:?}"
    );
    let stale = commit(env, vec![Write::cas(short.clone(), 3, Some(json!(1)))])
        .await
        .ctx("stale")?;
    ensure!(
        matches!(stale, CommitOutcome::Conflict(_)),
        "the latest token from before the purge (3) matched: {stale:?}"
    );
    ensure!(
        commit(env, vec![Write::cas(short.clone(), 4, Some(json!(1)))])
            .await
            .is_ok(),
        "CAS at the floor"
    );
    ensure!(
        version(env, &short).await? == 5,
        "versions continue above the floor"
    );
    Ok(())
}

async fn purging_a_scope_keeps_versions_rising(env: &Env) -> CheckResult {
    let run = exec("run-1");
    let other = exec("run-2");
    let s = slot(&run, "n");
    for _ in 0..5 {
        commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(env, vec![Write::apply(slot(&run, "m"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(env, vec![Write::apply(slot(&other, "n"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let n = env.store.purge_scope(&run).await.ctx("purge")?;
    ensure!(n == 2, "purge_scope removed {n} rows, expected 2");
    ensure!(
        value(env, &slot(&other, "n")).await? == Some(json!(1)),
        "another scope was purged"
    );
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 6,
        "purged: absent one above its last version (5): {r:?}"
    );
    let never = env.store.load(&slot(&run, "never")).await.ctx("load")?;
    ensure!(
        never.version == 6,
        "a never-written slot of a purged scope reads at the floor: {never:?}"
    );
    for token in [5, 4, 0] {
        let stale = commit(env, vec![Write::cas(s.clone(), token, Some(json!(1)))])
            .await
            .ctx("stale")?;
        ensure!(
            matches!(stale, CommitOutcome::Conflict(_)),
            "a pre-purge token ({token}) matched: {stale:?}"
        );
    }
    commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
        .await
        .ctx("write")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(1)) && r.version == 7,
        "after purge: {r:?}"
    );
    ensure!(
        env.store.purge_scope(&exec("nothing")).await.ctx("empty")? == 0,
        "empty purge"
    );
    Ok(())
}

async fn clear_tombstones_live_slots(env: &Env) -> CheckResult {
    let (a, b) = (exec("a"), exec("b"));
    for k in ["x", "y", "z"] {
        commit(env, vec![Write::apply(slot(&a, k), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(
        env,
        vec![Write::apply(slot(&a, "z"), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    commit(env, vec![Write::apply(slot(&b, "x"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let n = env.store.clear(&a).await.ctx("clear")?;
    ensure!(n == 2, "clear counted {n}, expected the 2 live slots");
    let r = env.store.load(&slot(&a, "x")).await.ctx("load")?;
    ensure!(r.value.is_none() && r.version == 2, "cleared slot: {r:?}");
    ensure!(
        version(env, &slot(&a, "z")).await? == 2,
        "a tombstone was cleared again"
    );
    ensure!(
        value(env, &slot(&b, "x")).await? == Some(json!(1)),
        "another scope was cleared"
    );
    Ok(())
}

async fn keys_are_listed_in_pages(env: &Env) -> CheckResult {
    let sc = exec("e");
    for i in 0..25 {
        let s = Slot::new(
            sc.clone(),
            if i % 2 == 0 { "A" } else { "B" },
            format!("k{i:02}"),
        )
        .map_err(|e| e.to_string())?;
        commit(env, vec![Write::apply(s, vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    let dead = Slot::new(sc.clone(), "A", "k00").map_err(|e| e.to_string())?;
    commit(
        env,
        vec![Write::apply(dead, vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    let mut all = Vec::new();
    let mut after: Option<SlotKey> = None;
    let mut pages = 0;
    loop {
        let page = env
            .store
            .list_keys(&sc, None, after.as_ref(), 10)
            .await
            .ctx("list_keys")?;
        pages += 1;
        ensure!(page.items.len() <= 10, "page of {} items", page.items.len());
        all.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(pages < 10, "pagination does not end");
    }
    let mut expected: Vec<SlotKey> = (1..25)
        .map(|i| SlotKey {
            namespace: if i % 2 == 0 { "A" } else { "B" }.into(),
            key: format!("k{i:02}"),
        })
        .collect();
    expected.sort();
    ensure!(
        all == expected,
        "listed keys (ordered by namespace, key; tombstones left out): {all:?}"
    );
    let only_b = env
        .store
        .list_keys(&sc, Some("B"), None, 100)
        .await
        .ctx("namespace")?;
    ensure!(
        only_b.items.len() == 12 && only_b.next.is_none(),
        "namespace filter: {only_b:?}"
    );
    // Pages within one namespace.
    let mut paged = Vec::new();
    let mut after: Option<SlotKey> = None;
    loop {
        let page = env
            .store
            .list_keys(&sc, Some("B"), after.as_ref(), 5)
            .await
            .ctx("paged")?;
        paged.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(paged.len() <= 12, "namespace pagination does not end");
    }
    ensure!(paged == only_b.items, "namespace pages: {paged:?}");
    // A cursor outside the namespace: before it lists all of it, after it lists nothing.
    let key = |ns: &str| SlotKey {
        namespace: ns.into(),
        key: "k99".into(),
    };
    let from_a = env
        .store
        .list_keys(&sc, Some("B"), Some(&key("A")), 100)
        .await
        .ctx("before")?;
    ensure!(
        from_a.items == only_b.items,
        "a cursor before the namespace: {from_a:?}"
    );
    let from_c = env
        .store
        .list_keys(&sc, Some("B"), Some(&key("C")), 100)
        .await
        .ctx("after")?;
    ensure!(
        from_c.items.is_empty(),
        "a cursor after the namespace: {from_c:?}"
    );
    ensure!(
        env.store.list_keys(&sc, None, None, 0).await.is_err(),
        "a page size of 0 is refused"
    );
    Ok(())
}

async fn scopes_are_listed_in_pages(env: &Env) -> CheckResult {
    let mut scopes = vec![
        Scope::app("shop").map_err(|e| e.to_string())?,
        Scope::group("flags").map_err(|e| e.to_string())?,
        Scope::workflow("wf").map_err(|e| e.to_string())?,
        Scope::object("cart", "c1").map_err(|e| e.to_string())?,
    ];
    for i in 0..5 {
        scopes.push(exec(&format!("run-{i}")));
        scopes.push(Scope::user("shop", format!("u{i}")).map_err(|e| e.to_string())?);
    }
    for s in &scopes {
        commit(env, vec![Write::apply(slot(s, "x"), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    let cleared = exec("run-cleared");
    commit(env, vec![Write::apply(slot(&cleared, "x"), vec![inc(1)])])
        .await
        .ctx("write")?;
    env.store.clear(&cleared).await.ctx("clear")?;
    let mut got = Vec::new();
    let mut after: Option<Scope> = None;
    loop {
        let page = env
            .store
            .list_scopes(None, after.as_ref(), 3)
            .await
            .ctx("list_scopes")?;
        got.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(got.len() <= 100, "pagination does not end");
    }
    scopes.sort();
    ensure!(got == scopes, "every live scope once, in order: {got:?}");
    let users = env
        .store
        .list_scopes(Some(ScopeKind::User), None, 100)
        .await
        .ctx("kind")?;
    ensure!(
        users.items.len() == 5 && users.items.iter().all(|s| s.kind() == ScopeKind::User),
        "kind filter: {users:?}"
    );
    Ok(())
}

async fn load_scope_returns_every_stored_slot(env: &Env) -> CheckResult {
    let sc = exec("e");
    for k in ["b", "a", "c"] {
        commit(env, vec![Write::apply(slot(&sc, k), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(
        env,
        vec![Write::apply(slot(&sc, "c"), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    let other = Slot::new(sc.clone(), "Other", "z").map_err(|e| e.to_string())?;
    commit(env, vec![Write::apply(other, vec![inc(1)])])
        .await
        .ctx("write")?;
    let all = env
        .store
        .load_scope(&sc, Some("Conf"))
        .await
        .ctx("load_scope")?;
    let keys: Vec<(&str, u64, bool)> = all
        .iter()
        .map(|(k, r)| (k.key.as_str(), r.version, r.value.is_some()))
        .collect();
    ensure!(
        keys == [("a", 1, true), ("b", 1, true), ("c", 2, false)],
        "load_scope: {keys:?}"
    );
    let whole = env.store.load_scope(&sc, None).await.ctx("all")?;
    ensure!(whole.len() == 4, "without a namespace filter");
    // Row by row (what an export reads): the same rows, for the scope and for the store.
    let second = exec("f");
    commit(env, vec![Write::apply(slot(&second, "k"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let rows = |rows: Vec<crate::Result<(Slot, crate::Record)>>| {
        rows.into_iter()
            .map(|r| {
                r.map(|(s, r)| {
                    (
                        s.scope().clone(),
                        s.namespace().to_owned(),
                        s.key().to_owned(),
                        r,
                    )
                })
            })
            .collect::<crate::Result<Vec<_>>>()
    };
    let scoped = rows(env.store.load_rows(Some(&sc)).await.ctx("load_rows")?).ctx("a row")?;
    let expected: Vec<_> = whole
        .into_iter()
        .map(|(k, r)| (sc.clone(), k.namespace, k.key, r))
        .collect();
    ensure!(scoped == expected, "load_rows(scope): {scoped:?}");
    let all = rows(env.store.load_rows(None).await.ctx("load_rows(None)")?).ctx("a row")?;
    ensure!(
        all.len() == 5 && all.iter().filter(|r| r.0 == second).count() == 1,
        "load_rows(None) returns every stored slot of the store: {all:?}"
    );
    Ok(())
}

async fn restores_are_exact_and_never_lower_a_version(env: &Env) -> CheckResult {
    let (x, y) = (exec("x"), exec("y"));
    commit(env, vec![Write::apply(slot(&x, "a"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(env, vec![Write::apply(slot(&y, "gone"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(
        env,
        vec![Write::apply(
            slot(&y, "gone"),
            vec![Op::delete(Path::root())],
        )],
    )
    .await
    .ctx("delete")?;
    let live = env
        .store
        .list_scopes(None, None, 100)
        .await
        .ctx("list_scopes")?
        .items;
    let stored = env
        .store
        .list_stored_scopes(None, None, 100)
        .await
        .ctx("list_stored_scopes")?
        .items;
    ensure!(live == [x.clone()], "live scopes: {live:?}");
    ensure!(
        stored == [x.clone(), y.clone()],
        "stored scopes include tombstone-only ones: {stored:?}"
    );
    let expiry = Some(T0.saturating_add(Duration::from_secs(60)));
    let records = vec![
        (
            slot(&x, "r1"),
            crate::Record {
                value: Some(json!({"k": 1})),
                version: 7,
                expires_at: expiry,
            },
        ),
        (
            slot(&x, "r2"),
            crate::Record {
                value: None,
                version: 3,
                expires_at: None,
            },
        ),
        (
            slot(&x, "a"),
            crate::Record {
                value: Some(json!(41)),
                version: 9,
                expires_at: None,
            },
        ),
    ];
    ensure!(
        env.store
            .restore(crate::Restore::new(records.clone()))
            .await
            .ctx("restore")?
            == 3,
        "restored count"
    );
    for (s, want) in &records {
        let got = env.store.load(s).await.ctx("load")?;
        ensure!(&got == want, "restored {}: {got:?}, want {want:?}", s.key());
    }
    // Restoring again (not above the current versions) is refused, and nothing changes.
    let again = vec![
        (
            slot(&x, "fresh"),
            crate::Record {
                value: Some(json!(1)),
                version: 5,
                expires_at: None,
            },
        ),
        records[0].clone(),
    ];
    match env.store.restore(crate::Restore::new(again)).await {
        Err(Error::VersionMismatch {
            expected: 7,
            actual: 7,
            ..
        }) => {}
        other => {
            return Err(format!(
                "a restore at the current version must be refused: {other:?}"
            ));
        }
    }
    ensure!(
        version(env, &slot(&x, "fresh")).await? == 0,
        "a refused restore wrote another slot"
    );
    // A restored slot takes normal writes from its version on.
    commit(env, vec![Write::apply(slot(&x, "a"), vec![inc(1)])])
        .await
        .ctx("write")?;
    ensure!(
        value(env, &slot(&x, "a")).await? == Some(json!(42)),
        "write after restore"
    );
    ensure!(
        version(env, &slot(&x, "a")).await? == 10,
        "version after restore"
    );
    Ok(())
}

async fn slot_identities_never_collide(env: &Env) -> CheckResult {
    let e = |r: crate::Result<Slot>| r.map_err(|e| e.to_string());
    let s = |r: crate::Result<Scope>| r.map_err(|e| e.to_string());
    let pairs = [
        (
            e(Slot::new(s(Scope::user("a:b", "c"))?, "n", "k"))?,
            e(Slot::new(s(Scope::user("a", "b:c"))?, "n", "k"))?,
        ),
        (
            e(Slot::new(exec("e"), "a:b", "c"))?,
            e(Slot::new(exec("e"), "a", "b:c"))?,
        ),
        (
            e(Slot::new(exec("e:n"), "k", "x"))?,
            e(Slot::new(exec("e"), "n:k", "x"))?,
        ),
        (
            e(Slot::new(s(Scope::object("s", "k"))?, "n", "x"))?,
            e(Slot::new(s(Scope::user("s", "k"))?, "n", "x"))?,
        ),
        (
            e(Slot::new(s(Scope::app("x"))?, "n", "k"))?,
            e(Slot::new(s(Scope::group("x"))?, "n", "k"))?,
        ),
        (
            e(Slot::new(exec("a/b"), "n", "k"))?,
            e(Slot::new(exec("a"), "b/n", "k"))?,
        ),
    ];
    for (a, b) in pairs {
        commit(
            env,
            vec![Write::apply(
                a.clone(),
                vec![Op::set(Path::root(), json!("first"))],
            )],
        )
        .await
        .ctx("a")?;
        commit(
            env,
            vec![Write::apply(
                b.clone(),
                vec![Op::set(Path::root(), json!("second"))],
            )],
        )
        .await
        .ctx("b")?;
        ensure!(
            value(env, &a).await? == Some(json!("first")),
            "{a} and {b} share storage"
        );
        ensure!(version(env, &a).await? == 1, "{a} and {b} share a version");
    }
    Ok(())
}

async fn concurrent_increments_lose_nothing(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "counter");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let h = env.engine.handle::<u64>(s.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                h.increment(1).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let cas = env.engine.handle::<u64>(s.clone());
    for _ in 0..20 {
        cas.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1)))
            .await
            .ctx("update")?;
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("increment")?;
    }
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(820)) && r.version == 820,
        "16×50 increments + 20 updates: {r:?}"
    );
    // Every version is in the change log, in order, even where a store merged concurrent
    // callers' batches into one transaction.
    let logged: Vec<(u64, Option<Value>)> =
        read_all_changes(env.store.as_ref(), &ChangeFilter::slot(&s))
            .await
            .ctx("read_changes")?
            .into_iter()
            .map(|c| (c.version, c.value))
            .collect();
    let want: Vec<(u64, Option<Value>)> = (1..=820).map(|v| (v, Some(json!(v)))).collect();
    ensure!(
        logged == want,
        "the log holds {} versions of the counter, not each of 1..=820 in order: {:?}…",
        logged.len(),
        logged.iter().take(8).collect::<Vec<_>>()
    );
    Ok(())
}

async fn the_change_log_holds_every_commit_in_order(env: &Env) -> CheckResult {
    let sc = exec("log");
    let (a, b) = (slot(&sc, "a"), slot(&sc, "b"));
    let start = env.store.last_change().await.ctx("last_change")?;
    commit(env, vec![Write::apply(a.clone(), vec![inc(1)])])
        .await
        .ctx("increment a")?;
    // One batch, two slots, a slot written twice: both of its versions are logged (the
    // caller was told about each), in order.
    commit(
        env,
        vec![
            Write::apply(a.clone(), vec![inc(1)]),
            Write::cas(b.clone(), 0, Some(json!("x"))),
            Write::apply(a.clone(), vec![inc(1)]),
        ],
    )
    .await
    .ctx("batch")?;
    // A refused batch logs nothing.
    let refused = commit(env, vec![Write::cas(b.clone(), 0, Some(json!("y")))])
        .await
        .ctx("stale cas")?;
    ensure!(
        matches!(refused, CommitOutcome::Conflict(_)),
        "a stale CAS committed: {refused:?}"
    );
    commit(env, vec![Write::cas(b.clone(), 1, None)])
        .await
        .ctx("delete b")?;
    env.store.clear(&sc).await.ctx("clear")?;
    let log = env
        .store
        .read_changes(start, &ChangeFilter::scope(sc.clone()), 100)
        .await
        .ctx("read_changes")?;
    let seen: Vec<(String, u64, Option<Value>)> = log
        .iter()
        .map(|c| (c.slot.key().to_owned(), c.version, c.value.clone()))
        .collect();
    let want = vec![
        ("a".to_owned(), 1, Some(json!(1))),
        ("a".to_owned(), 2, Some(json!(2))),
        ("a".to_owned(), 3, Some(json!(3))),
        ("b".to_owned(), 1, Some(json!("x"))),
        ("b".to_owned(), 2, None),
        ("a".to_owned(), 4, None),
    ];
    // Within one commit the order of slots is the store's (each slot's versions in order);
    // compare commits as sets.
    let mut sorted_seen = seen.clone();
    let mut sorted_want = want.clone();
    sorted_seen[1..4].sort_by(|x, y| x.0.cmp(&y.0));
    sorted_want[1..4].sort_by(|x, y| x.0.cmp(&y.0));
    ensure!(
        sorted_seen == sorted_want,
        "the log holds {seen:?}, expected {want:?}"
    );
    ensure!(
        log.windows(2).all(|w| w[0].seq < w[1].seq) && log.iter().all(|c| c.seq > start),
        "sequence numbers do not rise: {log:?}"
    );
    ensure!(
        log.iter().all(|c| c.at == T0),
        "changes carry the commit time: {log:?}"
    );
    let last = env.store.last_change().await.ctx("last_change")?;
    ensure!(
        Some(last) == log.last().map(|c| c.seq),
        "last_change {last} is not the newest change {:?}",
        log.last()
    );
    // Resuming from a cursor skips what was read; a slot filter sees only its slot.
    let rest = env
        .store
        .read_changes(log[3].seq, &ChangeFilter::slot(&a), 100)
        .await
        .ctx("read_changes from a cursor")?;
    ensure!(
        rest.iter().map(|c| c.version).collect::<Vec<_>>() == vec![4],
        "after seq {}: {rest:?}",
        log[3].seq
    );
    let page = env
        .store
        .read_changes(start, &ChangeFilter::all(), 2)
        .await
        .ctx("read_changes with a limit")?;
    ensure!(page.len() == 2, "a limit of 2 returned {}", page.len());
    let history = env
        .store
        .slot_history(&a, None, 10)
        .await
        .ctx("slot_history")?;
    ensure!(
        history.iter().map(|c| c.version).collect::<Vec<_>>() == vec![4, 3, 2, 1],
        "history of a, newest first: {history:?}"
    );
    let older = env
        .store
        .slot_history(&a, Some(history[0].seq), 1)
        .await
        .ctx("slot_history before")?;
    ensure!(
        older.len() == 1 && older[0].version == 3,
        "history before the newest: {older:?}"
    );
    // A scope filter is the scope's kind too: `app:log` is not `execution:log`, also when
    // the filter's own `kind` is left unset (its fields are public).
    let other = Scope::app("log").map_err(|e| e.to_string())?;
    commit(env, vec![Write::apply(slot(&other, "a"), vec![inc(1)])])
        .await
        .ctx("increment app:log")?;
    let only_scope = ChangeFilter {
        scope: Some(sc.clone()),
        ..ChangeFilter::all()
    };
    let mine = env
        .store
        .read_changes(start, &only_scope, 100)
        .await
        .ctx("read_changes of execution:log")?;
    ensure!(
        mine.iter().all(|c| c.slot.scope() == &sc),
        "a filter on {sc} returned another kind's change: {mine:?}"
    );
    let only_other = ChangeFilter {
        scope: Some(other.clone()),
        ..ChangeFilter::all()
    };
    let theirs = env
        .store
        .read_changes(start, &only_other, 100)
        .await
        .ctx("read_changes of app:log")?;
    ensure!(
        theirs.len() == 1 && theirs[0].slot.scope() == &other,
        "a filter on {other}: {theirs:?}"
    );
    // Any u64 is a position: past the end there is nothing, before it everything.
    let past = env
        .store
        .read_changes(u64::MAX, &ChangeFilter::all(), 10)
        .await
        .ctx("read_changes after u64::MAX")?;
    ensure!(past.is_empty(), "changes after u64::MAX: {past:?}");
    let all_of_a = env
        .store
        .slot_history(&a, Some(u64::MAX), 10)
        .await
        .ctx("slot_history before u64::MAX")?;
    ensure!(
        all_of_a.len() == history.len(),
        "history before u64::MAX: {all_of_a:?}"
    );
    Ok(())
}

// ---- rows a backend cannot read ------------------------------------------------------------

/// The scope of [`assert_repairs_keep_version_and_expiry`]'s slots.
pub const REPAIR_SCOPE: &str = "repair";
/// The namespace of [`assert_repairs_keep_version_and_expiry`]'s slots: `live` and `expired`.
pub const REPAIR_NAMESPACE: &str = "Repair";

/// Every change `store`'s log holds that `filter` matches, oldest first, read page by page.
pub async fn read_all_changes(
    store: &dyn Store,
    filter: &ChangeFilter,
) -> Result<Vec<crate::Change>, Error> {
    read_changes_after(store, 0, filter).await
}

/// For backends whose change log keeps a retention watermark: `store`'s log had every change
/// up to `trimmed_through` removed, holds `kept` changes after it, and ends at `head`. A reader
/// behind the watermark is told; one at it reads every change kept; the head is not behind
/// it. Panics with what broke (or if `trimmed_through` is 0: nothing was removed).
pub async fn assert_trimmed_log(store: &dyn Store, trimmed_through: u64, kept: usize, head: u64) {
    let behind = trimmed_through
        .checked_sub(1)
        .expect("a log with a change removed");
    match store.read_changes(behind, &ChangeFilter::all(), 10).await {
        Err(Error::ChangesTrimmed {
            after,
            trimmed_through: through,
        }) if (after, through) == (behind, trimmed_through) => {}
        other => panic!(
            "a read after {behind}: expected ChangesTrimmed through {trimmed_through}, got {other:?}"
        ),
    }
    let read = read_changes_after(store, trimmed_through, &ChangeFilter::all())
        .await
        .expect("a read from the watermark");
    assert_eq!(read.len(), kept, "the changes kept: {read:?}");
    assert_eq!(store.last_change().await.expect("the log's head"), head);
}

/// Every change after `after` passing `filter`, read page by page.
pub async fn read_changes_after(
    store: &dyn Store,
    mut after: u64,
    filter: &ChangeFilter,
) -> Result<Vec<crate::Change>, Error> {
    let mut all = Vec::new();
    loop {
        let page = store.read_changes(after, filter, 512).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = last.seq;
        all.extend(page);
    }
}

/// For backends whose rows can be damaged outside the store (SQL files and servers): a
/// whole-value write (`set_raw`) over a row whose value is unreadable is one version above it
/// and, with the default [`Ttl::Keep`], keeps the row's expiry, as it would over a readable
/// value; a row whose expiry has passed has none to keep.
///
/// Writes two versions with a one-hour TTL to the slots `live` and `expired` of namespace
/// [`REPAIR_NAMESPACE`] in `Scope::execution(REPAIR_SCOPE)`, then calls `break_rows`, which
/// must make both rows' values [`UNREADABLE_VALUE`] and set `expired`'s expiry to 1 (ms
/// after the epoch). Reading `live` then fails with a backend error `E` whose source is a
/// [`RowError`](crate::backend::rows::RowError) naming the row's version, expiry and stored text (what
/// a repair needs). A CAS write at the wrong version over the unreadable value is a conflict,
/// even with an op that needs the value after it in the batch. Panics with what broke.
pub async fn assert_repairs_keep_version_and_expiry<E, F, Fut>(store: Arc<dyn Store>, break_rows: F)
where
    E: std::error::Error + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let scope = Scope::execution(REPAIR_SCOPE).expect("a valid scope id");
    let slot = |key: &str| Slot::new(scope.clone(), REPAIR_NAMESPACE, key).expect("a valid slot");
    let slots = [slot("live"), slot("expired")];
    let hour = Ttl::For(Duration::from_secs(3600));
    for s in &slots {
        let h = engine.handle::<u32>(s.clone()).with_ttl(hour);
        h.set(1).await.expect("a first write");
        h.set(2).await.expect("a second write");
    }
    let expiry = store.load_many(&slots).await.expect("a read")[0]
        .expires_at
        .expect("a TTL write sets an expiry");
    let fine = Slot::new(scope.clone(), "Fine", "k").expect("a valid slot");
    engine
        .handle::<u32>(fine.clone())
        .set(9)
        .await
        .expect("a readable slot next to them");
    break_rows().await;
    assert_scope_rows_read_past_unreadable_ones(&*store, &scope, &fine, &slots).await;
    let error = engine
        .handle::<u32>(slots[0].clone())
        .get()
        .await
        .expect_err("reading an unreadable value fails");
    assert_row_error::<E>(&error, 2, Some(expiry));
    // A batch whose first write to the slot replaces the value but conflicts is refused as a
    // conflict: the increment after it is not evaluated (on nothing, or on a placeholder).
    let refused = store
        .commit(Batch {
            writes: vec![
                Write::cas(slots[0].clone(), 99, Some(json!(5))),
                Write::apply(slots[0].clone(), vec![inc(1)]),
            ],
            max_value_bytes: crate::DEFAULT_MAX_VALUE_BYTES,
        })
        .await;
    match refused {
        Ok(CommitOutcome::Conflict(c)) => assert_eq!(
            (c.len(), c[0].expected, c[0].actual),
            (1, 99, 2),
            "the conflict names the unreadable row's version"
        ),
        other => panic!("a conflicting CAS over an unreadable value: {other:?}"),
    }
    for s in &slots {
        let v = engine
            .handle::<u32>(s.clone())
            .set_raw(json!(7))
            .await
            .unwrap_or_else(|e| panic!("set_raw over {s}'s unreadable value: {e}"));
        assert_eq!(v, 3, "{s}: one version above the unreadable row");
    }
    let after = store
        .load_many(&slots)
        .await
        .expect("a read after the repair");
    assert_eq!(
        (
            after[0].value.clone(),
            after[0].version,
            after[0].expires_at
        ),
        (Some(json!(7)), 3, Some(expiry)),
        "Ttl::Keep keeps a live unreadable row's expiry"
    );
    assert_eq!(
        (
            after[1].value.clone(),
            after[1].version,
            after[1].expires_at
        ),
        (Some(json!(7)), 3, None),
        "an expired unreadable row has no expiry to keep"
    );
}

/// The text [`assert_repairs_keep_version_and_expiry`]'s `break_rows` stores as the values.
pub const UNREADABLE_VALUE: &str = "{not json";

/// `error` is a store error of type `E` whose source is a [`RowError`](crate::backend::rows::RowError)
/// naming the readable `version` and `expires_at` and the stored text [`UNREADABLE_VALUE`].
fn assert_row_error<E: std::error::Error + 'static>(
    error: &Error,
    version: u64,
    expires_at: Option<Timestamp>,
) {
    let Error::Store { source, .. } = error else {
        panic!("an unreadable value is a store error: {error:?}");
    };
    let Some(backend) = source.downcast_ref::<E>() else {
        panic!("not a {}: {error:?}", std::any::type_name::<E>());
    };
    let row = std::error::Error::source(backend)
        .and_then(|s| s.downcast_ref::<crate::backend::rows::RowError>());
    let Some(row) = row else {
        panic!("the backend's error has the row's error as its source: {error:?}");
    };
    assert_eq!(
        (row.version, row.expires_at, row.raw.as_deref()),
        (Some(version), Some(expires_at), Some(UNREADABLE_VALUE)),
        "the error carries the readable version, expiry and stored text: {error:?}"
    );
}

/// [`Store::load_rows`] over a scope whose `broken` rows are unreadable: `fine` still
/// reads, and each broken row is its own error naming its slot (what an export reports).
async fn assert_scope_rows_read_past_unreadable_ones(
    store: &dyn Store,
    scope: &Scope,
    fine: &Slot,
    broken: &[Slot],
) {
    let rows = store
        .load_rows(Some(scope))
        .await
        .expect("a scope with unreadable rows still reads row by row");
    let whole = store
        .load_rows(None)
        .await
        .expect("the whole store reads row by row");
    assert_eq!(
        format!("{rows:?}"),
        format!("{whole:?}"),
        "the store holds this scope alone: both reads return its rows"
    );
    let mut readable = Vec::new();
    let mut named = Vec::new();
    for row in rows {
        match row {
            Ok((slot, record)) => readable.push((
                slot.namespace().to_owned(),
                slot.key().to_owned(),
                record.value,
            )),
            Err(Error::Store { slot: Some(s), .. }) => named.push(s),
            Err(other) => panic!("an unreadable row's error names no slot: {other:?}"),
        }
    }
    assert_eq!(
        readable,
        [(
            fine.namespace().to_owned(),
            fine.key().to_owned(),
            Some(json!(9))
        )],
        "the readable row comes back"
    );
    named.sort();
    let mut expected = broken.to_vec();
    expected.sort();
    assert_eq!(named, expected, "each unreadable row is named");
}

/// For SQL backends (signed 64-bit version columns): versions stop at
/// [`MAX_VERSION`](crate::backend::rows::MAX_VERSION), one below the column's largest value, so a clear
/// (every live slot one version up) still fits. Restores a slot just below it, writes up to it,
/// checks that the next write is refused, with the backend's version-range error `E`
/// ([`LoadError::version_range`](crate::backend::rows::LoadError::version_range)), and changes nothing,
/// and that a clear still works. Panics with what broke.
pub async fn assert_versions_stop_where_a_clear_still_fits<E: crate::backend::rows::LoadError>(
    store: Arc<dyn Store>,
) {
    use crate::backend::rows::MAX_VERSION;
    let scope = Scope::execution("top").expect("a valid scope id");
    let slot = Slot::new(scope.clone(), "Top", "n").expect("a valid slot");
    let record = crate::Record {
        value: Some(json!(1)),
        version: MAX_VERSION - 1,
        expires_at: None,
    };
    store
        .restore(crate::Restore::new(vec![(slot.clone(), record)]))
        .await
        .expect("a restore just below the top");
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let h = engine.handle::<u64>(slot.clone());
    h.increment(1).await.expect("a write up to the top");
    let refused = h
        .increment(1)
        .await
        .expect_err("a write above the top is refused");
    match &refused {
        Error::Store { source, .. } if source.is::<E>() => assert_eq!(
            source.to_string(),
            E::version_range(MAX_VERSION + 1).to_string(),
            "the refusal names the version"
        ),
        other => panic!("a version above the top is the backend's range error: {other:?}"),
    }
    let at = store.load(&slot).await.expect("a read");
    assert_eq!(
        (at.value, at.version),
        (Some(json!(2)), MAX_VERSION),
        "the refused write changed nothing"
    );
    let cleared = engine
        .scope(scope)
        .clear()
        .await
        .expect("a clear at the top");
    assert_eq!(cleared, 1);
    let at = store.load(&slot).await.expect("a read after the clear");
    assert_eq!(
        (at.value, at.version),
        (None, MAX_VERSION + 1),
        "the clear's tombstone is one version up"
    );
}
