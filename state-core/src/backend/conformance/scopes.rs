//! Scopes: purges and clears that keep versions rising, identities that never collide,
//! whole-scope loads.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    purging_a_scope_keeps_versions_rising,
    clear_tombstones_live_slots,
    slot_identities_never_collide,
    load_scope_returns_every_stored_slot,
    versions_keep_rising_after_purging_an_execution,
    clear_tombstones_every_live_slot_of_one_scope,
    parts_that_collide_when_colon_joined_stay_distinct,
);

async fn purging_a_scope_keeps_versions_rising(env: &Env) -> CheckResult {
    let run = exec("run-1");
    let other = exec("run-2");
    let s = slot(&run, "n");
    for _ in 0..5 {
        commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(env, vec![Write::apply(slot(&run, "m"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(env, vec![Write::apply(slot(&other, "n"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let n = env.store.purge_scope(&run).await.ctx("purge")?;
    ensure!(n == 2, "purge_scope removed {n} rows, expected 2");
    ensure!(
        value(env, &slot(&other, "n")).await? == Some(json!(1)),
        "another scope was purged"
    );
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 6,
        "purged: absent one above its last version (5): {r:?}"
    );
    let never = env.store.load(&slot(&run, "never")).await.ctx("load")?;
    ensure!(
        never.version == 6,
        "a never-written slot of a purged scope reads at the floor: {never:?}"
    );
    for token in [5, 4, 0] {
        let stale = commit(env, vec![Write::cas(s.clone(), token, Some(json!(1)))])
            .await
            .ctx("stale")?;
        ensure!(
            matches!(stale, CommitOutcome::Conflict(_)),
            "a pre-purge token ({token}) matched: {stale:?}"
        );
    }
    commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
        .await
        .ctx("write")?;
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value == Some(json!(1)) && r.version == 7,
        "after purge: {r:?}"
    );
    ensure!(
        env.store.purge_scope(&exec("nothing")).await.ctx("empty")? == 0,
        "empty purge"
    );
    Ok(())
}

async fn clear_tombstones_live_slots(env: &Env) -> CheckResult {
    let (a, b) = (exec("a"), exec("b"));
    for k in ["x", "y", "z"] {
        commit(env, vec![Write::apply(slot(&a, k), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(
        env,
        vec![Write::apply(slot(&a, "z"), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    commit(env, vec![Write::apply(slot(&b, "x"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let n = env.store.clear(&a).await.ctx("clear")?;
    ensure!(n == 2, "clear counted {n}, expected the 2 live slots");
    let r = env.store.load(&slot(&a, "x")).await.ctx("load")?;
    ensure!(r.value.is_none() && r.version == 2, "cleared slot: {r:?}");
    ensure!(
        version(env, &slot(&a, "z")).await? == 2,
        "a tombstone was cleared again"
    );
    ensure!(
        value(env, &slot(&b, "x")).await? == Some(json!(1)),
        "another scope was cleared"
    );
    Ok(())
}

async fn slot_identities_never_collide(env: &Env) -> CheckResult {
    let e = |r: crate::Result<Slot>| r.map_err(|e| e.to_string());
    let s = |r: crate::Result<Scope>| r.map_err(|e| e.to_string());
    let pairs = [
        (
            e(Slot::new(s(Scope::user("a:b", "c"))?, "n", "k"))?,
            e(Slot::new(s(Scope::user("a", "b:c"))?, "n", "k"))?,
        ),
        (
            e(Slot::new(exec("e"), "a:b", "c"))?,
            e(Slot::new(exec("e"), "a", "b:c"))?,
        ),
        (
            e(Slot::new(exec("e:n"), "k", "x"))?,
            e(Slot::new(exec("e"), "n:k", "x"))?,
        ),
        (
            e(Slot::new(s(Scope::object("s", "k"))?, "n", "x"))?,
            e(Slot::new(s(Scope::user("s", "k"))?, "n", "x"))?,
        ),
        (
            e(Slot::new(s(Scope::app("x"))?, "n", "k"))?,
            e(Slot::new(s(Scope::group("x"))?, "n", "k"))?,
        ),
        (
            e(Slot::new(exec("a/b"), "n", "k"))?,
            e(Slot::new(exec("a"), "b/n", "k"))?,
        ),
    ];
    for (a, b) in pairs {
        commit(
            env,
            vec![Write::apply(
                a.clone(),
                vec![Op::set(Path::root(), json!("first"))],
            )],
        )
        .await
        .ctx("a")?;
        commit(
            env,
            vec![Write::apply(
                b.clone(),
                vec![Op::set(Path::root(), json!("second"))],
            )],
        )
        .await
        .ctx("b")?;
        ensure!(
            value(env, &a).await? == Some(json!("first")),
            "{a} and {b} share storage"
        );
        ensure!(version(env, &a).await? == 1, "{a} and {b} share a version");
    }
    Ok(())
}

async fn load_scope_returns_every_stored_slot(env: &Env) -> CheckResult {
    let sc = exec("e");
    for k in ["b", "a", "c"] {
        commit(env, vec![Write::apply(slot(&sc, k), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    commit(
        env,
        vec![Write::apply(slot(&sc, "c"), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    let other = Slot::new(sc.clone(), "Other", "z").map_err(|e| e.to_string())?;
    commit(env, vec![Write::apply(other, vec![inc(1)])])
        .await
        .ctx("write")?;
    let all = env
        .store
        .load_scope(&sc, Some("Conf"))
        .await
        .ctx("load_scope")?;
    let keys: Vec<(&str, u64, bool)> = all
        .iter()
        .map(|(k, r)| (k.key.as_str(), r.version, r.value.is_some()))
        .collect();
    ensure!(
        keys == [("a", 1, true), ("b", 1, true), ("c", 2, false)],
        "load_scope: {keys:?}"
    );
    let whole = env.store.load_scope(&sc, None).await.ctx("all")?;
    ensure!(whole.len() == 4, "without a namespace filter");
    // Row by row (what an export reads): the same rows, for the scope and for the store.
    let second = exec("f");
    commit(env, vec![Write::apply(slot(&second, "k"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let rows = |rows: Vec<crate::Result<(Slot, crate::Record)>>| {
        rows.into_iter()
            .map(|r| {
                r.map(|(s, r)| {
                    (
                        s.scope().clone(),
                        s.namespace().to_owned(),
                        s.key().to_owned(),
                        r,
                    )
                })
            })
            .collect::<crate::Result<Vec<_>>>()
    };
    let scoped = rows(env.store.load_rows(Some(&sc)).await.ctx("load_rows")?).ctx("a row")?;
    let expected: Vec<_> = whole
        .into_iter()
        .map(|(k, r)| (sc.clone(), k.namespace, k.key, r))
        .collect();
    ensure!(scoped == expected, "load_rows(scope): {scoped:?}");
    let all = rows(env.store.load_rows(None).await.ctx("load_rows(None)")?).ctx("a row")?;
    ensure!(
        all.len() == 5 && all.iter().filter(|r| r.0 == second).count() == 1,
        "load_rows(None) returns every stored slot of the store: {all:?}"
    );
    Ok(())
}

async fn versions_keep_rising_after_purging_an_execution(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let run = exec("run-1");
    let other = exec("run-2");
    let h = engine.handle::<u32>(slot(&run, "n"));
    let never = engine
        .handle::<u32>(slot(&run, "never"))
        .with_initial(&0)
        .unwrap();
    let keep = engine.handle::<u32>(slot(&other, "n"));
    for _ in 0..5 {
        h.increment(1).await.unwrap();
    }
    keep.set(1).await.unwrap();
    let token = h.get_versioned().await.unwrap().version;
    assert_eq!(token, 5);
    assert_eq!(engine.purge_execution("run-1").await.unwrap(), 1);
    let after = h.get_versioned().await.unwrap();
    assert_eq!(
        (after.value, after.version),
        (None, 6),
        "purged: absent one above its last version"
    );
    assert_eq!(
        keep.get().await.unwrap(),
        Some(1),
        "other executions untouched"
    );
    // The latest token from before the purge never matches again.
    assert!(matches!(
        h.set_if(token, 1).await,
        Err(Error::VersionMismatch { .. })
    ));
    assert!(matches!(
        h.delete_if(token).await,
        Err(Error::VersionMismatch { .. })
    ));
    assert_eq!(
        h.set_if(6, 1).await.unwrap(),
        7,
        "the floor is the current version"
    );
    assert_eq!(h.increment(1).await.unwrap(), 2);
    assert_eq!(h.get_versioned().await.unwrap().version, 8);
    // Slots of the purged scope never written read at the floor, without `initial`.
    let v = never.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (None, 6));
    assert_eq!(never.set(1).await.unwrap(), 7);
    Ok(())
}

async fn clear_tombstones_every_live_slot_of_one_scope(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let a = exec("a");
    let b = exec("b");
    let ha = engine.handle::<u32>(slot(&a, "x"));
    let ha2 = engine.handle::<u32>(slot(&a, "y"));
    let hb = engine.handle::<u32>(slot(&b, "x"));
    ha.set(1).await.unwrap();
    ha2.set(1).await.unwrap();
    ha2.delete().await.unwrap();
    hb.set(1).await.unwrap();
    assert_eq!(engine.clear(&a).await.unwrap(), 1, "only live slots");
    assert_eq!(ha.get_versioned().await.unwrap().version, 2);
    assert_eq!(ha.get().await.unwrap(), None);
    assert_eq!(
        ha2.get_versioned().await.unwrap().version,
        2,
        "tombstone untouched"
    );
    assert_eq!(hb.get().await.unwrap(), Some(1));
    Ok(())
}

async fn parts_that_collide_when_colon_joined_stay_distinct(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let pairs = [
        (
            Slot::new(Scope::user("a:b", "c").unwrap(), "ns", "k").unwrap(),
            Slot::new(Scope::user("a", "b:c").unwrap(), "ns", "k").unwrap(),
        ),
        (
            Slot::new(exec("e"), "a:b", "c").unwrap(),
            Slot::new(exec("e"), "a", "b:c").unwrap(),
        ),
        (
            Slot::new(exec("e:ns"), "k", "x").unwrap(),
            Slot::new(exec("e"), "ns:k", "x").unwrap(),
        ),
        (
            Slot::new(Scope::object("svc", "k").unwrap(), "n", "x").unwrap(),
            Slot::new(Scope::user("svc", "k").unwrap(), "n", "x").unwrap(),
        ),
        (
            Slot::new(Scope::app("x").unwrap(), "n", "k").unwrap(),
            Slot::new(Scope::group("x").unwrap(), "n", "k").unwrap(),
        ),
    ];
    for (a, b) in pairs {
        assert_ne!(a, b);
        let ha = engine.handle::<String>(a.clone());
        let hb = engine.handle::<String>(b.clone());
        ha.set("first".into()).await.unwrap();
        hb.set("second".into()).await.unwrap();
        assert_eq!(
            ha.get().await.unwrap().as_deref(),
            Some("first"),
            "{a} vs {b}"
        );
        assert_eq!(
            hb.get().await.unwrap().as_deref(),
            Some("second"),
            "{a} vs {b}"
        );
        assert_eq!(ha.get_versioned().await.unwrap().version, 1);
    }
    Ok(())
}
