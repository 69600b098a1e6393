//! Several OS processes ("nodes"), each with its own `PgStore` (its own committer connection
//! and pool), on one PostgreSQL server: no lost update, contiguous versions, and a node killed
//! with SIGKILL mid-stream loses no acknowledged write while the others carry on.
//!
//! This binary is its own child: run with `STATE_PG_CHILD` set, it plays one node; run
//! without, it is the test runner (`harness = false`).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use state_core::{Engine, RetryPolicy, Scope, Slot, Store};
use state_postgres::{PgOptions, PgStore};
use state_sql::testing::{self, block_on, block_on_local};

const ROLE: &str = "STATE_PG_CHILD";

fn slot() -> Slot {
    Slot::new(Scope::app("nodes").unwrap(), "Test", "counter").unwrap()
}

fn main() {
    testing::main_or_child(
        ROLE,
        child,
        state_sql::trials![
            a_watch_sees_every_version_another_node_commits_in_order,
            three_nodes_increment_and_cas_update_one_slot,
            a_killed_node_loses_no_acknowledged_write_and_the_others_carry_on,
        ],
    );
}

// ---- one node ------------------------------------------------------------------------------

/// Env: STATE_SCHEMA, STATE_GO (barrier file), STATE_N (increments per task), STATE_TASKS.
/// Role `increment`: every task increments; `mixed`: every other op is a CAS `update`.
/// Prints `ready`, then `ack <value>` for every acknowledged write, then `done`.
fn child(role: &str) {
    let schema = std::env::var("STATE_SCHEMA").unwrap();
    let go = PathBuf::from(std::env::var("STATE_GO").unwrap());
    let n: u64 = std::env::var("STATE_N").unwrap().parse().unwrap();
    let tasks: u64 = std::env::var("STATE_TASKS").unwrap().parse().unwrap();
    block_on_local(async move {
        let store = PgStore::open_with(PgOptions::new(common::url()).schema(schema))
            .await
            .unwrap();
        let store = std::sync::Arc::new(store);
        let engine = Engine::with_config(store.clone(), Default::default());
        let h = engine.handle::<u64>(slot()).with_retry(
            RetryPolicy::new(100_000)
                .with_backoff(Duration::from_micros(200), Duration::from_millis(10)),
        );
        println!("ready");
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let workers: Vec<_> = (0..tasks)
            .map(|t| {
                let h = h.clone();
                let mixed = role == "mixed";
                tokio::task::spawn_local(async move {
                    for i in 0..n {
                        let v = testing::count_once(&h, mixed && (i + t) % 2 == 1).await;
                        // One line per acknowledged write, flushed before the next commit.
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {v}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        println!("group {}", store.stats().max_group);
        println!("done");
    });
}

// ---- the runner ------------------------------------------------------------------------------

struct Node {
    child: Child,
    /// Lines the node printed, as they come.
    lines: mpsc::Receiver<String>,
}

fn spawn(role: &str, schema: &str, go: &Path, n: u64, tasks: u64) -> Node {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .env("STATE_SCHEMA", schema)
        .env("STATE_GO", go)
        .env("STATE_N", n.to_string())
        .env("STATE_TASKS", tasks.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    Node { child, lines: rx }
}

impl Node {
    /// Waits for one line, at most a minute.
    fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(60)).ok()
    }

    fn wait_ready(&self) {
        assert_eq!(
            self.next_line().as_deref(),
            Some("ready"),
            "a node did not start"
        );
    }

    /// Reads the node's output to its end: the values it had acknowledged, whether it
    /// finished, and the most caller batches its store merged into one transaction (0 if it
    /// did not finish).
    fn finish(mut self, mut acked: Vec<u64>) -> (Vec<u64>, bool, u64) {
        let (mut done, mut group) = (false, 0);
        while let Some(line) = self.next_line() {
            if let Some(v) = line.strip_prefix("ack ") {
                acked.push(v.parse().unwrap());
            } else if let Some(g) = line.strip_prefix("group ") {
                group = g.parse().unwrap();
            } else if line == "done" {
                done = true;
            }
        }
        let status = self.child.wait().unwrap();
        (acked, done && status.success(), group)
    }
}

/// The slot's value and version as a fresh store reads them.
fn read_back(schema: &str) -> (u64, u64) {
    block_on(async {
        let store = PgStore::open_with(PgOptions::new(common::url()).schema(schema))
            .await
            .unwrap();
        let record = store.load(&slot()).await.unwrap();
        let value = record.value.map(|v| v.as_u64().unwrap()).unwrap_or(0);
        (value, record.version)
    })
}

struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Best effort: a failed cleanup must not turn a test failure into an abort.
        let _ = std::panic::catch_unwind(|| block_on(common::drop_schemas(&[name])));
    }
}

fn three_nodes_increment_and_cas_update_one_slot() {
    let schema = Schema(common::schema("nodes"));
    let dir = std::env::temp_dir().join(format!("{}-go", schema.0));
    let _ = std::fs::remove_file(&dir);
    let (n, tasks) = (150, 4);
    let nodes: Vec<Node> = ["increment", "mixed", "increment"]
        .iter()
        .map(|role| spawn(role, &schema.0, &dir, n, tasks))
        .collect();
    for node in &nodes {
        node.wait_ready();
    }
    std::fs::write(&dir, b"go").unwrap();
    let mut all = Vec::new();
    for node in nodes {
        let (acked, finished, _) = node.finish(Vec::new());
        assert!(finished, "a node failed");
        assert_eq!(acked.len() as u64, n * tasks);
        all.extend(acked);
    }
    let _ = std::fs::remove_file(&dir);
    let total = 3 * n * tasks;
    // Every write returned the value it made: all distinct, exactly 1..=total.
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len() as u64, total, "a value was handed out twice");
    assert_eq!(distinct.first().copied(), Some(1));
    assert_eq!(distinct.last().copied(), Some(total));
    assert_eq!(read_back(&schema.0), (total, total), "value and version");
}

fn a_killed_node_loses_no_acknowledged_write_and_the_others_carry_on() {
    let schema = Schema(common::schema("kill"));
    let go = std::env::temp_dir().join(format!("{}-go", schema.0));
    let _ = std::fs::remove_file(&go);
    // The victim keeps 16 commits in flight, far more writes than it gets to make.
    let (victim_tasks, n_victim) = (16, 10_000);
    let (n, tasks) = (200, 4);
    let victim = spawn("increment", &schema.0, &go, n_victim, victim_tasks);
    let others: Vec<Node> = (0..2)
        .map(|_| spawn("increment", &schema.0, &go, n, tasks))
        .collect();
    victim.wait_ready();
    for node in &others {
        node.wait_ready();
    }
    std::fs::write(&go, b"go").unwrap();
    // Let the victim acknowledge a random number of writes (while the others run), then kill
    // it with its commits in flight.
    let kill_after = 100 + fastrand::usize(..300);
    let mut victim_acked = Vec::new();
    while victim_acked.len() < kill_after {
        let line = victim.next_line().expect("the victim stopped early");
        if let Some(v) = line.strip_prefix("ack ") {
            victim_acked.push(v.parse::<u64>().unwrap());
        }
    }
    let pid = victim.child.id();
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Lines already written before the kill are acknowledged writes too.
    let (victim_acked, victim_finished, _) = victim.finish(victim_acked);
    assert!(!victim_finished, "the victim finished before it was killed");
    // The others finish: the server released the killed node's locks.
    let mut all = victim_acked.clone();
    for node in others {
        let (acked, finished, _) = node.finish(Vec::new());
        assert!(finished, "a surviving node failed after the kill");
        assert_eq!(acked.len() as u64, n * tasks);
        all.extend(acked);
    }
    let _ = std::fs::remove_file(&go);
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a value was handed out twice");
    let (value, version) = read_back(&schema.0);
    assert_eq!(value, version, "versions are contiguous: one per increment");
    // Every acknowledged write is there; at most the victim's in-flight commits were
    // applied without being acknowledged.
    let acked = all.len() as u64;
    assert!(
        value >= acked,
        "lost acknowledged writes: {value} < {acked}"
    );
    assert!(
        value <= acked + victim_tasks,
        "more unacknowledged writes than were in flight: {value} > {acked} + {victim_tasks}"
    );
    assert!(
        distinct.last().copied() <= Some(value),
        "an acknowledged value above the final count"
    );
    eprintln!(
        "(killed after {} acknowledged writes; {} acknowledged in all; final {value}; {} unacknowledged applied)",
        victim_acked.len(),
        acked,
        value - acked
    );
}

/// Two nodes with 8 writer tasks each increment one slot with commits interleaving; a third
/// process's typed watch sees every version exactly once, in order (sequence order is commit
/// order on the server), also the versions a node's committer merged into one transaction.
/// The watcher polls only once an hour: it is woken by PostgreSQL's `NOTIFY`.
fn a_watch_sees_every_version_another_node_commits_in_order() {
    let schema = Schema(common::schema("watch"));
    let go = std::env::temp_dir().join(format!("{}-go", schema.0));
    let _ = std::fs::remove_file(&go);
    let (n, tasks) = (40, 8);
    block_on(async {
        let store = PgStore::open_with(PgOptions::new(common::url()).schema(&schema.0))
            .await
            .unwrap();
        let store = std::sync::Arc::new(store);
        let engine = Engine::with_config(
            store.clone(),
            state_core::EngineConfig::default().change_poll(Duration::from_secs(3600)),
        );
        let mut watch = engine.handle::<u64>(slot()).watch().await.unwrap();
        let nodes: Vec<Node> = (0..2)
            .map(|_| spawn("increment", &schema.0, &go, n, tasks))
            .collect();
        for node in &nodes {
            node.wait_ready();
        }
        // The listener starts with the watch, on its own connection: wait until it hears a
        // commit (of another slot) before the writers start, or they may all finish before
        // LISTEN took effect (the watch then catches up, but nothing was announced).
        let side = Slot::new(Scope::app("watch-side").unwrap(), "W", "k").unwrap();
        let warmed = common::wait_for_listener(&store, &engine.handle(side)).await;
        std::fs::write(&go, b"go").unwrap();
        let total = 2 * n * tasks;
        testing::expect_every_version(&mut watch, total).await;
        let mut merged = 0;
        for node in nodes {
            let (_, finished, group) = node.finish(Vec::new());
            assert!(finished, "a writer failed");
            merged = merged.max(group);
        }
        // The case this test is about: at least one transaction carried several increments.
        assert!(
            merged > 1,
            "no node merged increments (largest group {merged})"
        );
        let notes = store.stats().notifications - warmed;
        assert!(
            notes > 0,
            "the watcher was not notified of the writers' commits"
        );
        eprint!("({notes} notifications, largest group {merged}) ");
    });
    let _ = std::fs::remove_file(&go);
}
