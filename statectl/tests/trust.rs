//! What an outside tester broke, kept fixed: the real `statectl` binary on SQLite files and
//! PostgreSQL schemas, fed values too deep and numbers too wide, strict imports, damaged rows,
//! another program's files, a held write lock, a read-only mount, mistyped URLs, closed and
//! full stdouts, terminal escapes in ids. Needs STATE_PG_URL (scripts/test starts a server).

mod common;

use common::ok;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sqlx::{Connection, Executor};

const BIN: &str = env!("CARGO_BIN_EXE_statectl");

fn statectl(db: &str, args: &[&str]) -> Output {
    statectl_with(db, args, None)
}

fn statectl_with(db: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Exit code and stderr, which never holds a panic.
fn fails(out: &Output) -> (i32, String) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("statectl: "), "{err}");
    (out.status.code().unwrap(), err)
}

fn get_json(db: &str, key: &str) -> Value {
    serde_json::from_str(&ok(&statectl(db, &["get", "app:m", "N", key, "--json"]))).unwrap()
}

/// A fresh store of each backend: a SQLite file in `dir`, and a PostgreSQL schema of its own
/// (dropped by [`drop_schema`]).
fn stores(dir: &Path, name: &str) -> Vec<String> {
    let url = std::env::var("STATE_PG_URL")
        .expect("STATE_PG_URL is not set: run scripts/test, or eval \"$(scripts/pg-up)\" first");
    let sep = if url.contains('?') { '&' } else { '?' };
    let dbs = vec![
        dir.join(format!("{name}.db")).display().to_string(),
        format!("{url}{sep}state_schema={}", schema(name)),
    ];
    for db in &dbs {
        ok(&statectl(db, &["import", "--create", "/dev/null"]));
    }
    dbs
}

fn schema(name: &str) -> String {
    format!("test_trust_{name}_{}", std::process::id())
}

async fn drop_schema(name: &str) {
    let url = std::env::var("STATE_PG_URL").unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    conn.execute(&*format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        schema(name)
    ))
    .await
    .unwrap();
}

fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// Item 1: a value the store could not read back is refused before it is written, at every
/// entry point, and every read of the store still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_nested_past_the_limit_is_refused_and_the_store_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    for db in stores(dir.path(), "deep") {
        ok(&statectl(
            &db,
            &["set", "app:m", "N", "k", r#"{"a":{"b":[]}}"#],
        ));
        let append = |item: String| format!(r#"{{"path":["a","b"],"op":"append","item":{item}}}"#);
        for (what, args) in [
            (
                "an op item 126 levels deep",
                vec!["update", "app:m", "N", "k", "--op", &append(nested(126))],
            ),
            (
                "an append nesting the value to 65 levels",
                vec!["update", "app:m", "N", "k", "--op", &append(nested(62))],
            ),
            (
                "a value 65 levels deep",
                vec!["set", "app:m", "N", "k", &nested(65)],
            ),
            (
                "a value 20 000 levels deep",
                vec!["set", "app:m", "N", "k", &nested(20_000)],
            ),
        ] {
            let (code, err) = fails(&statectl(&db, &args));
            assert_eq!(code, 5, "{what}: {err}");
            assert!(err.contains("deeper than 64 levels"), "{what}: {err}");
        }
        // The deepest allowed value is stored, and every read returns it.
        ok(&statectl(
            &db,
            &["set", "app:m", "N", "deepest", &nested(64)],
        ));
        assert_eq!(get_json(&db, "k")["version"], 1);
        assert_eq!(get_json(&db, "deepest")["value"].to_string(), nested(64));
        ok(&statectl(&db, &["history", "app:m", "N", "deepest"]));
        let exported = ok(&statectl(&db, &["export"]));
        assert_eq!(exported.lines().count(), 2, "{exported}");
        // And the export imports again: a line may nest two levels more than its value.
        let copy = dir.path().join("deep-copy.db").display().to_string();
        let imported = statectl_with(&copy, &["import", "--create"], Some(exported.as_bytes()));
        assert_eq!(ok(&imported).trim(), "imported 2");
        std::fs::remove_file(&copy).unwrap();
    }
    drop_schema("deep").await;
}

/// Item 3: integers beyond i64/u64 are refused naming where they sit (set, ops, import);
/// every finite f64 reads back bit-identical (set and import, both backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_stored_exactly_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    for db in stores(dir.path(), "numbers") {
        for (args, literal) in [
            (
                vec!["set", "app:m", "N", "big", "18446744073709551616"],
                "18446744073709551616",
            ),
            (
                vec![
                    "set",
                    "app:m",
                    "N",
                    "big",
                    r#"{"a":[1,-9223372036854775809]}"#,
                ],
                "-9223372036854775809",
            ),
            (
                vec![
                    "update",
                    "app:m",
                    "N",
                    "big",
                    "--op",
                    r#"{"path":[],"op":"set","value":{"n":100000000000000000000}}"#,
                ],
                "100000000000000000000",
            ),
        ] {
            let (code, err) = fails(&statectl(&db, &args));
            assert_eq!(code, 5, "{args:?}: {err}");
            assert!(
                err.contains(literal) && err.contains("outside the range"),
                "{err}"
            );
        }
        let (code, _) = fails(&statectl(&db, &["get", "app:m", "N", "big"]));
        assert_eq!(code, 3, "nothing was written");
        ok(&statectl(
            &db,
            &["set", "app:m", "N", "max", "18446744073709551615"],
        ));
        assert_eq!(get_json(&db, "max")["value"], u64::MAX);
        ok(&statectl(
            &db,
            &["set", "app:m", "N", "x", "938.3112035786577"],
        ));
        let got = ok(&statectl(&db, &["get", "app:m", "N", "x", "--json"]));
        assert!(got.contains("938.3112035786577,"), "{got}");
        // Random finite f64s (every exponent), through set and through import.
        let floats = random_floats(400);
        for (i, f) in floats.iter().take(10).enumerate() {
            let key = format!("set-{i}");
            ok(&statectl(
                &db,
                &["set", "app:m", "N", &key, &json!(f).to_string()],
            ));
            let back = get_json(&db, &key)["value"].as_f64().unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{f:e} came back as {back:e}");
        }
        let lines: String = floats
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let slot = json!({"scope": {"kind": "app", "id": "f"}, "namespace": "N", "key": format!("f{i:03}")});
                format!("{}\n", json!({"slot": slot, "record": {"value": f, "version": 1}}))
            })
            .collect();
        ok(&statectl_with(&db, &["import"], Some(lines.as_bytes())));
        let exported = ok(&statectl(&db, &["export", "--scope", "app:f"]));
        let back: Vec<f64> = exported
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["record"]["value"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        assert_eq!(back.len(), floats.len());
        for (f, b) in floats.iter().zip(&back) {
            assert_eq!(f.to_bits(), b.to_bits(), "{f:e} came back as {b:e}");
        }
    }
    drop_schema("numbers").await;
}

/// Finite f64s from random bit patterns (a fixed-seed xorshift), so every exponent appears.
fn random_floats(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::new();
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            out.push(f);
        }
    }
    out
}

/// Item 4: a misspelled or unknown field is an error naming the line; a record is held to a
/// write's limits (size with `--max-value-bytes`, depth, numbers); nothing is written when
/// any line fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_strict_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let line = |key: &str, record: Value| {
        let slot = json!({"scope": {"kind": "app", "id": "m"}, "namespace": "N", "key": key});
        json!({"slot": slot, "record": record}).to_string()
    };
    let good = line("good", json!({"value": 1, "version": 1}));
    let big = "x".repeat(2 << 20);
    for db in stores(dir.path(), "import") {
        for (what, bad, needle) in [
            (
                "a misspelled value",
                line("k", json!({"valeu": 5, "version": 1})),
                "line 2",
            ),
            (
                "a misspelled expiry",
                line("k", json!({"value": 5, "version": 1, "expire_at": 9})),
                "expire_at",
            ),
            (
                "an unknown slot field",
                line("k", json!({"value": 5, "version": 1}))
                    .replace(r#""key""#, r#""kye":"x","key""#),
                "kye",
            ),
            (
                "an unknown top-level field",
                format!(
                    "{{\"extra\":1,{}",
                    &line("k", json!({"value": 5, "version": 1}))[1..]
                ),
                "extra",
            ),
            (
                "an integer beyond u64",
                line("k", json!({"value": 5, "version": 1}))
                    .replace(":5,", ":18446744073709551616,"),
                "18446744073709551616",
            ),
            (
                "a value 65 levels deep",
                line("k", json!({"value": 5, "version": 1}))
                    .replace(":5,", &format!(":{},", nested(65))),
                "deeper than 64",
            ),
            (
                "a 2 MiB value (the limit is 1 MiB)",
                line("k", json!({"value": big, "version": 1})),
                "more than the limit of 1048576",
            ),
        ] {
            let file = format!("{good}\n{bad}\n");
            let (code, err) = fails(&statectl_with(&db, &["import"], Some(file.as_bytes())));
            assert_eq!(code, 5, "{what}: {err}");
            assert!(err.contains(needle), "{what}: {err}");
            assert_eq!(
                ok(&statectl(&db, &["export"])),
                "",
                "{what}: something was written"
            );
        }
        let file = format!(
            "{good}\n{}\n",
            line("k", json!({"value": big, "version": 1}))
        );
        let imported = statectl_with(
            &db,
            &["import", "--max-value-bytes", "3000000"],
            Some(file.as_bytes()),
        );
        assert_eq!(ok(&imported).trim(), "imported 2");
    }
    drop_schema("import").await;
}

/// Item 2: a damaged row does not stop the export of the others; it is named on stderr with
/// its version, the reason and its stored text, and the exit code says the export is partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_every_readable_slot_and_names_each_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let dbs = stores(dir.path(), "damaged");
    for db in &dbs {
        for (key, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
            ok(&statectl(db, &["set", "app:m", "N", key, value]));
        }
        ok(&statectl(db, &["set", "app:m", "N", "b", "4"]));
    }
    let corrupt = "UPDATE slots SET value = '{\"half\": tru' WHERE key = 'b'";
    let mut sqlite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", dbs[0]))
        .await
        .unwrap();
    sqlite.execute(corrupt).await.unwrap();
    sqlite.close().await.unwrap();
    let url = std::env::var("STATE_PG_URL").unwrap();
    let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
    pg.execute(&*format!(
        "SET search_path = \"{}\"; {corrupt}",
        schema("damaged")
    ))
    .await
    .unwrap();
    for db in &dbs {
        let out = statectl(db, &["export"]);
        assert_eq!(
            out.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let keys: Vec<String> = stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["slot"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(keys, ["a", "c"], "every readable slot is exported");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let report: Value = serde_json::from_str(
            stderr
                .lines()
                .next()
                .unwrap()
                .strip_prefix("statectl: ")
                .unwrap(),
        )
        .unwrap();
        let r = &report["unreadable"];
        assert_eq!(
            (r["slot"]["key"].as_str(), r["version"].as_u64()),
            (Some("b"), Some(2)),
            "{r}"
        );
        assert_eq!(
            r["raw"], "{\"half\": tru",
            "the stored text is kept for a repair: {r}"
        );
        assert!(r["reason"].as_str().unwrap().contains("not JSON"), "{r}");
        assert!(stderr.contains("left out 1 (each named above"), "{stderr}");
    }
    drop_schema("damaged").await;
}

/// Item 5: another program's SQLite file is refused by every command and left byte for byte
/// as it was, with nothing created next to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.jsonl");
    std::fs::write(&dump, "").unwrap();
    for (name, sql) in [
        (
            "other_app.db",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');",
        ),
        (
            "own_slots.db",
            "CREATE TABLE slots (id INTEGER PRIMARY KEY, booked TEXT); INSERT INTO slots VALUES (1, 'mon');",
        ),
    ] {
        let file = dir.path().join(name);
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
                .await
                .unwrap();
        conn.execute(sql).await.unwrap();
        conn.close().await.unwrap();
        let before = std::fs::read(&file).unwrap();
        let db = file.display().to_string();
        for args in [
            &["scopes"][..],
            &["get", "app:m", "N", "k"],
            &["set", "app:m", "N", "k", "1"],
            &["import", dump.to_str().unwrap()],
            &["import", "--create", dump.to_str().unwrap()],
        ] {
            let (code, err) = fails(&statectl(&db, args));
            assert_eq!(code, 5, "{name} {args:?}: {err}");
            assert!(err.contains("is not a typed-state store"), "{err}");
            assert_eq!(
                std::fs::read(&file).unwrap(),
                before,
                "{name} {args:?} changed it"
            );
        }
    }
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["dump.jsonl", "other_app.db", "own_slots.db"],
        "no WAL or journal left"
    );
}

/// Item 6: while another connection holds the write lock (`BEGIN IMMEDIATE`, an open write
/// transaction), every read command answers; nothing waits for the lock to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_never_wait_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("held.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    ok(&statectl(&db, &["set", "app:m", "N", "k", "1"]));
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    holder
        .execute("UPDATE slots SET value = '2'")
        .await
        .unwrap();
    for args in [
        &["get", "app:m", "N", "k"][..],
        &["keys", "app:m"],
        &["scopes"],
        &["history", "app:m", "N", "k"],
        &["export"],
        &["watch", "app:m", "--from", "0", "--count", "1"],
    ] {
        let out = ok(&statectl(&db, args));
        assert!(
            !out.contains("\"value\":2") && !out.contains("value:   2"),
            "{args:?} saw an uncommitted write: {out}"
        );
    }
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
}

/// Item 6: on a read-only mount (a bind mount under `unshare -m`: root writes a chmod'ed file
/// anyway), the read commands work and a write fails with a typed error: with the WAL holding
/// statectl's write (its index is there to read it through) and after the last connection
/// checkpointed it away (no WAL: the file is read as immutable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_work_on_a_read_only_mount() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    // A connection open through the write keeps the WAL: statectl's is not the last to close.
    let mut last = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
        .await
        .unwrap();
    last.execute("SELECT count(*) FROM slots").await.unwrap();
    ok(&statectl(&db, &["set", "app:m", "N", "k", "[1,2]"]));
    let wal = || std::fs::metadata(format!("{db}-wal")).map_or(0, |m| m.len());
    assert!(wal() > 0, "statectl's write is in the WAL");
    let shown = read_only_mount(dir.path(), &db);
    assert!(
        shown.contains("value:   [1,2]") && shown.contains("\"value\":[1,2]"),
        "{shown}"
    );
    // The WAL checkpointed into the file, and the last connection closed.
    last.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    last.close().await.unwrap();
    assert_eq!(wal(), 0, "no WAL left");
    let shown = read_only_mount(dir.path(), &db);
    assert!(
        shown.contains("value:   [1,2]") && shown.contains("\"value\":[1,2]"),
        "{shown}"
    );
}

/// Runs the read commands and a write on `db` with `dir` mounted read-only; returns what they
/// printed, checking the write failed with the typed error.
fn read_only_mount(dir: &Path, db: &str) -> String {
    let d = dir.display();
    let script = format!(
        "mount --bind {d} {d} && mount -o remount,bind,ro {d} || exit 90
         touch {d}/probe 2>/dev/null && exit 91
         for c in 'get app:m N k' 'keys app:m' 'scopes' 'history app:m N k' 'export'; do
           {BIN} --db {db} $c || exit 92
         done
         {BIN} --db {db} set app:m N k 3; echo \"set exit $?\""
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stdout} {stderr}",
        out.status.code()
    );
    assert!(stdout.contains("set exit 6"), "{stdout}");
    assert!(stderr.contains("the database is read-only"), "{stderr}");
    assert!(
        !stderr.contains("code:") && !stderr.contains("panicked"),
        "a raw error: {stderr}"
    );
    stdout
}

/// Item 7: a name that looks like a URL but is not an exact `postgres://`/`postgresql://` is
/// refused, never taken for a file (nothing is created), and no message shows a password.
#[test]
fn a_mistyped_url_is_refused_and_no_password_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("STATE_PG_URL").unwrap();
    let host = url.rsplit_once('@').unwrap().1;
    let wrong = format!("postgres://state:s3cr3tpw@{host}");
    for db in [
        "POSTGRES://u:s3cr3tpw@localhost/db",
        " postgres://u:s3cr3tpw@localhost/db",
        "postgres://u:s3cr3tpw@localhost/db\n",
        "postgres:/u:s3cr3tpw@localhost/db",
        "pg://u:s3cr3tpw@localhost/db",
        "postgresql:u:s3cr3tpw@localhost",
        "u:s3cr3tpw@localhost",
    ] {
        for args in [&["scopes"][..], &["import", "--create", "/dev/null"]] {
            let out = Command::new(BIN)
                .current_dir(dir.path())
                .arg("--db")
                .arg(db)
                .args(args)
                .output()
                .unwrap();
            let (code, err) = fails(&out);
            assert_eq!(code, 5, "{db:?} {args:?}: {err}");
            assert!(err.contains("invalid database name"), "{err}");
            assert!(!err.contains("s3cr3tpw"), "the password is printed: {err}");
        }
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .env("STATECTL_DB", db)
            .arg("scopes")
            .output()
            .unwrap();
        assert_eq!(fails(&out).0, 5, "{db:?} from STATECTL_DB");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a file was created"
    );
    // A real server refusing the password: the message names the URL without it.
    let (code, err) = fails(&statectl(&wrong, &["scopes"]));
    assert_eq!(code, 6, "{err}");
    assert!(!err.contains("s3cr3tpw"), "the password is printed: {err}");
}

/// Item 8: a closed pipe or a full disk on stdout is a clean exit 7 that says whether the
/// write committed, never a panic.
#[test]
fn a_closed_or_full_stdout_is_a_clean_failure_saying_whether_the_write_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    // Enough output to overflow a pipe's buffer.
    let lines: String = (0..2000)
        .map(|k| {
            let slot = json!({"scope": {"kind": "app", "id": "m"}, "namespace": "N", "key": format!("key-{k:05}")});
            format!("{}\n", json!({"slot": slot, "record": {"value": k, "version": 1}}))
        })
        .collect();
    ok(&statectl_with(&db, &["import"], Some(lines.as_bytes())));
    let closed = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(writer)
            .output()
            .unwrap()
    };
    let full = |args: &[&str]| {
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap()
    };
    for out in [
        closed(&["keys", "app:m", "--limit", "1000"]),
        full(&["export"]),
    ] {
        let (code, err) = fails(&out);
        assert_eq!(code, 7, "{err}");
        assert!(
            err.contains("cannot write to stdout") && err.contains("nothing was changed"),
            "{err}"
        );
    }
    for version in [1, 2] {
        let args = ["set", "app:m", "N", "w", "1"];
        let out = if version == 1 {
            closed(&args)
        } else {
            full(&args)
        };
        let (code, err) = fails(&out);
        assert_eq!(code, 7, "{err}");
        assert!(
            err.contains(&format!("the write committed (version {version})")),
            "{err}"
        );
        assert_eq!(get_json(&db, "w")["version"], version);
    }
}

/// Item 8: ids and keys holding control characters (a terminal escape) are escaped in tables
/// and messages; JSON output holds no raw control character either.
#[test]
fn control_characters_in_ids_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("esc.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    let scope = r#"["app","s\u001b]0;pwned\u0007"]"#;
    ok(&statectl(
        &db,
        &["set", scope, "N", "k\u{1b}[2J", "\"v\u{9b}31m\""],
    ));
    for args in [
        &["scopes"][..],
        &["keys", scope],
        &["get", scope, "N", "k\u{1b}[2J"],
        &["history", scope, "N", "k\u{1b}[2J"],
        &["watch", scope, "--from", "0", "--count", "1"],
        &["scopes", "--json"],
        &["keys", scope, "--json"],
        &["export"],
    ] {
        let out = ok(&statectl(&db, args));
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {out:?}"
        );
    }
    let table = ok(&statectl(&db, &["keys", scope]));
    assert!(table.contains("k\\u{1b}[2J"), "{table}");
    let (_, err) = fails(&statectl(&db, &["get", scope, "N", "missing\u{1b}[2J"]));
    assert!(!err.trim_end().chars().any(char::is_control), "{err:?}");
}

/// Item 8: `set` reads its value from stdin (`-`) or a file (past the OS's argument limit),
/// and takes a negative number as a value.
#[test]
fn set_takes_large_values_from_stdin_or_a_file_and_negative_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("set.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    let large = json!("z".repeat(300 << 10)).to_string();
    ok(&statectl_with(
        &db,
        &["set", "app:m", "N", "stdin", "-"],
        Some(large.as_bytes()),
    ));
    let file = dir.path().join("value.json");
    std::fs::write(&file, &large).unwrap();
    ok(&statectl(
        &db,
        &[
            "set",
            "app:m",
            "N",
            "file",
            "--file",
            file.to_str().unwrap(),
        ],
    ));
    for key in ["stdin", "file"] {
        assert_eq!(
            get_json(&db, key)["value"].as_str().unwrap().len(),
            300 << 10
        );
    }
    for (value, expected) in [
        ("-5", json!(-5)),
        ("-0.25", json!(-0.25)),
        ("-4e-300", json!(-4e-300)),
    ] {
        ok(&statectl(&db, &["set", "app:m", "N", "neg", value]));
        assert_eq!(get_json(&db, "neg")["value"], expected, "{value}");
    }
    let (code, err) = fails(&statectl(&db, &["watch", "app:m", "--from", "99"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("past the end of the change log"), "{err}");
}

/// A store an older version wrote (here: from before files were stamped) is not another
/// program's: a read command opens it writable once, migrates and stamps it, and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_an_older_version_wrote_is_upgraded_by_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    ok(&statectl(&db, &["set", "app:m", "N", "k", "5"]));
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
        .await
        .unwrap();
    conn.execute("PRAGMA application_id = 0").await.unwrap();
    assert_eq!(get_json(&db, "k")["value"], 5);
    let id: i32 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(id, state_sqlite::APPLICATION_ID);
}

fn sqlite(db: &str, sql: &str) {
    // On stdin: a statement may be longer than the OS takes as an argument.
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A second try: names SQLite would read as a memory database or a URI are files; another
/// program's WAL-mode file is left as it was by the write commands too.
#[test]
fn names_sqlite_reads_specially_are_plain_files_and_foreign_wal_files_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cd = |db: &str, args: &[&str]| {
        Command::new(BIN)
            .current_dir(dir.path())
            .arg("--db")
            .arg(db)
            .args(args)
            .output()
            .unwrap()
    };
    for (db, file) in [
        (":memory:", ":memory:"),
        ("sqlite::memory:", ":memory:"),
        ("sqlite:file:x.db?mode=memory", "file:x.db?mode=memory"),
    ] {
        ok(&cd(db, &["import", "--create", "/dev/null"]));
        ok(&cd(db, &["set", "app:m", "N", "k", "7"]));
        assert!(dir.path().join(file).is_file(), "{db}: no file {file}");
        let got = ok(&cd(
            &format!("./{file}"),
            &["get", "app:m", "N", "k", "--json"],
        ));
        assert!(got.contains("\"value\":7"), "{db}: {got}");
    }
    // Another program's database in WAL mode, its last commit still in the WAL.
    let wal = dir.path().join("wal.db").display().to_string();
    // The copy is taken while sqlite3 still holds the database open, so its WAL is there.
    let made = Command::new("sqlite3")
        .arg(format!("{wal}.src"))
        .arg("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .arg(format!(".shell cp '{wal}.src' '{wal}' && cp '{wal}.src-wal' '{wal}-wal'"))
        .output()
        .unwrap();
    assert!(
        made.status.success() && std::fs::metadata(format!("{wal}-wal")).is_ok_and(|m| m.len() > 0),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let before = (
        std::fs::read(&wal).unwrap(),
        std::fs::read(format!("{wal}-wal")).unwrap(),
    );
    for args in [
        &["import", "/dev/null"][..],
        &["delete", "app:m", "N", "k"],
        &["clear", "app:m"],
        &["purge", "--expired"],
        &["set", "app:m", "N", "k", "1"],
        &["scopes"],
    ] {
        let (code, err) = fails(&statectl(&wal, args));
        assert_eq!(code, 5, "{args:?}: {err}");
        let after = (
            std::fs::read(&wal).unwrap(),
            std::fs::read(format!("{wal}-wal")).unwrap(),
        );
        assert!(after == before, "{args:?} changed the file or its WAL");
    }
}

/// A second try: export reads the store in one snapshot, so it never splits a batch that
/// committed two scopes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_never_splits_an_atomic_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    let engine = state_core::Engine::new(state_sqlite::SqliteStore::open(&path).await.unwrap());
    let slot = |scope: &str| {
        state_core::Slot::new(state_core::Scope::app(scope).unwrap(), "N", "n").unwrap()
    };
    let writer = tokio::spawn({
        let engine = engine.clone();
        async move {
            for i in 0..u64::MAX {
                let writes = ["a", "b"].map(|s| state_core::Write::cas(slot(s), i, Some(json!(i))));
                engine.commit(writes.to_vec()).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    let db = path.display().to_string();
    for _ in 0..30 {
        let out = tokio::task::spawn_blocking({
            let db = db.clone();
            move || statectl(&db, &["export"])
        })
        .await
        .unwrap();
        let values: Vec<Value> = ok(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
            .collect();
        assert!(values.len() == 2 || values.is_empty(), "{values:?}");
        if values.len() == 2 {
            assert_eq!(values[0], values[1], "the export split a batch");
        }
    }
    writer.abort();
}

/// A second try: what statectl prints or reports is safe to reuse — a `--after` hint pastes
/// into a shell as the cursor it names, passwords with quotes, spaces or slashes and
/// `password=` parameters are hidden, damaged rows of every kind are located.
#[test]
fn hints_reports_and_messages_hold_up_to_hostile_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    let key = "a'; touch pwned; echo '";
    ok(&statectl(&db, &["set", "app:q", "N", key, "1"]));
    ok(&statectl(&db, &["set", "app:q", "N", "z", "2"]));
    let page = ok(&statectl(&db, &["keys", "app:q", "--limit", "1"]));
    let hint = page
        .lines()
        .last()
        .unwrap()
        .strip_prefix("next: --after ")
        .unwrap();
    let echoed = Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!("printf %s {hint}"))
        .output()
        .unwrap();
    assert!(!dir.path().join("pwned").exists(), "the hint ran a command");
    let cursor: Value = serde_json::from_slice(&echoed.stdout).unwrap();
    assert_eq!(cursor["key"], key);
    let next = ok(&statectl(
        &db,
        &[
            "keys",
            "app:q",
            "--after",
            &String::from_utf8(echoed.stdout).unwrap(),
        ],
    ));
    assert!(next.contains('z'), "{next}");
    for (db, secret) in [
        ("pg://u:pa'ss@h/d", "pa'ss"),
        (" postgres://u:pa/ss@h/d", "pa/ss"),
        ("pg://u:pa\"ss word@h/d", "ss word"),
        (" pg://x?password=SECRET", "SECRET"),
        ("postgres://h/d?state_schema=a&password=SECRET", "SECRET"),
    ] {
        let (_, err) = fails(&statectl(db, &["scopes"]));
        assert!(!err.contains(secret), "{db}: {err}");
    }
    // Damaged rows of each kind: every one is left out and located.
    for (key, sql) in [
        ("v", "UPDATE slots SET version = 'x' WHERE key = 'v'"),
        ("b", "UPDATE slots SET value = X'00FF' WHERE key = 'b'"),
        ("t", "UPDATE slots SET expires_at = 'soon' WHERE key = 't'"),
        ("k", "UPDATE slots SET key = X'FF' WHERE key = 'k'"),
        ("n", "UPDATE slots SET namespace = '' WHERE key = 'n'"),
        (
            "w",
            "UPDATE slots SET value = '18446744073709551616' WHERE key = 'w'",
        ),
        (
            "d",
            &format!("UPDATE slots SET value = '{}' WHERE key = 'd'", nested(100)),
        ),
    ] {
        ok(&statectl(&db, &["set", "app:r", "N", key, "1"]));
        sqlite(&db, sql);
    }
    let out = statectl(&db, &["export", "--scope", "app:r"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "every row of app:r is damaged"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let reports: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l.strip_prefix("statectl: ")?).ok())
        .collect();
    assert_eq!(reports.len(), 7, "{stderr}");
    for r in &reports {
        let r = &r["unreadable"];
        let located = r["slot"].is_object()
            || r["reason"].as_str().unwrap().contains("X'FF'")
            || r["reason"].as_str().unwrap().contains("''");
        assert!(located, "a report that names no row: {r}");
        assert!(r["raw"].is_string(), "no stored text: {r}");
    }
    assert!(
        stderr.contains("X'00FF'"),
        "the BLOB value is shown: {stderr}"
    );
    let blob = reports
        .iter()
        .find(|r| r["unreadable"]["raw"] == "X'00FF'")
        .unwrap();
    assert_eq!(
        blob["unreadable"]["slot"]["key"], "b",
        "its readable identity: {blob}"
    );
    assert!(stderr.contains("nests deeper than 64"), "{stderr}");
    // The whole-store export leaves them out too, and what it wrote imports.
    let whole = statectl(&db, &["export"]);
    let copy = dir.path().join("copy.db").display().to_string();
    let written = String::from_utf8(whole.stdout).unwrap();
    assert_eq!(
        ok(&statectl_with(
            &copy,
            &["import", "--create"],
            Some(written.as_bytes())
        ))
        .trim(),
        "imported 2"
    );
    // A damaged change-log row is named by its sequence number, to resume past it.
    ok(&statectl(&db, &["set", "app:c", "N", "k", "1"]));
    ok(&statectl(&db, &["set", "app:c", "N", "k", "2"]));
    sqlite(
        &db,
        "UPDATE changes SET value = '{bad' WHERE key = 'k' AND version = 1 AND scope_id = 'c'",
    );
    let (_, err) = fails(&statectl(&db, &["history", "app:c", "N", "k"]));
    assert!(err.contains("change "), "{err}");
}

/// A second try: values and ops serde_json would change silently are refused; an op may
/// carry the deepest value `set` may; a refused `import --create` leaves no file; an empty
/// file or a directory is named as such; a byte-order mark is not part of the JSON.
#[test]
fn json_edges_refused_imports_and_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    for value in [r#"{"a":1,"a":2}"#, "1e-400", r#"[{"x":[-2.5e-999]}]"#] {
        let (code, err) = fails(&statectl(&db, &["set", "app:m", "N", "k", value]));
        assert_eq!(code, 5, "{value}: {err}");
    }
    let op = format!(r#"{{"path":[],"op":"set","value":{}}}"#, nested(64));
    ok(&statectl(
        &db,
        &["update", "app:m", "N", "deep", "--op", &op],
    ));
    let twice = r#"{"slot":{"scope":{"kind":"app","id":"m"},"namespace":"N","key":"k"},"record":{"value":1,"version":1},"record":{"value":2,"version":1}}"#;
    let fresh = dir.path().join("fresh.db").display().to_string();
    for bad in [
        twice.to_owned(),
        twice
            .replace(r#","record":{"value":2,"version":1}"#, "")
            .replace("\"version\":1", "\"version\":0"),
    ] {
        let (code, err) = fails(&statectl_with(
            &fresh,
            &["import", "--create"],
            Some(bad.as_bytes()),
        ));
        assert!(code == 5, "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|f| f.to_string_lossy().starts_with("fresh"))
            .collect();
        assert!(left.is_empty(), "a refused import --create left {left:?}");
    }
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let (code, err) = fails(&statectl(
        empty.to_str().unwrap(),
        &["get", "app:m", "N", "k"],
    ));
    assert!(code == 3 && err.contains("empty file"), "{err}");
    let (code, err) = fails(&statectl(dir.path().to_str().unwrap(), &["scopes"]));
    assert!(code == 5 && err.contains("is a directory"), "{err}");
    let file = dir.path().join("bom.json");
    std::fs::write(&file, "\u{feff}{\"a\":1}").unwrap();
    ok(&statectl(
        &db,
        &["set", "app:m", "N", "bom", "--file", file.to_str().unwrap()],
    ));
    assert_eq!(get_json(&db, "bom")["value"], json!({"a": 1}));
}

/// A third try: two `import --create` runs racing on one missing file leave one store that
/// holds the import (one run imports, the other is a conflict); nothing is removed.
#[test]
fn racing_imports_into_a_missing_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.jsonl");
    let lines: String = ["a", "b"]
        .iter()
        .map(|k| {
            let slot = json!({"scope": {"kind": "app", "id": "m"}, "namespace": "N", "key": k});
            format!(
                "{}\n",
                json!({"slot": slot, "record": {"value": 1, "version": 1}})
            )
        })
        .collect();
    std::fs::write(&dump, lines).unwrap();
    for round in 0..10 {
        let db = dir
            .path()
            .join(format!("race-{round}.db"))
            .display()
            .to_string();
        let start = || {
            Command::new(BIN)
                .args(["--db", &db, "import", "--create", dump.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(), start());
        let codes = [a, b].map(|c| c.wait_with_output().unwrap().status.code());
        assert!(codes.contains(&Some(0)), "round {round}: {codes:?}");
        let exported = ok(&statectl(&db, &["export"]));
        assert_eq!(
            exported.lines().count(),
            2,
            "round {round}: the import is gone: {codes:?}"
        );
    }
}

/// A third try: hints for keys and ids with `\`, `"`, `'` or a newline page through every
/// entry; a value over 1 MiB exports with a warning naming the flag its import needs; a float
/// increment never changes a number the kind does not hold; a database holding only a
/// journal mode is no store, and a read leaves it as it was.
#[test]
fn hints_page_through_odd_keys_and_odd_stores_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db").display().to_string();
    ok(&statectl(&db, &["import", "--create", "/dev/null"]));
    let keys = ["e\nf", "eZ", "g\\h", "g\\i", "a\"b", "it's"];
    for k in keys {
        ok(&statectl(&db, &["set", "app:c", "N", k, "1"]));
        ok(&statectl(
            &db,
            &[
                "set",
                &format!(
                    r#"["app","s{}"]"#,
                    k.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                ),
                "N",
                "k",
                "1",
            ],
        ));
    }
    for (list, scope) in [("keys", Some("app:c")), ("scopes", None)] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let mut args = vec![list];
            args.extend(scope);
            args.extend(["--limit", "1"]);
            let after_arg;
            if let Some(a) = &after {
                after_arg = a.clone();
                args.extend(["--after", &after_arg]);
            }
            let page = ok(&statectl(&db, &args));
            let rows: Vec<&str> = page.lines().skip(1).collect();
            match rows.iter().find(|l| l.starts_with("next: --after ")) {
                Some(hint) => {
                    seen.push(rows[0].to_owned());
                    let word = hint.strip_prefix("next: --after ").unwrap();
                    let back = Command::new("bash")
                        .arg("-c")
                        .arg(format!("printf %s {word}"))
                        .output()
                        .unwrap();
                    after = Some(String::from_utf8(back.stdout).unwrap());
                }
                None => {
                    seen.extend(rows.iter().map(|r| (*r).to_owned()));
                    break;
                }
            }
        }
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{list}: an entry came twice: {seen:?}"
        );
        assert_eq!(
            seen.len(),
            keys.len() + usize::from(scope.is_none()),
            "{list}: {seen:?}"
        );
    }
    // A value over the default limit (stored by an engine with a larger one).
    ok(&statectl(&db, &["set", "app:big", "N", "k", "1"]));
    sqlite(
        &db,
        &format!(
            "UPDATE slots SET value = '\"{}\"' WHERE scope_id = 'big'",
            "x".repeat(2 << 20)
        ),
    );
    let out = statectl(&db, &["export", "--scope", "app:big"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("--max-value-bytes 2097154"),
        "{err}"
    );
    let copy = dir.path().join("copy.db").display().to_string();
    let imported = statectl_with(
        &copy,
        &["import", "--create", "--max-value-bytes", "2097154"],
        Some(&out.stdout),
    );
    assert_eq!(ok(&imported).trim(), "imported 1");
    // Float kinds: a number the kind does not hold is refused, not rounded.
    ok(&statectl(
        &db,
        &["set", "app:m", "N", "n", "9007199254740993"],
    ));
    for kind in ["f64", "f32"] {
        let op = format!(r#"{{"path":[],"op":"increment","by":0,"kind":"{kind}"}}"#);
        let (code, err) = fails(&statectl(&db, &["update", "app:m", "N", "n", "--op", &op]));
        assert_eq!(code, 5, "{err}");
    }
    assert_eq!(get_json(&db, "n")["value"], 9_007_199_254_740_993_u64);
    ok(&statectl(&db, &["set", "app:m", "N", "f", "0.1"]));
    ok(&statectl(
        &db,
        &[
            "update",
            "app:m",
            "N",
            "f",
            "--op",
            r#"{"path":[],"op":"increment","by":0,"kind":"f32"}"#,
        ],
    ));
    assert_eq!(get_json(&db, "f")["value"], 0.1);
    // A database holding nothing but a journal mode.
    let bare = dir.path().join("bare.db").display().to_string();
    sqlite(&bare, "PRAGMA journal_mode = WAL");
    let before = std::fs::read(&bare).unwrap();
    for args in [&["scopes"][..], &["set", "app:m", "N", "k", "1"]] {
        let (code, err) = fails(&statectl(&bare, args));
        assert!(
            code == 3 && err.contains("empty database"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(&bare).unwrap(),
        before,
        "the empty database was changed"
    );
}
