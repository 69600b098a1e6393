//! The `Store` contract on a PostgreSQL server: the same suite the SQLite and memory stores
//! pass, unchanged. Each check gets a schema of its own.

mod common;

use std::sync::{Arc, Mutex};

use state_core::Store;
use state_core::backend::conformance;
use state_postgres::{PgOptions, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let url = common::url();
    let schemas = Arc::new(Mutex::new(Vec::new()));
    let made = schemas.clone();
    conformance::assert_conformance(&move |clock| {
        let schema = common::schema("conf");
        made.lock().unwrap().push(schema.clone());
        let options = PgOptions::new(url.clone()).schema(schema).clock(clock);
        async move { Arc::new(PgStore::open_with(options).await.unwrap()) as Arc<dyn Store> }
    })
    .await;
    let names = schemas.lock().unwrap().clone();
    common::drop_schemas(&names).await;
}
