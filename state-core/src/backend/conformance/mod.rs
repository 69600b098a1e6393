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
//! typed handles, and reports what broke; [`run`] collects every failure (an error or a
//! panic) instead of stopping at the first, so a broken store shows which rules it breaks.
//!
//! The checks are grouped by concern, one module each: versions, batches, ops, limits,
//! expiry, scopes, admin, changes, engine (updates, events, handles), concurrency. What only
//! a SQL backend can be asked (rows damaged outside the store, a column's integer range) is
//! in the `assert_*` functions, which such a backend calls from its own tests.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{
    Batch, Clock, CommitOutcome, Engine, EngineConfig, ManualClock, NumKind, Op, Path, RetryPolicy,
    Scope, Slot, Store, Timestamp, Write,
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

/// `checks!(a, b)` in a concern's module: its checks, in the order they run.
macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        pub(super) fn checks() -> Vec<(&'static str, super::CheckFn)> {
            vec![$((stringify!($name), |env| Box::pin($name(env)) as _)),*]
        }
    };
}

mod admin;
mod batches;
mod changes;
mod concurrency;
mod engine;
mod expiry;
mod limits;
mod ops;
mod scopes;
mod sql;
mod versions;
mod wrap;

pub use changes::{assert_trimmed_log, read_all_changes, read_changes_after};
pub use sql::{
    REPAIR_NAMESPACE, REPAIR_SCOPE, UNREADABLE_VALUE, assert_repairs_keep_version_and_expiry,
    assert_versions_stop_where_a_clear_still_fits,
};

/// Every check, in the order they run.
fn all() -> Vec<(&'static str, CheckFn)> {
    let concerns = [
        versions::checks(),
        batches::checks(),
        ops::checks(),
        limits::checks(),
        expiry::checks(),
        scopes::checks(),
        admin::checks(),
        changes::checks(),
        engine::checks(),
        concurrency::checks(),
    ];
    concerns.into_iter().flatten().collect()
}

/// The names of every check, in the order they run.
pub fn check_names() -> Vec<&'static str> {
    all().into_iter().map(|(name, _)| name).collect()
}

/// Runs every check on fresh stores from `factory`. Returns how many passed, or every failure.
pub async fn run(factory: &dyn StoreFactory) -> Result<usize, Vec<Failure>> {
    let mut failures = Vec::new();
    let checks = all();
    for (name, check) in &checks {
        let clock = ManualClock::new(T0);
        let store = factory.make(Arc::new(clock.clone())).await;
        let config = EngineConfig::default().retry(
            RetryPolicy::new(1_000)
                .with_backoff(Duration::from_micros(50), Duration::from_millis(2)),
        );
        let engine = Engine::with_config(store.clone(), config);
        let env = Env {
            store,
            engine,
            clock,
        };
        // A check may also panic (an `assert!` on what it observed): that is its failure.
        let outcome = AssertUnwindSafe(check(&env)).catch_unwind().await;
        let message = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(panic) => panic_message(panic.as_ref()),
        };
        failures.push(Failure {
            check: name,
            message,
        });
    }
    if failures.is_empty() {
        Ok(checks.len())
    } else {
        Err(failures)
    }
}

/// The text of a check's panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied());
    format!("panicked: {}", text.unwrap_or("(no message)"))
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

/// What every concern's module uses.
mod prelude {
    pub(super) use std::collections::BTreeMap;
    pub(super) use std::sync::Arc;
    pub(super) use std::sync::atomic::Ordering;
    pub(super) use std::time::Duration;

    pub(super) use futures::StreamExt;
    pub(super) use serde_json::{Value, json};

    pub(super) use super::wrap::Wrapped;

    pub(super) use super::changes::read_all_changes;
    pub(super) use super::{CheckResult, Ctx, Env, T0, commit, exec, inc, slot, value, version};
    pub(super) use crate::{
        Abort, Batch, ChangeFilter, Clock, CommitOutcome, Engine, EngineConfig, Error, Event,
        NumKind, Op, Page, Path, RetryPolicy, Scope, ScopeKind, Slot, SlotKey, Store, Timestamp,
        Ttl, Write,
    };
}

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
    env.store.commit(Batch::new(writes)).await
}

async fn version(env: &Env, s: &Slot) -> Result<u64, String> {
    Ok(env.store.load(s).await.ctx("load")?.version)
}

async fn value(env: &Env, s: &Slot) -> Result<Option<Value>, String> {
    Ok(env.store.load(s).await.ctx("load")?.value)
}
