//! The change log: every commit, in order, readable page by page.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    the_change_log_holds_every_commit_in_order,
    the_change_log_resumes_pages_and_gives_each_slots_history,
    a_slots_history_spans_merged_commits_and_purges_and_pages_from_any_position,
    a_scope_filter_tells_kinds_apart,
    a_change_stream_goes_on_after_a_store_failure_and_misses_nothing,
    a_panicking_trigger_handler_is_retried_and_a_store_without_a_log_refuses_triggers,
    stop_and_wait_leaves_no_handler_call_running,
    a_quiet_filter_moves_its_cursor_past_what_it_looked_at,
);

/// Commits to `execution:log` what the change-log checks read: an increment of `a`; one
/// batch writing `a` twice and `b` once; a refused stale CAS; a delete of `b`; a clear.
/// Returns the scope, `a`, the log's head before, and the log of the scope after.
async fn logged_commits(env: &Env) -> Result<(Scope, Slot, u64, Vec<crate::Change>), String> {
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
    Ok((sc, a, start, log))
}

async fn the_change_log_holds_every_commit_in_order(env: &Env) -> CheckResult {
    let (_, _, start, log) = logged_commits(env).await?;
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
    ensure!(
        seen.len() == want.len(),
        "the log holds {seen:?}, expected {want:?}"
    );
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
    Ok(())
}

async fn the_change_log_resumes_pages_and_gives_each_slots_history(env: &Env) -> CheckResult {
    let (_, a, start, log) = logged_commits(env).await?;
    ensure!(log.len() == 6, "the log holds {log:?}");
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

/// A slot's history holds every version it was ever given, newest first, whatever wrote it:
/// concurrent increments a store may merge into one transaction, a clear, writes after a
/// purge of its scope and after a purge of it expired. Pages resume from the last change
/// read, from another slot's change, or from any position.
async fn a_slots_history_spans_merged_commits_and_purges_and_pages_from_any_position(
    env: &Env,
) -> CheckResult {
    let sc = exec("history");
    let (a, b) = (slot(&sc, "a"), slot(&sc, "b"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&env.store);
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            for _ in 0..4 {
                let writes = vec![
                    Write::apply(a.clone(), vec![inc(1)]),
                    Write::apply(b.clone(), vec![inc(1)]),
                ];
                store.commit(Batch::new(writes)).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.map_err(|e| format!("task: {e}"))?.ctx("increment")?;
    }
    env.store.clear(&sc).await.ctx("clear")?;
    commit(env, vec![Write::apply(a.clone(), vec![inc(1)])])
        .await
        .ctx("increment after the clear")?;
    env.store.purge_scope(&sc).await.ctx("purge")?;
    let ttl = Ttl::For(Duration::from_secs(1));
    commit(
        env,
        vec![Write::apply(a.clone(), vec![inc(1)]).with_ttl(ttl)],
    )
    .await
    .ctx("increment after the purge")?;
    env.clock.advance(Duration::from_secs(2));
    env.store.purge_expired().await.ctx("purge_expired")?;
    commit(env, vec![Write::apply(a.clone(), vec![inc(1)])])
        .await
        .ctx("increment after the expiry")?;
    let all = env
        .store
        .slot_history(&a, None, 1000)
        .await
        .ctx("slot_history")?;
    // 32 increments, the clear's tombstone, three more increments.
    ensure!(all.len() == 36, "{} versions: {all:?}", all.len());
    ensure!(
        all.iter().all(|c| c.slot == a)
            && all
                .windows(2)
                .all(|w| w[0].seq > w[1].seq && w[0].version > w[1].version),
        "a's history, newest first: {all:?}"
    );
    let values: Vec<Option<Value>> = all.iter().take(4).map(|c| c.value.clone()).collect();
    ensure!(
        values == [Some(json!(1)), Some(json!(1)), Some(json!(1)), None],
        "the newest versions (after the expiry, the purge, the clear; the tombstone): {values:?}"
    );
    history_pages(env, &a, &b, &all).await
}

/// Pages of `a`'s history `all` read back: from the last change of each page, from `b`'s
/// changes and from a position between two of `a`'s, and with a limit of 0.
async fn history_pages(env: &Env, a: &Slot, b: &Slot, all: &[crate::Change]) -> CheckResult {
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = env.store.slot_history(a, before, 5).await.ctx("page")?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        paged.extend(page);
    }
    ensure!(paged == all, "paged by 5: {paged:?}");
    let of_b = env
        .store
        .slot_history(b, None, 1000)
        .await
        .ctx("b's history")?;
    ensure!(
        of_b.len() == 33,
        "b: 32 increments and a tombstone: {of_b:?}"
    );
    for position in of_b
        .iter()
        .map(|c| c.seq)
        .chain([all[10].seq - 1, all[20].seq])
    {
        let page = env
            .store
            .slot_history(a, Some(position), 3)
            .await
            .ctx("from a position")?;
        let want: Vec<_> = all.iter().filter(|c| c.seq < position).take(3).collect();
        ensure!(
            page.iter().collect::<Vec<_>>() == want,
            "below {position}: {page:?}, want {want:?}"
        );
    }
    let none = env.store.slot_history(a, None, 0).await.ctx("limit 0")?;
    ensure!(none.is_empty(), "a limit of 0: {none:?}");
    Ok(())
}

/// A scope filter is the scope's kind too: `app:log` is not `execution:log`, also when the
/// filter's own `kind` is left unset.
async fn a_scope_filter_tells_kinds_apart(env: &Env) -> CheckResult {
    let (sc, _, start, _) = logged_commits(env).await?;
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
    Ok(())
}

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

/// A change stream (and a typed watch on it) goes on after a store failure, from where it
/// was: it reports the error and misses no version (a watch gives out no sequence numbers,
/// so a stream that ended could not be resumed without a gap).
async fn a_change_stream_goes_on_after_a_store_failure_and_misses_nothing(
    env: &Env,
) -> CheckResult {
    let store = Arc::new(Wrapped::new(env.store.clone()));
    let engine = Engine::with_config(
        store.clone(),
        EngineConfig::default().change_poll(Duration::from_millis(5)),
    );
    let h = engine.handle::<u64>(slot(&exec("e"), "n"));
    let mut feed = engine.changes(0, ChangeFilter::all());
    h.increment(1).await.unwrap();
    assert_eq!(feed.next().await.unwrap().unwrap().version, 1);
    store.log_failures.store(2, Ordering::SeqCst);
    h.increment(1).await.unwrap();
    h.increment(1).await.unwrap();
    let mut errors = 0;
    let mut versions = Vec::new();
    while versions.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("the stream stalled")
        {
            Some(Ok(c)) => versions.push(c.version),
            Some(Err(e)) => {
                assert!(e.to_string().contains("connection lost"), "{e}");
                errors += 1;
            }
            None => panic!("the stream ended after a store failure"),
        }
    }
    assert_eq!((errors, versions), (2, vec![2, 3]));
    Ok(())
}

/// A trigger whose handler panics keeps running: the panic is a failure (counted, retried),
/// and the change is handled once the handler succeeds. A store without a change log refuses
/// a trigger at once instead of running a task that retries for ever.
async fn a_panicking_trigger_handler_is_retried_and_a_store_without_a_log_refuses_triggers(
    env: &Env,
) -> CheckResult {
    let engine = env.engine.clone();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let trigger = engine
        .trigger(
            "panicky",
            ChangeFilter::all(),
            |_| true,
            move |_c| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "the first call panics");
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    engine
        .handle::<u64>(slot(&exec("e"), "n"))
        .increment(1)
        .await
        .unwrap();
    for _ in 0..2000 {
        if trigger.handled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        (trigger.handled(), trigger.failures(), trigger.is_finished()),
        (1, 1, false)
    );
    trigger.stop_and_wait().await;

    let none = Engine::new(Wrapped::new(env.store.clone()).without_log());
    let e = none
        .trigger(
            "t",
            ChangeFilter::all(),
            |_| true,
            |_c| async { Ok::<(), String>(()) },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no change log"), "{e}");
    Ok(())
}

/// `stop_and_wait` returns only once the trigger's task has ended: no handler call of it is
/// still running (its future has been dropped).
async fn stop_and_wait_leaves_no_handler_call_running(env: &Env) -> CheckResult {
    struct Running(Arc<std::sync::atomic::AtomicI32>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let engine = env.engine.clone();
    let running = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let counter = running.clone();
    let trigger = engine
        .trigger(
            "slow",
            ChangeFilter::all(),
            |_| true,
            move |_c| {
                counter.fetch_add(1, Ordering::SeqCst);
                let guard = Running(counter.clone());
                async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(guard);
                    Ok::<(), String>(())
                }
            },
        )
        .await
        .unwrap();
    engine
        .handle::<u64>(slot(&exec("e"), "n"))
        .increment(1)
        .await
        .unwrap();
    for _ in 0..2000 {
        if running.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(running.load(Ordering::SeqCst), 1, "the handler is running");
    trigger.stop_and_wait().await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "a handler call outlived the stop"
    );
    Ok(())
}

/// A stream whose filter matches nothing for a long stretch moves its cursor past the changes
/// it looked at (not from its last match on every wake, which would rescan ever more of the
/// log), and still sees the next change that matches.
async fn a_quiet_filter_moves_its_cursor_past_what_it_looked_at(env: &Env) -> CheckResult {
    let store = Arc::new(Wrapped::new(env.store.clone()));
    let engine = Engine::with_config(
        store.clone(),
        EngineConfig::default().change_poll(Duration::from_millis(2)),
    );
    let quiet = slot(&exec("e"), "quiet");
    let busy = engine.handle::<u64>(slot(&exec("e"), "busy"));
    let mut feed = engine.changes(0, ChangeFilter::slot(&quiet));
    let next = tokio::spawn(async move { feed.next().await });
    for _ in 0..200 {
        busy.increment(1).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Sequence numbers may have gaps (PostgreSQL's): count the changes, not the numbers.
    let log = read_all_changes(env.store.as_ref(), &ChangeFilter::all())
        .await
        .ctx("read_all_changes")?;
    let threshold = log[149].seq;
    let furthest = store.cursors.lock().unwrap().iter().copied().max();
    assert!(
        furthest.is_some_and(|c| c >= threshold),
        "the cursor stayed behind: furthest read after {furthest:?}, the 150th change is {threshold}"
    );
    engine.handle::<u64>(quiet).increment(1).await.unwrap();
    let c = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("the quiet slot's change was not seen")
        .unwrap()
        .unwrap()
        .unwrap();
    let head = env.store.last_change().await.ctx("last_change")?;
    assert_eq!((c.seq, c.version), (head, 1));
    Ok(())
}
