//! The `Store` contract, on SQLite files and in-memory databases.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use state_core::backend::conformance;
use state_core::{Clock, Store};
use state_sqlite::{SqliteOptions, SqliteStore};

/// The contract on a fresh file per check, each opened with `options`.
async fn files_conform(options: fn(PathBuf, Arc<dyn Clock>) -> SqliteOptions) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let n = AtomicUsize::new(0);
    conformance::assert_conformance(&move |clock| {
        let path = dir
            .path()
            .join(format!("c{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move {
            let store = SqliteStore::open_with(options(path, clock)).await.unwrap();
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_conforms() {
    files_conform(|path, clock| SqliteOptions::file(path).clock(clock)).await;
}

/// With every statement on sqlx's worker thread (`inline_commits(false)`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_committing_on_sqlx_thread_conforms() {
    files_conform(|path, clock| SqliteOptions::file(path).clock(clock).inline_commits(false)).await;
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
