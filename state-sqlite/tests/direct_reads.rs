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

/// Each record's value and version.
fn seen(records: &[state_core::Record]) -> Vec<(Option<serde_json::Value>, u64)> {
    records
        .iter()
        .map(|r| (r.value.clone(), r.version))
        .collect()
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
    let values = seen(&loaded);
    assert_eq!(
        values,
        [(Some(json!(1)), 1), (Some(json!(2)), 1), (None, 0)]
    );
    assert_eq!(
        store.stats().direct_reads,
        before + 1,
        "one read, served directly"
    );
    // Slots of several scopes and namespaces in one read, a slot asked for twice, and a
    // purged scope's floor for a slot that has no row.
    let elsewhere = Slot::new(Scope::user("app", "u").unwrap(), "Other", "x").unwrap();
    let loaded = store
        .load_many(&[slot("b"), elsewhere.clone(), slot("b")])
        .await
        .unwrap();
    let versions: Vec<u64> = loaded.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 0, 1]);
    store
        .purge_scope(&Scope::execution("e").unwrap())
        .await
        .unwrap();
    let floor = store.load_many(&[slot("a"), slot("never")]).await.unwrap();
    assert_eq!(
        floor
            .iter()
            .map(|r| (r.value.clone(), r.version))
            .collect::<Vec<_>>(),
        [(None, 2), (None, 2)],
        "absent at the floor, one above the last version purged"
    );
    a.set(1).await.unwrap();
    b.set(2).await.unwrap();
    let before = store.stats().direct_reads;
    // Another store on the same file (another process, to SQLite) commits: the next read
    // sees it, whatever the first store's connections read before.
    let other = open(&path, true).await;
    Engine::with_config(other.clone(), Default::default())
        .handle::<u64>(slot("a"))
        .set(5)
        .await
        .unwrap();
    assert_eq!(a.get().await.unwrap(), Some(5));
    assert_eq!(store.stats().direct_reads, before + 1);
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

/// A few keys far apart in a large namespace (a collection's entries) read the same as keys
/// that lie together (a struct's fields): the range between them holds too many rows, and
/// those keys are looked up one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_far_apart_in_a_large_namespace_read_as_keys_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("d.db"), true).await;
    let writes = (0..200)
        .map(|i| Write::cas(slot(&format!("k{i:03}")), 0, Some(json!(i))))
        .collect();
    store.commit(state_core::Batch::new(writes)).await.unwrap();
    // Far apart, so read by the IN list: out of order, one slot twice, one absent.
    let apart = [
        slot("k000"),
        slot("k199"),
        slot("k0505"),
        slot("k100"),
        slot("k199"),
    ];
    let together = [slot("k010"), slot("k011"), slot("k012")];
    for (what, slots) in [("apart", &apart[..]), ("together", &together[..])] {
        let got: Vec<_> = store
            .load_many(slots)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.value, r.version))
            .collect();
        let want: Vec<_> = slots
            .iter()
            .map(|s| {
                let n: Option<u64> = s.key()[1..].parse().ok().filter(|n| *n < 200);
                match n {
                    Some(n) if s.key().len() == 4 => (Some(json!(n)), 1),
                    _ => (None, 0),
                }
            })
            .collect();
        assert_eq!(got, want, "{what}");
    }
}

/// Key listings are read directly too, page by page; a key that is not UTF-8 (a hand edit)
/// fails the listing instead of coming back changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_listings_are_read_directly_and_refuse_a_key_that_is_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = open(&path, true).await;
    let writes = (0..5)
        .map(|i| Write::cas(slot(&format!("k{i}")), 0, Some(json!(i))))
        .collect();
    store.commit(state_core::Batch::new(writes)).await.unwrap();
    let scope = Scope::execution("e").unwrap();
    let before = store.stats().direct_reads;
    let first = store.list_keys(&scope, None, None, 3).await.unwrap();
    let rest = store
        .list_keys(&scope, Some("Direct"), first.next.as_ref(), 3)
        .await
        .unwrap();
    let keys: Vec<String> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|k| k.key.clone())
        .collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(rest.next, None);
    assert_eq!(store.stats().direct_reads, before + 2);
    let scopes = store.list_scopes(None, None, 10).await.unwrap();
    assert_eq!(scopes.items, std::slice::from_ref(&scope));
    assert_eq!(store.stats().direct_reads, before + 3, "scope listings too");

    let edit = rusqlite::Connection::open(&path).unwrap();
    edit.execute(
        "UPDATE slots SET key = CAST(x'ff6b' AS TEXT) WHERE key = 'k4'",
        [],
    )
    .unwrap();
    let e = store.list_keys(&scope, None, None, 10).await.unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("decoding column 1") && e.contains("invalid utf-8"),
        "{e}"
    );
}

/// One namespace read as a key range: slots asked for out of key order, twice, absent, or
/// with keys between them that were not asked for each get their own record, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_range_gives_each_slot_its_own_record_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("d.db"), true).await;
    let writes = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, k)| Write::cas(slot(k), 0, Some(json!(i))))
        .collect();
    store.commit(state_core::Batch::new(writes)).await.unwrap();
    let before = store.stats().direct_reads;
    let asked = ["d", "a", "d", "zz", "c"].map(slot);
    let loaded = store.load_many(&asked).await.unwrap();
    let values = seen(&loaded);
    assert_eq!(
        values,
        [
            (Some(json!(3)), 1),
            (Some(json!(0)), 1),
            (Some(json!(3)), 1),
            (None, 0),
            (Some(json!(2)), 1)
        ]
    );
    assert_eq!(store.stats().direct_reads, before + 1, "one direct read");

    // A row between the keys asked for whose key is not text (a hand edit) is not one of
    // them: the range read skips it, as a read of those keys alone would.
    let edit = rusqlite::Connection::open(dir.path().join("d.db")).unwrap();
    edit.execute(
        "UPDATE slots SET key = CAST(x'62ff' AS TEXT) WHERE key = 'b'",
        [],
    )
    .unwrap();
    let loaded = store.load_many(&["a", "c"].map(slot)).await.unwrap();
    let versions = seen(&loaded);
    assert_eq!(versions, [(Some(json!(0)), 1), (Some(json!(2)), 1)]);
}

/// The change log and a slot's history are read on the caller's thread too, with the same
/// rows and the same refusal of a cursor behind the log's retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_and_history_are_read_directly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("d.db"), true).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<u64>(slot("h"));
    for n in 1..=3 {
        h.set(n).await.unwrap();
    }
    engine.handle::<u64>(slot("other")).set(9).await.unwrap();
    let before = store.stats().direct_reads;
    let history = store.slot_history(&slot("h"), None, 10).await.unwrap();
    let versions: Vec<(u64, Option<serde_json::Value>)> = history
        .iter()
        .map(|c| (c.version, c.value.clone()))
        .collect();
    assert_eq!(
        versions,
        [
            (3, Some(json!(3))),
            (2, Some(json!(2))),
            (1, Some(json!(1)))
        ]
    );
    let older = store
        .slot_history(&slot("h"), Some(history[0].seq), 1)
        .await
        .unwrap();
    assert_eq!(older[0].version, 2);
    let all = store
        .read_changes(0, &state_core::ChangeFilter::default(), 10)
        .await
        .unwrap();
    let seen: Vec<(&str, u64)> = all.iter().map(|c| (c.slot.key(), c.version)).collect();
    assert_eq!(seen, [("h", 1), ("h", 2), ("h", 3), ("other", 1)]);
    let tail = store
        .read_changes(all[2].seq, &state_core::ChangeFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(
        store.stats().direct_reads,
        before + 4,
        "four reads, all direct"
    );
}

/// A page of large values (more than a MiB of text) is not read on the caller's thread: the
/// sqlx reader serves it, with the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_large_values_is_read_off_the_callers_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("d.db"), true).await;
    let engine = Engine::with_config(store.clone(), Default::default());
    let h = engine.handle::<String>(slot("big"));
    let value = |n: u32| format!("{n}{}", "x".repeat(100_000));
    for n in 0..12 {
        h.set(value(n)).await.unwrap();
    }
    let before = store.stats().direct_reads;
    let small = store.slot_history(&slot("big"), None, 2).await.unwrap();
    assert_eq!(small.len(), 2);
    assert_eq!(
        store.stats().direct_reads,
        before + 1,
        "200 kB: served directly"
    );
    let large = store.slot_history(&slot("big"), None, 12).await.unwrap();
    let versions: Vec<u64> = large.iter().map(|c| c.version).collect();
    assert_eq!(versions, (1..=12).rev().collect::<Vec<u64>>());
    assert_eq!(large[0].value, Some(json!(value(11))));
    assert_eq!(
        store.stats().direct_reads,
        before + 1,
        "1.2 MB: served by sqlx"
    );
}
