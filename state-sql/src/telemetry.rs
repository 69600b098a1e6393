//! The committer's spans, events and metrics, and what a backend's writer adds to them: the
//! list, their fields and labels are in `state_core::telemetry`. No value and no error
//! message appears (an error's [`BackendError::class`] does).

use std::time::{Duration, Instant};

use tracing::Span;
use tracing::field::Empty;

use crate::backend::{Backend, BackendError};
use crate::committer::Admin;

/// The `state.group_commit` span of one transaction of `callers` caller commits touching
/// `slots` slots. A root span: the transaction serves every caller in it, not the one whose
/// task happens to run it.
pub(crate) fn group_span<B: Backend>(callers: usize, slots: usize) -> Span {
    tracing::debug_span!(
        target: "state",
        parent: None,
        "state.group_commit",
        backend = B::KIND,
        callers,
        slots,
        versions = Empty,
        path = Empty,
        statements = Empty,
        bytes = Empty,
        retries = Empty,
        duration_us = Empty,
        outcome = Empty,
        error = Empty,
    )
}

/// What a writer did in the transaction of the current `state.group_commit` span: which
/// `path` it took (`one_call`, `read_then_write`…), how many `statements` (calls to the
/// database) it ran, and the `versions` and JSON `bytes` it wrote. Counts the bytes (metric
/// `state_bytes_written_total`).
pub fn wrote<B: Backend>(path: &'static str, statements: usize, versions: usize, bytes: usize) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("path", path);
        span.record("statements", statements);
        span.record("versions", versions);
        span.record("bytes", bytes);
    }
    let _ = bytes;
    state_core::__metric!(
        counter!("state_bytes_written_total", "backend" => B::KIND).increment(bytes as u64)
    );
}

/// Records how a group's transaction ended on its span and in the metrics.
pub(crate) fn group_done<B: Backend, T>(
    span: &Span,
    result: &Result<T, B::Error>,
    (callers, slots): (usize, usize),
    retries: u32,
    started: Instant,
) {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    let took = started.elapsed();
    if !span.is_disabled() {
        span.record("retries", retries);
        span.record("duration_us", took.as_micros() as u64);
        span.record("outcome", outcome);
        if let Err(e) = result {
            span.record("error", e.class());
        }
    }
    let _ = (callers, slots, outcome, took);
    state_core::__metric!(
        counter!("state_group_commits_total", "backend" => B::KIND, "outcome" => outcome)
            .increment(1)
    );
    state_core::__metric!(
        histogram!("state_group_callers", "backend" => B::KIND).record(callers as f64)
    );
    state_core::__metric!(
        histogram!("state_group_slots", "backend" => B::KIND).record(slots as f64)
    );
    state_core::__metric!(
        histogram!("state_group_seconds", "backend" => B::KIND).record(took.as_secs_f64())
    );
}

/// The `op` field and label of an admin write.
fn admin_op(op: &Admin) -> &'static str {
    match op {
        Admin::Clear(_) => "clear",
        Admin::Purge(_) => "purge",
        Admin::PurgeExpired => "purge_expired",
        Admin::Restore(_) => "restore",
    }
}

/// The `state.admin` span of an admin write.
pub(crate) fn admin_span<B: Backend>(op: &Admin) -> Span {
    tracing::debug_span!(
        target: "state",
        "state.admin",
        backend = B::KIND,
        op = admin_op(op),
        count = Empty,
        retries = Empty,
        outcome = Empty,
        error = Empty,
    )
}

/// Records how an admin write ended on its span and in the metrics.
pub(crate) fn admin_done<B: Backend>(
    span: &Span,
    op: &Admin,
    result: &Result<u64, state_core::Error>,
    retries: u32,
) {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    if !span.is_disabled() {
        span.record("retries", retries);
        span.record("outcome", outcome);
        match result {
            Ok(n) => span.record("count", n),
            Err(e) => span.record("error", e.class()),
        };
    }
    let _ = (op, B::KIND);
    state_core::__metric!(
        counter!("state_admin_total", "backend" => B::KIND, "op" => admin_op(op), "outcome" => outcome)
            .increment(1)
    );
}

/// A transaction that failed safely runs again after `pause`.
pub(crate) fn retrying<B: Backend>(e: &B::Error, waited: Duration, pause: Duration) {
    tracing::debug!(
        target: "state",
        backend = B::KIND,
        class = e.class(),
        waited_ms = waited.as_millis() as u64,
        backoff_us = pause.as_micros() as u64,
        "store busy, retrying"
    );
    state_core::__metric!(
        counter!("state_store_retries_total", "backend" => B::KIND, "class" => e.class())
            .increment(1)
    );
}

/// The committer gave up on a transaction after `waited`.
pub(crate) fn gave_up<B: Backend>(e: &B::Error, waited: Duration) {
    tracing::warn!(
        target: "state",
        backend = B::KIND,
        class = e.class(),
        waited_ms = waited.as_millis() as u64,
        "store error, gave up"
    );
    state_core::__metric!(
        counter!("state_store_errors_total", "backend" => B::KIND, "class" => e.class())
            .increment(1)
    );
}

/// A transaction whose `COMMIT` may or may not have applied (the connection was lost).
pub(crate) fn outcome_unknown<B: Backend>(e: &B::Error) {
    tracing::warn!(
        target: "state",
        backend = B::KIND,
        class = e.class(),
        "commit outcome unknown"
    );
    state_core::__metric!(
        counter!("state_store_errors_total", "backend" => B::KIND, "class" => e.class())
            .increment(1)
    );
}

/// The change log's retention ran, keeping `keep`.
pub(crate) fn trimmed<B: Backend>(keep: Duration) {
    tracing::debug!(
        target: "state",
        backend = B::KIND,
        retention_s = keep.as_secs(),
        "change log trimmed"
    );
    state_core::__metric!(
        counter!("state_change_log_trims_total", "backend" => B::KIND).increment(1)
    );
}

/// A connection re-opened after a loss.
pub fn reconnected<B: Backend>() {
    tracing::info!(target: "state", backend = B::KIND, "reconnected");
    state_core::__metric!(counter!("state_reconnects_total", "backend" => B::KIND).increment(1));
}
