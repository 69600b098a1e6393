//! Expiry: an expired slot reads as a tombstone that keeps its version; TTLs kept, set or
//! cleared; purges of expired rows never lower a version.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    expired_slots_read_as_tombstones,
    ttl_is_kept_set_or_cleared,
    ttl_keep_or_starts_a_window,
    purging_expired_rows_keeps_versions_rising,
    expired_slots_read_as_absent_and_keep_their_version,
    writes_without_ttl_keep_the_expiry_and_writes_may_set_or_clear_it,
    purging_expired_rows_through_the_engine_keeps_versions_rising,
);

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

async fn expired_slots_read_as_absent_and_keep_their_version(env: &Env) -> CheckResult {
    let (engine, clock) = (env.engine.clone(), env.clock.clone());
    let h = engine
        .handle::<u32>(slot(&exec("e"), "session"))
        .with_initial(&100)
        .unwrap()
        .with_ttl(Ttl::For(Duration::from_secs(60)));
    h.set(1).await.unwrap();
    let rec = h.get_raw().await.unwrap();
    assert_eq!(
        rec.expires_at,
        Some(T0.saturating_add(Duration::from_secs(60)))
    );
    clock.advance(Duration::from_secs(59));
    assert_eq!(h.get().await.unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    let v = h.get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (None, 1),
        "expired: absent, version kept, no initial"
    );
    // CAS against the expired slot uses the kept version; Apply starts from neutral.
    assert_eq!(h.increment(5).await.unwrap(), 5);
    assert_eq!(h.get_versioned().await.unwrap().version, 2);
    Ok(())
}

async fn writes_without_ttl_keep_the_expiry_and_writes_may_set_or_clear_it(
    env: &Env,
) -> CheckResult {
    let (engine, clock) = (env.engine.clone(), env.clock.clone());
    let base = engine.handle::<u32>(slot(&exec("e"), "k"));
    let ttl = base.clone().with_ttl(Ttl::For(Duration::from_secs(10)));
    ttl.set(1).await.unwrap();
    let deadline = T0.saturating_add(Duration::from_secs(10));
    clock.advance(Duration::from_secs(5));
    base.increment(1).await.unwrap(); // no TTL: keeps the expiry
    assert_eq!(base.get_raw().await.unwrap().expires_at, Some(deadline));
    base.update(|v| Ok(v.map(|n| n + 1))).await.unwrap(); // CAS write keeps it too
    assert_eq!(base.get_raw().await.unwrap().expires_at, Some(deadline));
    base.clone().with_ttl(Ttl::Clear).set(9).await.unwrap();
    assert_eq!(base.get_raw().await.unwrap().expires_at, None);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        base.get().await.unwrap(),
        Some(9),
        "cleared TTL: never expires"
    );
    // A write without TTL to an expired slot does not inherit the dead expiry.
    ttl.set(1).await.unwrap();
    clock.advance(Duration::from_secs(11));
    assert_eq!(base.get().await.unwrap(), None);
    base.set(2).await.unwrap();
    assert_eq!(base.get_raw().await.unwrap().expires_at, None);
    assert_eq!(base.get().await.unwrap(), Some(2));
    Ok(())
}

async fn purging_expired_rows_through_the_engine_keeps_versions_rising(env: &Env) -> CheckResult {
    let (engine, clock) = (env.engine.clone(), env.clock.clone());
    let user = Scope::user("shop", "alice").unwrap();
    let short = engine
        .handle::<String>(slot(&user, "token"))
        .with_ttl(Ttl::For(Duration::from_secs(1)));
    let long = engine.handle::<String>(slot(&user, "name"));
    for _ in 0..3 {
        short.set("t".into()).await.unwrap();
    }
    long.set("Alice".into()).await.unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(engine.purge_expired().await.unwrap(), 1);
    assert_eq!(engine.purge_expired().await.unwrap(), 0, "idempotent");
    assert_eq!(
        long.get().await.unwrap().as_deref(),
        Some("Alice"),
        "live rows stay"
    );
    let v = short.get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (None, 4),
        "one above its last version"
    );
    assert!(matches!(
        short.set_if(3, "stale".into()).await,
        Err(Error::VersionMismatch { .. })
    ));
    assert_eq!(short.set("new".into()).await.unwrap(), 5);
    Ok(())
}
