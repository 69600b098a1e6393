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
