//! The change log: every commit, in order, readable page by page.

#[allow(unused_imports)]
use super::prelude::*;

checks!(the_change_log_holds_every_commit_in_order,);

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
