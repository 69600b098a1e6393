//! Change notifications: a listener on a connection of its own turns the change log's
//! `NOTIFY`s into the store's change signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The channel the change log notifies at commit (0003 migration); the payload is the schema.
const CHANGE_CHANNEL: &str = "state_changes";

/// The listener task that turns `NOTIFY`s into the store's change signal; stopped with the
/// store.
pub(crate) struct Listener {
    pub(crate) signal: tokio::sync::watch::Receiver<u64>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on [`CHANGE_CHANNEL`] on a connection of its own and raises `signal` for every
/// notification about `schema`, and after (re)connecting, when notifications may have been
/// missed. Connection failures are retried every second; change streams poll meanwhile.
pub(crate) async fn listen(
    connect: PgConnectOptions,
    schema: String,
    signal: tokio::sync::watch::Sender<u64>,
    notifications: Arc<AtomicU64>,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with(connect);
    let pause = Duration::from_secs(1);
    let mut listener = loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANGE_CHANNEL).await {
                Ok(()) => break l,
                Err(_) => tokio::time::sleep(pause).await,
            },
            Err(_) => tokio::time::sleep(pause).await,
        }
    };
    // Commits made before LISTEN took effect were not announced: look once.
    signal.send_modify(|n| *n += 1);
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => {
                if note.payload() == schema {
                    notifications.fetch_add(1, Ordering::Relaxed);
                    signal.send_modify(|n| *n += 1);
                }
            }
            // The connection was lost (the next call reconnects and listens again): whatever
            // was announced meanwhile is gone, so look.
            Ok(None) => signal.send_modify(|n| *n += 1),
            Err(_) => tokio::time::sleep(pause).await,
        }
    }
}
