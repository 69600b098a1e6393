//! Group commit without a dedicated task: the caller that finds the committer idle runs it.
//!
//! A backend that merges concurrent commits keeps a queue and one committer that owns the
//! write connection. Running that committer in a task of its own costs every commit two
//! thread wake-ups (the caller wakes the task, the task wakes the caller) on top of the
//! database's own. [`Leader`] removes them when writes do not overlap: a caller queues its
//! request, and if nobody is running the committer it runs one turn of it in its own task (it
//! *leads*). Whatever else happens goes to a task spawned on the runtime that created the
//! [`Leader`], so the committer never depends on one caller:
//!
//! - **Work left after the turn** (requests queued meanwhile) is served by a spawned task
//!   until the queue is empty; the caller gets on with its answer.
//! - **A caller that arrives while a turn runs inline moves that turn to a spawned task**
//!   before it waits: the turn then goes on even if the leading caller stops polling it (a
//!   `select!` on a pinned future, a `buffered` stream whose consumer awaits something else).
//!   So no caller ever waits for a future only another caller's task could poll. Nor for a
//!   poll in progress (a turn may run a statement on its thread inside one): a caller that
//!   finds the turn being polled leaves a request, and the leader moves the turn when its
//!   poll returns.
//! - **A leader dropped mid-turn cancels nothing:** the turn (other callers' batches among
//!   it) goes, as it is, to a spawned task that finishes it.
//! - **Callers on another runtime, or on none, never lead:** they hand the turn to the
//!   [`Leader`]'s runtime, which owns the committer's timers and connections.
//! - **A turn that panics is dropped** with the committer, as a committer task that panicked
//!   would end: the panic reaches the leading caller, every waiting caller hears that the
//!   committer is gone.
//!
//! So a lone writer's commit runs start to end in its own task; under load the committer runs
//! as a task, as a dedicated one would. One thing a task did that this does not: a leader
//! that stops polling mid-turn, with no caller arriving after it, leaves the turn where it is
//! until it is polled again, dropped, or another caller comes — a transaction the turn had
//! open (a multi-statement one) stays open meanwhile, as in any unpolled sqlx future.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Poll, Waker};

use tokio::sync::oneshot;

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

type Turn<C> = Pin<Box<dyn Future<Output = C> + Send>>;

/// A turn a caller runs in its own task, and that caller's waker (to tell it the turn was
/// moved: the turn then wakes the task that runs it instead).
struct Inline<C> {
    /// Which turn: a caller polls only its own.
    id: u64,
    turn: Turn<C>,
    leader: Option<Waker>,
}

/// Holds a [`GroupCommitter`] while nobody runs it, and runs it in the task of the caller
/// that finds it so (see the [module docs](self)).
///
/// A backend's call queues its request (a channel the committer reads), then awaits
/// [`Leader::wait`] with the receiver of its answer.
pub struct Leader<C> {
    /// The committer while nobody runs it.
    parked: Mutex<Option<C>>,
    /// The turn a caller runs in its own task, while it runs. Locked while that caller polls
    /// it, taken from there by a caller that moves it to a task.
    inline: Mutex<Option<Inline<C>>>,
    /// Set by a caller that found the inline turn being polled: a poll may take as long as
    /// the statement it runs, which a caller must not wait for, so the leader moves the turn
    /// itself when its poll returns.
    move_requested: AtomicBool,
    /// Numbers the inline turns.
    turns: AtomicU64,
    /// The runtime the committer belongs to (its timers, its connections).
    runtime: tokio::runtime::Handle,
}

impl<C> std::fmt::Debug for Leader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: GroupCommitter> Leader<C> {
    /// Parks an idle `committer` until a caller runs it. The committer belongs to the current
    /// runtime: only its tasks run it inline, and spawned work goes there.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(committer: C) -> Arc<Self> {
        Arc::new(Leader {
            parked: Mutex::new(Some(committer)),
            inline: Mutex::new(None),
            move_requested: AtomicBool::new(false),
            turns: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// After queueing a request: runs the committer for one turn in this task if nobody runs
    /// it (or hands it to the runtime's tasks, see the [module docs](self)), then waits for
    /// `answer`. An error means the committer is gone (its runtime shut down, or it panicked).
    ///
    /// Call it with no `.await` between queueing and this call's first poll: a caller
    /// cancelled in between would leave a request queued with the committer parked, to be
    /// served only with the next caller's.
    pub async fn wait<T>(
        self: &Arc<Self>,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, oneshot::error::RecvError> {
        if let Some(id) = self.start() {
            self.lead(id).await;
        }
        answer.await
    }

    /// Starts the committer for a caller that just queued a request: returns the id of the
    /// turn the caller is to run inline, if it is to lead.
    fn start(self: &Arc<Self>) -> Option<u64> {
        let home = self.is_home();
        let mut parked = lock(&self.parked);
        match parked.take() {
            Some(committer) if home => {
                // The turn is in the inline slot before the committer is seen as taken: a
                // caller that finds it taken always finds the turn to move.
                let id = self.turns.fetch_add(1, Ordering::Relaxed);
                // A request left from an earlier turn concerns nothing running now.
                self.move_requested.store(false, Ordering::SeqCst);
                *lock(&self.inline) = Some(Inline {
                    id,
                    turn: Box::pin(committer.serve()),
                    leader: None,
                });
                Some(id)
            }
            Some(committer) => {
                drop(parked);
                self.spawn_serving(committer);
                None
            }
            None => {
                drop(parked);
                // Running elsewhere: make sure it is not a turn only its caller can poll.
                self.request_move();
                None
            }
        }
    }

    /// Whether the caller runs on the committer's runtime.
    fn is_home(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == self.runtime.id())
    }

    /// Polls turn `id` in the inline slot until it finishes, unless another caller moves it
    /// to a task meanwhile.
    async fn lead(self: &Arc<Self>, id: u64) {
        let mut guard = Leading {
            leader: self,
            id,
            finished: false,
        };
        let finished = std::future::poll_fn(|cx| {
            let mut inline = lock(&self.inline);
            let running = match inline.as_mut() {
                Some(running) if running.id == id => running,
                // Moved to a task (the slot is empty, or holds a later caller's turn).
                _ => return Poll::Ready(None),
            };
            if !running
                .leader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                running.leader = Some(cx.waker().clone());
            }
            let polled = catch_unwind(AssertUnwindSafe(|| running.turn.as_mut().poll(cx)));
            match polled {
                Ok(Poll::Ready(committer)) => {
                    *inline = None;
                    Poll::Ready(Some(committer))
                }
                Ok(Poll::Pending) => {
                    drop(inline);
                    // A caller that came during the poll asked for the turn to be moved (it
                    // may have found the slot locked, and did not wait).
                    if self.move_requested.swap(false, Ordering::SeqCst) {
                        self.move_inline_turn(Some(id));
                    }
                    Poll::Pending
                }
                Err(panic) => {
                    // The turn panicked: drop it, and the committer with it, as a committer
                    // task that panicked would have ended; the callers waiting hear that it
                    // is gone. Nobody may poll it again.
                    *inline = None;
                    drop(inline);
                    resume_unwind(panic)
                }
            }
        })
        .await;
        guard.finished = true;
        if let Some(committer) = finished {
            self.park_or_serve(committer);
        }
    }

    /// For a caller that found the committer running: moves the turn a caller runs in its
    /// own task, if any, to a spawned task — at once if nobody is polling it, or else by its
    /// leader when that poll returns. Never waits for a poll (it may run a statement).
    fn request_move(self: &Arc<Self>) {
        self.move_requested.store(true, Ordering::SeqCst);
        let moved = match self.inline.try_lock() {
            Ok(mut inline) => inline.take(),
            Err(TryLockError::Poisoned(inline)) => inline.into_inner().take(),
            // Its leader is polling it, and looks at the request when the poll returns.
            Err(TryLockError::WouldBlock) => return,
        };
        self.spawn_moved(moved);
    }

    /// Moves the turn a caller runs in its own task (turn `only`, if given) to a spawned
    /// task. Waits for a poll of it in progress: only for its own leader, who is not polling.
    fn move_inline_turn(self: &Arc<Self>, only: Option<u64>) {
        let moved = {
            let mut inline = lock(&self.inline);
            match inline.as_ref() {
                Some(running) if only.is_none_or(|id| id == running.id) => inline.take(),
                _ => None,
            }
        };
        self.spawn_moved(moved);
    }

    fn spawn_moved(self: &Arc<Self>, moved: Option<Inline<C>>) {
        let Some(Inline { turn, leader, .. }) = moved else {
            return;
        };
        let this = self.clone();
        drop(self.runtime.spawn(async move {
            let committer = turn.await;
            this.park_or_serve(committer);
        }));
        // The turn now wakes the task: the leading caller must look again, or it would wait
        // for a wake-up that goes elsewhere.
        if let Some(waker) = leader {
            waker.wake();
        }
    }

    /// Parks the committer if nothing is queued, or spawns a task that serves until nothing
    /// is. Idleness is checked under the lock a caller takes after queueing, so a request
    /// queued by a caller that found the committer running is always seen here.
    fn park_or_serve(self: &Arc<Self>, committer: C) {
        let mut parked = lock(&self.parked);
        if committer.is_idle() {
            *parked = Some(committer);
        } else {
            drop(parked);
            self.spawn_serving(committer);
        }
    }

    fn spawn_serving(self: &Arc<Self>, mut committer: C) {
        let leader = self.clone();
        drop(self.runtime.spawn(async move {
            loop {
                committer = committer.serve().await;
                let mut parked = lock(&leader.parked);
                if committer.is_idle() {
                    *parked = Some(committer);
                    return;
                }
            }
        }));
    }
}

/// Hands the caller's inline turn to a task if the caller is dropped while it runs.
struct Leading<'a, C: GroupCommitter> {
    leader: &'a Arc<Leader<C>>,
    /// The caller's turn.
    id: u64,
    /// The turn finished or was moved: nothing to hand over.
    finished: bool,
}

impl<C: GroupCommitter> Drop for Leading<'_, C> {
    fn drop(&mut self) {
        if !self.finished {
            // Only this caller's turn: the slot may hold a later one by now.
            self.leader.move_inline_turn(Some(self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::mpsc;

    type Queue = mpsc::UnboundedSender<(u64, oneshot::Sender<u64>)>;

    /// The request that makes the test committer panic.
    const PANIC: u64 = 666;

    /// Answers each queued number with its double, one per turn, after a pause; counts the
    /// turns, and those run outside any spawned task (in a caller's `block_on`).
    struct Doubler {
        rx: mpsc::UnboundedReceiver<(u64, oneshot::Sender<u64>)>,
        turns: Arc<AtomicUsize>,
        inline_turns: Arc<AtomicUsize>,
        pause: Duration,
        /// How long a turn blocks its thread before the pause (a statement run in the poll).
        block: Duration,
        /// Whether a turn is blocking its thread right now.
        blocking: Arc<AtomicBool>,
    }

    impl GroupCommitter for Doubler {
        async fn serve(mut self) -> Self {
            if let Ok((n, reply)) = self.rx.try_recv() {
                assert_ne!(n, PANIC, "the committer panics");
                self.turns.fetch_add(1, Ordering::SeqCst);
                if tokio::task::try_id().is_none() {
                    self.inline_turns.fetch_add(1, Ordering::SeqCst);
                }
                if !self.block.is_zero() {
                    self.blocking.store(true, Ordering::SeqCst);
                    std::thread::sleep(self.block);
                    self.blocking.store(false, Ordering::SeqCst);
                }
                tokio::time::sleep(self.pause).await;
                let _ = reply.send(n * 2);
            }
            self
        }

        fn is_idle(&self) -> bool {
            self.rx.is_empty()
        }
    }

    struct Setup {
        leader: Arc<Leader<Doubler>>,
        tx: Queue,
        turns: Arc<AtomicUsize>,
        inline_turns: Arc<AtomicUsize>,
        blocking: Arc<AtomicBool>,
    }

    impl Setup {
        fn new(pause_ms: u64) -> Self {
            Self::blocking(pause_ms, Duration::ZERO)
        }

        /// Each turn also blocks its thread for `block` in its first poll.
        fn blocking(pause_ms: u64, block: Duration) -> Self {
            let (tx, rx) = mpsc::unbounded_channel();
            let (turns, inline_turns, blocking) = (Arc::default(), Arc::default(), Arc::default());
            let leader = Leader::new(Doubler {
                rx,
                turns: Arc::clone(&turns),
                inline_turns: Arc::clone(&inline_turns),
                pause: Duration::from_millis(pause_ms),
                block,
                blocking: Arc::clone(&blocking),
            });
            Setup {
                leader,
                tx,
                turns,
                inline_turns,
                blocking,
            }
        }

        fn turns(&self) -> (usize, usize) {
            (
                self.turns.load(Ordering::SeqCst),
                self.inline_turns.load(Ordering::SeqCst),
            )
        }

        fn queue(&self, n: u64) -> oneshot::Receiver<u64> {
            let (reply, answer) = oneshot::channel();
            self.tx.send((n, reply)).unwrap();
            answer
        }

        async fn call(&self, n: u64) -> u64 {
            let answer = self.queue(n);
            self.leader.wait(answer).await.unwrap()
        }

        /// Waits (bounded) until the committer is parked, and says whether it is idle.
        async fn parked_idle(&self) -> bool {
            for _ in 0..1000 {
                if let Some(c) = lock(&self.leader.parked).as_ref() {
                    return c.is_idle();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("the committer was never parked");
        }
    }

    /// Polls `fut` once and leaves it pending.
    async fn poll_once<F: Future + Unpin>(fut: &mut F) {
        std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut *fut).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await
    }

    /// A turn's poll may block its thread (a statement run on a database handle): a caller
    /// arriving meanwhile must not block its own thread waiting for that poll to end; the
    /// leader moves the turn to a task when the poll returns — here the leading caller then
    /// stops polling, and the turn must still go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_arriving_during_a_blocking_poll_does_not_wait_for_it() {
        let s = Setup::blocking(20, Duration::from_millis(300));
        let first = s.queue(1);
        let leader = Arc::clone(&s.leader);
        // Polled once (the turn blocks in it), then left unpolled.
        let leading = tokio::spawn(async move {
            let mut fut = Box::pin(async move { leader.wait(first).await.unwrap() });
            poll_once(&mut fut).await;
            Some(fut) // handed back unpolled (not awaited here)
        });
        for _ in 0..1000 {
            if s.blocking.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(s.blocking.load(Ordering::SeqCst), "the turn never blocked");
        let second = s.queue(2);
        let mut waiting = Box::pin(s.leader.wait(second));
        poll_once(&mut waiting).await;
        assert!(
            s.blocking.load(Ordering::SeqCst),
            "the caller's first poll waited for the leader's"
        );
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert_eq!(
            answer
                .expect("the turn stayed with a leader nobody polls")
                .unwrap(),
            4
        );
        let unpolled = leading.await.unwrap().expect("handed back");
        assert_eq!(unpolled.await, 2);
        assert!(s.parked_idle().await);
        assert_eq!(s.turns().0, 2);
    }

    #[tokio::test]
    async fn a_lone_caller_runs_the_turn_in_its_own_task_and_parks_the_committer() {
        let s = Setup::new(0);
        assert_eq!(s.call(21).await, 42);
        assert_eq!(s.call(2).await, 4);
        assert_eq!(s.turns(), (2, 2), "(turns, turns run by the caller)");
        assert!(lock(&s.leader.parked).is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_all_get_answers() {
        let s = Arc::new(Setup::new(0));
        let tasks: Vec<_> = (0..200u64)
            .map(|n| {
                let s = s.clone();
                tokio::spawn(async move { assert_eq!(s.call(n).await, n * 2) })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        for t in tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("a caller was never woken")
        {
            t.unwrap();
        }
        assert_eq!(s.turns().0, 200);
        assert!(s.parked_idle().await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_its_turn_and_the_queue_to_a_task() {
        let s = Setup::new(50);
        let mine = s.queue(1);
        // Another caller's request, queued behind the one the leader serves; that caller
        // only waits (as if it had found the committer running).
        let other = s.queue(5);
        let cancelled = tokio::time::timeout(Duration::from_millis(5), s.leader.wait(mine)).await;
        assert!(cancelled.is_err(), "the turn takes 50 ms");
        assert!(
            lock(&s.leader.parked).is_none(),
            "the turn is still running"
        );
        assert_eq!(other.await.unwrap(), 10);
        assert_eq!(s.turns(), (2, 1));
        assert!(s.parked_idle().await);
    }

    #[tokio::test]
    async fn work_left_after_the_turn_goes_to_a_task() {
        let s = Setup::new(0);
        let second = s.queue(2);
        assert_eq!(s.call(1).await, 2, "queued first, served in the first turn");
        assert_eq!(second.await.unwrap(), 4);
        assert_eq!(s.turns(), (2, 1));
    }

    #[tokio::test]
    async fn a_caller_arriving_during_an_inline_turn_moves_it_to_a_task() {
        let s = Setup::new(20);
        // The leader starts its turn, then is neither polled nor dropped.
        let mut stuck = Box::pin(s.call(1));
        poll_once(&mut stuck).await;
        assert_eq!(s.turns(), (1, 1));
        // Another caller is not held up by it.
        let other = tokio::time::timeout(Duration::from_secs(10), s.call(3)).await;
        assert_eq!(other.expect("waited for an unpolled leader"), 6);
        assert_eq!(stuck.await, 2);
        assert_eq!(s.turns(), (2, 1), "the second turn ran in a task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_polled_after_its_turn_moved_leaves_later_turns_alone() {
        let s = Arc::new(Setup::new(20));
        // L1 starts turn 1, then stalls.
        let mut late = Box::pin(s.call(1));
        poll_once(&mut late).await;
        // A follower moves turn 1 to a task and is answered; the committer is parked again.
        assert_eq!(s.call(3).await, 6);
        assert!(s.parked_idle().await);
        // L2 starts turn 2 in its own task.
        let s2 = s.clone();
        let second = tokio::spawn(async move { s2.call(5).await });
        tokio::task::yield_now().await;
        assert_eq!(s.turns().0, 3, "turn 2 started");
        // L1 is polled at last: it must not run (or steal the wake-ups of) L2's turn.
        assert_eq!(late.await, 2);
        let answer = tokio::time::timeout(Duration::from_secs(10), second).await;
        assert_eq!(
            answer.expect("the second leader was never woken").unwrap(),
            10
        );
    }

    #[tokio::test]
    async fn a_panicking_turn_ends_the_committer_and_every_waiting_caller_hears_it() {
        let s = Arc::new(Setup::new(0));
        let behind = s.queue(2);
        let s2 = s.clone();
        let leader = tokio::spawn(async move {
            let answer = s2.queue(PANIC);
            s2.leader.wait(answer).await
        });
        // `behind` was queued first: served in the first turn, and the panic in the second
        // turn, which ran in a task.
        assert_eq!(behind.await.unwrap(), 4);
        let waited = tokio::time::timeout(Duration::from_secs(10), leader).await;
        match waited.expect("a caller hung on a panicked committer") {
            Ok(answer) => assert!(answer.is_err(), "the committer is gone"),
            Err(e) => assert!(e.is_panic()),
        }
        // Later callers are told at once (the queue's receiver went with the committer).
        assert!(s.tx.is_closed());
        assert!(lock(&s.leader.parked).is_none());
        assert!(lock(&s.leader.inline).is_none());
    }

    #[tokio::test]
    async fn a_turn_that_panics_inline_panics_its_caller_once() {
        let s = Arc::new(Setup::new(0));
        let s2 = s.clone();
        let leader = tokio::spawn(async move {
            let answer = s2.queue(PANIC);
            s2.leader.wait(answer).await
        });
        let err = leader
            .await
            .expect_err("the turn ran in the caller and panicked");
        assert!(err.is_panic());
        let message = err.into_panic();
        let text = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(text.contains("the committer panics"), "{text}");
        assert!(
            s.tx.is_closed(),
            "the committer was dropped, not moved to a task"
        );
        assert!(lock(&s.leader.inline).is_none());
    }

    #[test]
    fn callers_off_the_runtime_never_lead() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let s = runtime.block_on(async { Setup::new(0) });
        // No runtime at all.
        assert_eq!(futures::executor::block_on(s.call(4)), 8);
        // Another runtime, shut down right after.
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(other.block_on(s.call(5)), 10);
        drop(other);
        assert_eq!(
            s.turns(),
            (2, 0),
            "no turn ran outside the committer's runtime"
        );
        assert_eq!(runtime.block_on(s.call(6)), 12);
    }
}
