//! `cargo run --example research_fanout`: children append and merge into shared state.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(SqliteStore::open(SqliteOptions::memory()).await?);
    let (research, steps) = examples::research_fanout::run(engine, 6, 10).await?;
    println!(
        "findings: {}, sources: {:?}, cost: {:.2}",
        research.findings.len(),
        research.sources,
        research.cost
    );
    println!("private steps per child: {steps:?}");
    assert_eq!(research.findings.len(), 60);
    Ok(())
}
