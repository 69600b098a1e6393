//! The limits every value is held to, by a write or a restore: size and nesting depth.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    values_over_the_limit_are_refused,
    values_nested_past_the_limit_are_refused,
    values_nested_past_the_limit_once_applied_are_refused,
    restores_are_held_to_the_limits_of_a_write,
    oversized_values_are_rejected_by_the_engine_limit,
);

async fn values_over_the_limit_are_refused(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "big");
    let batch = |v: Value| Batch {
        writes: vec![Write::apply(s.clone(), vec![Op::set(Path::root(), v)])],
        max_value_bytes: 32,
    };
    env.store
        .commit(batch(json!("x".repeat(10))))
        .await
        .ctx("small")?;
    let r = env.store.commit(batch(json!("x".repeat(100)))).await;
    ensure!(
        matches!(r, Err(Error::TooLarge { limit: 32, .. })),
        "oversized value: {r:?}"
    );
    ensure!(
        value(env, &s).await? == Some(json!("x".repeat(10))),
        "oversized write changed the value"
    );
    Ok(())
}

/// `levels` arrays one inside another around a number, built without recursion (`json!`
/// would serialize, recursively, the value it nests).
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |v, _| Value::Array(vec![v]))
}

/// How many arrays of [`nested`] a value holds, one inside another.
fn innermost_depth(mut v: &Value) -> usize {
    let mut n = 0;
    while let Some(inner) = v.as_array().and_then(|a| a.first()) {
        v = inner;
        n += 1;
    }
    n
}

/// Whether a commit was refused as nested past [`MAX_DEPTH`](crate::MAX_DEPTH).
fn too_deep(r: &crate::Result<CommitOutcome>) -> bool {
    matches!(
        r,
        Err(Error::TooDeep {
            limit: crate::MAX_DEPTH,
            ..
        })
    )
}

async fn values_nested_past_the_limit_are_refused(env: &Env) -> CheckResult {
    use crate::MAX_DEPTH;
    let s = slot(&exec("e"), "deep");
    commit(env, vec![Write::cas(s.clone(), 0, Some(nested(MAX_DEPTH)))])
        .await
        .ctx("a value at the limit")?;
    let at_limit = env.store.load(&s).await.ctx("load")?;
    ensure!(
        at_limit.value.as_ref().map(innermost_depth) == Some(MAX_DEPTH),
        "a value at the limit did not read back"
    );
    // Far past it (a recursive clone, drop or encode would overflow the stack), at the root,
    // as an op operand, as an initial value.
    for (what, write) in [
        ("CAS", Write::cas(s.clone(), 1, Some(nested(20_000)))),
        (
            "set",
            Write::apply(s.clone(), vec![Op::set(Path::root(), nested(20_000))]),
        ),
        (
            "initial",
            Write::apply(s.clone(), vec![inc(1)]).with_initial(Some(nested(20_000))),
        ),
    ] {
        let r = commit(env, vec![write]).await;
        ensure!(too_deep(&r), "{what} 20 000 levels deep: {r:?}");
    }
    let r = env
        .store
        .restore(crate::Restore::new(vec![(
            slot(&exec("e"), "restored"),
            crate::Record::new(Some(nested(20_000)), 1, None),
        )]))
        .await;
    ensure!(
        matches!(r, Err(Error::TooDeep { .. })),
        "restore 20 000 levels deep: {r:?}"
    );
    ensure!(
        version(env, &s).await? == 1,
        "a refused write changed the slot"
    );
    ensure!(
        version(env, &slot(&exec("e"), "restored")).await? == 0,
        "a refused restore wrote"
    );
    Ok(())
}

/// Past the limit only once applied: an item appended inside the value (the root, `a` and
/// the list are 3 levels), a value set at a path.
async fn values_nested_past_the_limit_once_applied_are_refused(env: &Env) -> CheckResult {
    use crate::MAX_DEPTH;
    let doc = slot(&exec("e"), "doc");
    commit(
        env,
        vec![Write::cas(doc.clone(), 0, Some(json!({"a": {"list": []}})))],
    )
    .await
    .ctx("doc")?;
    let list = Path::new(["a", "list"]);
    let r = commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::append(list.clone(), nested(MAX_DEPTH - 2))],
        )],
    )
    .await;
    ensure!(too_deep(&r), "append past the limit: {r:?}");
    commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::append(list, nested(MAX_DEPTH - 3))],
        )],
    )
    .await
    .ctx("append up to the limit")?;
    let r = commit(
        env,
        vec![Write::apply(
            doc.clone(),
            vec![Op::set(Path::new(["a"]), nested(MAX_DEPTH))],
        )],
    )
    .await;
    ensure!(too_deep(&r), "set at a path past the limit: {r:?}");
    ensure!(
        version(env, &doc).await? == 2,
        "a refused op changed the slot"
    );
    Ok(())
}

async fn restores_are_held_to_the_limits_of_a_write(env: &Env) -> CheckResult {
    let kept = slot(&exec("e"), "kept");
    let big = slot(&exec("e"), "big");
    let record = |v: Value| crate::Record::new(Some(v), 3, None);
    let restore = crate::Restore::new(vec![
        (kept.clone(), record(json!("small"))),
        (big.clone(), record(json!("x".repeat(100)))),
    ])
    .max_value_bytes(32);
    let r = env.store.restore(restore).await;
    ensure!(
        matches!(r, Err(Error::TooLarge { limit: 32, ref slot, .. }) if *slot == big),
        "a value over the restore's limit: {r:?}"
    );
    ensure!(
        version(env, &kept).await? == 0,
        "a refused restore wrote another record"
    );
    let restore = crate::Restore::new(vec![(big.clone(), record(json!("x".repeat(100))))]);
    env.store.restore(restore).await.ctx("under the limit")?;
    ensure!(version(env, &big).await? == 3, "restored");
    Ok(())
}

async fn oversized_values_are_rejected_by_the_engine_limit(env: &Env) -> CheckResult {
    let engine = Engine::with_config(
        env.store.clone(),
        EngineConfig::default().max_value_bytes(64),
    );
    let h = engine.handle::<String>(slot(&exec("e"), "big"));
    h.set("x".repeat(50)).await.unwrap();
    match h.set("x".repeat(100)).await {
        Err(Error::TooLarge {
            limit: 64, size, ..
        }) => assert!(size > 64),
        other => panic!("{other:?}"),
    }
    // Growth through Apply ops is checked too.
    let list = engine.handle::<Vec<String>>(slot(&exec("e"), "list"));
    list.append("y".repeat(40)).await.unwrap();
    assert!(matches!(
        list.append("y".repeat(40)).await,
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(list.get().await.unwrap().unwrap().len(), 1);
    assert_eq!(h.get().await.unwrap().unwrap().len(), 50);
    Ok(())
}
