//! Path ops: checked arithmetic, sequences, maps, nested paths, all-or-nothing application.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use state_core::backend::apply_ops;
use state_core::{
    Engine, EngineConfig, Error, MemoryStore, NumKind, Op, OpKind, Path, Scope, Slot, Write,
};

use crate::common::{engine, exec, slot};

#[tokio::test]
async fn u32_overflows_at_its_own_max_and_writes_nothing() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn floats_must_stay_finite() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn numbers_that_no_longer_fit_the_field_are_typed_errors() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn untyped_amounts_must_fit_their_kind() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn sequences_and_maps() {
    let (engine, _) = engine();
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
}

fn s() -> Slot {
    Slot::new(Scope::app("a").unwrap(), "n", "k").unwrap()
}

#[test]
fn nested_paths_apply_and_report_absent_parents() {
    let doc = json!({"profile": {"age": 30, "tags": []}, "a.b": {"c": 1}});
    let ops = [
        Op::increment(Path::new(["profile", "age"]), 1u32.into(), NumKind::U32),
        Op::append(Path::new(["profile", "tags"]), json!("x")),
        Op::increment(Path::new(["a.b", "c"]), 1u32.into(), NumKind::U32),
        Op::set(Path::new(["profile", "name"]), json!("Ann")), // missing leaf: inserted
        Op::increment(Path::new(["profile", "visits"]), 2u32.into(), NumKind::U32), // neutral 0
        Op::delete(Path::new(["profile", "tags"])),
    ];
    let (out, outputs) = apply_ops(&s(), Some(doc.clone()), &ops).unwrap();
    assert_eq!(
        out.unwrap(),
        json!({"profile": {"age": 31, "name": "Ann", "visits": 2}, "a.b": {"c": 2}})
    );
    assert_eq!(outputs[0], Some(json!(31)));
    assert_eq!(
        outputs[5],
        Some(json!(["x"])),
        "delete returns the previous value"
    );
    // An absent parent is an error (store-level all-or-nothing is tested below).
    let e = apply_ops(
        &s(),
        Some(doc.clone()),
        &[Op::set(Path::new(["nope", "x"]), json!(1))],
    );
    assert!(matches!(e, Err(Error::InvalidPath { .. })), "{e:?}");
    let e = apply_ops(&s(), None, &[Op::set(Path::new(["x"]), json!(1))]);
    assert!(matches!(e, Err(Error::InvalidPath { .. })));
    // Descending into a non-object.
    let e = apply_ops(
        &s(),
        Some(doc.clone()),
        &[Op::set(Path::new(["profile", "age", "x"]), json!(1))],
    );
    assert!(matches!(e, Err(Error::TypeMismatch { .. })), "{e:?}");
}

#[test]
fn ops_round_trip_as_json() {
    let ops = vec![
        Op::set(Path::new(["a"]), json!({"x": 1})),
        Op::delete(Path::root()),
        Op::increment(Path::root(), 1u8.into(), NumKind::U8),
        Op::decrement(Path::root(), (-3i64).into(), NumKind::I64),
        Op::append(Path::root(), json!(1)),
        Op::remove_first(Path::root()),
        Op::remove_last(Path::root()),
        Op::merge(Path::root(), serde_json::Map::new()),
    ];
    let json = serde_json::to_string(&ops).unwrap();
    let back: Vec<Op> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ops);
    let unknown: Result<Op, _> = serde_json::from_str(r#"{"path":[],"op":"explode"}"#);
    assert!(unknown.is_err());
    assert_eq!(OpKind::RemoveFirst.name(), "remove_first");
}

#[tokio::test]
async fn a_failing_op_list_leaves_the_value_untouched() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn a_batch_over_three_slots_whose_third_op_overflows_writes_nothing() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn a_cas_conflict_in_a_batch_writes_nothing() {
    let (engine, _) = engine();
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
}

#[tokio::test]
async fn oversized_values_are_rejected_by_the_engine_limit() {
    let engine = Engine::with_config(
        Arc::new(MemoryStore::new()),
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
}

#[tokio::test]
async fn json_null_is_never_stored_for_absence() {
    let (engine, _) = engine();
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
}
