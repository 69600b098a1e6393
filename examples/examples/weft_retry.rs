//! `cargo run --example weft_retry`: a flaky step retried with its state in SQLite.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(SqliteStore::open(SqliteOptions::memory()).await?);
    let first = examples::weft_retry::run(engine.clone(), "fetch-1", 2).await?;
    let second = examples::weft_retry::run(engine, "fetch-2", 1).await?;
    println!("fetch-1: {first:?}");
    println!("fetch-2: {second:?}");
    assert_eq!((first.attempts, second.attempts), (3, 2));
    assert_eq!(
        second.total_retries, 3,
        "retries counted across the workflow's runs"
    );
    Ok(())
}
