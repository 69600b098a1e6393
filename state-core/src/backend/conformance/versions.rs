//! Versions: 0 before the first write, one up per write, `initial` only at 0, strict CAS
//! and tombstones that keep their version.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    never_written_slots_read_version_0,
    every_write_raises_the_version_by_one,
    initial_only_before_the_first_write,
    cas_is_strict_and_tombstones_stay,
    initial_only_before_the_first_write_of_a_handle,
    every_committed_write_raises_the_version_by_one_noops_included,
    stale_cas_after_a_delete_fails_and_changes_nothing,
);

async fn never_written_slots_read_version_0(env: &Env) -> CheckResult {
    let sc = exec("e");
    let slots = [slot(&sc, "a"), slot(&sc, "b"), slot(&sc, "c")];
    env.engine
        .handle::<u32>(slots[1].clone())
        .set(7)
        .await
        .ctx("set")?;
    let records = env.store.load_many(&slots).await.ctx("load_many")?;
    ensure!(
        records.len() == 3,
        "load_many returned {} records for 3 slots",
        records.len()
    );
    ensure!(
        records[0].version == 0 && records[0].value.is_none(),
        "never written: {:?}",
        records[0]
    );
    ensure!(
        records[1].value == Some(json!(7)) && records[1].version == 1,
        "order: {:?}",
        records[1]
    );
    ensure!(records[2].version == 0, "never written: {:?}", records[2]);
    Ok(())
}

async fn every_write_raises_the_version_by_one(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let h = env.engine.handle::<u64>(s.clone());
    let mut expected = 0;
    for step in [
        "set",
        "same set",
        "increment 0",
        "unchanged update",
        "delete",
        "delete again",
    ] {
        match step {
            "set" | "same set" => {
                h.set(5).await.ctx(step)?;
            }
            "increment 0" => {
                h.increment(0).await.ctx(step)?;
            }
            "unchanged update" => {
                h.update(|v| Ok(v.copied())).await.ctx(step)?;
            }
            _ => {
                h.delete().await.ctx(step)?;
            }
        }
        expected += 1;
        let v = version(env, &s).await?;
        ensure!(
            v == expected,
            "after {step}: version {v}, expected {expected}"
        );
    }
    let out = commit(env, vec![Write::apply(s.clone(), vec![inc(1)])])
        .await
        .ctx("commit")?;
    match out {
        CommitOutcome::Committed(o) => ensure!(
            o.len() == 1 && o[0].previous_version == 6 && o[0].version == 7,
            "outcome versions: {o:?}"
        ),
        other => return Err(format!("unexpected {other:?}")),
    }
    Ok(())
}

async fn initial_only_before_the_first_write(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let w = || Write::apply(s.clone(), vec![inc(1)]).with_initial(Some(json!(10)));
    commit(env, vec![w()]).await.ctx("first")?;
    ensure!(
        value(env, &s).await? == Some(json!(11)),
        "version 0 starts from initial"
    );
    commit(
        env,
        vec![Write::apply(s.clone(), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    commit(env, vec![w()]).await.ctx("after delete")?;
    let v = value(env, &s).await?;
    ensure!(
        v == Some(json!(1)),
        "after a delete, Apply must start from 0, not initial: got {v:?}"
    );
    Ok(())
}

async fn cas_is_strict_and_tombstones_stay(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "name");
    let h = env.engine.handle::<String>(s.clone());
    ensure!(
        h.set_if(1, "x".into()).await.is_err(),
        "CAS on a fresh slot must expect version 0"
    );
    ensure!(
        h.set_if(0, "a".into()).await.ctx("set_if 0")? == 1,
        "first CAS → version 1"
    );
    match h.set_if(0, "b".into()).await {
        Err(Error::VersionMismatch {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => {
            return Err(format!(
                "stale CAS must fail with the actual version: {other:?}"
            ));
        }
    }
    ensure!(
        h.delete_if(1).await.ctx("delete_if")? == 2,
        "delete_if → version 2"
    );
    // A writer holding the pre-delete version must not resurrect the slot.
    ensure!(
        h.set_if(1, "zombie".into()).await.is_err(),
        "stale CAS resurrected a tombstone"
    );
    ensure!(h.delete_if(1).await.is_err(), "stale delete_if succeeded");
    let r = env.store.load(&s).await.ctx("load")?;
    ensure!(
        r.value.is_none() && r.version == 2,
        "tombstone changed: {r:?}"
    );
    Ok(())
}

async fn initial_only_before_the_first_write_of_a_handle(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
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
    Ok(())
}

async fn every_committed_write_raises_the_version_by_one_noops_included(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
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
    Ok(())
}

async fn stale_cas_after_a_delete_fails_and_changes_nothing(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
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
    Ok(())
}
