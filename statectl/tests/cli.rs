//! End to end: the real `statectl` binary against real SQLite files written (and read back) by
//! the library; every subcommand, both output formats, each error class with its exit code.

mod common;

use common::ok;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use state_core::{Engine, Scope, Slot, Store, Ttl};
use state_sqlite::SqliteStore;

fn statectl(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statectl"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Exit code and the one stderr line.
fn fails(out: &Output) -> (i32, String) {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("statectl: "), "{err}");
    (out.status.code().unwrap(), err)
}

fn slot(scope: &Scope, ns: &str, key: &str) -> Slot {
    Slot::new(scope.clone(), ns, key).unwrap()
}

/// A database written by the library: app, user, execution and object state, a tombstone, and
/// a slot with a TTL.
async fn seed(dir: &Path) -> (PathBuf, Engine) {
    let path = dir.join("state.db");
    let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
    let app = Scope::app("shop").unwrap();
    engine
        .handle::<u64>(slot(&app, "Stats", "hits"))
        .set(41)
        .await
        .unwrap();
    engine
        .handle::<Vec<String>>(slot(&app, "Stats", "log"))
        .append("a".into())
        .await
        .unwrap();
    let alice = Scope::user("shop", "alice").unwrap();
    engine
        .handle::<String>(slot(&alice, "Prefs", "theme"))
        .set("dark".into())
        .await
        .unwrap();
    let bob = Scope::user("shop", "bob").unwrap();
    let gone = engine.handle::<String>(slot(&bob, "Prefs", "theme"));
    gone.set("light".into()).await.unwrap();
    gone.delete().await.unwrap();
    let run = Scope::execution("run-1").unwrap();
    engine
        .handle::<u32>(slot(&run, "Research", "attempts"))
        .set(3)
        .await
        .unwrap();
    let cart = Scope::object("cart", "c:1").unwrap();
    engine
        .handle::<u32>(slot(&cart, "Cart", "items"))
        .with_ttl(Ttl::For(Duration::from_secs(3600)))
        .set(2)
        .await
        .unwrap();
    (path, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_scopes_and_keys_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _engine) = seed(dir.path()).await;
    let table = ok(&statectl(&db, &["scopes"]));
    assert!(table.starts_with("KIND"), "{table}");
    assert!(
        table.contains("user       shop                           alice"),
        "{table}"
    );
    assert!(
        !table.contains("bob"),
        "tombstone-only scopes are not live: {table}"
    );
    let json: Value =
        serde_json::from_str(&ok(&statectl(&db, &["--json", "scopes", "--kind", "user"]))).unwrap();
    assert_eq!(
        json["items"],
        json!([{"kind": "user", "id": "shop", "sub": "alice"}])
    );
    let all: Value =
        serde_json::from_str(&ok(&statectl(&db, &["--json", "scopes", "--all"]))).unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 5, "{all}");
    // Pages.
    let first: Value =
        serde_json::from_str(&ok(&statectl(&db, &["--json", "scopes", "--limit", "2"]))).unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap().to_owned();
    let second: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &["--json", "scopes", "--limit", "2", "--after", &next],
    )))
    .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    assert_ne!(first["items"], second["items"]);
    let keys = ok(&statectl(&db, &["keys", "app:shop"]));
    assert!(
        keys.contains("Stats                    hits")
            && keys.contains("Stats                    log"),
        "{keys}"
    );
    let page: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &["--json", "keys", "app:shop", "--limit", "1"],
    )))
    .unwrap();
    assert_eq!(
        page["items"],
        json!([{"namespace": "Stats", "key": "hits"}])
    );
    let cursor = page["next"].as_str().unwrap().to_owned();
    let rest: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &["--json", "keys", "app:shop", "--after", &cursor],
    )))
    .unwrap();
    assert_eq!(rest["items"], json!([{"namespace": "Stats", "key": "log"}]));
    // A scope id with a colon, in both spellings.
    let by_json = ok(&statectl(&db, &["keys", r#"["object","cart","c:1"]"#]));
    assert!(by_json.contains("Cart"), "{by_json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_update_delete_go_through_version_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = seed(dir.path()).await;
    let got = ok(&statectl(&db, &["get", "app:shop", "Stats", "hits"]));
    assert!(
        got.contains("value:   41") && got.contains("version: 1") && got.contains("expires: never"),
        "{got}"
    );
    let json: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &[
            "--json",
            "get",
            r#"["object","cart","c:1"]"#,
            "Cart",
            "items",
        ],
    )))
    .unwrap();
    assert_eq!(
        (json["value"].clone(), json["version"].clone()),
        (json!(2), json!(1))
    );
    assert!(json["expires_at"].is_i64(), "{json}");
    let deleted = ok(&statectl(&db, &["get", "user:shop:bob", "Prefs", "theme"]));
    assert!(
        deleted.contains("(deleted)") && deleted.contains("version: 2"),
        "{deleted}"
    );
    // set: CAS at the version read, or at --if-version.
    assert_eq!(
        ok(&statectl(&db, &["set", "app:shop", "Stats", "hits", "100"])).trim(),
        "version 2"
    );
    let conflict = statectl(
        &db,
        &["set", "app:shop", "Stats", "hits", "7", "--if-version", "1"],
    );
    let (code, err) = fails(&conflict);
    assert_eq!(code, 4, "{err}");
    let out: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &[
            "--json",
            "set",
            "app:shop",
            "Stats",
            "hits",
            "7",
            "--if-version",
            "2",
        ],
    )))
    .unwrap();
    assert_eq!(out["version"], 3);
    // update: the library's untyped ops, applied atomically.
    let inc = r#"{"path":[],"op":"increment","by":5,"kind":"u64"}"#;
    let up = ok(&statectl(
        &db,
        &[
            "update", "app:shop", "Stats", "hits", "--op", inc, "--op", inc,
        ],
    ));
    assert!(
        up.contains("version 4") && up.contains("output: 17"),
        "{up}"
    );
    let pop = r#"{"path":[],"op":"remove_first"}"#;
    let out: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &["--json", "update", "app:shop", "Stats", "log", "--op", pop],
    )))
    .unwrap();
    assert_eq!(out["outputs"], json!(["a"]));
    // The library reads what the CLI wrote.
    let hits = engine.handle::<u64>(slot(&Scope::app("shop").unwrap(), "Stats", "hits"));
    let v = hits.get_versioned().await.unwrap();
    assert_eq!((v.value, v.version), (Some(17), 4));
    // delete: CAS too.
    assert_eq!(
        fails(&statectl(
            &db,
            &["delete", "app:shop", "Stats", "hits", "--if-version", "3"]
        ))
        .0,
        4
    );
    assert_eq!(
        ok(&statectl(&db, &["delete", "app:shop", "Stats", "hits"])).trim(),
        "version 5"
    );
    assert_eq!(hits.get().await.unwrap(), None);
    assert_eq!(hits.get_versioned().await.unwrap().version, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = seed(dir.path()).await;
    assert_eq!(
        ok(&statectl(&db, &["clear", "app:shop"])).trim(),
        "cleared 2"
    );
    let v = engine
        .handle::<u64>(slot(&Scope::app("shop").unwrap(), "Stats", "hits"))
        .get_versioned()
        .await
        .unwrap();
    assert_eq!((v.value, v.version), (None, 2));
    let out: Value = serde_json::from_str(&ok(&statectl(
        &db,
        &["--json", "purge", "--execution", "run-1"],
    )))
    .unwrap();
    assert_eq!(out["purged"], 1);
    assert_eq!(
        ok(&statectl(&db, &["purge", "--expired"])).trim(),
        "purged 0"
    );
    let run = engine
        .store()
        .load(&slot(
            &Scope::execution("run-1").unwrap(),
            "Research",
            "attempts",
        ))
        .await
        .unwrap();
    assert_eq!(
        (run.value, run.version),
        (None, 2),
        "purged: the floor one above its last version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _engine) = seed(dir.path()).await;
    let exported = ok(&statectl(&db, &["export"]));
    assert_eq!(exported.lines().count(), 6, "{exported}");
    assert!(
        exported.contains(r#""value":null,"version":2"#),
        "the tombstone is exported: {exported}"
    );
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let copy = dir.path().join("copy.db");
    assert_eq!(
        ok(&statectl(
            &copy,
            &["import", "--create", file.to_str().unwrap()]
        ))
        .trim(),
        "imported 6"
    );
    assert_eq!(
        ok(&statectl(&copy, &["export"])),
        exported,
        "a second export is identical"
    );
    // The library reads the copy: values, versions and tombstones as they were.
    let store = SqliteStore::open(&copy).await.unwrap();
    let bob = store
        .load(&slot(
            &Scope::user("shop", "bob").unwrap(),
            "Prefs",
            "theme",
        ))
        .await
        .unwrap();
    assert_eq!((bob.value, bob.version), (None, 2));
    // Importing again would lower nothing: refused as a conflict, nothing written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(["--db", copy.to_str().unwrap(), "import"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exported.as_bytes())
        .unwrap();
    let again = child.wait_with_output().unwrap();
    assert_eq!(fails(&again).0, 4);
    let scoped = ok(&statectl(&db, &["export", "--scope", "user:shop:alice"]));
    assert_eq!(scoped.lines().count(), 1);
}

/// Consumers' cursors are positions in this store's change log: an export of everything leaves
/// them out (imported elsewhere they would skip that store's changes), `--scope` still has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_leaves_consumer_cursors_out_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = seed(dir.path()).await;
    let mut consumer = engine
        .consumer("mailer", state_core::ChangeFilter::all())
        .await
        .unwrap();
    let change = consumer.next().await.unwrap().unwrap();
    consumer.ack(&change).await.unwrap();
    let all = ok(&statectl(&db, &["export"]));
    assert_eq!(all.lines().count(), 6, "{all}");
    assert!(!all.contains("_consumers"), "{all}");
    let cursors = ok(&statectl(&db, &["export", "--scope", "app:_consumers"]));
    assert_eq!(cursors.lines().count(), 1, "{cursors}");
}

/// The same export, imported into PostgreSQL and exported from there, is identical: only the
/// URL changes. Needs STATE_PG_URL (scripts/test starts a server); fails without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_export_imports_into_postgres_unchanged() {
    let url = std::env::var("STATE_PG_URL")
        .expect("STATE_PG_URL is not set: run scripts/test, or eval \"$(scripts/pg-up)\" first");
    let dir = tempfile::tempdir().unwrap();
    let (db, _engine) = seed(dir.path()).await;
    let exported = ok(&statectl(&db, &["export"]));
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let schema = format!("test_cli_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let pg = format!("{url}{sep}state_schema={schema}");
    let pg = Path::new(&pg);
    // Like a missing file, a missing schema is "not found" and is not created, except by
    // `import --create` (a mistyped state_schema used to create an empty store).
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for args in [
        &["get", "app:shop", "Stats", "hits"][..],
        &["import", file.to_str().unwrap()],
    ] {
        let (code, err) = fails(&statectl(pg, args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("no state schema"), "{err}");
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&schema)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(!exists, "{args:?} created the schema");
    }
    let imported = ok(&statectl(
        pg,
        &["import", "--create", file.to_str().unwrap()],
    ));
    assert_eq!(imported.trim(), "imported 6");
    assert_eq!(ok(&statectl(pg, &["export"])), exported);
    let got = ok(&statectl(
        pg,
        &["get", "app:shop", "Stats", "hits", "--json"],
    ));
    assert!(got.contains("41"), "{got}");
    // Clean up the schema the import created.
    conn.execute(&*format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = seed(dir.path()).await;
    let watcher = Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--json",
            "watch",
            "app:shop",
            "--interval-ms",
            "20",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let hits = engine.handle::<u64>(slot(&Scope::app("shop").unwrap(), "Stats", "hits"));
    // Write until the watcher has seen two changes (it started at an unknown moment).
    let waiter = std::thread::spawn(move || watcher.wait_with_output().unwrap());
    for _ in 0..200 {
        if waiter.is_finished() {
            break;
        }
        hits.increment(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let out = waiter.join().unwrap();
    let text = ok(&out);
    let changes: Vec<Value> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(changes.len(), 2, "{text}");
    assert!(changes.iter().all(|c| c["key"] == "hits"));
    // From the change log: consecutive versions, each with its value and sequence number.
    let (v0, v1) = (
        changes[0]["version"].as_u64().unwrap(),
        changes[1]["version"].as_u64().unwrap(),
    );
    assert_eq!(v1, v0 + 1, "{text}");
    assert_eq!(changes[0]["value"], json!(40 + v0), "{text}");
    assert!(
        changes[1]["seq"].as_u64() > changes[0]["seq"].as_u64(),
        "{text}"
    );
    // Resuming from sequence number 0 replays the scope's whole log, oldest first.
    let replay = ok(&statectl(
        &db,
        &["--json", "watch", "app:shop", "--from", "0", "--count", "3"],
    ));
    let first: Vec<Value> = replay
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<(&str, u64)> = first
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys, [("hits", 1), ("log", 1), ("hits", 2)], "{replay}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_a_slots_versions_newest_first_and_pages_back() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = seed(dir.path()).await;
    let hits = engine.handle::<u64>(slot(&Scope::app("shop").unwrap(), "Stats", "hits"));
    hits.increment(1).await.unwrap();
    hits.delete().await.unwrap();
    let text = ok(&statectl(
        &db,
        &["--json", "history", "app:shop", "Stats", "hits"],
    ));
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, Value)> = entries
        .iter()
        .map(|e| (e["version"].as_u64().unwrap(), e["value"].clone()))
        .collect();
    assert_eq!(
        got,
        [(3, Value::Null), (2, json!(42)), (1, json!(41))],
        "{text}"
    );
    // Paging back from the newest entry's sequence number.
    let before = entries[0]["seq"].to_string();
    let older = ok(&statectl(
        &db,
        &[
            "history", "app:shop", "Stats", "hits", "--before", &before, "--limit", "1",
        ],
    ));
    assert!(
        older.starts_with("seq ") && older.contains(" v2 42 at ") && older.lines().count() == 1,
        "{older}"
    );
    // A slot never written has no history: exit 3, like `get`.
    let none = statectl(&db, &["history", "app:shop", "Stats", "nothing"]);
    assert_eq!(none.status.code(), Some(3), "{none:?}");
    assert!(String::from_utf8_lossy(&none.stderr).contains("no version"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_class_has_its_exit_code_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _engine) = seed(dir.path()).await;
    let before = ok(&statectl(&db, &["export"]));
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["get", "app:shop"], 2, "required"),
        // The usage error names what is missing (it used to stop at "were not provided:").
        (vec!["get", "app:shop"], 2, "<NAMESPACE>"),
        // Nothing to delete: not found, and no tombstone written (the export stays the same).
        (
            vec!["delete", "app:shop", "Stats", "nothing"],
            3,
            "holds no value",
        ),
        (
            vec!["delete", "user:shop:bob", "Prefs", "theme"],
            3,
            "holds no value",
        ),
        (vec!["purge"], 2, "required"),
        (
            vec!["watch", "app:shop", "--interval-ms", "0"],
            2,
            "--interval-ms",
        ),
        (vec!["watch", "app:shop", "--count", "0"], 2, "--count"),
        (vec!["get", "session:x", "A", "b"], 5, "scope kind"),
        (vec!["get", "user:shop", "A", "b"], 5, "user:first:second"),
        (vec!["get", "app:", "A", "b"], 5, "scope id"),
        (
            vec!["set", "app:shop", "Stats", "hits", "{bad"],
            5,
            "not valid JSON",
        ),
        (
            vec![
                "update",
                "app:shop",
                "Stats",
                "hits",
                "--op",
                r#"{"op":"explode"}"#,
            ],
            5,
            "not a valid op",
        ),
        (
            vec![
                "update",
                "app:shop",
                "Stats",
                "log",
                "--op",
                r#"{"path":[],"op":"increment","by":1,"kind":"u8"}"#,
            ],
            5,
            "needs a number",
        ),
        (
            vec![
                "update",
                "app:shop",
                "Stats",
                "hits",
                "--op",
                r#"{"path":[],"op":"increment","by":300,"kind":"u8"}"#,
            ],
            5,
            "not a `u8`",
        ),
        (
            vec!["set", "app:shop", "Stats", "hits", "1", "--if-version", "9"],
            4,
            "expected version 9",
        ),
        (
            vec!["get", "app:shop", "Stats", "nothing"],
            3,
            "never written",
        ),
        (vec!["import", "/nonexistent/dump.jsonl"], 3, "cannot read"),
    ];
    for (args, code, text) in cases {
        let (got, err) = fails(&statectl(&db, &args));
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
    }
    assert_eq!(
        ok(&statectl(&db, &["export"])),
        before,
        "a failed command wrote"
    );
    // An import that fails on its input creates no database.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"not\": \"an export line\"}\n").unwrap();
    for (input, code) in [(bad.to_str().unwrap(), 5), ("/nonexistent/dump.jsonl", 3)] {
        let fresh = dir.path().join("fresh.db");
        let (got, err) = fails(&statectl(&fresh, &["import", "--create", input]));
        assert_eq!(got, code, "{input}: {err}");
        assert!(
            !fresh.exists(),
            "a failed import created {}",
            fresh.display()
        );
    }
    // The database itself: missing, not a database, a PostgreSQL URL.
    let (code, err) = fails(&statectl(&dir.path().join("missing.db"), &["scopes"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "a missing database was created"
    );
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database\n".repeat(50)).unwrap();
    let (code, err) = fails(&statectl(&notes, &["scopes"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not a SQLite database"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "not a database\n".repeat(50)
    );
    let (code, err) = fails(&statectl(
        Path::new("postgres://u@localhost:notaport/db"),
        &["scopes"],
    ));
    assert_eq!(code, 5, "a malformed URL is invalid input: {err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, err) = fails(&statectl(
        Path::new(&format!("postgres://u:p@127.0.0.1:{closed}/db")),
        &["scopes"],
    ));
    assert_eq!(code, 6, "an unreachable server is a store failure: {err}");
    assert!(err.contains("cannot reach PostgreSQL"), "{err}");
    // An import with a bad line writes none of the good ones.
    let fresh = dir.path().join("fresh.db");
    drop(SqliteStore::open(&fresh).await.unwrap());
    let line = r#"{"slot":{"scope":{"kind":"app","id":"x"},"namespace":"N","key":"k"},"record":{"value":1,"version":1}}"#;
    let bad_line = dir.path().join("bad.jsonl");
    std::fs::write(&bad_line, format!("{line}\nnot json\n")).unwrap();
    let (code, err) = fails(&statectl(&fresh, &["import", bad_line.to_str().unwrap()]));
    assert_eq!(code, 5, "{err}");
    assert!(
        ok(&statectl(&fresh, &["export"])).is_empty(),
        "a half-read import wrote"
    );
    // A file from a newer schema: a store failure.
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", fresh.display()))
            .await
            .unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'future', TRUE, x'00', 0)",
        )
        .await
        .unwrap();
    }
    let (code, err) = fails(&statectl(&fresh, &["scopes"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("newer than this build supports"), "{err}");
}

/// A watch from a cursor the change log's retention has passed is "not found" (exit 3), naming
/// the sequence number to resume from; resumed there, it reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_behind_the_retention_says_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trimmed.db");
    {
        let clock = state_core::ManualClock::new(state_core::Timestamp::from_millis(1_000_000_000));
        let store = SqliteStore::open_with(
            state_sqlite::SqliteOptions::file(&db)
                .clock(clock.clone())
                .change_retention(Some(Duration::from_secs(3600))),
        )
        .await
        .unwrap();
        let engine = Engine::new(store);
        let hits = engine.handle::<u64>(slot(&Scope::app("shop").unwrap(), "Stats", "hits"));
        for _ in 0..3 {
            hits.increment(1).await.unwrap();
        }
        clock.advance(Duration::from_secs(2 * 3600));
        // The log is trimmed every 1024 group commits.
        for _ in 0..1024 {
            hits.increment(1).await.unwrap();
        }
    }
    let (code, err) = fails(&statectl(
        &db,
        &["watch", "app:shop", "--from", "0", "--count", "1"],
    ));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("resume from 3"), "{err}");
    let resumed = ok(&statectl(
        &db,
        &["--json", "watch", "app:shop", "--from", "3", "--count", "1"],
    ));
    let change: Value = serde_json::from_str(resumed.lines().next().unwrap()).unwrap();
    assert_eq!(
        (change["seq"].as_u64(), change["version"].as_u64()),
        (Some(4), Some(4))
    );
}
