//! `cargo run --example restate_object`: a virtual object with an exclusive writer and a
//! shared read-only handler.

use state_core::Engine;
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(SqliteStore::open(SqliteOptions::memory()).await?);
    let (a, b, consistent) = examples::restate_object::run(engine).await?;
    println!("cart-a: {a:?}\ncart-b: {b:?}\nreaders saw only committed totals: {consistent}");
    assert_eq!((a.total_cents, b.total_cents), (2000, 2000));
    Ok(())
}
