//! The `Store` contract, on SQLite files and in-memory databases.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use state_core::{Store, conformance};
use state_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_conforms() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let n = AtomicUsize::new(0);
    conformance::assert_conformance(&move |clock| {
        let path = dir
            .path()
            .join(format!("c{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move {
            let store = SqliteStore::open_with(SqliteOptions::file(path).clock(clock))
                .await
                .unwrap();
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_conforms() {
    conformance::assert_conformance(&|clock| async move {
        let store = SqliteStore::open_with(SqliteOptions::memory().clock(clock))
            .await
            .unwrap();
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}
