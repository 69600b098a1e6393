//! What the library tells an operator: [`tracing`](https://docs.rs/tracing) spans and
//! events, and — with the `metrics` feature — counters and histograms through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! The library installs no subscriber and no recorder: a service wires its own (`cargo run
//! --example observability` wires `tracing-subscriber` and a Prometheus exporter). A healthy
//! store's write path emits nothing at `INFO` or above: one commit is a `DEBUG` span. What
//! needs an operator's eye — an `update` that gave up, a store error the committer gave up on,
//! a consumer that missed trimmed changes — is a `WARN`; clears and purges are `INFO`.
//!
//! **Values never appear** in any span, event or label: not a written value, not an error's
//! message (serde errors quote values) — only the error's class
//! ([`Error::class`](crate::Error::class)). Scope ids and keys appear as span and event
//! fields as [`TraceIds`] says (ids can be personal data: hash or omit them); namespaces
//! (the code's struct names) appear as they are. None of them is ever a metric label
//! (unbounded cardinality).
//!
//! # Spans and events (target `state`)
//!
//! | span or event message | level | fields |
//! |---|---|---|
//! | span `state.commit` (every commit through an [`Engine`](crate::Engine)) | DEBUG | `kind` (one scope kind, else `mixed`), `scope` (the batch's one scope), `namespace` and `key` (one slot), `slots`, `ops` (op names: `cas`, `increment`…), `outcome` (`committed`, `conflict`, `error`), `version` (one slot, committed), `error` (its class) |
//! | `update conflicted, retrying` | DEBUG | `kind`, `scope`, `namespace`, `key`, `attempt`, `backoff_us` |
//! | `update gave up` | WARN | `kind`, `scope`, `namespace`, `key`, `attempts` |
//! | `scope cleared`, `scope purged` | INFO | `kind`, `scope`, `count` |
//! | `expired slots purged` | INFO (DEBUG when none) | `count` |
//! | span `state.group_commit` (SQL stores: one transaction) | DEBUG | `backend`, `callers`, `slots`, `versions`, `path`, `statements`, `bytes`, `retries`, `duration_us`, `outcome`, `error` |
//! | span `state.admin` (SQL stores: a clear, purge or restore) | DEBUG | `backend`, `op`, `count`, `retries`, `outcome`, `error` |
//! | `store busy, retrying` | DEBUG | `backend`, `class`, `waited_ms`, `backoff_us` |
//! | `store error, gave up` | WARN | `backend`, `class`, `waited_ms` |
//! | `commit outcome unknown` | WARN | `backend`, `class` (the connection was lost during `COMMIT`) |
//! | `reconnected` | INFO | `backend` (PostgreSQL, after a lost connection) |
//! | `wal checkpoint` | DEBUG | `wal_pages`, `complete` (SQLite) |
//! | `change log trimmed` | DEBUG | `backend`, `retention_s` |
//! | `consumer acknowledged` | DEBUG | `consumer`, `seq` |
//! | `trigger handled a change` | DEBUG | `consumer`, `seq` |
//! | `trigger handler failed, retrying` | WARN | `consumer`, `seq`, `error`, `failures` |
//! | `changes trimmed before the consumer read them` | WARN | `consumer`, `after`, `trimmed_through` |
//!
//! # Metrics (feature `metrics`)
//!
//! Every label is a small fixed set: `kind` (a scope kind or `mixed`), `outcome`, `class` (an
//! error class), `backend` (`sqlite`, `postgres`), `op`; and `consumer`, the name the code
//! gives a consumer or trigger (a handful per service, never data).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `state_commits_total` | counter | `kind`, `outcome` | commits through an engine |
//! | `state_commit_seconds` | histogram | `outcome` | how long one commit in [`EngineConfig::commit_timing`](crate::EngineConfig::commit_timing) took (default 1 in 8), queue and retries included |
//! | `state_update_conflicts_total` | counter | `kind` | `update` attempts that met another writer |
//! | `state_update_retries_total` | counter | `kind` | `update` attempts run again after one |
//! | `state_update_exhausted_total` | counter | `kind` | `update`s that gave up |
//! | `state_group_commits_total` | counter | `backend`, `outcome` | SQL store transactions of caller commits |
//! | `state_group_callers` | histogram | `backend` | caller commits merged into one transaction |
//! | `state_group_slots` | histogram | `backend` | slots one transaction touched |
//! | `state_group_seconds` | histogram | `backend` | one transaction, its retries included |
//! | `state_store_retries_total` | counter | `backend`, `class` | transactions run again after a safe failure |
//! | `state_store_errors_total` | counter | `backend`, `class` | transactions the store gave up on |
//! | `state_bytes_written_total` | counter | `backend` | JSON bytes of the versions written |
//! | `state_admin_total` | counter | `backend`, `op`, `outcome` | clears, purges, restores |
//! | `state_reconnects_total` | counter | `backend` | connections re-opened after a loss |
//! | `state_wal_checkpoints_total` | counter | | SQLite checkpoints the store ran |
//! | `state_change_log_trims_total` | counter | `backend` | retention runs over the change log |
//! | `state_consumer_lag` | gauge | `consumer` | changes in the log after the consumer's acknowledged cursor |
//! | `state_trigger_handled_total` | counter | `consumer` | changes a trigger's handler completed |
//! | `state_trigger_failures_total` | counter | `consumer` | handler calls that failed (and are retried) |
//!
//! [`describe_metrics`] gives each its unit and help text (Prometheus' `# HELP` lines).
//!
//! Install the recorder before the engine's first commit: an engine registers its commit
//! metrics' handles with the recorder in place then (one registry lookup per commit would
//! cost more than a memory store's commit), and keeps them.

use std::fmt;

use tracing::Span;
use tracing::field::{Empty, display};

use crate::scope::{Scope, Slot};
use crate::store::{CommitOutcome, Write, WriteKind};

/// How scope ids and keys appear in spans and events (never in metric labels).
///
/// ```
/// use state_core::{EngineConfig, TraceIds};
/// // The same id hashes to the same field in every process holding this key, so an
/// // operator can follow one user's commits without seeing who it is.
/// let config = EngineConfig::default().trace_ids(TraceIds::hashed(*b"sixteen byte key"));
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceIds {
    /// As they are.
    #[default]
    Plain,
    /// As `h:` and 16 hex digits of SipHash-2-4 under this key: stable across processes that
    /// share the key, not reversible without it (a dictionary of likely ids needs the key).
    Hashed {
        /// The hash's key: keep it secret, share it between the processes to correlate.
        key: [u8; 16],
    },
    /// Left out: the field reads `-`.
    Omitted,
}

impl TraceIds {
    /// Hashes ids under `key` (see [`TraceIds::Hashed`]).
    pub const fn hashed(key: [u8; 16]) -> Self {
        TraceIds::Hashed { key }
    }

    /// How `id` appears in a field.
    pub fn show<'a>(&'a self, id: &'a str) -> Shown<'a> {
        Shown {
            policy: self,
            id,
            sub: None,
        }
    }

    /// How a scope's id (`id` or `id/sub`) appears in a field.
    pub fn scope<'a>(&'a self, scope: &'a Scope) -> Shown<'a> {
        let (id, sub) = scope.parts();
        Shown {
            policy: self,
            id,
            sub,
        }
    }
}

/// An id as a [`TraceIds`] policy shows it (see [`TraceIds::show`]).
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a> {
    policy: &'a TraceIds,
    id: &'a str,
    sub: Option<&'a str>,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            TraceIds::Plain => match self.sub {
                Some(sub) => write!(f, "{}/{sub}", self.id),
                None => f.write_str(self.id),
            },
            TraceIds::Hashed { key } => {
                use std::hash::Hasher;
                let mut h = siphasher::sip::SipHasher24::new_with_key(key);
                h.write(self.id.as_bytes());
                if let Some(sub) = self.sub {
                    // 0xff occurs in no UTF-8 text: (`a/b`, `c`) and (`a`, `b/c`) differ.
                    h.write_u8(0xff);
                    h.write(sub.as_bytes());
                }
                write!(f, "h:{:016x}", h.finish())
            }
            TraceIds::Omitted => f.write_str("-"),
        }
    }
}

/// Logs at `level` with a slot's fields (`kind`, `scope`, `namespace`, `key`) under `ids`,
/// then the given fields and message.
macro_rules! slot_event {
    ($level:ident, $ids:expr, $slot:expr, $($rest:tt)+) => {{
        let slot: &$crate::Slot = $slot;
        let ids: &$crate::TraceIds = $ids;
        ::tracing::$level!(
            target: "state",
            kind = slot.scope().kind().as_str(),
            scope = %ids.scope(slot.scope()),
            namespace = slot.namespace(),
            key = %ids.show(slot.key()),
            $($rest)+
        )
    }};
}
pub(crate) use slot_event;

/// The scope kinds of a set of slots: none, one, or several (`mixed`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kinds {
    None,
    One(crate::scope::ScopeKind),
    Mixed,
}

impl Kinds {
    /// The kinds of `slots`.
    pub(crate) fn of<'a>(mut slots: impl Iterator<Item = &'a Slot>) -> Kinds {
        let Some(first) = slots.next() else {
            return Kinds::None;
        };
        let kind = first.scope().kind();
        if slots.all(|s| s.scope().kind() == kind) {
            Kinds::One(kind)
        } else {
            Kinds::Mixed
        }
    }

    /// The `kind` label: the one scope kind, `mixed` or `none`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kinds::None => "none",
            Kinds::One(kind) => kind.as_str(),
            Kinds::Mixed => "mixed",
        }
    }
}

/// A `metrics` macro call (`__metric!(counter!(…).increment(1))`) when state-core's
/// `metrics` feature is on; nothing otherwise (the arguments are not evaluated). The SQL
/// stores' crates use it too, so one feature turns every metric on.
#[cfg(feature = "metrics")]
#[macro_export]
#[doc(hidden)]
macro_rules! __metric {
    ($($t:tt)*) => { $crate::__metrics::$($t)* };
}

/// A `metrics` macro call when state-core's `metrics` feature is on; nothing otherwise.
#[cfg(not(feature = "metrics"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __metric {
    ($($t:tt)*) => {
        ()
    };
}

/// Registers every metric's unit and help text with the installed recorder (call it once,
/// after installing one). Without the `metrics` feature there are none.
pub fn describe_metrics() {
    #[cfg(feature = "metrics")]
    for (name, kind, unit, help) in METRICS {
        let unit = match *unit {
            "seconds" => Some(metrics::Unit::Seconds),
            "bytes" => Some(metrics::Unit::Bytes),
            _ => None,
        };
        match kind {
            MetricKind::Counter => match unit {
                Some(u) => metrics::describe_counter!(*name, u, *help),
                None => metrics::describe_counter!(*name, *help),
            },
            MetricKind::Gauge => metrics::describe_gauge!(*name, *help),
            MetricKind::Histogram => match unit {
                Some(u) => metrics::describe_histogram!(*name, u, *help),
                None => metrics::describe_histogram!(*name, *help),
            },
        }
    }
}

/// What a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// It only rises.
    Counter,
    /// It moves both ways.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// Every metric the library records (feature `metrics`): name, kind, unit (`""`: a count)
/// and help text — the table of the [module docs](self).
pub const METRICS: &[(&str, MetricKind, &str, &str)] = &[
    (
        "state_commits_total",
        MetricKind::Counter,
        "",
        "Commits through an engine, by scope kind and outcome.",
    ),
    (
        "state_commit_seconds",
        MetricKind::Histogram,
        "seconds",
        "Time of a sample of the commits through an engine (one in EngineConfig::commit_timing), queue and retries included.",
    ),
    (
        "state_update_conflicts_total",
        MetricKind::Counter,
        "",
        "update attempts that met another writer.",
    ),
    (
        "state_update_retries_total",
        MetricKind::Counter,
        "",
        "update attempts run again after a conflict.",
    ),
    (
        "state_update_exhausted_total",
        MetricKind::Counter,
        "",
        "update calls that gave up after every attempt conflicted.",
    ),
    (
        "state_group_commits_total",
        MetricKind::Counter,
        "",
        "SQL store transactions of caller commits, by outcome.",
    ),
    (
        "state_group_callers",
        MetricKind::Histogram,
        "",
        "Caller commits merged into one transaction.",
    ),
    (
        "state_group_slots",
        MetricKind::Histogram,
        "",
        "Slots one transaction touched.",
    ),
    (
        "state_group_seconds",
        MetricKind::Histogram,
        "seconds",
        "Time of one transaction of caller commits, retries included.",
    ),
    (
        "state_store_retries_total",
        MetricKind::Counter,
        "",
        "Transactions run again after a safe failure, by error class.",
    ),
    (
        "state_store_errors_total",
        MetricKind::Counter,
        "",
        "Transactions the store gave up on, by error class.",
    ),
    (
        "state_bytes_written_total",
        MetricKind::Counter,
        "bytes",
        "JSON bytes of the versions written.",
    ),
    (
        "state_admin_total",
        MetricKind::Counter,
        "",
        "Clears, purges and restores, by op and outcome.",
    ),
    (
        "state_reconnects_total",
        MetricKind::Counter,
        "",
        "Store connections re-opened after a loss.",
    ),
    (
        "state_wal_checkpoints_total",
        MetricKind::Counter,
        "",
        "SQLite WAL checkpoints the store ran.",
    ),
    (
        "state_change_log_trims_total",
        MetricKind::Counter,
        "",
        "Retention runs over the change log.",
    ),
    (
        "state_consumer_lag",
        MetricKind::Gauge,
        "",
        "Changes in the log after a consumer's acknowledged cursor.",
    ),
    (
        "state_trigger_handled_total",
        MetricKind::Counter,
        "",
        "Changes a trigger's handler completed.",
    ),
    (
        "state_trigger_failures_total",
        MetricKind::Counter,
        "",
        "Trigger handler calls that failed (they are retried).",
    ),
];

/// The `outcome` field and label of a commit's result.
pub(crate) fn outcome_of(result: &crate::Result<CommitOutcome>) -> &'static str {
    match result {
        Ok(CommitOutcome::Committed(_)) => "committed",
        Ok(CommitOutcome::Conflict(_)) => "conflict",
        Err(_) => "error",
    }
}

/// The `state.commit` span of a batch of `writes`, if a subscriber wants it.
pub(crate) fn commit_span(ids: &TraceIds, writes: &[Write]) -> Option<Span> {
    let span = tracing::debug_span!(
        target: "state",
        "state.commit",
        kind = Empty,
        scope = Empty,
        namespace = Empty,
        key = Empty,
        slots = writes.len(),
        ops = Empty,
        outcome = Empty,
        version = Empty,
        error = Empty,
    );
    if span.is_disabled() {
        return None;
    }
    describe_writes(&span, ids, writes);
    Some(span)
}

fn describe_writes(span: &Span, ids: &TraceIds, writes: &[Write]) {
    span.record("kind", Kinds::of(writes.iter().map(|w| &w.slot)).label());
    if let Some(first) = writes.first() {
        let scope = first.slot.scope();
        if writes.iter().all(|w| w.slot.scope() == scope) {
            span.record("scope", display(ids.scope(scope)));
        }
        if writes.len() == 1 {
            span.record("namespace", first.slot.namespace());
            span.record("key", display(ids.show(first.slot.key())));
        }
    }
    let mut ops: Vec<&str> = Vec::new();
    for w in writes {
        let names: Vec<&'static str> = match &w.kind {
            WriteKind::Cas { value: Some(_), .. } => vec!["cas"],
            WriteKind::Cas { value: None, .. } => vec!["cas_delete"],
            WriteKind::Apply { ops, .. } => ops.iter().map(|op| op.kind.name()).collect(),
        };
        for name in names {
            if !ops.contains(&name) {
                ops.push(name);
            }
        }
    }
    span.record("ops", ops.join(","));
}

/// Records a commit's result on its span.
pub(crate) fn record_commit_span(span: &Span, result: &crate::Result<CommitOutcome>) {
    span.record("outcome", outcome_of(result));
    match result {
        Ok(CommitOutcome::Committed(o)) if o.len() == 1 => {
            span.record("version", o[0].version);
        }
        Err(e) => {
            span.record("error", e.class());
        }
        Ok(_) => {}
    }
}

/// The engine's commit metrics (feature `metrics`; without it, nothing): `state_commits_total`
/// for every commit, `state_commit_seconds` for one in [`EngineConfig::commit_timing`]
/// (a clock read and a histogram record cost more than a memory store's whole commit).
///
/// The handles are registered with the recorder in place at the engine's first commit, not
/// looked up in it on every commit.
///
/// [`EngineConfig::commit_timing`]: crate::EngineConfig::commit_timing
#[derive(Debug)]
pub(crate) struct CommitMeter {
    #[cfg(feature = "metrics")]
    handles: std::sync::OnceLock<commit_handles::Handles>,
    #[cfg(feature = "metrics")]
    every: u32,
}

/// A commit being metered: its `kind` label and, when this one is timed, when it started.
pub(crate) struct Metering {
    #[cfg(feature = "metrics")]
    kind: usize,
    #[cfg(feature = "metrics")]
    started: Option<std::time::Instant>,
}

impl CommitMeter {
    /// A meter timing one commit in `every` (at least 1) on each thread.
    pub(crate) fn new(every: u32) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = every;
        CommitMeter {
            #[cfg(feature = "metrics")]
            handles: std::sync::OnceLock::new(),
            #[cfg(feature = "metrics")]
            every: every.max(1),
        }
    }

    /// Starts metering a commit of `writes`.
    pub(crate) fn start(&self, writes: &[Write]) -> Metering {
        #[cfg(not(feature = "metrics"))]
        let _ = writes;
        Metering {
            #[cfg(feature = "metrics")]
            kind: commit_handles::kind_index(writes.iter().map(|w| &w.slot)),
            #[cfg(feature = "metrics")]
            started: commit_handles::timed(self.every).then(std::time::Instant::now),
        }
    }

    /// Counts the commit `metering` started, and records its duration if it was timed.
    pub(crate) fn finish(&self, metering: Metering, result: &crate::Result<CommitOutcome>) {
        #[cfg(not(feature = "metrics"))]
        let _ = (metering, result);
        #[cfg(feature = "metrics")]
        {
            let handles = self.handles.get_or_init(commit_handles::Handles::register);
            let o = commit_handles::outcome_index(result);
            handles.commits[metering.kind][o].increment(1);
            if let Some(started) = metering.started {
                handles.seconds[o].record(started.elapsed().as_secs_f64());
            }
        }
    }
}

/// The `kind` and `outcome` label values of the commit metrics, and their handles.
#[cfg(feature = "metrics")]
mod commit_handles {
    use std::cell::Cell;

    use metrics::{Counter, Histogram};

    use super::{CommitOutcome, Kinds, Slot, static_keys};
    use crate::scope::ScopeKind;

    /// The handles of every label combination, registered at once.
    #[derive(Debug)]
    pub(super) struct Handles {
        pub(super) commits: [[Counter; 3]; 8],
        pub(super) seconds: [Histogram; 3],
    }

    impl Handles {
        pub(super) fn register() -> Self {
            metrics::with_recorder(|r| Handles {
                commits: std::array::from_fn(|k| {
                    std::array::from_fn(|o| {
                        r.register_counter(&static_keys::COMMITS[k][o], &static_keys::META)
                    })
                }),
                seconds: std::array::from_fn(|o| {
                    r.register_histogram(&static_keys::COMMIT_SECONDS[o], &static_keys::META)
                }),
            })
        }
    }

    /// The index of the commit's `kind` label in [`static_keys::COMMITS`].
    pub(super) fn kind_index<'a>(slots: impl Iterator<Item = &'a Slot>) -> usize {
        match Kinds::of(slots) {
            Kinds::One(ScopeKind::Execution) => 0,
            Kinds::One(ScopeKind::Workflow) => 1,
            Kinds::One(ScopeKind::Object) => 2,
            Kinds::One(ScopeKind::User) => 3,
            Kinds::One(ScopeKind::App) => 4,
            Kinds::One(ScopeKind::Group) => 5,
            Kinds::Mixed => 6,
            Kinds::None => 7,
        }
    }

    /// The index of the commit's `outcome` label.
    pub(super) fn outcome_index(result: &crate::Result<CommitOutcome>) -> usize {
        match result {
            Ok(CommitOutcome::Committed(_)) => 0,
            Ok(CommitOutcome::Conflict(_)) => 1,
            Err(_) => 2,
        }
    }

    thread_local! {
        /// Commits this thread has started (through any engine).
        static STARTED: Cell<u32> = const { Cell::new(0) };
    }

    /// Whether this commit is one of the `every` this thread times.
    pub(super) fn timed(every: u32) -> bool {
        STARTED.with(|n| {
            let next = n.get().wrapping_add(1);
            n.set(next);
            next % every == 0
        })
    }
}

/// The keys of the commit metrics, every label combination, built at compile time.
#[cfg(feature = "metrics")]
mod static_keys {
    use metrics::{Key, Label, Level, Metadata};

    pub(super) static META: Metadata<'static> =
        Metadata::new("state", Level::INFO, Some(module_path!()));

    macro_rules! key {
        ($name:literal $(, $l:literal = $v:literal)*) => {
            {
                const LABELS: &[Label] = &[$(Label::from_static_parts($l, $v)),*];
                Key::from_static_parts($name, LABELS)
            }
        };
    }

    macro_rules! by_outcome {
        ($name:literal, $kind:literal) => {
            [
                key!($name, "kind" = $kind, "outcome" = "committed"),
                key!($name, "kind" = $kind, "outcome" = "conflict"),
                key!($name, "kind" = $kind, "outcome" = "error"),
            ]
        };
    }

    /// `state_commits_total` by kind and outcome (as [`commit_handles`] indexes them).
    pub(super) static COMMITS: [[Key; 3]; 8] = [
        by_outcome!("state_commits_total", "execution"),
        by_outcome!("state_commits_total", "workflow"),
        by_outcome!("state_commits_total", "object"),
        by_outcome!("state_commits_total", "user"),
        by_outcome!("state_commits_total", "app"),
        by_outcome!("state_commits_total", "group"),
        by_outcome!("state_commits_total", "mixed"),
        by_outcome!("state_commits_total", "none"),
    ];

    /// `state_commit_seconds` by outcome.
    pub(super) static COMMIT_SECONDS: [Key; 3] = [
        key!("state_commit_seconds", "outcome" = "committed"),
        key!("state_commit_seconds", "outcome" = "conflict"),
        key!("state_commit_seconds", "outcome" = "error"),
    ];
}
