//! Group commit without a dedicated task: the caller that finds the committer idle runs it.
//!
//! A backend that merges concurrent commits keeps a queue and one committer that owns the
//! write connection. Running that committer in a task of its own costs every commit two
//! thread wake-ups (the caller wakes the task, the task wakes the caller) on top of the
//! database's own. [`Leader`] removes them for the common case: a caller queues its request,
//! and if nobody is running the committer it runs it itself, in its own task (it becomes the
//! *leader*). Callers that arrive meanwhile only queue and wait for their answer; the leader
//! merges them into its groups as before.
//!
//! Two rules keep this as safe as a task:
//! - **A leader serves a bounded amount** (one turn of the committer, see
//!   [`GroupCommitter::serve`]). If requests are still queued then, it hands the committer to
//!   a spawned task that serves until the queue is empty, so under load no caller works for
//!   the others indefinitely, and the committer runs as a task, as before.
//! - **Cancelling the leader cancels nothing.** If the leader's future is dropped while the
//!   committer is working (the caller timed out, a `select!` took another branch), the work in
//!   flight (other callers' batches among it) is handed, as it is, to a spawned task that
//!   finishes it. A transaction is never abandoned half-way because a caller went away.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

/// A group committer that [`Leader`] can run in a caller's task or in a spawned one.
pub trait GroupCommitter: Send + Sized + 'static {
    /// Serves queued requests for one turn (a group commit, or one other request), or fewer
    /// if the queue is empty, and returns the committer. It must not wait for requests to
    /// arrive: with nothing queued it returns at once.
    fn serve(self) -> impl Future<Output = Self> + Send + 'static;

    /// Whether nothing is queued (requests the committer has taken but not served count as
    /// queued).
    fn is_idle(&self) -> bool;
}

type Work<C> = Pin<Box<dyn Future<Output = C> + Send>>;

/// Holds a [`GroupCommitter`] while nobody runs it, and runs it in the task of the caller
/// that finds it so (see the [module docs](self)).
///
/// The protocol for a backend's calls: queue the request (a channel the committer reads),
/// then call [`Leader::lead`], then wait for the answer. The committer must have been idle
/// when it was handed to [`Leader::new`].
pub struct Leader<C> {
    parked: Mutex<Option<C>>,
    /// Where to spawn when the caller's own runtime is not known (a drop outside any).
    runtime: tokio::runtime::Handle,
}

impl<C> std::fmt::Debug for Leader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader").finish_non_exhaustive()
    }
}

impl<C: GroupCommitter> Leader<C> {
    /// Parks `committer` until a caller runs it. Spawned work goes to the runtime of the task
    /// that spawns it, or to the current one (this must be called inside a tokio runtime).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(committer: C) -> Arc<Self> {
        Arc::new(Leader {
            parked: Mutex::new(Some(committer)),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// After queueing a request: runs the committer in this task for one turn if nobody runs
    /// it (then parks it, or hands it to a spawned task if requests are still queued). Returns at once
    /// if the committer is running elsewhere: it serves the request queued before this call.
    ///
    /// Must be called with no `.await` between queueing and this call's first poll, or a
    /// cancelled caller could leave a request queued with the committer parked.
    pub async fn lead(self: &Arc<Self>) {
        let Some(committer) = self.take() else {
            return;
        };
        let mut run = Leading {
            leader: self.clone(),
            work: Some(Box::pin(committer.serve())),
        };
        let work = run.work.as_mut().expect("work was just set");
        let committer = work.await;
        run.work = None;
        if let Some(committer) = self.park(committer) {
            // Work remains: a task serves it, this caller gets on with its answer.
            self.spawn(Box::pin(serve_until_idle(self.clone(), committer)));
        }
    }

    fn take(&self) -> Option<C> {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Parks the committer if nothing is queued; otherwise gives it back. Checked under the
    /// lock a caller takes after queueing, so a request queued by a caller that found the
    /// committer running is always seen here.
    fn park(&self, committer: C) -> Option<C> {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        if committer.is_idle() {
            *parked = Some(committer);
            None
        } else {
            Some(committer)
        }
    }

    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send>>) {
        match tokio::runtime::Handle::try_current() {
            Ok(here) => drop(here.spawn(work)),
            Err(_) => drop(self.runtime.spawn(work)),
        }
    }
}

/// Serves until nothing is queued, then parks the committer.
async fn serve_until_idle<C: GroupCommitter>(leader: Arc<Leader<C>>, mut committer: C) {
    loop {
        committer = committer.serve().await;
        if committer.is_idle() {
            match leader.park(committer) {
                None => return,
                Some(c) => committer = c,
            }
        }
    }
}

/// The committer's work while a caller leads; finished by a spawned task if the caller is
/// dropped first.
struct Leading<C: GroupCommitter> {
    leader: Arc<Leader<C>>,
    work: Option<Work<C>>,
}

impl<C: GroupCommitter> Drop for Leading<C> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            let leader = self.leader.clone();
            self.leader.spawn(Box::pin(async move {
                let committer = work.await;
                serve_until_idle(leader, committer).await;
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::{mpsc, oneshot};

    /// Answers each queued number with its double, one per turn, optionally slowly.
    struct Doubler {
        rx: mpsc::UnboundedReceiver<(u64, oneshot::Sender<u64>)>,
        turns: Arc<AtomicUsize>,
        pause: std::time::Duration,
    }

    impl GroupCommitter for Doubler {
        async fn serve(mut self) -> Self {
            if let Ok((n, reply)) = self.rx.try_recv() {
                self.turns.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.pause).await;
                let _ = reply.send(n * 2);
            }
            self
        }

        fn is_idle(&self) -> bool {
            self.rx.is_empty()
        }
    }

    type Setup = (
        Arc<Leader<Doubler>>,
        mpsc::UnboundedSender<(u64, oneshot::Sender<u64>)>,
        Arc<AtomicUsize>,
    );

    fn setup(pause_ms: u64) -> Setup {
        let (tx, rx) = mpsc::unbounded_channel();
        let turns = Arc::new(AtomicUsize::new(0));
        let leader = Leader::new(Doubler {
            rx,
            turns: turns.clone(),
            pause: std::time::Duration::from_millis(pause_ms),
        });
        (leader, tx, turns)
    }

    async fn call(
        leader: &Arc<Leader<Doubler>>,
        tx: &mpsc::UnboundedSender<(u64, oneshot::Sender<u64>)>,
        n: u64,
    ) -> u64 {
        let (reply, answer) = oneshot::channel();
        tx.send((n, reply)).unwrap();
        leader.lead().await;
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn a_lone_caller_runs_the_committer_itself_and_parks_it() {
        let (leader, tx, turns) = setup(0);
        assert_eq!(call(&leader, &tx, 21).await, 42);
        assert_eq!(turns.load(Ordering::SeqCst), 1);
        // Parked again: the next caller can take it.
        assert!(leader.take().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_all_get_answers() {
        let (leader, tx, turns) = setup(0);
        let mut tasks = Vec::new();
        for n in 0..200u64 {
            let (leader, tx) = (leader.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                assert_eq!(call(&leader, &tx, n).await, n * 2);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(turns.load(Ordering::SeqCst), 200);
        // Whoever served last parks it with nothing queued (maybe just after answering).
        let mut parked = None;
        for _ in 0..1000 {
            parked = leader.take();
            if parked.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(parked.expect("the committer is parked once idle").is_idle());
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_its_work_and_the_queue_to_a_task() {
        let (leader, tx, turns) = setup(50);
        // Another caller's request is queued behind the one the leader is serving.
        let (other_reply, other_answer) = oneshot::channel();
        let (mine, _my_answer) = oneshot::channel();
        tx.send((1, mine)).unwrap();
        tx.send((5, other_reply)).unwrap();
        // The leader is dropped while its turn sleeps.
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(5), leader.lead()).await;
        assert!(cancelled.is_err(), "the turn takes 50 ms");
        assert!(leader.take().is_none(), "the committer is still working");
        // The spawned task finishes the turn and serves the queue.
        assert_eq!(other_answer.await.unwrap(), 10);
        assert_eq!(turns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_leader_with_work_left_hands_it_to_a_task_and_returns() {
        let (leader, tx, turns) = setup(0);
        let (a, a_answer) = oneshot::channel();
        let (b, b_answer) = oneshot::channel();
        tx.send((1, a)).unwrap();
        tx.send((2, b)).unwrap();
        leader.lead().await;
        // One turn served here; the second by the spawned task.
        assert_eq!(a_answer.await.unwrap(), 2);
        assert_eq!(b_answer.await.unwrap(), 4);
        assert_eq!(turns.load(Ordering::SeqCst), 2);
    }
}
