//! `cargo run --example motia_limits`: a rate limiter and login sessions with TTL, on
//! simulated time.

use state_core::{Engine, ManualClock, Timestamp};
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = SqliteStore::open_with(SqliteOptions::memory().clock(clock.clone())).await?;
    let seen = examples::motia_limits::run(Engine::new(store), clock).await?;
    println!("{seen:#?}");
    assert_eq!(
        seen.first_window,
        [true, true, true, true, true, false, false]
    );
    assert!(seen.next_window);
    Ok(())
}
