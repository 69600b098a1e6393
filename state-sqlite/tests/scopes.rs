//! Who sees a write in each scope, what survives reopening the store, checkpoints, purges,
//! and field TTLs — on a real SQLite file.
#![allow(missing_docs)]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, ManualClock, Scope, StateScope, Timestamp};
use state_sqlite::{SqliteOptions, SqliteStore};

#[derive(StateScope, Serialize, Deserialize, Debug)]
pub struct Everything {
    #[state(initial = 0)]
    pub exec_n: u32,
    #[state(workflow, initial = 0)]
    pub wf_n: u32,
    #[state(object, initial = 0)]
    pub obj_n: u32,
    #[state(user, initial = 0)]
    pub user_n: u32,
    #[state(app, initial = 0)]
    pub app_n: u32,
    #[state(session, initial = 0)]
    pub sess_n: u32,
    #[state(temp, initial = 0)]
    pub temp_n: u32,
}

async fn engine(path: &std::path::Path) -> Engine {
    Engine::new(SqliteStore::open(path).await.unwrap())
}

fn ctx(engine: &Engine, exec: &str, user: &str, app: &str, object: &str) -> Context {
    Context::new(engine.clone(), exec)
        .unwrap()
        .with_workflow("research")
        .unwrap()
        .with_user(app, user)
        .unwrap()
        .with_object("cart", object)
        .unwrap()
}

/// Increments every field of `c` once.
async fn touch_all(c: &Context) {
    let s = c.state::<Everything>().unwrap();
    s.exec_n().increment(1).await.unwrap();
    s.wf_n().increment(1).await.unwrap();
    s.obj_n().increment(1).await.unwrap();
    s.user_n().increment(1).await.unwrap();
    s.app_n().increment(1).await.unwrap();
    s.sess_n().increment(1).unwrap();
    s.temp_n().increment(1).await.unwrap();
}

/// Every field's value as `c` sees it.
async fn seen(c: &Context) -> [u32; 7] {
    let v = c
        .state::<Everything>()
        .unwrap()
        .load()
        .await
        .unwrap()
        .to_value()
        .unwrap();
    [
        v.exec_n, v.wf_n, v.obj_n, v.user_n, v.app_n, v.sess_n, v.temp_n,
    ]
}

#[tokio::test]
async fn each_scope_is_shared_exactly_as_designed() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir.path().join("s.db")).await;
    let a = ctx(&e, "run-1", "alice", "shop", "cart-1");
    touch_all(&a).await;
    //                                          exec wf obj user app sess temp
    assert_eq!(seen(&a).await, [1, 1, 1, 1, 1, 1, 1]);
    // Another execution of the same workflow, same user, same object: only execution-scoped
    // state (and its own session/temp) differs.
    let b = ctx(&e, "run-2", "alice", "shop", "cart-1");
    assert_eq!(seen(&b).await, [0, 1, 1, 1, 1, 0, 0]);
    // A child shares its root's execution state, not its session or temp state.
    let child = a.child("run-1/child-1").unwrap();
    assert_eq!(child.root_execution_id(), "run-1");
    assert_eq!(seen(&child).await, [1, 1, 1, 1, 1, 0, 0]);
    touch_all(&child).await;
    assert_eq!(
        seen(&a).await,
        [2, 2, 2, 2, 2, 1, 1],
        "the parent sees its child's writes"
    );
    // Another user of the same app: user state differs, app state is shared.
    let bob = ctx(&e, "run-3", "bob", "shop", "cart-1");
    assert_eq!(seen(&bob).await, [0, 2, 2, 0, 2, 0, 0]);
    // Another app: neither user nor app state is shared (same user id, different app).
    let other_app = ctx(&e, "run-4", "alice", "bank", "cart-1");
    assert_eq!(seen(&other_app).await, [0, 2, 2, 0, 0, 0, 0]);
    // Another object of the same service: object state differs.
    let other_object = ctx(&e, "run-5", "alice", "shop", "cart-2");
    assert_eq!(seen(&other_object).await, [0, 2, 0, 2, 2, 0, 0]);
}

#[tokio::test]
async fn stored_scopes_survive_reopening_session_and_temp_only_through_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let checkpoint = {
        let e = engine(&path).await;
        let c = ctx(&e, "run-1", "alice", "shop", "cart-1");
        touch_all(&c).await;
        touch_all(&c).await;
        c.checkpoint()
    };
    // The checkpoint travels as JSON (the workflow engine persists it).
    let json = serde_json::to_string(&checkpoint).unwrap();
    let checkpoint: state_core::Checkpoint = serde_json::from_str(&json).unwrap();

    let e = engine(&path).await;
    let c = ctx(&e, "run-1", "alice", "shop", "cart-1");
    assert_eq!(
        seen(&c).await,
        [2, 2, 2, 2, 2, 0, 0],
        "session and temp start afresh"
    );
    c.restore(&checkpoint).unwrap();
    assert_eq!(
        seen(&c).await,
        [2, 2, 2, 2, 2, 2, 0],
        "session restored; temp is never persisted"
    );
    let wrong = ctx(&e, "run-9", "alice", "shop", "cart-1");
    assert!(
        wrong.restore(&checkpoint).is_err(),
        "a checkpoint belongs to its execution"
    );
}

#[tokio::test]
async fn session_state_is_synchronous_and_its_initial_returns_after_delete() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir.path().join("s.db")).await;
    let c = ctx(&e, "run-1", "alice", "shop", "cart-1");
    let s = c.state::<Everything>().unwrap();
    assert_eq!(s.sess_n().get().unwrap(), Some(0));
    assert_eq!(s.sess_n().increment(5).unwrap(), 5);
    assert_eq!(
        s.sess_n().delete().unwrap(),
        Some(5),
        "delete returns the previous value"
    );
    assert_eq!(
        s.sess_n().get().unwrap(),
        Some(0),
        "Weft's session rule: initial returns"
    );
    assert_eq!(
        s.sess_n().increment(1).unwrap(),
        1,
        "and ops start from it again"
    );
    // Stored state keeps the durable rule: after a delete, initial does not come back.
    s.exec_n().increment(5).await.unwrap();
    s.exec_n().delete().await.unwrap();
    assert_eq!(s.exec_n().get().await.unwrap(), None);
    // A batch mixing stored and session fields commits both.
    s.batch(|b| b.exec_n().increment(2).sess_n().increment(2))
        .await
        .unwrap();
    assert_eq!(
        (s.exec_n().get().await.unwrap(), s.sess_n().get().unwrap()),
        (Some(2), Some(3))
    );
}

#[tokio::test]
async fn purging_an_execution_leaves_other_scopes_and_versions_keep_rising() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir.path().join("s.db")).await;
    let c = ctx(&e, "run-1", "alice", "shop", "cart-1");
    touch_all(&c).await;
    touch_all(&c.child("run-1/child").unwrap()).await;
    let s = c.state::<Everything>().unwrap();
    let before = s.exec_n().get_versioned().await.unwrap().version;
    assert_eq!(before, 2);
    assert_eq!(e.purge_execution("run-1").await.unwrap(), 1);
    let v = s.exec_n().get_versioned().await.unwrap();
    assert_eq!(
        (v.value, v.version),
        (None, 3),
        "execution state is gone; it reads one above its last version"
    );
    let others = [
        s.wf_n().get().await.unwrap(),
        s.obj_n().get().await.unwrap(),
        s.user_n().get().await.unwrap(),
        s.app_n().get().await.unwrap(),
    ];
    assert_eq!(
        others,
        [Some(2); 4],
        "workflow, object, user, app untouched"
    );
    // A purged required field is reported, not defaulted.
    assert!(matches!(
        s.load().await.unwrap().to_value(),
        Err(state_core::Error::Missing { ref slot, .. }) if slot.key() == "exec_n"
    ));
    s.exec_n().increment(1).await.unwrap();
    assert!(s.exec_n().get_versioned().await.unwrap().version > before);
    // Admin access: the purged scope is gone from listings, the others remain.
    let scopes = e.list_scopes(None, None, 100).await.unwrap().items;
    assert!(scopes.contains(&Scope::user("shop", "alice").unwrap()));
    assert!(
        scopes.contains(&Scope::execution("run-1").unwrap()),
        "rewritten after the purge"
    );
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Login {
    #[state(user, ttl = "30s")]
    pub token: Option<String>,
    #[state(user)]
    pub name: Option<String>,
}

#[tokio::test]
async fn a_field_ttl_expires_its_slot_on_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let store =
        SqliteStore::open_with(SqliteOptions::file(dir.path().join("s.db")).clock(clock.clone()))
            .await
            .unwrap();
    let e = Engine::new(store);
    let c = Context::new(e.clone(), "run-1")
        .unwrap()
        .with_user("shop", "alice")
        .unwrap();
    let s = c.state::<Login>().unwrap();
    s.token().set("t-1".into()).await.unwrap();
    s.name().set("Alice".into()).await.unwrap();
    clock.advance(Duration::from_secs(29));
    assert_eq!(s.token().get().await.unwrap().as_deref(), Some("t-1"));
    clock.advance(Duration::from_secs(1));
    let t = s.token().get_versioned().await.unwrap();
    assert_eq!(
        (t.value, t.version),
        (None, 1),
        "expired: absent, version kept"
    );
    assert_eq!(
        s.name().get().await.unwrap().as_deref(),
        Some("Alice"),
        "no TTL: never expires"
    );
    assert_eq!(e.purge_expired().await.unwrap(), 1);
    s.token().set("t-2".into()).await.unwrap();
    assert_eq!(
        s.token().get_versioned().await.unwrap().version,
        3,
        "versions continue above the floor (one above the purged 1)"
    );
}

/// A store purged before migration 0008 kept its floor at the highest version purged, where
/// the latest token from before the purge still matched: the migration raises it by one.
#[tokio::test]
async fn a_floor_kept_before_migration_0008_is_raised_above_the_purged_version() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let e = engine(&path).await;
    let run = Scope::execution("run-1").unwrap();
    let h = e.handle::<u32>(state_core::Slot::new(run.clone(), "S", "n").unwrap());
    for _ in 0..3 {
        h.increment(1).await.unwrap();
    }
    e.purge_execution("run-1").await.unwrap();
    drop((h, e));
    // Back to schema 7: the floor as the old purge wrote it.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    conn.execute(
        "UPDATE scope_floors SET floor = 3; DELETE FROM _sqlx_migrations WHERE version = 8",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    let e = engine(&path).await;
    let h = e.handle::<u32>(state_core::Slot::new(run, "S", "n").unwrap());
    assert_eq!(h.get_versioned().await.unwrap().version, 4);
    assert!(matches!(
        h.set_if(3, 9).await,
        Err(state_core::Error::VersionMismatch { .. })
    ));
}
