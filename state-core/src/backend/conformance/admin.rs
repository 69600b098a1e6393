//! Admin reads and writes: paged listings of keys and scopes, exact restores.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    keys_are_listed_in_pages,
    scopes_are_listed_in_pages,
    stored_scopes_include_tombstone_only_ones,
    restores_are_exact_and_never_lower_a_version,
    keys_are_listed_in_pages_without_tombstones_or_expired_slots,
    scopes_are_listed_in_pages_and_filtered_by_kind,
    collections_give_typed_handles_for_dynamic_keys,
    any_scope_opens_for_admin_access_typed_or_untyped,
);

/// Every key `list_keys` gives for `scope` (and `namespace`), in pages of `limit`: no page
/// holds more, and the listing ends.
async fn keys_page_by_page(
    env: &Env,
    scope: &Scope,
    namespace: Option<&str>,
    limit: usize,
) -> Result<Vec<SlotKey>, String> {
    let mut all = Vec::new();
    let mut after: Option<SlotKey> = None;
    for _ in 0..100 {
        let page = env
            .store
            .list_keys(scope, namespace, after.as_ref(), limit)
            .await
            .ctx("list_keys")?;
        ensure!(
            page.items.len() <= limit,
            "page of {} items",
            page.items.len()
        );
        all.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(all),
        }
    }
    Err(format!("listing {scope} in pages of {limit} does not end"))
}

async fn keys_are_listed_in_pages(env: &Env) -> CheckResult {
    let sc = exec("e");
    for i in 0..25 {
        let s = Slot::new(
            sc.clone(),
            if i % 2 == 0 { "A" } else { "B" },
            format!("k{i:02}"),
        )
        .map_err(|e| e.to_string())?;
        commit(env, vec![Write::apply(s, vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    let dead = Slot::new(sc.clone(), "A", "k00").map_err(|e| e.to_string())?;
    commit(
        env,
        vec![Write::apply(dead, vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    let all = keys_page_by_page(env, &sc, None, 10).await?;
    let mut expected: Vec<SlotKey> = (1..25)
        .map(|i| SlotKey {
            namespace: if i % 2 == 0 { "A" } else { "B" }.into(),
            key: format!("k{i:02}"),
        })
        .collect();
    expected.sort();
    ensure!(
        all == expected,
        "listed keys (ordered by namespace, key; tombstones left out): {all:?}"
    );
    let only_b = env
        .store
        .list_keys(&sc, Some("B"), None, 100)
        .await
        .ctx("namespace")?;
    ensure!(
        only_b.items.len() == 12 && only_b.next.is_none(),
        "namespace filter: {only_b:?}"
    );
    // Pages within one namespace.
    let paged = keys_page_by_page(env, &sc, Some("B"), 5).await?;
    ensure!(paged == only_b.items, "namespace pages: {paged:?}");
    // A cursor outside the namespace: before it lists all of it, after it lists nothing.
    let key = |ns: &str| SlotKey {
        namespace: ns.into(),
        key: "k99".into(),
    };
    let from_a = env
        .store
        .list_keys(&sc, Some("B"), Some(&key("A")), 100)
        .await
        .ctx("before")?;
    ensure!(
        from_a.items == only_b.items,
        "a cursor before the namespace: {from_a:?}"
    );
    let from_c = env
        .store
        .list_keys(&sc, Some("B"), Some(&key("C")), 100)
        .await
        .ctx("after")?;
    ensure!(
        from_c.items.is_empty(),
        "a cursor after the namespace: {from_c:?}"
    );
    ensure!(
        env.store.list_keys(&sc, None, None, 0).await.is_err(),
        "a page size of 0 is refused"
    );
    Ok(())
}

async fn scopes_are_listed_in_pages(env: &Env) -> CheckResult {
    let mut scopes = vec![
        Scope::app("shop").map_err(|e| e.to_string())?,
        Scope::group("flags").map_err(|e| e.to_string())?,
        Scope::workflow("wf").map_err(|e| e.to_string())?,
        Scope::object("cart", "c1").map_err(|e| e.to_string())?,
    ];
    for i in 0..5 {
        scopes.push(exec(&format!("run-{i}")));
        scopes.push(Scope::user("shop", format!("u{i}")).map_err(|e| e.to_string())?);
    }
    for s in &scopes {
        commit(env, vec![Write::apply(slot(s, "x"), vec![inc(1)])])
            .await
            .ctx("write")?;
    }
    let cleared = exec("run-cleared");
    commit(env, vec![Write::apply(slot(&cleared, "x"), vec![inc(1)])])
        .await
        .ctx("write")?;
    env.store.clear(&cleared).await.ctx("clear")?;
    let mut got = Vec::new();
    let mut after: Option<Scope> = None;
    loop {
        let page = env
            .store
            .list_scopes(None, after.as_ref(), 3)
            .await
            .ctx("list_scopes")?;
        got.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(got.len() <= 100, "pagination does not end");
    }
    scopes.sort();
    ensure!(got == scopes, "every live scope once, in order: {got:?}");
    let users = env
        .store
        .list_scopes(Some(ScopeKind::User), None, 100)
        .await
        .ctx("kind")?;
    ensure!(
        users.items.len() == 5 && users.items.iter().all(|s| s.kind() == ScopeKind::User),
        "kind filter: {users:?}"
    );
    Ok(())
}

async fn stored_scopes_include_tombstone_only_ones(env: &Env) -> CheckResult {
    let (x, y) = (exec("x"), exec("y"));
    commit(env, vec![Write::apply(slot(&x, "a"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(env, vec![Write::apply(slot(&y, "gone"), vec![inc(1)])])
        .await
        .ctx("write")?;
    commit(
        env,
        vec![Write::apply(
            slot(&y, "gone"),
            vec![Op::delete(Path::root())],
        )],
    )
    .await
    .ctx("delete")?;
    let live = env
        .store
        .list_scopes(None, None, 100)
        .await
        .ctx("list_scopes")?
        .items;
    let stored = env
        .store
        .list_stored_scopes(None, None, 100)
        .await
        .ctx("list_stored_scopes")?
        .items;
    ensure!(live == [x.clone()], "live scopes: {live:?}");
    ensure!(
        stored == [x.clone(), y.clone()],
        "stored scopes include tombstone-only ones: {stored:?}"
    );
    Ok(())
}

async fn restores_are_exact_and_never_lower_a_version(env: &Env) -> CheckResult {
    let x = exec("x");
    commit(env, vec![Write::apply(slot(&x, "a"), vec![inc(1)])])
        .await
        .ctx("write")?;
    let expiry = Some(T0.saturating_add(Duration::from_secs(60)));
    let records = vec![
        (
            slot(&x, "r1"),
            crate::Record::new(Some(json!({"k": 1})), 7, expiry),
        ),
        (slot(&x, "r2"), crate::Record::new(None, 3, None)),
        (slot(&x, "a"), crate::Record::new(Some(json!(41)), 9, None)),
    ];
    ensure!(
        env.store
            .restore(crate::Restore::new(records.clone()))
            .await
            .ctx("restore")?
            == 3,
        "restored count"
    );
    for (s, want) in &records {
        let got = env.store.load(s).await.ctx("load")?;
        ensure!(&got == want, "restored {}: {got:?}, want {want:?}", s.key());
    }
    // Restoring again (not above the current versions) is refused, and nothing changes.
    let again = vec![
        (
            slot(&x, "fresh"),
            crate::Record::new(Some(json!(1)), 5, None),
        ),
        records[0].clone(),
    ];
    match env.store.restore(crate::Restore::new(again)).await {
        Err(Error::VersionMismatch {
            expected: 7,
            actual: 7,
            ..
        }) => {}
        other => {
            return Err(format!(
                "a restore at the current version must be refused: {other:?}"
            ));
        }
    }
    ensure!(
        version(env, &slot(&x, "fresh")).await? == 0,
        "a refused restore wrote another slot"
    );
    // A restored slot takes normal writes from its version on.
    commit(env, vec![Write::apply(slot(&x, "a"), vec![inc(1)])])
        .await
        .ctx("write")?;
    ensure!(
        value(env, &slot(&x, "a")).await? == Some(json!(42)),
        "write after restore"
    );
    ensure!(
        version(env, &slot(&x, "a")).await? == 10,
        "version after restore"
    );
    Ok(())
}

async fn keys_are_listed_in_pages_without_tombstones_or_expired_slots(env: &Env) -> CheckResult {
    let (engine, clock) = (env.engine.clone(), env.clock.clone());
    let sc = exec("e");
    for i in 0..25 {
        engine
            .handle::<u32>(slot(&sc, &format!("k{i:02}")))
            .set(i)
            .await
            .unwrap();
    }
    engine
        .handle::<u32>(slot(&sc, "k03"))
        .delete()
        .await
        .unwrap();
    engine
        .handle::<u32>(slot(&sc, "k04"))
        .with_ttl(Ttl::For(Duration::from_secs(1)))
        .set(1)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    let mut all = Vec::new();
    let mut after: Option<SlotKey> = None;
    let mut pages = 0;
    loop {
        let Page { items, next, .. } = engine
            .list_keys(&sc, None, after.as_ref(), 10)
            .await
            .unwrap();
        pages += 1;
        assert!(items.len() <= 10);
        all.extend(items.into_iter().map(|k| k.key));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25)
        .filter(|i| *i != 3 && *i != 4)
        .map(|i| format!("k{i:02}"))
        .collect();
    assert_eq!(all, expected);
    assert!(matches!(
        engine.list_keys(&sc, None, None, 0).await,
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

async fn scopes_are_listed_in_pages_and_filtered_by_kind(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let mut scopes = vec![Scope::app("shop").unwrap(), Scope::group("flags").unwrap()];
    for i in 0..7 {
        scopes.push(exec(&format!("run-{i}")));
        scopes.push(Scope::user("shop", format!("u{i}")).unwrap());
    }
    for s in &scopes {
        engine.handle::<u32>(slot(s, "x")).set(1).await.unwrap();
    }
    let cleared = exec("run-cleared");
    engine
        .handle::<u32>(slot(&cleared, "x"))
        .set(1)
        .await
        .unwrap();
    engine.clear(&cleared).await.unwrap();
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = engine.list_scopes(None, after.as_ref(), 4).await.unwrap();
        got.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    scopes.sort();
    assert_eq!(
        got, scopes,
        "every live scope once, in order; the cleared one not at all"
    );
    let users = engine
        .list_scopes(Some(ScopeKind::User), None, 100)
        .await
        .unwrap();
    assert_eq!(users.items.len(), 7);
    assert!(users.items.iter().all(|s| s.kind() == ScopeKind::User));
    assert_eq!(users.next, None);
    Ok(())
}

async fn collections_give_typed_handles_for_dynamic_keys(env: &Env) -> CheckResult {
    let (engine, clock) = (env.engine.clone(), env.clock.clone());
    let limits = engine
        .collection::<u32>(Scope::group("rate-limits").unwrap(), "per-user")
        .unwrap();
    let sessions = engine
        .collection::<String>(Scope::app("shop").unwrap(), "sessions")
        .unwrap()
        .with_ttl(Ttl::For(Duration::from_secs(30)));
    for user in ["alice", "bob", "alice"] {
        limits.entry(user).unwrap().increment(1).await.unwrap();
    }
    assert_eq!(limits.entry("alice").unwrap().get().await.unwrap(), Some(2));
    assert_eq!(
        limits.keys(None, 10).await.unwrap().items,
        vec!["alice", "bob"]
    );
    let page = limits.keys(None, 1).await.unwrap();
    assert_eq!(page.items, vec!["alice"]);
    assert_eq!(
        limits.keys(page.next.as_deref(), 1).await.unwrap().items,
        vec!["bob"]
    );
    assert!(limits.entry("").is_err());
    sessions
        .entry("tok-1")
        .unwrap()
        .set("alice".into())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31));
    assert_eq!(sessions.entry("tok-1").unwrap().get().await.unwrap(), None);
    assert!(sessions.keys(None, 10).await.unwrap().items.is_empty());
    assert!(
        engine
            .collection::<u32>(Scope::app("a").unwrap(), "")
            .is_err()
    );
    Ok(())
}

async fn any_scope_opens_for_admin_access_typed_or_untyped(env: &Env) -> CheckResult {
    use crate::{NumKind, Op, Path};
    use serde_json::json;
    let engine = env.engine.clone();
    let user = engine.scope(Scope::user("shop", "alice").unwrap());
    assert_eq!(
        user.set("Prefs", "theme", json!("dark"))
            .await
            .unwrap()
            .version,
        1
    );
    assert!(matches!(
        user.set_if("Prefs", "theme", 0, json!("light")).await,
        Err(Error::VersionMismatch {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    user.apply(
        "Stats",
        "logins",
        vec![Op::increment(Path::root(), 2u32.into(), NumKind::U32)],
    )
    .await
    .unwrap();
    // Untyped ops are validated like typed ones: a bad op is a typed error, nothing written.
    let bad = user
        .apply(
            "Prefs",
            "theme",
            vec![Op::increment(Path::root(), 1u32.into(), NumKind::U32)],
        )
        .await;
    assert!(matches!(bad, Err(Error::TypeMismatch { .. })), "{bad:?}");
    assert!(
        user.set("", "x", json!(1)).await.is_err(),
        "bad keys are refused"
    );
    assert_eq!(
        user.handle::<u32>("Stats", "logins")
            .unwrap()
            .get()
            .await
            .unwrap(),
        Some(2)
    );
    let keys: Vec<String> = user
        .keys(None, None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|k| k.key)
        .collect();
    assert_eq!(keys, ["theme", "logins"]);
    assert_eq!(user.load(Some("Prefs")).await.unwrap().len(), 1);
    assert_eq!(
        user.delete("Prefs", "theme").await.unwrap().outputs,
        [Some(json!("dark"))]
    );
    assert_eq!(user.clear().await.unwrap(), 1);
    assert_eq!(user.purge().await.unwrap(), 2);
    assert_eq!(
        user.get("Stats", "logins").await.unwrap().version,
        3,
        "the floor is one above the last version"
    );
    Ok(())
}
