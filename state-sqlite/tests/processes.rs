//! Real OS processes on one SQLite file: no lost update, contiguous versions, concurrent
//! first opens, CAS against another process's write.
//!
//! This binary is its own child: run with `STATE_SQLITE_CHILD` set, it plays one process of a
//! test; run without, it is the test runner (`harness = false`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sqlx::{Connection, SqliteConnection};
use state_core::{Engine, Error, RetryPolicy, Scope, Slot, Store, Write};
use state_sql::testing::{self, block_on, block_on_local};
use state_sqlite::{SqliteOptions, SqliteStore};

const ROLE: &str = "STATE_SQLITE_CHILD";
/// Tasks committing at once in the crash child: every one has a commit in flight.
const CRASH_TASKS: u64 = 32;

fn slot(key: &str) -> Slot {
    Slot::new(Scope::app("stress").unwrap(), "Test", key).unwrap()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn main() {
    testing::main_or_child(
        ROLE,
        child,
        state_sql::trials![
            a_watch_sees_every_version_another_process_commits,
            stress_tasks_and_processes_through_retries,
            sigkill_loses_no_acknowledged_write,
            four_processes_increment_one_slot,
            four_processes_mixing_increments_and_cas_updates,
            eight_processes_open_a_fresh_file_at_once,
            a_batch_whose_slot_another_process_changed_writes_nothing,
            a_store_opens_and_reads_while_another_process_holds_the_write_lock,
        ],
    );
}

// ---- children -----------------------------------------------------------------------------

fn child(role: &str) {
    let path = PathBuf::from(std::env::var("STATE_DB").unwrap());
    let go = PathBuf::from(std::env::var("STATE_GO").unwrap());
    let n: u64 = std::env::var("STATE_N")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1);
    block_on_local(async move {
        match role {
            "increment" | "mixed" => {
                let busy_ms: u64 = std::env::var("STATE_BUSY_MS")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(5000);
                let tasks: u64 = std::env::var("STATE_TASKS")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(1);
                let options =
                    SqliteOptions::file(&path).busy_timeout(Duration::from_millis(busy_ms));
                let store = std::sync::Arc::new(SqliteStore::open_with(options).await.unwrap());
                let engine = Engine::with_config(store.clone(), Default::default());
                let h = engine.handle::<u64>(slot("counter")).with_retry(
                    RetryPolicy::new(10_000)
                        .with_backoff(Duration::from_micros(100), Duration::from_millis(5)),
                );
                println!("ready");
                wait_for_go(&go);
                println!("start {}", now_ms());
                let workers: Vec<_> = (0..tasks)
                    .map(|t| {
                        let h = h.clone();
                        let mixed = role == "mixed";
                        tokio::task::spawn_local(async move {
                            let mut values = Vec::new();
                            for i in 0..n / tasks {
                                let update = mixed && (i + t) % 2 == 1;
                                values.push(testing::count_once(&h, update).await);
                            }
                            values
                        })
                    })
                    .collect();
                for w in workers {
                    for v in w.await.unwrap() {
                        println!("v {v}");
                    }
                }
                println!("end {}", now_ms());
                println!("busy {}", store.stats().retries);
                println!("inline_busy {}", store.stats().inline_busy);
                println!("group {}", store.stats().max_group);
            }
            "crash" => {
                let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
                println!("ready");
                let workers: Vec<tokio::task::JoinHandle<()>> = (0..CRASH_TASKS)
                    .map(|t| {
                        let h = engine.handle::<u64>(slot(&format!("k{t}")));
                        tokio::task::spawn_local(async move {
                            loop {
                                let v = h.increment(1).await.unwrap();
                                // Printed only once the commit is acknowledged.
                                println!("ack {t} {v}");
                            }
                        })
                    })
                    .collect();
                // The tasks commit until the parent kills this process.
                drop(workers);
                std::future::pending::<()>().await;
            }
            "open" => {
                println!("ready");
                wait_for_go(&go);
                let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
                println!(
                    "v {}",
                    engine
                        .handle::<u64>(slot("opened"))
                        .increment(1)
                        .await
                        .unwrap()
                );
            }
            "touch" => {
                let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
                engine.handle::<u64>(slot("b")).set(100).await.unwrap();
                println!("done");
            }
            "hold-lock" => {
                // Takes the write lock and keeps it until the parent writes a line.
                let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::Executor::execute(&mut conn, "BEGIN IMMEDIATE")
                    .await
                    .unwrap();
                println!("held");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).unwrap();
                sqlx::Executor::execute(&mut conn, "ROLLBACK")
                    .await
                    .unwrap();
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn wait_for_go(go: &Path) {
    while !go.exists() {
        std::thread::sleep(Duration::from_micros(200));
    }
}

// ---- the parent's side --------------------------------------------------------------------

struct Run {
    values: Vec<u64>,
    starts: Vec<u128>,
    ends: Vec<u128>,
    busy: u64,
    /// Commits that met another process's lock on the committer's thread and ran again
    /// through sqlx's worker thread.
    inline_busy: u64,
}

fn spawn(role: &str, db: &Path, go: &Path, n: u64) -> Child {
    spawn_with(role, db, go, n, &[])
}

fn spawn_with(role: &str, db: &Path, go: &Path, n: u64, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .env(ROLE, role)
        .env("STATE_DB", db)
        .env("STATE_GO", go)
        .env("STATE_N", n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Starts `roles`, waits until every child is ready, releases them at once, and collects
/// what they printed.
fn run_together(roles: &[&str], db: &Path, n: u64) -> Run {
    run_together_with(roles, db, n, &[])
}

fn run_together_with(roles: &[&str], db: &Path, n: u64, env: &[(&str, &str)]) -> Run {
    let go = db.with_extension("go");
    let mut children: Vec<Child> = roles
        .iter()
        .map(|r| spawn_with(r, db, &go, n, env))
        .collect();
    let mut readers: Vec<BufReader<std::process::ChildStdout>> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for r in &mut readers {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "a child failed to start");
    }
    std::fs::write(&go, b"go").unwrap();
    let mut run = Run {
        values: Vec::new(),
        starts: Vec::new(),
        ends: Vec::new(),
        busy: 0,
        inline_busy: 0,
    };
    for (mut r, mut c) in readers.into_iter().zip(children) {
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert!(
            c.wait().unwrap().success(),
            "a child process failed:\n{out}"
        );
        for line in out.lines() {
            let (tag, value) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "v" => run.values.push(value.parse().unwrap()),
                "start" => run.starts.push(value.parse().unwrap()),
                "end" => run.ends.push(value.parse().unwrap()),
                "busy" => run.busy += value.parse::<u64>().unwrap(),
                "inline_busy" => run.inline_busy += value.parse::<u64>().unwrap(),
                _ => {}
            }
        }
    }
    run
}

fn assert_exact_and_contiguous(run: &Run, total: u64, db: &Path) {
    let mut values = run.values.clone();
    values.sort_unstable();
    let expected: Vec<u64> = (1..=total).collect();
    assert!(
        values == expected,
        "the values acknowledged are not exactly 1..={total}: {} values",
        values.len()
    );
    let (latest_start, earliest_end) = (
        run.starts.iter().max().unwrap(),
        run.ends.iter().min().unwrap(),
    );
    assert!(
        latest_start < earliest_end,
        "the processes' run times did not overlap"
    );
    let record = block_on(async {
        let store = SqliteStore::open(db).await.unwrap();
        Store::load(&store, &slot("counter")).await.unwrap()
    });
    assert_eq!((record.value, record.version), (Some(json!(total)), total));
}

fn four_processes_increment_one_slot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    block_on(async { drop(SqliteStore::open(&db).await.unwrap()) });
    let run = run_together(&["increment"; 4], &db, 2000);
    // Each increment is one committed write: the values returned are the versions.
    assert_exact_and_contiguous(&run, 8000, &db);
    // With the default busy timeout, a commit that meets another process's lock on the
    // committer's thread (which never waits for one) runs again through sqlx, which does.
    assert!(
        run.inline_busy > 0,
        "no commit met another process's lock: the test did not contend"
    );
    eprintln!(
        "(busy retries across processes: {}, commits re-run through sqlx: {})",
        run.busy, run.inline_busy
    );
}

fn four_processes_mixing_increments_and_cas_updates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    block_on(async { drop(SqliteStore::open(&db).await.unwrap()) });
    let run = run_together(&["mixed", "increment", "mixed", "increment"], &db, 2000);
    assert_exact_and_contiguous(&run, 8000, &db);
}

fn eight_processes_open_a_fresh_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    assert!(!db.exists());
    let run = run_together(&["open"; 8], &db, 1);
    let mut values = run.values.clone();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=8).collect::<Vec<u64>>(),
        "every process opened the fresh file and wrote"
    );
    let migrations: Vec<(i64,)> = block_on(async {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(
        migrations,
        (1..=state_sqlite::schema_version())
            .map(|v| (v,))
            .collect::<Vec<_>>(),
        "each migration was applied once"
    );
}

fn a_batch_whose_slot_another_process_changed_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    block_on(async {
        let store = std::sync::Arc::new(SqliteStore::open(&db).await.unwrap());
        let engine = Engine::with_config(store.clone(), Default::default());
        let a = engine.handle::<u64>(slot("a"));
        let b = engine.handle::<u64>(slot("b"));
        a.set(1).await.unwrap();
        b.set(1).await.unwrap();
        let (va, vb) = (
            a.get_versioned().await.unwrap().version,
            b.get_versioned().await.unwrap().version,
        );
        // Another process changes `b` in the meantime.
        let out = spawn("touch", &db, &db.with_extension("go"), 1)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let batch = vec![
            Write::cas(a.slot().clone(), va, Some(json!(2))),
            Write::cas(b.slot().clone(), vb, Some(json!(2))),
        ];
        match engine.commit(batch).await {
            Err(Error::VersionMismatch {
                slot,
                expected,
                actual,
            }) => {
                assert_eq!((slot.key(), expected, actual), ("b", vb, vb + 1));
            }
            other => panic!("expected a version mismatch on b, got {other:?}"),
        }
        let a_now = a.get_versioned().await.unwrap();
        let b_now = b.get_versioned().await.unwrap();
        assert_eq!((a_now.value, a_now.version), (Some(1), va), "a was written");
        assert_eq!(
            (b_now.value, b_now.version),
            (Some(100), vb + 1),
            "the other process's write was overwritten"
        );
    });
}

fn stress_tasks_and_processes_through_retries() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    block_on(async { drop(SqliteStore::open(&db).await.unwrap()) });
    // busy_timeout 0: every lock wait is a busy error the store must retry itself.
    let env = [("STATE_BUSY_MS", "0"), ("STATE_TASKS", "4")];
    let run = run_together_with(
        &["increment", "mixed", "increment", "mixed"],
        &db,
        1000,
        &env,
    );
    assert_exact_and_contiguous(&run, 4000, &db);
    assert!(
        run.busy > 0,
        "no busy retry was observed: the test did not contend"
    );
    eprintln!("(busy retries across processes: {})", run.busy);
}

/// A pseudo-random number from the clock (kill moments differ run to run).
fn jitter(trial: u64, range: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = nanos ^ trial.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % range
}

fn sigkill_loses_no_acknowledged_write() {
    const TRIALS: u64 = 20;
    let mut total_acks = 0;
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        block_on(async { drop(SqliteStore::open(&db).await.unwrap()) });
        let mut child = spawn("crash", &db, &db.with_extension("go"), 0);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        std::thread::sleep(Duration::from_millis(30 + jitter(trial, 220)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        let mut acked = vec![0u64; CRASH_TASKS as usize];
        for line in String::from_utf8_lossy(&rest).lines() {
            // The last line may be cut off by the kill: only whole lines count.
            let parts: Vec<&str> = line.split(' ').collect();
            if let ["ack", t, v] = parts[..]
                && let (Ok(t), Ok(v)) = (t.parse::<usize>(), v.parse::<u64>())
            {
                acked[t] = acked[t].max(v);
                total_acks += 1;
            }
        }
        let (records, integrity) = block_on(async {
            let store = SqliteStore::open(&db).await.unwrap();
            let slots: Vec<Slot> = (0..CRASH_TASKS).map(|t| slot(&format!("k{t}"))).collect();
            let records = Store::load_many(&store, &slots).await.unwrap();
            drop(store);
            let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            (records, integrity)
        });
        assert_eq!(integrity, "ok", "trial {trial}: integrity_check");
        let mut unacknowledged = 0;
        for (t, r) in records.iter().enumerate() {
            let value = r.value.as_ref().map_or(0, |v| v.as_u64().unwrap());
            assert_eq!(
                value, r.version,
                "trial {trial}, slot k{t}: versions are not contiguous"
            );
            assert!(
                r.version >= acked[t],
                "trial {trial}, slot k{t}: acknowledged {} but found {}",
                acked[t],
                r.version
            );
            assert!(
                r.version <= acked[t] + 1,
                "trial {trial}, slot k{t}: more than the one in-flight write"
            );
            unacknowledged += r.version - acked[t];
        }
        assert!(
            unacknowledged <= CRASH_TASKS,
            "trial {trial}: {unacknowledged} unacknowledged writes"
        );
    }
    assert!(
        total_acks > TRIALS * CRASH_TASKS,
        "too few commits before the kills: {total_acks}"
    );
    eprintln!("({TRIALS} SIGKILL trials, {total_acks} acknowledged writes checked)");
}

/// Process A increments a slot; this process's typed watch sees every version, in order.
fn a_watch_sees_every_version_another_process_commits() {
    // Two writer processes with 8 tasks each: their committers merge several callers'
    // increments into one transaction, and the watch must still see each version.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let go = db.with_extension("go");
    let (per_process, processes) = (320, 2);
    let n = per_process * processes;
    block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let engine = Engine::with_config(
            std::sync::Arc::new(store),
            state_core::EngineConfig::default().change_poll(Duration::from_millis(5)),
        );
        let h = engine.handle::<u64>(slot("counter"));
        let mut watch = h.watch().await.unwrap();
        let mut children: Vec<Child> = (0..processes)
            .map(|_| spawn_with("increment", &db, &go, per_process, &[("STATE_TASKS", "8")]))
            .collect();
        let mut outs: Vec<_> = children
            .iter_mut()
            .map(|c| BufReader::new(c.stdout.take().unwrap()))
            .collect();
        for out in &mut outs {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready");
        }
        std::fs::write(&go, b"go").unwrap();
        testing::expect_every_version(&mut watch, n).await;
        let mut merged = 0;
        for (mut out, mut child) in outs.into_iter().zip(children) {
            let mut rest = String::new();
            out.read_to_string(&mut rest).unwrap();
            assert!(child.wait().unwrap().success());
            let group: u64 = rest
                .lines()
                .find_map(|l| l.strip_prefix("group "))
                .expect("the child reports its largest group")
                .parse()
                .unwrap();
            merged = merged.max(group);
        }
        // The case this test is about: at least one transaction carried several increments.
        assert!(
            merged > 1,
            "no writer merged increments (largest group {merged})"
        );
    });
}

/// Opening a store whose schema is current takes no write lock, and reads take none either:
/// while another process holds `BEGIN IMMEDIATE`, a writable and a read-only open both read.
/// (The busy wait is cut to 5 s, so a store that waited for the lock would fail fast.)
fn a_store_opens_and_reads_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("held.db");
    block_on(async {
        let engine = Engine::new(SqliteStore::open(&db).await.unwrap());
        engine.handle::<u64>(slot("k")).set(7).await.unwrap();
    });
    let go = db.with_extension("go");
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "hold-lock")
        .env("STATE_DB", &db)
        .env("STATE_GO", &go)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut held = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut held)
        .unwrap();
    assert_eq!(held.trim(), "held");
    let read = block_on(async {
        let mut seen = Vec::new();
        for read_only in [false, true] {
            let options = SqliteOptions::file(&db)
                .read_only(read_only)
                .retry_for(Duration::from_secs(5));
            let store = SqliteStore::open_with(options).await?;
            seen.push(store.load(&slot("k")).await?.value);
            seen.push(
                store.load_scope(&Scope::app("stress")?, None).await?[0]
                    .1
                    .value
                    .clone(),
            );
        }
        Ok::<_, Error>(seen)
    });
    std::io::Write::write_all(holder.stdin.as_mut().unwrap(), b"done\n").unwrap();
    assert!(holder.wait().unwrap().success());
    assert_eq!(read.unwrap(), vec![Some(json!(7)); 4]);
}
