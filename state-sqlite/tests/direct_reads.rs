//! Point and many-slot reads on the caller's thread: they are taken on a writable file, read
//! one snapshot, see other connections' commits, never wait for a writer, and leave the
//! sqlx reader what they cannot serve.

use std::sync::Arc;

use serde_json::json;
use state_core::{Engine, Scope, Slot, Store, Write};
use state_sqlite::{SqliteOptions, SqliteStore};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::execution("e").unwrap(), "Direct", key).unwrap()
}

async fn open(path: &std::path::Path, inline: bool) -> Arc<SqliteStore> {
    let options = SqliteOptions::file(path).inline_commits(inline);
    Arc::new(SqliteStore::open_with(options).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_file_are_served_directly_and_see_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = open(&path, true).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let (a, b) = (
        engine.handle::<u64>(slot("a")),
        engine.handle::<u64>(slot("b")),
    );
    a.set(1).await.unwrap();
    b.set(2).await.unwrap();
    let before = store.stats().direct_reads;
    let loaded = store
        .load_many(&[slot("a"), slot("b"), slot("none")])
        .await
        .unwrap();
    let values: Vec<_> = loaded
        .iter()
        .map(|r| (r.value.clone(), r.version))
        .collect();
    assert_eq!(
        values,
        [(Some(json!(1)), 1), (Some(json!(2)), 1), (None, 0)]
    );
    assert_eq!(
        store.stats().direct_reads,
        before + 1,
        "one read, served directly"
    );
    // Another store on the same file (another process, to SQLite) commits: the next read
    // sees it, whatever the first store's connections read before.
    let other = open(&path, true).await;
    Engine::with_config(other.clone(), Default::default())
        .handle::<u64>(slot("a"))
        .set(5)
        .await
        .unwrap();
    assert_eq!(a.get().await.unwrap(), Some(5));
    assert_eq!(store.stats().direct_reads, before + 2);
}

/// A write transaction another connection holds open does not hold a direct read up, and
/// the read sees the last committed value, not the uncommitted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_read_does_not_wait_for_an_open_write_and_sees_only_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = open(&path, true).await;
    let h = Engine::with_config(store.clone(), Default::default()).handle::<u64>(slot("a"));
    h.set(1).await.unwrap();
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute(
            "UPDATE slots SET value = '99', version = 2 WHERE key = 'a'",
            [],
        )
        .unwrap();
    let before = store.stats().direct_reads;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), h.get_versioned())
        .await
        .expect("a read waited for another connection's write")
        .unwrap();
    assert_eq!((got.value, got.version), (Some(1), 1));
    assert_eq!(store.stats().direct_reads, before + 1);
    writer.execute_batch("ROLLBACK").unwrap();
}

/// Without inline commits (every statement on sqlx's worker thread) and for more slots than
/// one SELECT reads, the sqlx reader reads; the result is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_direct_reads_cannot_serve_go_to_the_sqlx_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("d.db"), false).await;
    store
        .commit(state_core::Batch::new(vec![Write::cas(
            slot("a"),
            0,
            Some(json!(1)),
        )]))
        .await
        .unwrap();
    assert_eq!(store.load(&slot("a")).await.unwrap().value, Some(json!(1)));
    assert_eq!(
        store.stats().direct_reads,
        0,
        "inline commits off: no direct reads"
    );

    let store = open(&dir.path().join("e.db"), true).await;
    let many: Vec<Slot> = (0..5000).map(|i| slot(&format!("k{i}"))).collect();
    let before = store.stats().direct_reads;
    let loaded = store.load_many(&many).await.unwrap();
    assert_eq!(loaded.len(), 5000);
    assert!(loaded.iter().all(|r| r.version == 0));
    assert_eq!(
        store.stats().direct_reads,
        before,
        "5000 slots: one sqlx transaction"
    );
}
