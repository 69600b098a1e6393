//! The group committer's machinery for backends (`state_core::backend`).

/// A group-committing backend's committer lets ready callers queue before it takes a group,
/// and returns at once when nobody else is ready.
#[tokio::test(flavor = "current_thread")]
async fn gather_yield_lets_ready_callers_queue_first() {
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(64);
    // Alone: nothing queues, one yield.
    state_core::backend::gather_yield(&rx).await;
    assert_eq!(rx.len(), 0);
    // Ten callers ready to run (as the callers answered by the last group are), each
    // queueing a commit, yielding, and queueing another: all twenty get in before the group
    // is taken, the second ten on a later yield (the queue kept growing).
    for i in 0..10 {
        let tx = tx.clone();
        tokio::spawn(async move {
            tx.send(i).await.unwrap();
            tokio::task::yield_now().await;
            tx.send(10 + i).await.unwrap();
        });
    }
    assert_eq!(rx.len(), 0, "spawned tasks have not run yet");
    state_core::backend::gather_yield(&rx).await;
    assert_eq!(rx.len(), 20);
}
