//! What the PostgreSQL tests share: the server's URL and throwaway schemas.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The server the tests run against. There is no silent skip: without one the tests fail
/// and say how to get one.
pub fn url() -> String {
    match std::env::var("STATE_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "STATE_PG_URL is not set: the PostgreSQL tests need a server. Run `scripts/test` \
             (it starts a throwaway cluster on loopback), or `eval \"$(scripts/pg-up)\"` first, \
             or point STATE_PG_URL at a server: postgres://user:password@host:port/database"
        ),
    }
}

/// A schema name no other test (or test process) uses: `test_<tag>_<pid>_<n>`.
pub fn schema(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A direct connection, for setting up and checking rows behind the store's back.
pub async fn connect() -> PgConnection {
    PgConnection::connect(&url())
        .await
        .expect("connect to STATE_PG_URL")
}

/// Drops the given schemas and everything in them.
pub async fn drop_schemas(names: &[String]) {
    let mut conn = connect().await;
    for name in names {
        conn.execute(&*format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .await
            .expect("drop a test schema");
    }
}

/// Waits until `listener`'s change listener (started by a feed or watch) hears a commit,
/// committing increments through `bump` until it does; returns the notifications counted so
/// far. Commits made before LISTEN took effect are caught up by a feed, never announced, so a
/// test about NOTIFY must start writing after this.
pub async fn wait_for_listener(
    listener: &state_postgres::PgStore,
    bump: &state_core::SlotHandle<u64>,
) -> u64 {
    for _ in 0..600 {
        if listener.stats().notifications > 0 {
            break;
        }
        bump.increment(1).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let heard = listener.stats().notifications;
    assert!(heard > 0, "the listener never heard a commit");
    heard
}
