//! Path ops: outputs, parents that must exist, numbers at their width, floats bit for bit,
//! no JSON null at the root.

#[allow(unused_imports)]
use super::prelude::*;

checks!(
    ops_return_their_outputs,
    nested_paths_need_their_parent,
    numbers_are_checked_at_their_width,
    finite_floats_read_back_bit_identical,
    json_null_is_not_stored_at_the_root,
    u32_overflows_at_its_own_max_and_writes_nothing,
    floats_must_stay_finite,
    numbers_that_no_longer_fit_the_field_are_typed_errors,
    untyped_amounts_must_fit_their_kind,
    sequences_and_maps,
    json_null_is_never_stored_for_absence,
);

async fn ops_return_their_outputs(env: &Env) -> CheckResult {
    let sc = exec("e");
    let list = slot(&sc, "list");
    let n = slot(&sc, "n");
    let ops = vec![
        Op::append(Path::root(), json!("a")),
        Op::append(Path::root(), json!("b")),
        Op::append(Path::root(), json!("c")),
        Op::remove_first(Path::root()),
        Op::remove_last(Path::root()),
    ];
    let writes = vec![
        Write::apply(list.clone(), ops).returning_record(),
        Write::apply(n.clone(), vec![inc(4)]),
    ];
    match commit(env, writes).await.ctx("commit")? {
        CommitOutcome::Committed(o) => {
            ensure!(
                o[0].outputs[3] == Some(json!("a")),
                "remove_first output: {:?}",
                o[0].outputs
            );
            ensure!(
                o[0].outputs[4] == Some(json!("c")),
                "remove_last output: {:?}",
                o[0].outputs
            );
            let rec = o[0].record.as_ref().ok_or("asked-for record missing")?;
            ensure!(
                rec.value == Some(json!(["b"])) && rec.version == 1,
                "returned record: {rec:?}"
            );
            ensure!(
                o[1].outputs == [Some(json!(4))],
                "increment output: {:?}",
                o[1].outputs
            );
            ensure!(
                o[1].record.is_none(),
                "a record nobody asked for was returned"
            );
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    let del = commit(
        env,
        vec![Write::apply(list.clone(), vec![Op::delete(Path::root())])],
    )
    .await
    .ctx("delete")?;
    match del {
        CommitOutcome::Committed(o) => {
            ensure!(
                o[0].outputs == [Some(json!(["b"]))],
                "delete returns the previous value"
            )
        }
        other => return Err(format!("unexpected {other:?}")),
    }
    Ok(())
}

async fn nested_paths_need_their_parent(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "doc");
    let nested = |ops| Write::apply(s.clone(), ops);
    let r = commit(
        env,
        vec![nested(vec![Op::set(Path::new(["a", "b"]), json!(1))])],
    )
    .await;
    ensure!(
        matches!(r, Err(Error::InvalidPath { .. })),
        "nested op on an absent slot: {r:?}"
    );
    ensure!(version(env, &s).await? == 0, "a failed nested op wrote");
    commit(
        env,
        vec![nested(vec![Op::set(Path::root(), json!({"a": {"n": 1}}))])],
    )
    .await
    .ctx("set")?;
    let ops = vec![
        Op::increment(Path::new(["a", "n"]), 2u32.into(), NumKind::U32),
        Op::merge(
            Path::new(["a"]),
            serde_json::Map::from_iter([("m".to_string(), json!(true))]),
        ),
        Op::set(Path::new(["x.y"]), json!("dotted key")),
    ];
    commit(env, vec![nested(ops)]).await.ctx("nested ops")?;
    let v = value(env, &s).await?;
    ensure!(
        v == Some(json!({"a": {"n": 3, "m": true}, "x.y": "dotted key"})),
        "nested result: {v:?}"
    );
    let bad = commit(
        env,
        vec![nested(vec![Op::append(Path::new(["a", "n"]), json!(1))])],
    )
    .await;
    ensure!(
        matches!(bad, Err(Error::TypeMismatch { .. })),
        "append on a number: {bad:?}"
    );
    Ok(())
}

async fn numbers_are_checked_at_their_width(env: &Env) -> CheckResult {
    let sc = exec("e");
    let u = env.engine.handle::<u32>(slot(&sc, "u32"));
    u.set(u32::MAX).await.ctx("set")?;
    let r = u.increment(1).await;
    ensure!(
        matches!(
            r,
            Err(Error::Overflow {
                kind: NumKind::U32,
                ..
            })
        ),
        "u32::MAX + 1: {r:?}"
    );
    ensure!(version(env, u.slot()).await? == 1, "an overflow wrote");
    let i = env.engine.handle::<i8>(slot(&sc, "i8"));
    ensure!(
        i.decrement(-127).await.ctx("i8")? == 127,
        "0 - (-127) is i8::MAX"
    );
    let r = i.decrement(-1).await;
    ensure!(
        matches!(
            r,
            Err(Error::Overflow {
                kind: NumKind::I8,
                ..
            })
        ),
        "i8::MAX + 1: {r:?}"
    );
    let f = env.engine.handle::<f64>(slot(&sc, "f64"));
    f.set(f64::MAX).await.ctx("set f64")?;
    let r = f.increment(f64::MAX).await;
    ensure!(
        matches!(r, Err(Error::NotFinite { .. })),
        "f64 overflow must be refused: {r:?}"
    );
    let r = f.increment(f64::NAN).await;
    ensure!(
        matches!(r, Err(Error::NotFinite { .. })),
        "NaN must be refused: {r:?}"
    );
    let bad = Op::increment(Path::root(), 300u32.into(), NumKind::U8);
    let r = commit(env, vec![Write::apply(slot(&sc, "u8"), vec![bad])]).await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "an amount outside its kind: {r:?}"
    );
    Ok(())
}

/// 4 096 floats from a fixed-seed generator over every bit pattern (finite ones kept), plus
/// the edges: each reads back with the same bits, through the store's own encoding.
async fn finite_floats_read_back_bit_identical(env: &Env) -> CheckResult {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut floats = vec![
        938.311_203_578_657_7,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        -0.0,
    ];
    while floats.len() < 4096 {
        // xorshift64*: every bit pattern is reachable.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let f = f64::from_bits(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
        if f.is_finite() {
            floats.push(f);
        }
    }
    for (i, chunk) in floats.chunks(256).enumerate() {
        let s = slot(&exec("floats"), &format!("chunk-{i}"));
        let v = Value::Array(chunk.iter().map(|&f| json!(f)).collect());
        commit(env, vec![Write::cas(s.clone(), 0, Some(v))])
            .await
            .ctx("write")?;
        let back = value(env, &s).await?.unwrap_or_default();
        for (j, &f) in chunk.iter().enumerate() {
            let got = back.get(j).and_then(Value::as_f64);
            ensure!(
                got.map(f64::to_bits) == Some(f.to_bits()),
                "{f:e} ({:#018x}) read back as {got:?}",
                f.to_bits()
            );
        }
    }
    Ok(())
}

async fn json_null_is_not_stored_at_the_root(env: &Env) -> CheckResult {
    let s = slot(&exec("e"), "v");
    let r = commit(
        env,
        vec![Write::apply(
            s.clone(),
            vec![Op::set(Path::root(), Value::Null)],
        )],
    )
    .await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "Apply set null: {r:?}"
    );
    let r = commit(env, vec![Write::cas(s.clone(), 0, Some(Value::Null))]).await;
    ensure!(
        matches!(r, Err(Error::InvalidOp { .. })),
        "CAS set null: {r:?}"
    );
    ensure!(version(env, &s).await? == 0, "a null write was stored");
    Ok(())
}

async fn u32_overflows_at_its_own_max_and_writes_nothing(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<u32>(slot(&exec("e"), "n"));
    h.set(u32::MAX - 1).await.unwrap();
    assert_eq!(h.increment(1).await.unwrap(), u32::MAX);
    match h.increment(1).await {
        Err(Error::Overflow { kind, op, slot, .. }) => {
            assert_eq!((kind, op), (NumKind::U32, "increment"));
            assert_eq!(&slot, h.slot());
        }
        other => panic!("expected Overflow, got {other:?}"),
    }
    let v = h.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(u32::MAX), 2), "nothing written");
    // Decrement below zero on an unsigned field.
    let d = engine.handle::<u8>(slot(&exec("e"), "d"));
    assert!(matches!(
        d.decrement(1).await,
        Err(Error::Overflow {
            kind: NumKind::U8,
            ..
        })
    ));
    assert_eq!(d.get_versioned().await.unwrap().version, 0);
    // Signed and 64-bit edges.
    let i = engine.handle::<i8>(slot(&exec("e"), "i2"));
    assert_eq!(i.decrement(127).await.unwrap(), -127);
    assert_eq!(i.decrement(1).await.unwrap(), -128);
    assert!(matches!(
        i.decrement(1).await,
        Err(Error::Overflow {
            kind: NumKind::I8,
            ..
        })
    ));
    assert!(
        matches!(i.increment(-1).await, Err(Error::Overflow { .. })),
        "-128 + -1 overflows"
    );
    assert_eq!(i.get().await.unwrap(), Some(-128));
    let u = engine.handle::<u64>(slot(&exec("e"), "u"));
    u.set(u64::MAX).await.unwrap();
    assert!(matches!(
        u.increment(1).await,
        Err(Error::Overflow {
            kind: NumKind::U64,
            ..
        })
    ));
    let s = engine.handle::<i64>(slot(&exec("e"), "s"));
    s.set(i64::MIN).await.unwrap();
    assert!(matches!(
        s.decrement(1).await,
        Err(Error::Overflow {
            kind: NumKind::I64,
            ..
        })
    ));
    assert_eq!(s.increment(i64::MAX).await.unwrap(), -1);
    Ok(())
}

async fn floats_must_stay_finite(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let f = engine.handle::<f64>(slot(&exec("e"), "f"));
    assert!(matches!(
        f.increment(f64::NAN).await,
        Err(Error::NotFinite { .. })
    ));
    assert!(matches!(
        f.increment(f64::INFINITY).await,
        Err(Error::NotFinite { .. })
    ));
    assert_eq!(
        f.get_versioned().await.unwrap().version,
        0,
        "nothing written"
    );
    f.set(f64::MAX).await.unwrap();
    assert!(matches!(
        f.increment(f64::MAX).await,
        Err(Error::NotFinite { .. })
    ));
    assert_eq!(f.get().await.unwrap(), Some(f64::MAX));
    let g = engine.handle::<f32>(slot(&exec("e"), "g"));
    g.set(f32::MAX).await.unwrap();
    assert!(
        matches!(
            g.increment(f32::MAX).await,
            Err(Error::NotFinite {
                kind: NumKind::F32,
                ..
            })
        ),
        "f32 overflows at f32's range, not f64's"
    );
    assert_eq!(g.decrement(f32::MAX).await.unwrap(), 0.0);
    assert_eq!(g.increment(0.5).await.unwrap(), 0.5);
    Ok(())
}

async fn numbers_that_no_longer_fit_the_field_are_typed_errors(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<u8>(slot(&exec("e"), "n"));
    h.set_raw(json!(300)).await.unwrap();
    assert!(matches!(
        h.increment(1).await,
        Err(Error::TypeMismatch { .. })
    ));
    match h.get().await {
        Err(Error::Decode {
            version,
            type_name,
            slot,
            ..
        }) => {
            assert_eq!((version, type_name), (1, "u8"));
            assert_eq!(&slot, h.slot());
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    h.set_raw(json!("three")).await.unwrap();
    assert!(matches!(
        h.increment(1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        h.get().await,
        Err(Error::Decode { version: 2, .. })
    ));
    // get_raw reaches the JSON for repair.
    assert_eq!(h.get_raw().await.unwrap().value, Some(json!("three")));
    h.set(3).await.unwrap();
    assert_eq!(h.get().await.unwrap(), Some(3));
    Ok(())
}

async fn untyped_amounts_must_fit_their_kind(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let s = slot(&exec("e"), "n");
    let bad = Write::apply(
        s.clone(),
        vec![Op::increment(Path::root(), 256u32.into(), NumKind::U8)],
    );
    assert!(matches!(
        engine.commit(vec![bad]).await,
        Err(Error::InvalidOp { .. })
    ));
    let neg = Write::apply(
        s.clone(),
        vec![Op::increment(Path::root(), (-1i64).into(), NumKind::U32)],
    );
    assert!(matches!(
        engine.commit(vec![neg]).await,
        Err(Error::InvalidOp { .. })
    ));
    assert_eq!(engine.load(&s).await.unwrap().version, 0);
    Ok(())
}

async fn sequences_and_maps(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let list = engine.handle::<Vec<String>>(slot(&exec("e"), "list"));
    for x in ["a", "b", "c"] {
        list.append(x.into()).await.unwrap();
    }
    assert_eq!(list.remove_first().await.unwrap().as_deref(), Some("a"));
    assert_eq!(list.remove_last().await.unwrap().as_deref(), Some("c"));
    assert_eq!(list.get().await.unwrap(), Some(vec!["b".to_string()]));
    let map = engine.handle::<BTreeMap<String, u32>>(slot(&exec("e"), "map"));
    map.merge([("a", 1), ("b", 2)]).await.unwrap();
    map.insert("c.d", 3).await.unwrap(); // keys may contain dots
    assert_eq!(map.remove("a").await.unwrap(), Some(1));
    assert_eq!(map.remove("zz").await.unwrap(), None);
    let got = map.get().await.unwrap().unwrap();
    assert_eq!(got, BTreeMap::from([("b".into(), 2), ("c.d".into(), 3)]));
    // A map op on a list is a type mismatch that writes nothing.
    let wrong = engine.handle::<BTreeMap<String, u32>>(list.slot().clone());
    let before = list.get_versioned().await.unwrap().version;
    assert!(matches!(
        wrong.insert("x", 1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(list.get_versioned().await.unwrap().version, before);
    Ok(())
}

async fn json_null_is_never_stored_for_absence(env: &Env) -> CheckResult {
    let engine = env.engine.clone();
    let h = engine.handle::<Value>(slot(&exec("e"), "v"));
    assert!(matches!(
        h.set(Value::Null).await,
        Err(Error::InvalidOp { .. })
    ));
    assert!(matches!(
        h.set_if(0, Value::Null).await,
        Err(Error::InvalidOp { .. })
    ));
    assert_eq!(h.get_versioned().await.unwrap().version, 0);
    Ok(())
}
