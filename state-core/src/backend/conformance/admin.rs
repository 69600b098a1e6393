//! Admin reads and writes: paged listings of keys and scopes, exact restores.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    keys_are_listed_in_pages,
    scopes_are_listed_in_pages,
    restores_are_exact_and_never_lower_a_version,
);

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
    let mut all = Vec::new();
    let mut after: Option<SlotKey> = None;
    let mut pages = 0;
    loop {
        let page = env
            .store
            .list_keys(&sc, None, after.as_ref(), 10)
            .await
            .ctx("list_keys")?;
        pages += 1;
        ensure!(page.items.len() <= 10, "page of {} items", page.items.len());
        all.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(pages < 10, "pagination does not end");
    }
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
    let mut paged = Vec::new();
    let mut after: Option<SlotKey> = None;
    loop {
        let page = env
            .store
            .list_keys(&sc, Some("B"), after.as_ref(), 5)
            .await
            .ctx("paged")?;
        paged.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        ensure!(paged.len() <= 12, "namespace pagination does not end");
    }
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

async fn restores_are_exact_and_never_lower_a_version(env: &Env) -> CheckResult {
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
    let expiry = Some(T0.saturating_add(Duration::from_secs(60)));
    let records = vec![
        (
            slot(&x, "r1"),
            crate::Record {
                value: Some(json!({"k": 1})),
                version: 7,
                expires_at: expiry,
            },
        ),
        (
            slot(&x, "r2"),
            crate::Record {
                value: None,
                version: 3,
                expires_at: None,
            },
        ),
        (
            slot(&x, "a"),
            crate::Record {
                value: Some(json!(41)),
                version: 9,
                expires_at: None,
            },
        ),
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
            crate::Record {
                value: Some(json!(1)),
                version: 5,
                expires_at: None,
            },
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
