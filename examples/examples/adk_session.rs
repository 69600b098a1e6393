//! `cargo run --example adk_session`: ADK session, user, app and temp state.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(SqliteStore::open(SqliteOptions::memory()).await?);
    let seen = examples::adk_session::run(engine).await?;
    println!("{seen:#?}");
    assert!(seen.ada_second_session.starts_with("[formal]"));
    assert!(!seen.temp_survived);
    Ok(())
}
