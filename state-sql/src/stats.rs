//! What a SQL store counts: the shared committer's counters, and each backend's own beside
//! them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The shared engine's counters, kept by the store and its committer.
#[derive(Default, Debug)]
pub struct Counters {
    groups: AtomicU64,
    batches: AtomicU64,
    max_group: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    /// A group of `size` caller batches is about to run.
    pub(crate) fn group(&self, size: u64) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.batches.fetch_add(size, Ordering::Relaxed);
        self.max_group.fetch_max(size, Ordering::Relaxed);
    }

    /// Groups run so far.
    pub(crate) fn groups(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }

    /// A transaction or read runs again after a safe failure (a lock, a lost connection).
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of what a store did, for tests and monitoring: the shared committer's, and the
/// backend's own (`backend`, whose fields read through this value too: `stats.checkpoints`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats<X> {
    /// Group transactions run for caller commits (committed or not).
    pub groups: u64,
    /// Caller batches committed or refused in them.
    pub batches: u64,
    /// The largest number of caller batches merged into one transaction.
    pub max_group: u64,
    /// Transactions and reads run again after a safe failure (another connection's lock, a
    /// deadlock, a lost race, a lost connection).
    pub retries: u64,
    /// Requests waiting for the committer right now.
    pub queued: usize,
    /// What the backend counts.
    pub backend: X,
}

impl<X> Stats<X> {
    pub(crate) fn new(c: &Counters, queued: usize, backend: X) -> Self {
        Stats {
            groups: c.groups.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            max_group: c.max_group.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queued,
            backend,
        }
    }
}

impl<X> std::ops::Deref for Stats<X> {
    type Target = X;

    fn deref(&self) -> &X {
        &self.backend
    }
}
