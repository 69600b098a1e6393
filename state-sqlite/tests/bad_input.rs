//! Bad input is a typed error naming what is wrong; nothing is written; nothing panics.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, Executor, SqliteConnection};
use state_core::backend::conformance;
use state_core::backend::rows::RowError;
use state_core::{Engine, Error, Scope, Slot, Store, Ttl};
use state_sqlite::{SqliteError, SqliteStore, schema_version};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::execution("run-1").unwrap(), "Test", key).unwrap()
}

fn sqlite_error(e: &Error) -> &SqliteError {
    state_sql::testing::store_error(e)
}

async fn raw(path: &std::path::Path, sql: &str) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    conn.execute(sql).await.unwrap();
    conn.close().await.unwrap();
}

/// A write that replaces an unreadable value whole keeps what is readable of the row: its
/// version and its expiry (the shared check), also in the file once reopened.
#[tokio::test]
async fn repairing_an_unreadable_value_keeps_its_version_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let unreadable = format!(
        "UPDATE slots SET value = '{}' WHERE namespace = 'Repair'",
        conformance::UNREADABLE_VALUE
    );
    conformance::assert_repairs_keep_version_and_expiry::<SqliteError, _, _>(
        store.clone(),
        || async {
            raw(&path, &unreadable).await;
            raw(
                &path,
                "UPDATE slots SET expires_at = 1 WHERE namespace = 'Repair' AND key = 'expired'",
            )
            .await;
        },
    )
    .await;
    let live = Slot::new(
        Scope::execution(conformance::REPAIR_SCOPE).unwrap(),
        conformance::REPAIR_NAMESPACE,
        "live",
    )
    .unwrap();
    let repaired = store.load_many(std::slice::from_ref(&live)).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    let read = reopened.load_many(&[live]).await.unwrap();
    assert_eq!(read, repaired, "the repair is in the file");
}

/// A row whose expiry is unreadable (a column of the wrong type) keeps nothing but its version
/// through a repair: the write starts as on an absent slot, so `Ttl::KeepOr` starts a new
/// window (a row read as having no expiry would keep none, and never expire).
#[tokio::test]
async fn repairing_a_row_whose_expiry_is_unreadable_starts_a_new_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let engine = Engine::with_config(store.clone(), Default::default());
    let window = Duration::from_secs(60);
    let h = engine
        .handle::<u32>(slot("soon"))
        .with_ttl(Ttl::KeepOr(window));
    h.set(1).await.unwrap();
    raw(
        &path,
        "UPDATE slots SET value = '{not json', expires_at = 'soon' WHERE key = 'soon'",
    )
    .await;
    let e = h.get().await.unwrap_err();
    assert!(
        matches!(
            sqlite_error(&e),
            SqliteError::MalformedRow(RowError {
                version: Some(1),
                expires_at: None,
                ..
            })
        ),
        "the version is readable, the expiry is not: {e:?}"
    );
    let before = std::time::SystemTime::now();
    assert_eq!(h.set_raw(json!(2)).await.unwrap(), 2);
    let after = store.load_many(&[slot("soon")]).await.unwrap().remove(0);
    let expiry = after.expires_at.expect("KeepOr starts a window");
    let earliest = before.duration_since(std::time::UNIX_EPOCH).unwrap() + window;
    assert!(
        u128::try_from(expiry.as_millis()).unwrap() >= earliest.as_millis(),
        "a new window from the repair: {expiry:?} against {earliest:?}"
    );
    assert_eq!((after.value, after.version), (Some(json!(2)), 2));
}

#[tokio::test]
async fn a_malformed_row_is_a_typed_error_for_its_slot_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    let bad = engine.handle::<u32>(slot("bad"));
    let good = engine.handle::<u32>(slot("good"));
    bad.set(1).await.unwrap();
    good.set(1).await.unwrap();
    raw(
        &path,
        "UPDATE slots SET value = '{not json' WHERE key = 'bad'",
    )
    .await;

    let e = bad.get().await.unwrap_err();
    assert_eq!(e.slot(), Some(bad.slot()), "the error names the slot: {e}");
    assert!(
        matches!(sqlite_error(&e), SqliteError::MalformedRow(_)),
        "{e}"
    );
    assert!(e.to_string().contains("not JSON"), "{e}");
    // Writing to it fails the same way and changes nothing; other slots work.
    let e = bad.increment(1).await.unwrap_err();
    assert!(
        matches!(sqlite_error(&e), SqliteError::MalformedRow(_)),
        "{e}"
    );
    assert_eq!(good.increment(1).await.unwrap(), 2);
    // A batch touching it fails whole.
    let e = engine
        .batch()
        .increment(&good, 1)
        .increment(&bad, 1)
        .commit()
        .await
        .unwrap_err();
    assert_eq!(e.slot(), Some(bad.slot()));
    assert_eq!(good.get().await.unwrap(), Some(2));
    // The raw value can be repaired.
    bad.set_raw(json!(5)).await.unwrap();
    assert_eq!(bad.get().await.unwrap(), Some(5));
    // A version of the wrong SQL type is malformed too, for its slot only.
    raw(
        &path,
        "UPDATE slots SET version = 'three' WHERE key = 'good'",
    )
    .await;
    let e = good.get().await.unwrap_err();
    assert!(
        matches!(sqlite_error(&e), SqliteError::MalformedRow(_)),
        "{e}"
    );
    assert_eq!(e.slot(), Some(good.slot()));
    assert_eq!(bad.get().await.unwrap(), Some(5));
    // The schema refuses versions that are not positive.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(
        conn.execute("UPDATE slots SET version = -3 WHERE key = 'bad'")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_value_that_no_longer_fits_its_type_names_slot_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(SqliteStore::open(dir.path().join("s.db")).await.unwrap());
    let h = engine.handle::<u8>(slot("n"));
    h.set_raw(json!(300)).await.unwrap();
    match h.get().await {
        Err(Error::Decode {
            slot,
            version: 1,
            type_name: "u8",
            ..
        }) => assert_eq!(&slot, h.slot()),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(matches!(
        h.increment(1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(h.get_raw().await.unwrap().version, 1, "nothing written");
}

#[tokio::test]
async fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).await.unwrap());
    raw(
        &path,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .await;
    let e = SqliteStore::open(&path).await.unwrap_err();
    match sqlite_error(&e) {
        SqliteError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (9999, schema_version()));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(
        e.to_string().contains("newer than this build supports"),
        "{e}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let e = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(sqlite_error(&e), SqliteError::NotADatabase { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file was changed"
    );
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(sqlite_error(&e), SqliteError::Open { .. }), "{e}");
}

#[tokio::test]
async fn the_schema_version_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).await.unwrap());
    drop(SqliteStore::open(&path).await.unwrap());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    // Every migration exactly once, after two opens.
    let want: Vec<(i64,)> = (1..=schema_version()).map(|v| (v,)).collect();
    assert_eq!(rows, want);
}

/// Versions stop one below SQLite's largest INTEGER, so a clear at the top still fits (it used
/// to overflow into a REAL and leave a row no write could read again).
#[tokio::test]
async fn versions_stop_where_a_clear_still_fits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("s.db")).await.unwrap());
    conformance::assert_versions_stop_where_a_clear_still_fits::<SqliteError>(store).await;
}

#[tokio::test]
async fn a_restore_at_the_top_of_the_version_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).await.unwrap();
    let record = state_core::Record::new(Some(json!(1)), i64::MAX as u64, None);
    let e = Store::restore(
        &store,
        state_core::Restore::new(vec![(slot("top"), record)]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(sqlite_error(&e), SqliteError::VersionRange { .. }),
        "{e}"
    );
    assert_eq!(Store::load(&store, &slot("top")).await.unwrap().version, 0);
}

/// A store made before files were stamped with `APPLICATION_ID` is recognised by its first
/// migration, opens with its values, and is stamped; a fresh store is stamped at once.
#[tokio::test]
async fn a_store_from_before_the_stamp_opens_and_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let s = Slot::new(Scope::app("a").unwrap(), "N", "k").unwrap();
    {
        let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
        engine.handle::<u32>(s.clone()).set(5).await.unwrap();
    }
    let stamp = || async {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let id: i32 = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        id
    };
    assert_eq!(stamp().await, state_sqlite::APPLICATION_ID);
    raw(&path, "PRAGMA application_id = 0").await;
    assert_eq!(stamp().await, 0);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.load(&s).await.unwrap().value, Some(json!(5)));
    drop(store);
    assert_eq!(stamp().await, state_sqlite::APPLICATION_ID);
}

/// A history chain damaged by another tool (a link pointing up, to itself, to another slot's
/// change, or to a row that is gone) ends the walk there: history reads what is still linked,
/// never loops, never hands out another slot's change.
#[tokio::test]
async fn a_damaged_history_chain_ends_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let engine = Engine::new(store);
    let (a, b) = (slot("a"), slot("b"));
    for _ in 0..4 {
        engine.handle::<u64>(a.clone()).increment(1).await.unwrap();
        engine.handle::<u64>(b.clone()).increment(1).await.unwrap();
    }
    drop(engine);
    let versions = |store: SqliteStore| {
        let a = a.clone();
        async move {
            let history = store.slot_history(&a, None, 100).await.unwrap();
            assert!(history.iter().all(|c| c.slot == a), "{history:?}");
            history.iter().map(|c| c.version).collect::<Vec<_>>()
        }
    };
    let open = || SqliteStore::open(&path);
    assert_eq!(versions(open().await.unwrap()).await, [4, 3, 2, 1]);
    // a's changes are seq 1, 3, 5, 7; b's 2, 4, 6, 8.
    for (damage, kept) in [
        ("UPDATE changes SET prev_seq = 7 WHERE seq = 5", &[4, 3][..]),
        ("UPDATE changes SET prev_seq = 5 WHERE seq = 5", &[4, 3]),
        ("UPDATE changes SET prev_seq = 4 WHERE seq = 5", &[4, 3]),
        (
            "UPDATE changes SET prev_seq = NULL, prev_back = -2 WHERE seq = 5",
            &[4, 3],
        ),
        ("DELETE FROM changes WHERE seq = 3", &[4, 3]),
        ("UPDATE slots SET last_seq = 8 WHERE key = 'a'", &[]),
    ] {
        raw(&path, damage).await;
        assert_eq!(
            versions(open().await.unwrap()).await,
            kept,
            "after {damage}"
        );
        let repair = "UPDATE changes SET prev_seq = CASE seq WHEN 3 THEN 1 WHEN 5 THEN 3 \
                      WHEN 7 THEN 5 ELSE prev_seq END, prev_back = NULL WHERE seq IN (3, 5, 7)";
        raw(&path, repair).await;
    }
}
