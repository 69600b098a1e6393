//! Batches: all of a batch's writes apply, or none does; writes to one slot see each other.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    a_failing_op_fails_the_whole_batch,
    a_cas_conflict_fails_the_whole_batch,
    writes_to_one_slot_in_a_batch_see_each_other,
    a_failing_op_list_leaves_the_value_untouched,
    a_batch_over_three_slots_whose_third_op_overflows_writes_nothing,
    a_cas_conflict_in_a_batch_writes_nothing,
);

async fn a_failing_op_fails_the_whole_batch(env: &Env) -> CheckResult {
    let sc = exec("e");
    let (a, b, c) = (slot(&sc, "a"), slot(&sc, "b"), slot(&sc, "c"));
    env.engine
        .handle::<u8>(c.clone())
        .set(255)
        .await
        .ctx("set")?;
    let writes = vec![
        Write::apply(a.clone(), vec![inc(1)]),
        Write::apply(b.clone(), vec![Op::append(Path::root(), json!(1))]),
        Write::apply(
            c.clone(),
            vec![Op::increment(Path::root(), 1u8.into(), NumKind::U8)],
        ),
    ];
    match commit(env, writes).await {
        Err(Error::Overflow { .. }) => {}
        other => {
            return Err(format!(
                "the overflowing batch must fail with Overflow: {other:?}"
            ));
        }
    }
    for (s, v) in [(&a, 0), (&b, 0), (&c, 1)] {
        let got = version(env, s).await?;
        ensure!(
            got == v,
            "slot {} was written by a failed batch (version {got})",
            s.key()
        );
    }
    Ok(())
}

async fn a_cas_conflict_fails_the_whole_batch(env: &Env) -> CheckResult {
    let sc = exec("e");
    let (a, b) = (slot(&sc, "a"), slot(&sc, "b"));
    env.engine
        .handle::<u32>(b.clone())
        .set(1)
        .await
        .ctx("set")?;
    let writes = vec![
        Write::cas(a.clone(), 0, Some(json!(1))),
        Write::cas(b.clone(), 0, Some(json!(2))),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Conflict(c) => ensure!(
            c.len() == 1 && c[0].slot == b && c[0].expected == 0 && c[0].actual == 1,
            "conflict must name the slot and its version: {c:?}"
        ),
        other => return Err(format!("expected a conflict, got {other:?}")),
    }
    ensure!(
        version(env, &a).await? == 0,
        "a conflicting batch wrote its other slot"
    );
    ensure!(
        value(env, &b).await? == Some(json!(1)),
        "a conflicting batch wrote the slot"
    );
    Ok(())
}

async fn writes_to_one_slot_in_a_batch_see_each_other(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "n");
    let writes = vec![
        Write::apply(s.clone(), vec![inc(2)]),
        Write::cas(s.clone(), 1, Some(json!(10))),
        Write::apply(s.clone(), vec![inc(1)]),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Committed(o) => {
            let v: Vec<u64> = o.iter().map(|o| o.version).collect();
            ensure!(v == [1, 2, 3], "versions within one batch: {v:?}");
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    ensure!(value(env, &s).await? == Some(json!(11)), "final value");
    Ok(())
}

async fn a_failing_op_list_leaves_the_value_untouched(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<Value>(slot(&exec("e"), "doc"));
    h.set(json!({"n": 1, "list": []})).await.unwrap();
    let write = h.target().write(vec![
        Op::increment(Path::new(["n"]), 1u32.into(), NumKind::U32),
        Op::append(Path::new(["list"]), json!("x")),
        Op::increment(Path::new(["list"]), 1u32.into(), NumKind::U32), // type mismatch
    ]);
    assert!(matches!(
        engine.commit(vec![write]).await,
        Err(Error::TypeMismatch { .. })
    ));
    let v = h.get_versioned().await.unwrap();
    assert_eq!(v.value, Some(json!({"n": 1, "list": []})));
    assert_eq!(v.version, 1);
    Ok(())
}

async fn a_batch_over_three_slots_whose_third_op_overflows_writes_nothing(
    env: &Env,
) -> CheckResult {
    let engine = env.engine.clone();
    let sc = exec("e");
    let a = engine.handle::<u32>(slot(&sc, "a"));
    let b = engine.handle::<Vec<u32>>(slot(&sc, "b"));
    let c = engine.handle::<u8>(slot(&sc, "c"));
    c.set(255).await.unwrap();
    let err = engine
        .batch()
        .increment(&a, 1)
        .append(&b, 1)
        .increment(&c, 1)
        .commit()
        .await;
    assert!(
        matches!(err, Err(Error::Overflow { ref slot, .. }) if slot == c.slot()),
        "{err:?}"
    );
    assert_eq!(a.get_versioned().await.unwrap().version, 0);
    assert_eq!(b.get_versioned().await.unwrap().version, 0);
    assert_eq!(c.get_versioned().await.unwrap().version, 1);
    // The same batch without the overflow commits every slot once.
    let out = engine
        .batch()
        .increment(&a, 1)
        .append(&b, 1)
        .increment(&a, 2)
        .commit()
        .await
        .unwrap();
    assert_eq!(out.len(), 2, "two ops on `a` join one write");
    assert_eq!(a.get_versioned().await.unwrap().version, 1);
    assert_eq!(a.get().await.unwrap(), Some(3));
    assert_eq!(b.get().await.unwrap(), Some(vec![1]));
    Ok(())
}

async fn a_cas_conflict_in_a_batch_writes_nothing(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let sc = exec("e");
    let a = slot(&sc, "a");
    let b = slot(&sc, "b");
    engine.handle::<u32>(b.clone()).set(1).await.unwrap();
    let writes = vec![
        Write::cas(a.clone(), 0, Some(json!(1))),
        Write::cas(b.clone(), 0, Some(json!(2))),
    ];
    match engine.commit(writes).await {
        Err(Error::VersionMismatch {
            slot,
            expected: 0,
            actual: 1,
        }) => assert_eq!(slot, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.load(&a).await.unwrap().version, 0);
    Ok(())
}
