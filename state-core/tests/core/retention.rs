//! The change feed behind the log's retention: a reader that missed changes is told so.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use state_core::{ChangeFilter, Engine, Error, MEMORY_LOG_MAX, MemoryStore, Op, Path, Write};

/// The log's bound in these tests.
const KEPT: usize = 100;

use crate::common::{exec, slot};

/// Writes `n` changes in batches of 1000 distinct slots (keys `k0`, `k1`, …).
async fn write_changes(engine: &Engine, n: usize) {
    let scope = exec("trimmed");
    let mut written = 0;
    while written < n {
        let batch: Vec<Write> = (written..n.min(written + 1000))
            .map(|i| {
                Write::apply(
                    slot(&scope, &format!("k{i}")),
                    vec![Op::set(Path::root(), json!(i))],
                )
            })
            .collect();
        written += batch.len();
        engine.commit(batch).await.unwrap();
    }
}

/// The memory store keeps the newest changes (`KEPT` here): a reader whose cursor is behind
/// the oldest kept gets `ChangesTrimmed` (and its stream ends), never the oldest kept change
/// as if nothing were missing; from the watermark on it reads every change.
#[tokio::test]
async fn a_reader_behind_the_retention_is_told_what_it_missed() {
    let engine = Engine::new(MemoryStore::new().change_log_limit(KEPT));
    write_changes(&engine, KEPT + 5).await;
    let mut feed = engine.changes(0, ChangeFilter::all());
    match feed.next().await {
        Some(Err(Error::ChangesTrimmed {
            after: 0,
            trimmed_through: 5,
        })) => {}
        other => panic!("expected ChangesTrimmed through 5, got {other:?}"),
    }
    assert!(feed.next().await.is_none(), "the stream ends after a gap");
    // A cursor inside the kept part reads on, with nothing missing.
    let mut feed = engine.changes(4, ChangeFilter::all());
    assert!(matches!(
        feed.next().await,
        Some(Err(Error::ChangesTrimmed { after: 4, .. }))
    ));
    let mut feed = engine.changes(5, ChangeFilter::all());
    assert_eq!(feed.next().await.unwrap().unwrap().seq, 6);
    assert_eq!(feed.next().await.unwrap().unwrap().seq, 7);

    // A consumer with no cursor yet: told, then goes on after the gap when asked to.
    let mut consumer = engine.consumer("late", ChangeFilter::all()).await.unwrap();
    let Some(Err(Error::ChangesTrimmed {
        trimmed_through, ..
    })) = consumer.next().await
    else {
        panic!("a new consumer on a trimmed log is told");
    };
    assert_eq!(trimmed_through, 5);
    consumer.skip_to(trimmed_through);
    assert_eq!(consumer.acked(), 5);
    let change = consumer.next().await.unwrap().unwrap();
    assert_eq!(change.seq, 6);
    // Acknowledging it writes the cursor (a change, which drops the oldest kept: the one
    // just handled), and the next is there.
    consumer.ack(&change).await.unwrap();
    assert_eq!(consumer.next().await.unwrap().unwrap().seq, 7);
    // The default bound.
    assert_eq!(MEMORY_LOG_MAX, 100_000);
}

/// A state trigger that finds changes removed before it handled them counts the gap and
/// handles every change after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_behind_the_retention_counts_the_gap_and_goes_on() {
    let engine = Engine::new(MemoryStore::new().change_log_limit(KEPT));
    write_changes(&engine, KEPT + 5).await;
    let trigger = engine
        .trigger(
            "late",
            ChangeFilter::all(),
            |_| true,
            |_c| async { Ok::<(), String>(()) },
        )
        .await
        .unwrap();
    for _ in 0..5_000 {
        if trigger.handled() == KEPT as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(trigger.gaps(), 1);
    assert_eq!(trigger.handled(), KEPT as u64, "every change kept, once");
    trigger.stop_and_wait().await;
}
