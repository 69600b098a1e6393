//! The peers a user would pick instead, in the same run: Google ADK's `DatabaseSessionService`
//! on SQLite (`state-bench/peers/adk.py`), next to this project doing the same work.
//!
//! The script runs under `STATE_BENCH_PYTHON` (default `python3`); when that Python lacks ADK
//! the rows are skipped with the command that installs it, and the bench goes on.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use state_core::{Engine, Error, Op, Path as JsonPath, Scope, Slot, Write};

use crate::{Report, median, rate_of, secs, sqlite_engine};

/// Concurrent sessions of the concurrent rows.
const SESSIONS: usize = 64;
/// Read-modify-write attempts of each of the two instances in the lost-update check.
const INCREMENTS: usize = 200;
/// The JSON size of the event `adk.py` appends (Pydantic's dump of it, 339 bytes with ADK
/// 2.13), for a profile run without ADK.
const EVENT_BYTES: usize = 339;
/// How long one script run may take beyond its own seconds (4 × `STATE_BENCH_SECS`) before it
/// is killed: a hung ADK must not hang the bench.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/adk.py")
}

fn python() -> String {
    std::env::var("STATE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs the script with `args`; its last line's `name=value` pairs. A run that fails, or
/// outlives its deadline (then it is killed), is an error saying why. Both pipes are read
/// while it runs, so a chatty Python never blocks on a full one.
fn adk(args: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut child = Command::new(python())
        .arg(script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} not runnable: {e}", python()))?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + SCRIPT_LIMIT + 4 * secs();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    match status {
        Some(status) if status.success() => Ok(fields(&stdout)),
        Some(_) => Err(why_failed(&stdout, &stderr)),
        None => Err(format!(
            "adk.py {} did not finish in time: killed ({})",
            args[0],
            why_failed(&stdout, &stderr)
        )),
    }
}

/// The `name=value` pairs of a script's last line.
fn fields(stdout: &str) -> HashMap<String, String> {
    let line = stdout.lines().last().unwrap_or_default();
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Why a script run failed: its own `error=` or `missing=` line, else the last line of its
/// stderr that says something (SQLAlchemy ends with a link).
fn why_failed(stdout: &str, stderr: &str) -> String {
    let own = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("error=") || l.starts_with("missing="));
    let said = || {
        stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("(Background on this error"))
    };
    own.or_else(said).unwrap_or("no output").to_owned()
}

/// The number `name` of a script's output, or an error naming what is missing.
fn num(fields: &HashMap<String, String>, name: &str) -> Result<f64, String> {
    fields
        .get(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("adk.py printed no number `{name}`: {fields:?}"))
}

/// The two state keys every event's delta sets (ADK's session key `step` and user key
/// `user:last_step`), as the rusqlite rows name them in their one table.
const STATE_KEYS: [&str; 2] = ["session:step", "user:last_step"];

/// An event as ADK stores it, its text padded so that its JSON is `bytes` long (or as short as
/// it can be).
fn event_value(i: u64, bytes: usize) -> Value {
    let mut event = json!({
        "invocation_id": format!("inv-{i}"), "author": "agent", "id": format!("{i:016}"),
        "timestamp": 1_764_806_400.0 + i as f64,
        "content": {"role": "model", "parts": [{"text": ""}]},
        "actions": {"state_delta": {"step": i, "user:last_step": i}},
    });
    let text = format!("step {i} done");
    let pad = bytes.saturating_sub(event.to_string().len() + text.len());
    event["content"]["parts"][0]["text"] = Value::String(text + &" ".repeat(pad));
    event
}

/// One ADK event's worth of this project's work, as one atomic batch: the session key, the
/// user key, and the event stored under the session (insert-only: version 0 expected).
async fn append_event(engine: &Engine, session: &Scope, user: &Scope, i: u64, bytes: usize) {
    let set = |slot: Slot, v: Value| Write::apply(slot, vec![Op::set(JsonPath::root(), v)]);
    let event = Slot::new(session.clone(), "Events", format!("e{i:010}")).unwrap();
    let writes = vec![
        set(
            Slot::new(session.clone(), "Session", "step").unwrap(),
            i.into(),
        ),
        set(
            Slot::new(user.clone(), "User", "last_step").unwrap(),
            i.into(),
        ),
        Write::cas(event, 0, Some(event_value(i, bytes))),
    ];
    engine.commit(writes).await.unwrap();
}

/// Events per second: `sessions` sessions (one user each) appending one after another.
async fn ours_events(engine: &Engine, run: usize, sessions: usize, bytes: usize) -> f64 {
    let start = Instant::now();
    let deadline = start + secs();
    let tasks: Vec<_> = (0..sessions)
        .map(|t| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let session = Scope::execution(format!("adk-{run}-{t}")).unwrap();
                let user = Scope::user("bench", format!("u{run}-{t}")).unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    append_event(&engine, &session, &user, n, bytes).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    rate_of(start, tasks).await
}

/// The limit of A1's sequential row: rusqlite writing the same three rows (two state keys
/// upserted, the event inserted) in one `BEGIN IMMEDIATE` transaction per event, prepared, at
/// FULL; `log`: with a change-log row per write, as the store keeps (indexed by key).
fn rusqlite_events(path: &Path, bytes: usize, log: bool) -> f64 {
    let mut c = crate::rusqlite_conn(path, true);
    let upsert = "INSERT INTO kv (k, version, value) VALUES (?1, 1, ?2) \
                  ON CONFLICT (k) DO UPDATE SET version = version + 1, value = excluded.value";
    let start = Instant::now();
    let deadline = start + secs();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        for k in STATE_KEYS {
            tx.prepare_cached(upsert)
                .unwrap()
                .execute((k, n.to_string()))
                .unwrap();
        }
        let event = (format!("e{n:010}"), event_value(n, bytes).to_string());
        tx.prepare_cached("INSERT INTO kv (k, version, value) VALUES (?1, 1, ?2)")
            .unwrap()
            .execute((&event.0, &event.1))
            .unwrap();
        if log {
            let mut insert = tx
                .prepare_cached("INSERT INTO log (k, version, value, at) VALUES (?1, 1, ?2, 0)")
                .unwrap();
            for k in STATE_KEYS {
                insert.execute((k, n.to_string())).unwrap();
            }
            insert.execute((&event.0, &event.1)).unwrap();
        }
        tx.commit().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// ADK's rate and event size for one run, or why it could not run (a run that appended
/// nothing is one: its ratio would be infinite).
fn adk_events(dir: &Path, run: usize, sessions: usize) -> Result<(f64, usize), String> {
    let db = dir.join(format!("adk-{sessions}-{run}.db"));
    let fields = adk(&[
        "events",
        "--db",
        &db.to_string_lossy(),
        "--seconds",
        &secs().as_secs_f64().to_string(),
        "--sessions",
        &sessions.to_string(),
    ])?;
    let (rate, errors) = (num(&fields, "events_per_s")?, num(&fields, "errors")?);
    if rate <= 0.0 {
        return Err(format!("ADK appended no event ({errors} errors)"));
    }
    if errors > 0.0 {
        println!("(ADK run {run}, {sessions} sessions: {errors} appends failed)");
    }
    Ok((rate, num(&fields, "event_bytes")? as usize))
}

/// A1: ADK against this project at SQLite FULL — ADK's SQLite default (rollback journal,
/// `synchronous=FULL`); this project runs WAL at FULL — alternating runs.
pub(crate) async fn adk_rows(dir: &Path, report: &mut Report) {
    let version = match adk(&["check"]) {
        Ok(fields) => fields.get("adk").cloned().unwrap_or_default(),
        Err(why) => {
            println!(
                "(ADK peer rows not run: {}; install it with `{} -m pip install \
                 \"google-adk[db]\" aiosqlite`, or point STATE_BENCH_PYTHON at a Python \
                 that has it)",
                why.trim(),
                python()
            );
            // This project's side of the lost-update check needs no Python.
            return ours_lost(&dir.join("ours-lost.db"))
                .await
                .print("sqlite", "user_key");
        }
    };
    let system = format!("ADK {version}");
    for (name, sessions, target) in [("sequential", 1, 30.0), ("64 sessions", SESSIONS, 100.0)] {
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        let (mut limit, mut logged) = (Vec::new(), Vec::new());
        for run in 0..crate::RUNS {
            let (rate, bytes) = match adk_events(dir, run, sessions) {
                Ok(r) => r,
                Err(why) => return println!("(ADK peer rows stopped: {why})"),
            };
            theirs.push(rate);
            let path = dir.join(format!("ours-adk-{sessions}-{run}.db"));
            let (engine, _) = sqlite_engine(&path, true).await;
            ours.push(ours_events(&engine, run, sessions, bytes).await);
            if sessions == 1 {
                limit.push(rusqlite_events(
                    &dir.join(format!("rq-adk-{run}.db")),
                    bytes,
                    false,
                ));
                let path = dir.join(format!("rq-adk-log-{run}.db"));
                logged.push(rusqlite_events(&path, bytes, true));
            }
        }
        let theirs = median(theirs);
        let workload = format!("A1 events {name} FULL");
        report.add(&workload, "sqlite", median(ours), theirs, Some(target));
        if !limit.is_empty() {
            report.add(&workload, "rusqlite", median(limit), theirs, None);
            report.add(&workload, "rusqlite+log", median(logged), theirs, None);
        }
        report.add(&workload, &system, theirs, theirs, None);
    }
    lost_updates(dir, &system).await;
}

/// `STATE_BENCH_PROFILE=A1` (`A1 sequential`): this project's side of A1 alone, for `perf`.
pub(crate) async fn profile(dir: &Path, which: &str) {
    let sessions = if which.contains("sequential") {
        1
    } else {
        SESSIONS
    };
    let (engine, store) = sqlite_engine(&dir.join("profile-adk.db"), true).await;
    let rate = ours_events(&engine, 0, sessions, EVENT_BYTES).await;
    println!("{which}: {rate:.0} events/s, {:?}", store.stats());
}

/// The outcome of the lost-update check for one system and key kind.
struct Lost {
    acked: u64,
    final_value: u64,
    refused: u64,
    errors: u64,
}

impl Lost {
    fn print(&self, system: &str, key: &str) {
        println!(
            "LOST {} {key} acked={} final={} lost={} refused={} errors={}",
            system.replace(' ', "_"),
            self.acked,
            self.final_value,
            self.acked.saturating_sub(self.final_value),
            self.refused,
            self.errors
        );
    }
}

/// Two engines on one file each try `INCREMENTS` read-modify-write increments of one key, as
/// ADK code does them (read, then write the new value) and as the script drives ADK's: both
/// read, meet at a barrier, then both write — the race every round, not by chance. The write
/// is compare-and-swap; any other error is counted.
async fn ours_lost(path: &Path) -> Lost {
    let (a, _) = sqlite_engine(path, true).await;
    let (b, _) = sqlite_engine(path, true).await;
    let slot = Slot::new(Scope::user("lost", "u").unwrap(), "User", "n").unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = [a, b]
        .into_iter()
        .map(|engine| {
            let h = engine.handle::<u64>(slot.clone());
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let (mut acked, mut refused, mut errors) = (0, 0, 0);
                for _ in 0..INCREMENTS {
                    let seen = h.get_versioned().await;
                    barrier.wait().await;
                    let Ok(seen) = seen else {
                        errors += 1;
                        continue;
                    };
                    let next = seen.value.unwrap_or(0) + 1;
                    match h.set_if(seen.version, next).await {
                        Ok(_) => acked += 1,
                        Err(Error::VersionMismatch { .. }) => refused += 1,
                        Err(_) => errors += 1,
                    }
                }
                (acked, refused, errors)
            })
        })
        .collect();
    let mut lost = Lost {
        acked: 0,
        final_value: 0,
        refused: 0,
        errors: 0,
    };
    for t in tasks {
        let (acked, refused, errors) = t.await.unwrap();
        lost.acked += acked;
        lost.refused += refused;
        lost.errors += errors;
    }
    let (engine, _) = sqlite_engine(path, true).await;
    lost.final_value = engine.handle::<u64>(slot).get().await.unwrap().unwrap_or(0);
    lost
}

/// Lost updates with two instances on one file, ADK's (a session key, a `user:` key)
/// next to this project's.
async fn lost_updates(dir: &Path, system: &str) {
    let db = dir.join("adk-lost.db");
    match adk(&[
        "lost",
        "--db",
        &db.to_string_lossy(),
        "--increments",
        &INCREMENTS.to_string(),
    ]) {
        Ok(f) => {
            for key in ["session", "user"] {
                let n = |what: &str| num(&f, &format!("{key}_{what}")).map(|v| v as u64);
                let lost = (|| {
                    Ok::<_, String>(Lost {
                        acked: n("acked")?,
                        final_value: n("final")?,
                        refused: n("stale")?,
                        errors: n("errors")?,
                    })
                })();
                match lost {
                    Ok(lost) => lost.print(system, &format!("{key}_key")),
                    Err(why) => println!("(ADK lost-update check unreadable: {why})"),
                }
            }
        }
        Err(why) => println!("(ADK lost-update check failed: {why})"),
    }
    ours_lost(&dir.join("ours-lost.db"))
        .await
        .print("sqlite", "user_key");
}
