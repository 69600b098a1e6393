//! Versions, `initial`, tombstones, expiry and version floors across purges.

use std::time::Duration;

use state_core::{Error, Scope, Ttl};

use crate::common::{T0, engine, exec, slot};

#[tokio::test]
async fn initial_only_before_the_first_write() {
    let (engine, _) = engine();
    let h = engine
        .handle::<u32>(slot(&exec("e"), "n"))
        .with_initial(&7)
        .unwrap();
    let v = h.get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (Some(7), 0),
        "never written: initial at version 0"
    );
    assert_eq!(
        h.increment(1).await.unwrap(),
        8,
        "Apply starts from initial at version 0"
    );
    assert_eq!(h.delete().await.unwrap(), Some(8));
    let v = h.get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (None, 2),
        "after delete: absent, not initial"
    );
    assert_eq!(
        h.increment(1).await.unwrap(),
        1,
        "after delete Apply starts from neutral 0"
    );
}

#[tokio::test]
async fn every_committed_write_raises_the_version_by_one_noops_included() {
    let (engine, _) = engine();
    let s = exec("e");
    let n = engine.handle::<u32>(slot(&s, "n"));
    let list = engine.handle::<Vec<u32>>(slot(&s, "list"));
    let mut expected = 0;
    let mut step = |v: u64| {
        expected += 1;
        assert_eq!(v, expected);
    };
    step(n.set(5).await.unwrap());
    step(n.set(5).await.unwrap()); // same value: still a write
    n.update(|v| Ok(v.copied())).await.unwrap(); // unchanged value: still a write
    step(n.get_versioned().await.unwrap().version);
    n.increment(0).await.unwrap();
    step(n.get_versioned().await.unwrap().version);
    assert_eq!(n.delete().await.unwrap(), Some(5));
    step(n.get_versioned().await.unwrap().version);
    assert_eq!(n.delete().await.unwrap(), None); // deleting a tombstone: still a write
    step(n.get_versioned().await.unwrap().version);
    assert_eq!(list.remove_first().await.unwrap(), None);
    assert_eq!(
        list.get_versioned().await.unwrap().version,
        1,
        "remove on empty commits"
    );
    assert_eq!(
        list.get().await.unwrap(),
        Some(vec![]),
        "starting from the neutral []"
    );
}

#[tokio::test]
async fn stale_cas_after_a_delete_fails_and_changes_nothing() {
    let (engine, _) = engine();
    let h = engine.handle::<String>(slot(&exec("e"), "name"));
    let v1 = h.set("a".into()).await.unwrap();
    assert_eq!(h.delete().await.unwrap().as_deref(), Some("a"));
    // A writer holding the pre-delete version must not resurrect the slot.
    match h.set_if(v1, "resurrected".into()).await {
        Err(Error::VersionMismatch {
            expected,
            actual,
            slot,
        }) => {
            assert_eq!((expected, actual), (1, 2));
            assert_eq!(&slot, h.slot());
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert!(matches!(
        h.delete_if(v1).await,
        Err(Error::VersionMismatch { .. })
    ));
    let now = h.get_versioned().await.unwrap();
    assert_eq!((now.value, now.version), (None, 2), "tombstone untouched");
    // The current version works.
    assert_eq!(h.set_if(2, "b".into()).await.unwrap(), 3);
    assert_eq!(h.delete_if(3).await.unwrap(), 4);
    assert_eq!(h.get().await.unwrap(), None);
    // CAS on a never-written slot expects version 0.
    let fresh = engine.handle::<u8>(slot(&exec("e"), "fresh"));
    assert!(fresh.set_if(1, 1).await.is_err());
    assert_eq!(fresh.set_if(0, 1).await.unwrap(), 1);
}

#[tokio::test]
async fn expired_slots_read_as_absent_and_keep_their_version() {
    let (engine, clock) = engine();
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
}

#[tokio::test]
async fn writes_without_ttl_keep_the_expiry_and_writes_may_set_or_clear_it() {
    let (engine, clock) = engine();
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
}

#[tokio::test]
async fn versions_keep_rising_after_purging_an_execution() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn purging_expired_rows_keeps_versions_rising() {
    let (engine, clock) = engine();
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
}

#[tokio::test]
async fn clear_tombstones_every_live_slot_of_one_scope() {
    let (engine, _) = engine();
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
}
