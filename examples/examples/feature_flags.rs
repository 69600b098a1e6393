//! `cargo run --example feature_flags`: a gradual rollout.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(SqliteStore::open(SqliteOptions::memory()).await?);
    let (counts, monotonic) = examples::feature_flags::run(engine).await?;
    println!("users with the flag at 10 %, 50 %, 100 %: {counts:?} (nobody lost it: {monotonic})");
    assert_eq!(counts[2], 1000);
    Ok(())
}
