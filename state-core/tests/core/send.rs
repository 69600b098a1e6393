//! Handles and their futures are `Send` (and handles `Sync + 'static`): they move into tasks.

use std::collections::HashMap;

use state_core::{Collection, Engine, Events, MemoryStore, ReadOnly, Scope, Slot, SlotHandle};

fn assert_send<T: Send>(_: &T) {}
fn assert_handle<T: Clone + Send + Sync + 'static>() {}

#[allow(dead_code)] // compile-time assertions: the bodies are type-checked, never run
async fn futures_are_send(
    h: SlotHandle<u32>,
    l: SlotHandle<Vec<String>>,
    m: SlotHandle<HashMap<String, u8>>,
) {
    assert_send(&h.get());
    assert_send(&h.get_versioned());
    assert_send(&h.get_raw());
    assert_send(&h.set(1));
    assert_send(&h.set_if(0, 1));
    assert_send(&h.delete());
    assert_send(&h.delete_if(0));
    assert_send(&h.update(|v| Ok(v.copied())));
    assert_send(&h.increment(1));
    assert_send(&h.decrement(1));
    assert_send(&l.append("x".into()));
    assert_send(&l.remove_first());
    assert_send(&l.remove_last());
    assert_send(&m.merge([("a", 1)]));
    assert_send(&m.insert("a", 1));
    assert_send(&m.remove("a"));
    assert_send(&h.engine().batch().increment(&h, 1).commit());
    assert_send(&h.engine().purge_expired());
}

#[test]
fn handles_are_clone_send_sync_static() {
    assert_handle::<SlotHandle<u32>>();
    assert_handle::<SlotHandle<u32, ReadOnly>>();
    assert_handle::<SlotHandle<std::rc::Rc<u32>>>(); // the value type does not leak into the handle
    assert_handle::<Collection<String>>();
    assert_handle::<Engine>();
    fn send<T: Send + 'static>() {}
    send::<Events>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_move_into_spawned_tasks() {
    let engine = Engine::new(MemoryStore::new());
    let h = engine.handle::<u32>(Slot::new(Scope::app("a").unwrap(), "n", "k").unwrap());
    let h2 = h.clone();
    tokio::spawn(async move { h2.increment(3).await.unwrap() })
        .await
        .unwrap();
    assert_eq!(h.get().await.unwrap(), Some(3));
}
