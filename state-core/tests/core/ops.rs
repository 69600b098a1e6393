//! Path ops on values, without a store: nested paths and the ops' JSON form. (What a store
//! does with them is the conformance suite's.)

use serde_json::json;
use state_core::backend::apply_ops;
use state_core::{Error, NumKind, Op, OpKind, Path, Scope, Slot};

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
