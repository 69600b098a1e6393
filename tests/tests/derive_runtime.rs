//! Runtime behaviour of every generated method, against `MemoryStore`.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;
use state_core::{
    Context, Engine, Error, FieldScope, MemoryStore, NumKind, Scope, Slot, StatePath, StateScope,
};

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub age: u32,
    pub display_name: String,
    pub nick: Option<String>,
    pub tags: Vec<String>,
    pub address: Option<Address>,
    #[serde(rename = "lvl")]
    pub level: u8,
    pub mode: Mode,
}

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Address {
    pub city: String,
    pub zip: Option<String>,
}

/// An enum deriving `StatePath` is a leaf: set as a whole.
#[derive(StatePath, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub enum Mode {
    #[default]
    Fast,
    Thorough,
}

/// A type without `StatePath`, usable through `#[state(leaf)]`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Opaque(pub String);

#[derive(StateScope, Serialize, Deserialize, Debug, PartialEq)]
pub struct Research {
    /// How many fetches ran.
    #[state(initial = 0)]
    pub attempts: u32,
    pub articles: Vec<String>,
    pub total_cost: f64,
    pub profile: Profile,
    pub scores: BTreeMap<String, u32>,
    #[state(default)]
    pub notes: Vec<String>,
    #[state(user)]
    pub theme: Option<String>,
    #[state(app)]
    pub discount_code: Option<String>,
    #[state(temp)]
    pub raw_response: Option<String>,
    #[state(leaf)]
    pub opaque: Option<Opaque>,
    #[state(rename = "kind")]
    pub r#type: Option<String>,
    #[state(skip)]
    pub scratch: Vec<u8>,
}

/// Another struct with an `attempts` field: its own namespace, so its own slot.
#[derive(StateScope, Serialize, Deserialize)]
#[state(namespace = "other-ns", workflow)]
pub struct Other {
    pub attempts: u32,
    #[state(execution)]
    pub local_count: u32,
}

#[derive(StateScope, Serialize, Deserialize, Debug, Default, PartialEq)]
#[state(default)]
pub struct WithDefaults {
    pub count: u32,
    pub label: String,
}

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Gauge {
    pub value: f64,
    pub history: Vec<f32>,
}

#[derive(StateScope, Serialize, Deserialize, Debug, PartialEq)]
pub struct Meter {
    pub gauge: Gauge,
    pub readings: BTreeMap<String, f64>,
}

fn ctx() -> Context {
    let engine = Engine::new(MemoryStore::new());
    Context::new(engine, "run-1")
        .unwrap()
        .with_user("shop", "alice")
        .unwrap()
}

#[tokio::test]
async fn accessors_are_typed_handles_bound_to_their_scopes() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    assert_eq!(s.attempts().get().await.unwrap(), Some(0), "initial");
    assert_eq!(s.attempts().increment(2).await.unwrap(), 2);
    assert_eq!(
        s.attempts().slot(),
        &Slot::new(Scope::execution("run-1").unwrap(), "Research", "attempts").unwrap()
    );
    assert_eq!(
        s.theme().slot().scope(),
        &Scope::user("shop", "alice").unwrap()
    );
    assert_eq!(
        s.discount_code().slot().scope(),
        &Scope::app("shop").unwrap()
    );
    assert_eq!(s.r#type().slot().key(), "kind", "`rename` sets the key");
    // An `Option<U>` field's handle is typed over `U`.
    s.theme().set("dark".to_string()).await.unwrap();
    assert_eq!(s.theme().get().await.unwrap().as_deref(), Some("dark"));
    s.articles().append("a".into()).await.unwrap();
    s.scores().insert("x", 3).await.unwrap();
    // Temp state lives in the invocation-local engine, not the store.
    s.raw_response().set("{}".into()).await.unwrap();
    assert!(s.raw_response().engine().is_deferred());
    let stored = ctx
        .engine()
        .store()
        .load_scope(&Scope::execution("run-1").unwrap(), None)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|(k, _)| k.key != "raw_response"),
        "temp is never persisted"
    );
    assert!(stored.iter().any(|(k, _)| k.key == "articles"));
}

#[tokio::test]
async fn namespaces_keep_equal_field_names_apart_and_struct_scopes_apply() {
    let ctx = ctx().with_workflow("research").unwrap();
    let r = ctx.state::<Research>().unwrap();
    let o = ctx.state::<Other>().unwrap();
    r.attempts().set(5).await.unwrap();
    o.attempts().set(7).await.unwrap();
    assert_eq!(r.attempts().get().await.unwrap(), Some(5));
    assert_eq!(o.attempts().get().await.unwrap(), Some(7));
    assert_eq!(o.attempts().slot().namespace(), "other-ns");
    assert_eq!(
        o.attempts().slot().scope(),
        &Scope::workflow("research").unwrap()
    );
    assert_eq!(
        o.local_count().slot().scope(),
        &Scope::execution("run-1").unwrap()
    );
    assert_eq!(<Other as StateScope>::NAMESPACE, "other-ns");
}

#[tokio::test]
async fn a_field_needing_an_id_the_context_lacks_is_an_error() {
    let engine = Engine::new(MemoryStore::new());
    let bare = Context::new(engine, "run-1").unwrap();
    match bare.state::<Research>() {
        Err(Error::MissingScope {
            type_name,
            field,
            scope,
            ..
        }) => {
            assert_eq!(
                (type_name, field, scope),
                ("Research", "theme", FieldScope::User)
            );
        }
        other => panic!("expected MissingScope, got {:?}", other.map(|_| ())),
    }
    let msg = bare.state::<Research>().err().unwrap().to_string();
    assert!(
        msg.contains("`theme` of `Research` is `#[state(user)]`"),
        "{msg}"
    );
    assert!(msg.contains(".with_user(app, user)"), "{msg}");
    assert!(matches!(
        bare.state::<Other>(),
        Err(Error::MissingScope {
            scope: FieldScope::Workflow,
            ..
        })
    ));
}

#[tokio::test]
async fn load_reads_every_field_into_a_snapshot_convertible_into_the_struct() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    // A required field never written and without `initial` or `default`: an error naming it.
    let snap = s.load().await.unwrap();
    match snap.to_value() {
        Err(Error::Missing { slot, .. }) => assert_eq!(slot.key(), "articles"),
        other => panic!("expected Missing, got {other:?}"),
    }
    s.articles().append("a".into()).await.unwrap();
    s.total_cost().set(1.5).await.unwrap();
    s.profile()
        .set(Profile {
            age: 3,
            ..Profile::default()
        })
        .await
        .unwrap();
    s.scores().insert("x", 1).await.unwrap();
    s.theme().set("dark".into()).await.unwrap();
    s.opaque().set(Opaque("o".into())).await.unwrap();
    let snap = s.load().await.unwrap();
    assert_eq!(snap.attempts().cached().unwrap().unwrap().version, 0);
    assert_eq!(snap.articles().cached().unwrap().unwrap().version, 1);
    let value: Research = snap.to_value().unwrap();
    assert_eq!(
        value,
        Research {
            attempts: 0, // initial
            articles: vec!["a".into()],
            total_cost: 1.5,
            profile: Profile {
                age: 3,
                ..Profile::default()
            },
            scores: BTreeMap::from([("x".into(), 1)]),
            notes: vec![], // #[state(default)]
            theme: Some("dark".into()),
            discount_code: None,
            raw_response: None,
            opaque: Some(Opaque("o".into())),
            r#type: None,
            scratch: vec![], // skip: Default
        }
    );
    let again = Research::try_from(snap.clone()).unwrap();
    assert_eq!(again, value);
    // After a delete, `initial` does not come back: `attempts` is now missing.
    s.attempts().delete().await.unwrap();
    let snap = s.load().await.unwrap();
    assert!(
        matches!(snap.to_value(), Err(Error::Missing { ref slot, .. }) if slot.key() == "attempts")
    );
}

#[tokio::test]
async fn container_default_fills_missing_fields_from_the_struct_default() {
    let ctx = ctx();
    let s = ctx.state::<WithDefaults>().unwrap();
    assert_eq!(
        s.load().await.unwrap().to_value().unwrap(),
        WithDefaults::default()
    );
    s.count().set(4).await.unwrap();
    let v = s.load().await.unwrap().to_value().unwrap();
    assert_eq!(
        v,
        WithDefaults {
            count: 4,
            label: String::new()
        }
    );
}

#[tokio::test]
async fn a_snapshot_serves_reads_and_is_refreshed_by_commits_through_it() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    s.total_cost().set(1.0).await.unwrap();
    let snap = s.load().await.unwrap();
    // Another writer changes the store: the snapshot still serves what it loaded...
    s.total_cost().set(2.0).await.unwrap();
    assert_eq!(snap.total_cost().get().await.unwrap(), Some(1.0));
    // ...and a write through it refreshes it from the commit's result.
    assert_eq!(snap.total_cost().increment(0.5).await.unwrap(), 2.5);
    let c = snap.total_cost().cached().unwrap().unwrap();
    assert_eq!((c.value, c.version), (Some(2.5), 3));
    // A batch through the snapshot refreshes every slot it wrote.
    snap.batch(|b| b.attempts().increment(1).articles().append("x".into()))
        .await
        .unwrap();
    assert_eq!(snap.attempts().cached().unwrap().unwrap().value, Some(1));
    assert_eq!(
        snap.articles().cached().unwrap().unwrap().value,
        Some(vec!["x".to_string()])
    );
    // `update` on a snapshot handle starts from the loaded record: here it is stale, so the
    // first attempt conflicts and the loop re-runs on the fresh value.
    s.attempts().set(10).await.unwrap();
    let mut seen = Vec::new();
    snap.attempts()
        .update(|n| {
            seen.push(n.copied());
            Ok(Some(n.copied().unwrap_or(0) + 1))
        })
        .await
        .unwrap();
    assert_eq!(seen, vec![Some(1), Some(10)]);
    assert_eq!(snap.attempts().cached().unwrap().unwrap().value, Some(11));
}

#[tokio::test]
async fn read_only_views_read_the_same_slots() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    s.attempts().set(3).await.unwrap();
    let view: ResearchView = s.read_only();
    assert_eq!(view.attempts().get().await.unwrap(), Some(3));
    let view2 = ctx.view::<Research>().unwrap();
    assert_eq!(view2.attempts().get().await.unwrap(), Some(3));
    let snap = view2.load().await.unwrap();
    assert_eq!(snap.attempts().cached().unwrap().unwrap().value, Some(3));
    let _ro = s.load().await.unwrap().read_only();
}

#[tokio::test]
async fn batches_follow_nested_paths_by_serde_names() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    s.profile()
        .set(Profile {
            nick: Some("n".into()),
            address: Some(Address::default()),
            ..Profile::default()
        })
        .await
        .unwrap();
    s.batch(|b| {
        b.profile()
            .age()
            .increment(30)
            .profile()
            .display_name()
            .set("Ada".into())
            .profile()
            .nick()
            .delete()
            .profile()
            .tags()
            .append("t".into())
            .profile()
            .level()
            .increment(2)
            .profile()
            .address()
            .city()
            .set("Paris".into())
            .profile()
            .address()
            .zip()
            .set("75001".into())
            .profile()
            .mode()
            .set(Mode::Thorough)
            .scores()
            .entry("a")
            .increment(5)
            .scores()
            .insert("b", 1)
            .scores()
            .remove("b")
            .opaque()
            .set(Opaque("x".into()))
    })
    .await
    .unwrap();
    let raw = s.profile().get_raw().await.unwrap();
    assert_eq!(raw.version, 2, "one batch: one version step for the slot");
    assert_eq!(
        raw.value.unwrap(),
        json!({
            "age": 30, "displayName": "Ada", "tags": ["t"], "lvl": 2, "mode": "Thorough",
            "address": {"city": "Paris", "zip": "75001"}
        })
    );
    assert_eq!(
        s.scores().get().await.unwrap(),
        Some(BTreeMap::from([("a".into(), 5)]))
    );
    assert_eq!(s.opaque().get().await.unwrap(), Some(Opaque("x".into())));
    // A whole-slot delete is always allowed; a nested `Option` struct can be deleted too.
    s.batch(|b| b.profile().address().delete().theme().delete())
        .await
        .unwrap();
    assert_eq!(s.profile().get().await.unwrap().unwrap().address, None);
}

#[tokio::test]
async fn a_batch_touching_three_fields_whose_third_op_overflows_writes_nothing() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    s.profile()
        .set(Profile {
            level: 255,
            ..Profile::default()
        })
        .await
        .unwrap();
    let before: Vec<u64> = vec![
        s.attempts().get_versioned().await.unwrap().version,
        s.articles().get_versioned().await.unwrap().version,
        s.profile().get_versioned().await.unwrap().version,
    ];
    let err = s
        .batch(|b| {
            b.attempts()
                .increment(1)
                .articles()
                .append("a".into())
                .profile()
                .level()
                .increment(1)
        })
        .await
        .unwrap_err();
    match err {
        Error::Overflow {
            slot, kind, path, ..
        } => {
            assert_eq!((slot.key(), kind), ("profile", NumKind::U8));
            assert_eq!(path.segments(), ["lvl"]);
        }
        other => panic!("expected Overflow, got {other:?}"),
    }
    let after: Vec<u64> = vec![
        s.attempts().get_versioned().await.unwrap().version,
        s.articles().get_versioned().await.unwrap().version,
        s.profile().get_versioned().await.unwrap().version,
    ];
    assert_eq!(before, after, "nothing written to any of the three");
    assert_eq!(s.attempts().get().await.unwrap(), Some(0));
}

#[tokio::test]
async fn temp_parts_of_a_batch_apply_only_with_the_store_commit() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    // The durable part fails (a nested op under an absent profile): the temp part is not applied.
    let err = s
        .batch(|b| b.raw_response().set("r".into()).profile().age().set(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    assert_eq!(s.raw_response().get().await.unwrap(), None);
    // The temp part would fail: nothing is written to the store either.
    s.raw_response().set("r".into()).await.unwrap();
    let engine_only = s.raw_response().target().clone();
    let bad = state_core::BatchBuilder::new()
        .push(
            s.attempts().target(),
            Ok(state_core::Op::increment(
                state_core::Path::root(),
                1u32.into(),
                NumKind::U32,
            )),
        )
        .push(
            &engine_only,
            Ok(state_core::Op::increment(
                state_core::Path::root(),
                1u32.into(),
                NumKind::U32,
            )),
        );
    assert!(matches!(
        bad.commit().await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(s.attempts().get_versioned().await.unwrap().version, 0);
    // Both succeed together.
    s.batch(|b| b.raw_response().set("ok".into()).attempts().increment(1))
        .await
        .unwrap();
    assert_eq!(s.raw_response().get().await.unwrap().as_deref(), Some("ok"));
    assert_eq!(s.attempts().get().await.unwrap(), Some(1));
}

use state_core::BatchSink as _;

#[derive(StateScope, Serialize, Deserialize)]
pub struct Generic<T>
where
    T: Clone,
{
    pub item: Option<T>,
    pub items: Vec<T>,
    pub by_name: HashMap<String, T>,
}

#[tokio::test]
async fn generic_structs_work() {
    let ctx = ctx();
    let s = ctx.state::<Generic<u64>>().unwrap();
    s.item().increment(3).await.unwrap();
    s.items().append(1).await.unwrap();
    s.batch(|b| b.item().increment(1).by_name().insert("k", 2))
        .await
        .unwrap();
    let v = s.load().await.unwrap().to_value().unwrap();
    assert_eq!(
        (v.item, v.items, v.by_name),
        (Some(4), vec![1], HashMap::from([("k".into(), 2)]))
    );
}

/// JSON has no NaN or infinity, and serde_json would write them as `null`: every typed write
/// refuses them with `NotFinite` naming where the float sits, and nothing is stored.
#[tokio::test]
async fn non_finite_floats_are_refused_wherever_they_sit_and_nothing_is_stored() {
    let ctx = ctx();
    let m = ctx.state::<Meter>().unwrap();
    let gauge = Gauge {
        value: 1.5,
        history: vec![1.0],
    };
    m.gauge().set(gauge.clone()).await.unwrap();
    m.readings().insert("a", 2.0).await.unwrap();
    let refused = |r: Result<_, Error>, want_path: state_core::Path, want_kind: NumKind| match r {
        Err(Error::NotFinite { path, kind, .. }) => {
            assert_eq!((path, kind), (want_path, want_kind));
        }
        other => panic!("expected NotFinite, got {other:?}"),
    };
    let at = |segs: &[&str]| state_core::Path::new(segs.iter().copied());
    refused(
        m.gauge()
            .set(Gauge {
                value: f64::NAN,
                ..gauge.clone()
            })
            .await
            .map(drop),
        at(&["value"]),
        NumKind::F64,
    );
    refused(
        m.gauge()
            .set(Gauge {
                history: vec![1.0, f32::INFINITY],
                ..gauge.clone()
            })
            .await
            .map(drop),
        at(&["history", "1"]),
        NumKind::F32,
    );
    refused(
        m.batch(|b| b.gauge().value().set(f64::NEG_INFINITY))
            .await
            .map(drop),
        at(&["value"]),
        NumKind::F64,
    );
    refused(
        m.batch(|b| b.gauge().history().append(f32::NAN))
            .await
            .map(drop),
        at(&["history"]),
        NumKind::F32,
    );
    refused(
        m.readings().insert("b", f64::NAN).await.map(drop),
        at(&["b"]),
        NumKind::F64,
    );
    refused(
        m.gauge()
            .update(|g| {
                let mut g = g.cloned().unwrap_or_default();
                g.value = f64::INFINITY;
                Ok(Some(g))
            })
            .await
            .map(drop),
        at(&["value"]),
        NumKind::F64,
    );
    assert_eq!(m.gauge().get().await.unwrap(), Some(gauge));
    assert_eq!(
        m.readings().get().await.unwrap(),
        Some(BTreeMap::from([("a".to_string(), 2.0)]))
    );
}

#[derive(StateScope, Serialize, Deserialize, Debug, PartialEq)]
pub struct Turns {
    #[state(session, initial = 5)]
    pub n: u32,
}

/// Session state follows Weft's session rule: after any delete the initial value comes back,
/// for reads and for the writes after it alike — a CAS delete (`update` to `None`) and a delete
/// after another op in one batch included.
#[tokio::test]
async fn session_state_restarts_from_initial_after_any_delete() {
    let ctx = ctx();
    let t = ctx.state::<Turns>().unwrap();
    assert_eq!(t.n().get().unwrap(), Some(5));
    assert_eq!(t.n().increment(1).unwrap(), 6);
    // A CAS delete.
    t.n().update(|_| Ok(None)).unwrap();
    assert_eq!(t.n().get().unwrap(), Some(5));
    assert_eq!(
        t.n().increment(1).unwrap(),
        6,
        "the write starts from initial too"
    );
    // A delete after another op on the slot, in one batch.
    t.batch(|b| b.n().increment(10).n().delete()).await.unwrap();
    assert_eq!(t.n().get().unwrap(), Some(5));
    assert_eq!(t.n().increment(1).unwrap(), 6);
}

/// A checkpoint read back from elsewhere may hold anything: an invalid record is refused
/// whole (a typed error), and the session state is left as it was.
#[tokio::test]
async fn a_checkpoint_with_an_invalid_record_is_refused_and_changes_nothing() {
    let ctx = ctx();
    let t = ctx.state::<Turns>().unwrap();
    t.n().set(7).unwrap();
    let good = ctx.checkpoint();
    assert_eq!(good.session.len(), 1);
    t.n().set(8).unwrap();
    let (key, record) = good.session[0].clone();
    let with = |k: state_core::SlotKey, r: state_core::Record| {
        let mut c = good.clone();
        c.session = vec![(k, r)];
        c
    };
    let empty_key = state_core::SlotKey {
        key: String::new(),
        ..key.clone()
    };
    let bad = [
        ("an empty key", with(empty_key, record.clone())),
        (
            "version 0 with a value",
            with(
                key.clone(),
                state_core::Record::new(record.value.clone(), 0, record.expires_at),
            ),
        ),
        (
            "JSON null at the root",
            with(
                key.clone(),
                state_core::Record::new(
                    Some(serde_json::Value::Null),
                    record.version,
                    record.expires_at,
                ),
            ),
        ),
        ("a slot twice", {
            let mut c = good.clone();
            c.session.push(good.session[0].clone());
            c
        }),
    ];
    for (what, checkpoint) in bad {
        let e = ctx.restore(&checkpoint).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidId { .. } | Error::InvalidArgument(_) | Error::InvalidOp { .. }
            ),
            "{what}: {e:?}"
        );
        assert_eq!(t.n().get().unwrap(), Some(8), "{what} changed the state");
    }
    ctx.restore(&good).unwrap();
    assert_eq!(t.n().get().unwrap(), Some(7));
}

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Limits {
    pub max: usize,
}

/// Common std field types derive without `#[state(leaf)]`: `usize`/`isize` are numbers (checked
/// at the pointer width), sets, arrays, tuples and `Duration` are whole values, and a `Box<T>`
/// path is `T`'s.
#[derive(StateScope, Serialize, Deserialize, Debug, PartialEq)]
pub struct Inventory {
    pub count: usize,
    pub delta: isize,
    pub tags: std::collections::HashSet<String>,
    pub ids: std::collections::BTreeSet<u32>,
    pub rgb: [u8; 3],
    pub pair: (String, u32),
    pub wait: std::time::Duration,
    pub limits: Box<Limits>,
}

#[tokio::test]
async fn common_std_field_types_have_paths() {
    let ctx = ctx();
    let inv = ctx.state::<Inventory>().unwrap();
    assert_eq!(inv.count().increment(3).await.unwrap(), 3);
    assert_eq!(inv.delta().decrement(2).await.unwrap(), -2);
    inv.limits().set(Box::default()).await.unwrap();
    inv.batch(|b| {
        b.count()
            .increment(1)
            .tags()
            .set(["a".to_string()].into())
            .ids()
            .set([3, 1].into())
            .rgb()
            .set([1, 2, 3])
            .pair()
            .set(("p".into(), 7))
            .wait()
            .set(std::time::Duration::from_millis(1500))
            .limits()
            .max()
            .increment(10)
    })
    .await
    .unwrap();
    let v = inv.load().await.unwrap().to_value().unwrap();
    assert_eq!(v.count, 4);
    assert_eq!(v.delta, -2);
    assert_eq!(v.tags, ["a".to_string()].into());
    assert_eq!(v.ids, [1, 3].into());
    assert_eq!((v.rgb, v.pair.clone()), ([1, 2, 3], ("p".to_string(), 7)));
    assert_eq!(v.wait, std::time::Duration::from_millis(1500));
    assert_eq!(v.limits.max, 10);
    let e = inv.count().decrement(5).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Overflow {
                kind: NumKind::U64,
                ..
            }
        ),
        "usize is checked as u64 here: {e:?}"
    );
}

#[derive(StateScope, Serialize, Deserialize, Debug, PartialEq)]
pub struct Counter {
    /// Starts at 10; after a delete, `Default` (0) fills the struct.
    #[state(initial = 10, default)]
    pub count: u32,
}

/// `initial` says what a never-written field holds, `default` what fills the struct after a
/// delete (Restate's `clear` then `load`): together, a cleared object still converts.
#[tokio::test]
async fn initial_and_default_together_cover_never_written_and_deleted() {
    let ctx = ctx();
    let s = ctx.state::<Counter>().unwrap();
    assert_eq!(s.count().get().await.unwrap(), Some(10));
    assert_eq!(
        s.load().await.unwrap().to_value().unwrap(),
        Counter { count: 10 }
    );
    s.count().increment(1).await.unwrap();
    assert_eq!(s.count().get().await.unwrap(), Some(11));
    s.count().delete().await.unwrap();
    assert_eq!(
        s.count().get().await.unwrap(),
        None,
        "initial does not come back"
    );
    assert_eq!(
        s.load().await.unwrap().to_value().unwrap(),
        Counter { count: 0 }
    );
}

/// A keyed collection of `StatePath` values: typed nested ops on an entry (Motia's atomic
/// path ops) without a read, several entries in one commit, a typed page of live entries, and
/// a clear of the namespace that leaves the scope's other namespaces alone.
#[tokio::test]
async fn collection_entries_take_typed_path_ops_list_typed_and_clear() {
    let engine = Engine::new(MemoryStore::new());
    let group = Scope::group("players").unwrap();
    let gauges = engine.collection::<Gauge>(group.clone(), "Gauge").unwrap();
    let other = engine.collection::<u32>(group, "Other").unwrap();
    other.entry("keep").unwrap().set(1).await.unwrap();
    let a = gauges.entry("a").unwrap();
    a.set(Gauge::default()).await.unwrap();
    a.batch(|b| b.value().value().increment(1.5)).await.unwrap();
    a.batch(|b| b.value().history().append(0.5)).await.unwrap();
    let b = gauges.entry("b").unwrap();
    let out = engine
        .batch()
        .at(&a)
        .value()
        .increment(1.0)
        .at(&b)
        .set(Gauge {
            value: 7.0,
            history: vec![],
        })
        .commit()
        .await
        .unwrap();
    assert_eq!(out.len(), 2, "one commit, two slots");
    let want_a = Gauge {
        value: 2.5,
        history: vec![0.5],
    };
    assert_eq!(a.get().await.unwrap(), Some(want_a.clone()));
    // A nested op on an entry that holds nothing has no parent: an error, nothing written.
    let c = gauges.entry("c").unwrap();
    c.batch(|b| b.value().value().increment(1.0))
        .await
        .unwrap_err();
    assert_eq!(c.get_versioned().await.unwrap().version, 0);

    let first = gauges.entries(None, 1).await.unwrap();
    assert_eq!(first.items, vec![("a".to_string(), want_a)]);
    assert_eq!(first.next.as_deref(), Some("a"));
    let second = gauges.entries(first.next.as_deref(), 10).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].0, "b");
    assert_eq!(second.next, None);

    assert_eq!(gauges.clear().await.unwrap(), 2);
    assert!(gauges.entries(None, 10).await.unwrap().items.is_empty());
    assert_eq!(a.get_versioned().await.unwrap().version, 5, "a tombstone");
    assert_eq!(other.entry("keep").unwrap().get().await.unwrap(), Some(1));
    assert_eq!(gauges.clear().await.unwrap(), 0);
    // More entries than one commit of the clear deletes.
    let many = engine
        .collection::<u32>(Scope::group("many").unwrap(), "N")
        .unwrap();
    for i in 0..600 {
        many.entry(format!("k{i:03}"))
            .unwrap()
            .set(i)
            .await
            .unwrap();
    }
    assert_eq!(many.clear().await.unwrap(), 600);
    assert!(many.keys(None, 10).await.unwrap().items.is_empty());
}

/// A compare-and-swap inside a typed batch: the guard and the other fields' path ops commit
/// together or not at all; a CAS is its slot's only write in a batch.
#[tokio::test]
async fn a_typed_batch_carries_compare_and_swap_writes() {
    let ctx = ctx();
    let s = ctx.state::<Research>().unwrap();
    let read = s.attempts().get_versioned().await.unwrap();
    ctx.engine()
        .batch()
        .set_if(s.attempts(), read.version, 1)
        .at(s.profile())
        .set(Profile::default())
        .commit()
        .await
        .unwrap();
    let stale = ctx
        .engine()
        .batch()
        .set_if(s.attempts(), read.version, 2)
        .at(s.profile())
        .age()
        .set(40)
        .commit()
        .await;
    match stale {
        Err(Error::VersionMismatch { slot, .. }) => assert_eq!(&slot, s.attempts().slot()),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.attempts().get().await.unwrap(), Some(1));
    assert_eq!(
        s.profile().get().await.unwrap().unwrap().age,
        0,
        "nothing written"
    );
    ctx.engine()
        .batch()
        .delete_if(s.attempts(), 1)
        .commit()
        .await
        .unwrap();
    assert_eq!(s.attempts().get().await.unwrap(), None);
    // A CAS and ops on one slot: refused, nothing written.
    let mixed = ctx
        .engine()
        .batch()
        .increment(s.total_cost(), 1.0)
        .set_if(s.total_cost(), 1, 5.0)
        .commit()
        .await;
    assert!(
        matches!(mixed, Err(Error::InvalidOp { op: "set_if", .. })),
        "{mixed:?}"
    );
    assert_eq!(s.total_cost().get_versioned().await.unwrap().version, 0);
}

#[derive(StateScope, Serialize, Deserialize)]
#[state(max_retries = 5)]
pub struct Impatient {
    /// One attempt: a conflict is reported at once.
    #[state(max_retries = 0)]
    pub hits: u32,
    /// The struct's five retries.
    pub misses: u32,
}

/// `max_retries` on a field (or the struct, for every field) bounds its `update`'s retries:
/// a stale snapshot's first attempt conflicts, and with no retries that is the outcome.
#[tokio::test]
async fn max_retries_on_a_field_or_the_struct_bounds_its_updates() {
    let ctx = ctx();
    let s = ctx.state::<Impatient>().unwrap();
    let snap = s.load().await.unwrap();
    s.hits().set(1).await.unwrap();
    s.misses().set(1).await.unwrap();
    let bump = |n: Option<&u32>| Ok(Some(n.copied().unwrap_or(0) + 1));
    match snap.hits().update(bump).await {
        Err(Error::Conflict { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(snap.misses().update(bump).await.unwrap(), Some(2));
    assert_eq!(
        s.hits().get().await.unwrap(),
        Some(1),
        "the refused update wrote nothing"
    );
}

#[derive(StateScope, Serialize, Deserialize)]
#[state(object)]
pub struct Cart {
    pub items: Vec<String>,
    #[state(rename = "code")]
    pub coupon: Option<String>,
    #[state(user)]
    pub wishlist: Option<Vec<String>>,
}

#[derive(StateScope, Serialize, Deserialize)]
#[state(object)]
pub struct Checkout {
    pub step: u8,
}

/// What a Restate handler reaches for on its current object: the scopes the context is
/// bound to, one struct's stored keys (by their stored names), every key of the object across
/// structs, and clearing the whole object.
#[tokio::test]
async fn a_context_names_its_scopes_lists_and_clears_its_object() {
    let engine = Engine::new(MemoryStore::new());
    let bare = Context::new(engine.clone(), "inv-0").unwrap();
    assert!(bare.object().is_none() && bare.user().is_none() && bare.workflow().is_none());
    match bare.clear_object().await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("with_object"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bare.state_keys::<Cart>().await,
        Err(Error::MissingScope { field: "items", .. })
    ));
    let ctx = Context::new(engine, "inv-1")
        .unwrap()
        .with_object("cart", "ada")
        .unwrap()
        .with_user("shop", "ada")
        .unwrap();
    assert_eq!(ctx.object(), Some(&Scope::object("cart", "ada").unwrap()));
    assert_eq!(ctx.user(), Some(&Scope::user("shop", "ada").unwrap()));
    assert_eq!(ctx.app(), Some(&Scope::app("shop").unwrap()));
    let cart = ctx.state::<Cart>().unwrap();
    cart.coupon().set("SPRING".into()).await.unwrap();
    cart.wishlist().set(vec!["pears".into()]).await.unwrap();
    ctx.state::<Checkout>()
        .unwrap()
        .step()
        .set(2)
        .await
        .unwrap();
    assert_eq!(
        ctx.state_keys::<Cart>().await.unwrap(),
        vec!["code", "wishlist"]
    );
    let keys: Vec<(String, String)> = ctx
        .object_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.namespace, k.key))
        .collect();
    assert_eq!(
        keys,
        [
            ("Cart".into(), "code".into()),
            ("Checkout".into(), "step".into())
        ]
    );
    assert_eq!(ctx.clear_object().await.unwrap(), 2);
    assert!(ctx.object_keys().await.unwrap().is_empty());
    assert_eq!(
        ctx.state_keys::<Cart>().await.unwrap(),
        vec!["wishlist"],
        "user scope kept"
    );
}

/// `Turns` after a deploy that changed the field's `initial`.
#[derive(StateScope, Serialize, Deserialize)]
#[state(namespace = "Turns")]
pub struct TurnsV2 {
    #[state(session, initial = 9)]
    pub n: u32,
}

/// Weft's session rule, all of it: after `set` then `delete` the checkpoint holds no value for
/// the field (a tombstone, not the initial value frozen in), so a restore into code with
/// another `initial` reads that one; an op after a delete in the same batch starts from
/// `initial` too.
#[tokio::test]
async fn a_deleted_session_field_leaves_nothing_in_the_checkpoint() {
    let ctx = ctx();
    let t = ctx.state::<Turns>().unwrap();
    t.n().set(1).unwrap();
    t.n().delete().unwrap();
    let saved = ctx.checkpoint();
    let (_, record) = saved
        .session
        .iter()
        .find(|(k, _)| k.key == "n")
        .expect("the slot is in the checkpoint");
    assert_eq!(record.value, None, "a tombstone: {record:?}");
    assert_eq!(t.n().get().unwrap(), Some(5));
    // The same checkpoint restored where the field's initial is now 9.
    let later = Context::new(Engine::new(MemoryStore::new()), "run-1").unwrap();
    later.restore(&saved).unwrap();
    let v2 = later.state::<TurnsV2>().unwrap();
    assert_eq!(v2.n().get().unwrap(), Some(9));
    assert_eq!(v2.n().increment(1).unwrap(), 10);
    // An op after a delete in one batch starts from initial.
    t.batch(|b| b.n().delete().n().increment(1)).await.unwrap();
    assert_eq!(t.n().get().unwrap(), Some(6));
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Scratch {
    #[state(session)]
    pub notes: BTreeMap<String, String>,
}

/// Session handles have the durable handles' methods: strict CAS writes and deletes, a map
/// merge, and the field's events.
#[tokio::test]
async fn session_handles_have_cas_merge_and_events() {
    let ctx = ctx();
    let s = ctx.state::<Scratch>().unwrap();
    let mut events = s.notes().events();
    let v = s.notes().merge([("a", "1".to_string())]).unwrap();
    s.notes().merge([("b", "2".to_string())]).unwrap();
    let both: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(s.notes().get().unwrap(), Some(both));
    assert!(matches!(
        s.notes().set_if(v, BTreeMap::new()),
        Err(Error::VersionMismatch { .. })
    ));
    assert_eq!(s.notes().set_if(v + 1, BTreeMap::new()).unwrap(), v + 2);
    assert_eq!(s.notes().delete_if(v + 2).unwrap(), v + 3);
    let first = futures::StreamExt::next(&mut events).await.unwrap();
    assert!(
        matches!(first, state_core::Event::Change { new_version: 1, .. }),
        "{first:?}"
    );
}

/// ADK's session identity is (app, user, session id): the joined execution id cannot make two
/// different triples one, whatever the parts hold.
#[tokio::test]
async fn user_sessions_are_told_apart_by_app_user_and_session_id() {
    let engine = Engine::new(MemoryStore::new());
    let make = |app: &str, user: &str, id: &str| {
        Context::for_user_session(engine.clone(), app, user, id).unwrap()
    };
    let a = make("shop", "a/b", "c");
    let b = make("shop", "a", "b/c");
    let c = make("shop", "a%2Fb", "c");
    assert_ne!(a.execution(), b.execution());
    assert_ne!(a.execution(), c.execution());
    assert_eq!(a.user(), Some(&Scope::user("shop", "a/b").unwrap()));
    a.state::<Research>()
        .unwrap()
        .attempts()
        .set(3)
        .await
        .unwrap();
    assert_eq!(
        b.state::<Research>()
            .unwrap()
            .attempts()
            .get()
            .await
            .unwrap(),
        Some(0)
    );
    assert!(matches!(
        Context::for_user_session(engine.clone(), "shop", "u", ""),
        Err(Error::InvalidId { .. })
    ));
}

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    pub articles: Vec<String>,
    pub summary_text: String,
    pub note: Option<String>,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Study {
    pub findings: Findings,
}

/// Weft's `findings.merge({ articles: [...] })` on a struct value: a generated patch type
/// whose `None` fields stay as stored; an `Option` field's `Some(None)` deletes it; through a
/// state's batch and through any handle's.
#[tokio::test]
async fn a_struct_value_merges_a_typed_patch() {
    let ctx = ctx();
    let s = ctx.state::<Study>().unwrap();
    s.findings()
        .set(Findings {
            articles: vec!["a".into()],
            summary_text: "kept".into(),
            note: Some("draft".into()),
        })
        .await
        .unwrap();
    let patch = FindingsPatch {
        articles: Some(vec!["b".into(), "c".into()]),
        ..Default::default()
    };
    // The patch is Debug, Clone and PartialEq because every field is.
    assert_eq!(patch.clone(), patch);
    assert!(
        format!("{patch:?}").starts_with("FindingsPatch { articles: Some("),
        "{patch:?}"
    );
    s.batch(|b| b.findings().merge(patch)).await.unwrap();
    let got = s.findings().get().await.unwrap().unwrap();
    assert_eq!(got.articles, ["b", "c"]);
    assert_eq!(got.summary_text, "kept");
    assert_eq!(got.note.as_deref(), Some("draft"));
    let raw = s.findings().get_raw().await.unwrap().value.unwrap();
    assert_eq!(raw["summaryText"], "kept", "serde's names");
    s.findings()
        .batch(|b| {
            b.value().merge(FindingsPatch {
                note: Some(None),
                summary_text: Some("done".into()),
                ..Default::default()
            })
        })
        .await
        .unwrap();
    let got = s.findings().get().await.unwrap().unwrap();
    assert_eq!((got.note, got.summary_text.as_str()), (None, "done"));
    assert!(raw.get("note").is_some());
    let raw = s.findings().get_raw().await.unwrap().value.unwrap();
    assert!(raw.get("note").is_none(), "deleted, not null: {raw}");
    // A merge into a slot holding nothing has no value to merge into: an error, nothing written.
    let other = Context::new(ctx.engine().clone(), "run-2").unwrap();
    let fresh = other.state::<Study>().unwrap();
    let patch = FindingsPatch {
        articles: Some(vec![]),
        ..Default::default()
    };
    fresh
        .findings()
        .batch(|b| b.value().merge(patch))
        .await
        .unwrap_err();
    assert_eq!(fresh.findings().get_versioned().await.unwrap().version, 0);
}

/// Admin handles typed by the struct: namespace, keys and `initial` from the derive; a struct
/// with a field outside the opened scope (or in session memory) is refused, naming the field.
#[tokio::test]
async fn admin_state_is_typed_by_the_struct_and_all_or_nothing() {
    let engine = Engine::new(MemoryStore::new());
    let ctx = Context::new(engine.clone(), "inv-1")
        .unwrap()
        .with_object("cart", "ada")
        .unwrap();
    ctx.state::<Checkout>()
        .unwrap()
        .step()
        .set(3)
        .await
        .unwrap();
    let admin = engine.scope(Scope::object("cart", "ada").unwrap());
    let checkout = admin.state::<Checkout>().unwrap();
    assert_eq!(checkout.step().get().await.unwrap(), Some(3));
    checkout.step().increment(1).await.unwrap();
    assert_eq!(
        ctx.view::<Checkout>().unwrap().step().get().await.unwrap(),
        Some(4)
    );
    // Cart has a user field: not in the object scope.
    assert!(matches!(
        admin.state::<Cart>(),
        Err(Error::MissingScope {
            field: "wishlist",
            ..
        })
    ));
    // An execution's durable fields, by the derive's initial; session fields refused.
    let run = engine.scope(Scope::execution("run-9").unwrap());
    let other = run.view::<Other>();
    assert!(
        matches!(
            other,
            Err(Error::MissingScope {
                field: "attempts",
                ..
            })
        ),
        "a workflow field"
    );
    assert!(matches!(
        run.state::<Turns>(),
        Err(Error::MissingScope { field: "n", .. })
    ));
    #[derive(StateScope, Serialize, Deserialize)]
    struct Job {
        #[state(initial = 7)]
        tries: u32,
    }
    assert_eq!(
        run.view::<Job>().unwrap().tries().get().await.unwrap(),
        Some(7)
    );
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Mixed {
    #[state(temp)]
    pub t: Option<u32>,
    #[state(session)]
    pub s: Option<u32>,
    pub d: Option<u32>,
}

/// A stale compare-and-swap on a temp or session slot refuses the whole batch before the
/// durable part commits: nothing is written anywhere.
#[tokio::test]
async fn a_stale_local_compare_and_swap_refuses_the_durable_part_too() {
    let ctx = ctx();
    let st = ctx.state::<Mixed>().unwrap();
    st.t().set(1).await.unwrap();
    st.s().set(1).unwrap();
    for stale in [
        ctx.engine().batch().set_if(st.t(), 0, 5),
        ctx.engine().batch().set_if(st.s().as_slot(), 0, 5),
    ] {
        let out = stale.increment(st.d(), 1).commit().await;
        assert!(
            matches!(
                out,
                Err(Error::VersionMismatch {
                    expected: 0,
                    actual: 1,
                    ..
                })
            ),
            "{out:?}"
        );
    }
    assert_eq!(
        st.d().get_versioned().await.unwrap().version,
        0,
        "nothing durable written"
    );
    assert_eq!(
        (st.t().get().await.unwrap(), st.s().get().unwrap()),
        (Some(1), Some(1))
    );
}

/// Waiting for a trigger to catch up never hangs on changes it does not read: its own cursor
/// writes and other slots' changes after the last one it handles.
#[tokio::test]
async fn waiting_for_a_trigger_skips_changes_it_does_not_read() {
    use std::time::Duration;
    let engine = Engine::new(MemoryStore::new());
    let n = engine.handle::<u64>(Slot::new(Scope::app("shop").unwrap(), "N", "n").unwrap());
    let other = engine.handle::<u64>(Slot::new(Scope::app("shop").unwrap(), "N", "o").unwrap());
    let t = engine
        .trigger(
            "audit",
            state_core::ChangeFilter::slot(n.slot()),
            |_| true,
            |_| async { Ok::<(), String>(()) },
        )
        .await
        .unwrap();
    n.increment(1).await.unwrap();
    let wait = |seq| tokio::time::timeout(Duration::from_secs(20), t.wait_handled_through(seq));
    wait(engine.change_head().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.increment(1).await.unwrap();
    // The head is now the trigger's own cursor write or `other`'s change: neither is read.
    wait(engine.change_head().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.handled(), 1);
    n.increment(1).await.unwrap();
    wait(engine.change_head().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.handled(), 2);
    assert!(t.handled_through() > 0);
}

/// Two clears of one collection at once: each entry is deleted (and counted) once, with one
/// tombstone, however the clears interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clears_count_and_tombstone_each_entry_once() {
    let engine = Engine::new(MemoryStore::new());
    let coll = engine
        .collection::<u32>(Scope::group("g").unwrap(), "N")
        .unwrap();
    for i in 0..1000 {
        coll.entry(format!("k{i:04}"))
            .unwrap()
            .set(i)
            .await
            .unwrap();
    }
    let (a, b) = (coll.clone(), coll.clone());
    let (x, y) = tokio::join!(
        tokio::spawn(async move { a.clear().await }),
        tokio::spawn(async move { b.clear().await })
    );
    let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
    assert_eq!(x + y, 1000, "{x} + {y}");
    for i in [0, 511, 999] {
        let v = coll
            .entry(format!("k{i:04}"))
            .unwrap()
            .get_versioned()
            .await
            .unwrap();
        assert_eq!((v.value, v.version), (None, 2), "one tombstone");
    }
}

/// A clear racing a task that deletes entries one by one finishes, and the two together
/// delete each entry once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_racing_a_deleter_finishes_and_counts_each_entry_once() {
    let engine = Engine::new(MemoryStore::new());
    let coll = engine
        .collection::<u32>(Scope::group("g").unwrap(), "N")
        .unwrap();
    for i in 0..600 {
        coll.entry(format!("k{i:04}"))
            .unwrap()
            .set(i)
            .await
            .unwrap();
    }
    let deleter = {
        let coll = coll.clone();
        tokio::spawn(async move {
            let mut deleted = 0u64;
            for i in (0..600).rev() {
                if coll
                    .entry(format!("k{i:04}"))
                    .unwrap()
                    .delete()
                    .await
                    .unwrap()
                    .is_some()
                {
                    deleted += 1;
                }
            }
            deleted
        })
    };
    let cleared = coll.clear().await.unwrap();
    let deleted = deleter.await.unwrap();
    assert_eq!(cleared + deleted, 600, "{cleared} + {deleted}");
}
