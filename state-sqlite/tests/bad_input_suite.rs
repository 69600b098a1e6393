//! Bad input across the API, the store and the files: each case is a typed error, and the
//! database is byte-for-byte what it was before (dumped through a separate connection).
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Connection, Executor, Row, SqliteConnection};
use state_core::{
    Abort, Context, Engine, EngineConfig, Error, IdPart, NumKind, Op, Path as OpPath, Scope,
    ScopeKind, Slot, StateScope, Store, Write,
};
use state_sqlite::{SqliteError, SqliteStore};

/// Every row of both tables, as text.
async fn dump(path: &Path) -> Vec<String> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT kind, scope_id, scope_sub, namespace, key, version, quote(value), expires_at FROM slots ORDER BY 1, 2, 3, 4, 5",
        "SELECT kind, scope_id, scope_sub, floor FROM scope_floors ORDER BY 1, 2, 3",
    ] {
        for row in sqlx::query(sql).fetch_all(&mut conn).await.unwrap() {
            let cols: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .or_else(|| {
                            row.try_get::<Option<i64>, _>(i)
                                .ok()
                                .flatten()
                                .map(|v| v.to_string())
                        })
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect();
            out.push(cols.join("|"));
        }
    }
    conn.close().await.unwrap();
    out
}

fn sqlite_err(e: &Error) -> Option<&SqliteError> {
    match e {
        Error::Store { source, .. } => source.downcast_ref::<SqliteError>(),
        _ => None,
    }
}

#[derive(StateScope, Serialize, Deserialize, Debug)]
pub struct Profile {
    pub visits: u32,
    #[state(user)]
    pub theme: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_kinds_of_bad_input_are_typed_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let engine = Engine::with_config(store.clone(), EngineConfig::default().max_value_bytes(256));
    let run = Scope::execution("run-1").unwrap();
    let slot = |k: &str| Slot::new(run.clone(), "T", k).unwrap();
    // Seed state every case could disturb.
    let small = engine.handle::<u8>(slot("small"));
    small.set(255).await.unwrap();
    let signed = engine.handle::<i32>(slot("signed"));
    signed.set(i32::MIN).await.unwrap();
    let big = engine.handle::<u64>(slot("big"));
    big.set(u64::MAX).await.unwrap();
    let float = engine.handle::<f64>(slot("float"));
    float.set(1.5).await.unwrap();
    let narrow = engine.handle::<f32>(slot("narrow"));
    narrow.set(f32::MAX).await.unwrap();
    let text = engine.handle::<String>(slot("text"));
    text.set("hello".into()).await.unwrap();
    let list = engine.handle::<Vec<String>>(slot("list"));
    list.append("x".repeat(200)).await.unwrap();
    let doc = engine.handle::<serde_json::Value>(slot("doc"));
    doc.set(json!({"n": 1, "list": [1]})).await.unwrap();
    let gone = engine.handle::<u32>(slot("gone"));
    gone.set(1).await.unwrap();
    gone.delete().await.unwrap();
    let as_u8 = engine.handle::<u8>(slot("drift"));
    as_u8.set_raw(json!(300)).await.unwrap();

    let mut count = 0;
    macro_rules! case {
        ($name:literal, $expr:expr, $($pat:tt)+) => {{
            let before = dump(&path).await;
            let result = $expr;
            assert!(matches!(result, $($pat)+), "{}: got {:?}", $name, result);
            assert_eq!(dump(&path).await, before, "{} changed the database", $name);
            count += 1;
        }};
    }

    // Identities.
    case!(
        "empty scope id",
        Scope::execution(""),
        Err(Error::InvalidId {
            part: IdPart::ScopeId,
            ..
        })
    );
    case!(
        "NUL in a scope id",
        Scope::app("a\0b"),
        Err(Error::InvalidId { .. })
    );
    case!(
        "a 1025-byte scope id",
        Scope::workflow("w".repeat(1025)),
        Err(Error::InvalidId { .. })
    );
    case!(
        "an empty namespace",
        Slot::new(run.clone(), "", "k"),
        Err(Error::InvalidId {
            part: IdPart::Namespace,
            ..
        })
    );
    case!(
        "a 257-byte key",
        Slot::new(run.clone(), "T", "k".repeat(257)),
        Err(Error::InvalidId {
            part: IdPart::Key,
            ..
        })
    );
    case!(
        "NUL in a key",
        Slot::new(run.clone(), "T", "a\0"),
        Err(Error::InvalidId { .. })
    );
    case!(
        "a user scope without its user",
        Scope::new(ScopeKind::User, "app", None::<String>),
        Err(Error::InvalidId { .. })
    );
    case!(
        "an unknown scope kind",
        "session".parse::<ScopeKind>(),
        Err(Error::InvalidId {
            part: IdPart::ScopeKind,
            ..
        })
    );
    case!(
        "a page size of 0",
        store.list_keys(&run, None, None, 0).await,
        Err(Error::InvalidArgument(_))
    );
    case!(
        "a page size over the maximum",
        store.list_scopes(None, None, 10_001).await,
        Err(Error::InvalidArgument(_))
    );
    case!(
        "an empty collection key",
        engine
            .collection::<u8>(Scope::group("g").unwrap(), "ns")
            .unwrap()
            .entry(""),
        Err(Error::InvalidId { .. })
    );

    // Numbers at their own width.
    case!(
        "u8 overflow",
        small.increment(1).await,
        Err(Error::Overflow {
            kind: NumKind::U8,
            ..
        })
    );
    case!(
        "i32 underflow",
        signed.decrement(1).await,
        Err(Error::Overflow {
            kind: NumKind::I32,
            ..
        })
    );
    case!(
        "u64 overflow",
        big.increment(1).await,
        Err(Error::Overflow {
            kind: NumKind::U64,
            ..
        })
    );
    case!(
        "a NaN amount",
        float.increment(f64::NAN).await,
        Err(Error::NotFinite { .. })
    );
    case!(
        "an infinite value",
        float.set(f64::INFINITY).await,
        Err(Error::NotFinite {
            kind: NumKind::F64,
            ..
        })
    );
    case!(
        "a NaN inside a value (serde_json would store null)",
        engine
            .handle::<Vec<f64>>(slot("float"))
            .set(vec![1.0, f64::NAN])
            .await,
        Err(Error::NotFinite { ref path, .. }) if path.segments() == ["1"]
    );
    case!(
        "f32 overflow",
        narrow.increment(f32::MAX).await,
        Err(Error::NotFinite {
            kind: NumKind::F32,
            ..
        })
    );
    case!(
        "an untyped amount outside its kind",
        engine
            .commit(vec![Write::apply(
                slot("small"),
                vec![Op::decrement(OpPath::root(), 300u32.into(), NumKind::U8)]
            )])
            .await,
        Err(Error::InvalidOp { .. })
    );

    // Ops on the wrong JSON type, and paths.
    let on = |k: &str, op: Op| Write::apply(slot(k), vec![op]);
    case!(
        "increment on a string",
        engine
            .commit(vec![on(
                "text",
                Op::increment(OpPath::root(), 1u8.into(), NumKind::U8)
            )])
            .await,
        Err(Error::TypeMismatch { .. })
    );
    case!(
        "append on a number",
        engine
            .commit(vec![on("small", Op::append(OpPath::root(), json!(1)))])
            .await,
        Err(Error::TypeMismatch { .. })
    );
    case!(
        "merge on an array",
        engine
            .commit(vec![on(
                "list",
                Op::merge(OpPath::root(), serde_json::Map::new())
            )])
            .await,
        Err(Error::TypeMismatch { .. })
    );
    case!(
        "a path under an absent parent",
        engine
            .commit(vec![on(
                "doc",
                Op::set(OpPath::new(["missing", "x"]), json!(1))
            )])
            .await,
        Err(Error::InvalidPath { .. })
    );
    case!(
        "a path through a number",
        engine
            .commit(vec![on("doc", Op::set(OpPath::new(["n", "x"]), json!(1)))])
            .await,
        Err(Error::TypeMismatch { .. })
    );
    case!(
        "a nested op on a never-written slot",
        engine
            .commit(vec![on("fresh", Op::set(OpPath::new(["a"]), json!(1)))])
            .await,
        Err(Error::InvalidPath { .. })
    );
    case!(
        "JSON null at the root",
        doc.set_raw(serde_json::Value::Null).await,
        Err(Error::InvalidOp { .. })
    );

    // Sizes.
    case!(
        "a value over the size limit",
        text.set("y".repeat(300)).await,
        Err(Error::TooLarge { limit: 256, .. })
    );
    case!(
        "an append growing past the limit",
        list.append("z".repeat(100)).await,
        Err(Error::TooLarge { .. })
    );

    // Depth and exactness: every entry point, refused before anything is written.
    let nested = |depth: usize| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = serde_json::Value::Array(vec![v]); // `json!([v])` would serialize `v` again
        }
        v
    };
    case!(
        "a value 20 000 levels deep through set_raw (a stack overflow once)",
        doc.set_raw(nested(20_000)).await,
        Err(Error::TooDeep { limit: 64, .. })
    );
    case!(
        "a typed value one level past the limit",
        doc.set(nested(65)).await,
        Err(Error::TooDeep { limit: 64, .. })
    );
    case!(
        "an append that nests the value past the limit",
        engine
            .commit(vec![Write::apply(
                slot("doc"),
                vec![Op::append(OpPath::new(["list"]), nested(63))],
            )])
            .await,
        Err(Error::TooDeep { .. })
    );
    case!(
        "a u128 beyond u64 (serde_json would store a float)",
        engine.handle::<u128>(slot("wide")).set(u128::MAX).await,
        Err(Error::OutOfRange { .. })
    );
    case!(
        "an i128 below i64",
        engine.handle::<i128>(slot("wide")).set(i128::MIN).await,
        Err(Error::OutOfRange { .. })
    );
    let restored = |value: serde_json::Value| {
        vec![(
            slot("restored"),
            state_core::Record::new(Some(value), 1, None),
        )]
    };
    case!(
        "a restore one level past the depth limit",
        store
            .restore(state_core::Restore::new(restored(nested(65))))
            .await,
        Err(Error::TooDeep { .. })
    );
    case!(
        "a restore over the size limit it is given",
        store
            .restore(
                state_core::Restore::new(restored(json!("r".repeat(300)))).max_value_bytes(256)
            )
            .await,
        Err(Error::TooLarge { limit: 256, .. })
    );

    // Versions, batches, closures.
    case!(
        "a stale set_if",
        text.set_if(0, "x".into()).await,
        Err(Error::VersionMismatch { .. })
    );
    case!(
        "a set_if with the pre-delete version",
        gone.set_if(1, 5).await,
        Err(Error::VersionMismatch {
            expected: 1,
            actual: 2,
            ..
        })
    );
    case!(
        "a stale delete_if",
        gone.delete_if(1).await,
        Err(Error::VersionMismatch { .. })
    );
    case!(
        "a two-slot batch with one stale CAS",
        engine
            .commit(vec![
                Write::cas(slot("text"), 1, Some(json!("a"))),
                Write::cas(slot("doc"), 0, Some(json!({})))
            ])
            .await,
        Err(Error::VersionMismatch { .. })
    );
    case!(
        "an aborting update",
        text.update(|_| Err(Abort::new("no"))).await,
        Err(Error::Aborted { .. })
    );
    case!(
        "a three-slot batch whose third op overflows",
        engine
            .batch()
            .set(&text, "new".into())
            .append(&list, "a".into())
            .increment(&small, 1)
            .commit()
            .await,
        Err(Error::Overflow { .. })
    );

    // Values that no longer fit their type, and malformed rows.
    case!(
        "a stored value that no longer fits",
        as_u8.get().await,
        Err(Error::Decode { version: 1, .. })
    );
    case!(
        "an increment on it",
        as_u8.increment(1).await,
        Err(Error::TypeMismatch { .. })
    );
    {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        conn.execute("UPDATE slots SET value = '{broken' WHERE key = 'float'")
            .await
            .unwrap();
        conn.execute("UPDATE slots SET expires_at = 'soon' WHERE key = 'signed'")
            .await
            .unwrap();
    }
    case!("a row whose JSON is corrupt", float.get().await, Err(ref e) if matches!(sqlite_err(e), Some(SqliteError::MalformedRow(_))));
    case!("an op on it", float.increment(1.0).await, Err(ref e) if matches!(sqlite_err(e), Some(SqliteError::MalformedRow(_))));
    case!("a column of the wrong type", signed.get().await, Err(ref e) if matches!(sqlite_err(e), Some(SqliteError::MalformedRow(_))));

    // Contexts and snapshots.
    let ctx = Context::new(engine.clone(), "run-1").unwrap();
    case!(
        "a field needing a user the context lacks",
        ctx.state::<Profile>().map(|_| ()),
        Err(Error::MissingScope { field: "theme", .. })
    );
    let with_user = ctx.clone().with_user("shop", "alice").unwrap();
    case!(
        "a snapshot missing a required field",
        with_user
            .state::<Profile>()
            .unwrap()
            .load()
            .await
            .unwrap()
            .to_value()
            .map(|_| ()),
        Err(Error::Missing { .. })
    );
    let other = Context::new(engine.clone(), "run-2").unwrap();
    case!(
        "a checkpoint restored into another execution",
        other.restore(&ctx.checkpoint()),
        Err(Error::InvalidArgument(_))
    );

    // Files.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database\n".repeat(100)).unwrap();
    let before = std::fs::read(&notes).unwrap();
    let r = SqliteStore::open(&notes).await;
    assert!(
        matches!(
            r.as_ref().err().and_then(sqlite_err),
            Some(SqliteError::NotADatabase { .. })
        ),
        "{:?}",
        r.err()
    );
    assert_eq!(
        std::fs::read(&notes).unwrap(),
        before,
        "a non-database file was changed"
    );
    count += 1;
    let r = SqliteStore::open(dir.path()).await;
    assert!(
        matches!(
            r.as_ref().err().and_then(sqlite_err),
            Some(SqliteError::Open { .. })
        ),
        "{:?}",
        r.err()
    );
    count += 1;
    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).await.unwrap());
    {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", newer.display()))
            .await
            .unwrap();
        conn.execute("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999, 'future', TRUE, x'00', 0)").await.unwrap();
    }
    let before = dump(&newer).await;
    let r = SqliteStore::open(&newer).await;
    assert!(
        matches!(
            r.as_ref().err().and_then(sqlite_err),
            Some(SqliteError::NewerSchema { found: 99999, .. })
        ),
        "{:?}",
        r.err()
    );
    assert_eq!(dump(&newer).await, before);
    count += 1;

    count += foreign_files(dir.path()).await;
    count += read_only_stores(dir.path(), &path).await;

    assert!(count >= 30, "only {count} cases");
    eprintln!("({count} bad-input cases, each a typed error that changed nothing)");
}

/// Another program's SQLite files: refused with a typed error, byte for byte unchanged, no
/// WAL or journal left next to them.
async fn foreign_files(dir: &Path) -> usize {
    let kinds: [(&str, &str); 5] = [
        (
            "another program's database",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');",
        ),
        (
            "another program's database with its own `slots` table",
            "CREATE TABLE slots (id INTEGER PRIMARY KEY, booked TEXT); INSERT INTO slots VALUES (1, 'mon');",
        ),
        (
            "a database stamped with another application_id",
            "PRAGMA application_id = 42; CREATE TABLE t (x);",
        ),
        (
            "a table whose name LIKE 'sqlite_%' would match (`_` is a wildcard)",
            "CREATE TABLE sqlitebrowser_data (x); INSERT INTO sqlitebrowser_data VALUES ('precious');",
        ),
        (
            "an empty database another program set a user_version on",
            "PRAGMA user_version = 42;",
        ),
    ];
    for (n, (name, sql)) in kinds.iter().enumerate() {
        let file = dir.join(format!("other-{n}.db"));
        {
            let mut conn =
                SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
                    .await
                    .unwrap();
            conn.execute(*sql).await.unwrap();
            conn.close().await.unwrap();
        }
        let before = std::fs::read(&file).unwrap();
        for read_only in [false, true] {
            let options = state_sqlite::SqliteOptions::file(&file).read_only(read_only);
            let r = SqliteStore::open_with(options).await;
            assert!(
                matches!(
                    r.as_ref().err().and_then(sqlite_err),
                    Some(SqliteError::ForeignDatabase { .. })
                ),
                "{name}: {:?}",
                r.err()
            );
        }
        assert_eq!(std::fs::read(&file).unwrap(), before, "{name} was changed");
        let mut siblings: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&format!("other-{n}.db")))
            .collect();
        siblings.sort();
        assert_eq!(
            siblings,
            [format!("other-{n}.db")],
            "{name}: files left next to it"
        );
    }
    hot_journal(dir).await;
    kinds.len() + 1
}

/// A rollback-mode database a process left mid-write, its hot journal beside it: a writable
/// connection would roll it back, changing the file; it is refused with both untouched.
async fn hot_journal(dir: &Path) {
    let src = dir.join("hot-src.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", src.display()))
        .await
        .unwrap();
    conn.execute("PRAGMA journal_mode = DELETE; PRAGMA cache_size = 1; CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    conn.execute("BEGIN").await.unwrap();
    for _ in 0..200 {
        conn.execute("INSERT INTO t VALUES (randomblob(2000))")
            .await
            .unwrap();
    }
    let hot = dir.join("hot.db");
    let journal = |db: &Path| format!("{}-journal", db.display());
    std::fs::copy(&src, &hot).unwrap();
    std::fs::copy(journal(&src), journal(&hot)).unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    conn.close().await.unwrap();
    let files = || {
        (
            std::fs::read(&hot).unwrap(),
            std::fs::read(journal(&hot)).unwrap_or_default(),
        )
    };
    let before = files();
    for read_only in [false, true] {
        let options = state_sqlite::SqliteOptions::file(&hot).read_only(read_only);
        let r = SqliteStore::open_with(options).await;
        assert!(
            matches!(
                r.as_ref().err().and_then(sqlite_err),
                Some(SqliteError::ForeignDatabase { .. })
            ),
            "a hot journal (read-only {read_only}): {:?}",
            r.err()
        );
    }
    assert!(files() == before, "the file or its hot journal was changed");
}

/// A store opened read-only: writes are the typed read-only error and change nothing; an
/// empty file is not made a store.
async fn read_only_stores(dir: &Path, path: &Path) -> usize {
    let store = SqliteStore::open_with(state_sqlite::SqliteOptions::file(path).read_only(true))
        .await
        .unwrap();
    let before = dump(path).await;
    let slot = Slot::new(Scope::execution("run-1").unwrap(), "T", "small").unwrap();
    let r = store
        .commit(
            state_core::Batch::new(vec![Write::cas(slot.clone(), 1, Some(json!(1)))])
                .max_value_bytes(256),
        )
        .await;
    assert!(
        matches!(
            r.as_ref().err().and_then(sqlite_err),
            Some(SqliteError::ReadOnly)
        ),
        "a write to a read-only store: {:?}",
        r.err()
    );
    assert_eq!(store.load(&slot).await.unwrap().value, Some(json!(255)));
    drop(store);
    assert_eq!(dump(path).await, before, "a read-only store was changed");
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let r = SqliteStore::open_with(state_sqlite::SqliteOptions::file(&empty).read_only(true)).await;
    assert!(
        matches!(
            r.as_ref().err().and_then(sqlite_err),
            Some(SqliteError::Empty { .. })
        ),
        "a read-only open of an empty file: {:?}",
        r.err()
    );
    assert_eq!(
        std::fs::read(&empty).unwrap(),
        b"",
        "the empty file was changed"
    );
    2
}
