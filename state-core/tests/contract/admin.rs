//! Admin access: paginated key and scope listing, collections, untyped commits.

use std::time::Duration;

use state_core::{Error, Page, Scope, ScopeKind, SlotKey, Ttl};

use crate::common::{engine, exec, slot};

#[tokio::test]
async fn keys_are_listed_in_pages_without_tombstones_or_expired_slots() {
    let (engine, clock) = engine();
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
}

#[tokio::test]
async fn scopes_are_listed_in_pages_and_filtered_by_kind() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn collections_give_typed_handles_for_dynamic_keys() {
    let (engine, clock) = engine();
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
}

#[tokio::test]
async fn any_scope_opens_for_admin_access_typed_or_untyped() {
    use serde_json::json;
    use state_core::{NumKind, Op, Path};
    let (engine, _) = engine();
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
}

/// A clear or a purge changes every slot of a scope: the engine says so, to its own
/// subscribers and to every handle in that scope (a cache driven by events would go stale).
#[tokio::test]
async fn clears_and_purges_are_events_for_the_scope_and_its_handles() {
    use futures::StreamExt;
    use state_core::Event;
    let (engine, _) = engine();
    let sc = exec("e");
    let h = engine.handle::<u32>(slot(&sc, "a"));
    let elsewhere = engine.handle::<u32>(slot(&exec("other"), "a"));
    h.set(1).await.unwrap();
    engine.handle::<u32>(slot(&sc, "b")).set(2).await.unwrap();
    let mut all = engine.events();
    let mut mine = h.events();
    let mut theirs = elsewhere.events();
    assert_eq!(engine.scope(sc.clone()).clear().await.unwrap(), 2);
    let cleared = Event::Cleared {
        scope: sc.clone(),
        count: 2,
    };
    assert_eq!(all.next().await, Some(cleared.clone()));
    assert_eq!(mine.next().await, Some(cleared));
    assert_eq!(engine.scope(sc.clone()).purge().await.unwrap(), 2);
    let purged = Event::Purged {
        scope: sc.clone(),
        count: 2,
    };
    assert_eq!(all.next().await, Some(purged.clone()));
    assert_eq!(mine.next().await, Some(purged));
    // Another scope's handle hears nothing of it.
    elsewhere.set(5).await.unwrap();
    assert!(matches!(
        theirs.next().await,
        Some(Event::Change { new_version: 1, .. })
    ));
}
