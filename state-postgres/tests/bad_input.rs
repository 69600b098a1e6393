//! Bad input and failures are typed errors naming their cause; nothing half-applies; a commit
//! whose outcome is unknown is reported as such. Network failures are made by a TCP proxy
//! between the store and the real server that cuts connections at chosen protocol messages.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::Executor;
use state_core::backend::conformance;
use state_core::backend::rows::RowError;
use state_core::{Batch, CommitOutcome, Engine, Error, Record, Scope, Slot, Store, Write};
use state_postgres::{PgError, PgOptions, PgStore, schema_version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn slot(key: &str) -> Slot {
    Slot::new(Scope::execution("run-1").unwrap(), "Test", key).unwrap()
}

fn pg_error(e: &Error) -> &PgError {
    state_sql::testing::store_error(e)
}

/// Drops the schema when the test ends, passed or not.
struct Schema(String);

impl Schema {
    fn new(tag: &str) -> Self {
        Schema(common::schema(tag))
    }

    fn options(&self) -> PgOptions {
        PgOptions::new(common::url()).schema(&self.0)
    }

    async fn sql(&self, sql: &str) {
        let mut conn = common::connect().await;
        conn.execute(&*format!("SET search_path = \"{}\"", self.0))
            .await
            .unwrap();
        conn.execute(sql).await.unwrap();
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(common::drop_schemas(&[name]))
        })
        .join()
        // Best effort: a failed cleanup must not turn a test failure into an abort.
        .ok();
    }
}

#[tokio::test]
async fn bad_urls_credentials_and_servers_are_typed_errors() {
    let e = PgStore::open("postgres://state@127.0.0.1:notaport/state")
        .await
        .unwrap_err();
    assert!(matches!(pg_error(&e), PgError::InvalidUrl { .. }), "{e}");

    let e = PgStore::open("mysql://x@127.0.0.1/state")
        .await
        .unwrap_err();
    assert!(matches!(pg_error(&e), PgError::InvalidUrl { .. }), "{e}");

    // Upper case too: PostgreSQL folds an unquoted search_path to lower case, so `MySchema`
    // would create "MySchema" and then look for myschema.
    for name in ["no-dashes", "MySchema"] {
        let e = PgStore::open_with(PgOptions::new(common::url()).schema(name))
            .await
            .unwrap_err();
        assert!(
            matches!(pg_error(&e), PgError::InvalidSchemaName { .. }),
            "{name}: {e}"
        );
    }

    // A schema that does not exist, opened without creating: a typed error, nothing created.
    let missing = Schema::new("missing");
    let e = PgStore::open_with(missing.options().create_if_missing(false))
        .await
        .unwrap_err();
    assert!(matches!(pg_error(&e), PgError::SchemaMissing { .. }), "{e}");
    let created: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&missing.0)
            .fetch_one(&mut common::connect().await)
            .await
            .unwrap();
    assert!(!created, "opening without creating created the schema");
    // Created once, it opens without creating.
    drop(PgStore::open_with(missing.options()).await.unwrap());
    drop(
        PgStore::open_with(missing.options().create_if_missing(false))
            .await
            .unwrap(),
    );

    // The right server, the wrong password: an authentication error that never shows it.
    let mut url = url_parts();
    url.password = "wrong-password".into();
    let e = PgStore::open(&url.to_string()).await.unwrap_err();
    assert!(matches!(pg_error(&e), PgError::Auth { .. }), "{e}");
    assert!(!e.to_string().contains("wrong-password"), "{e}");

    // A port nothing listens on: the server is unreachable.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut url = url_parts();
    url.host = format!("127.0.0.1:{closed}");
    let e =
        PgStore::open_with(PgOptions::new(url.to_string()).connect_timeout(Duration::from_secs(2)))
            .await
            .unwrap_err();
    assert!(matches!(pg_error(&e), PgError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().contains(&closed.to_string()),
        "names the server: {e}"
    );
}

#[tokio::test]
async fn a_newer_or_different_schema_is_refused() {
    let schema = Schema::new("newer");
    drop(PgStore::open_with(schema.options()).await.unwrap());
    let newer = schema_version() + 1;
    schema
        .sql(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({newer}, 'from the future', TRUE, '\\x00', 0)"
        ))
        .await;
    let e = PgStore::open_with(schema.options()).await.unwrap_err();
    match pg_error(&e) {
        PgError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (newer, schema_version()));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    schema
        .sql(&format!(
            "DELETE FROM _sqlx_migrations WHERE version = {newer}; \
             UPDATE _sqlx_migrations SET checksum = '\\x00'"
        ))
        .await;
    let e = PgStore::open_with(schema.options()).await.unwrap_err();
    assert!(
        matches!(pg_error(&e), PgError::ChecksumMismatch { version: 1, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_malformed_row_is_a_typed_error_for_its_slot_only_and_a_whole_write_repairs_it() {
    let schema = Schema::new("malformed");
    let engine = Engine::new(PgStore::open_with(schema.options()).await.unwrap());
    let bad = engine.handle::<u32>(slot("bad"));
    let good = engine.handle::<u32>(slot("good"));
    bad.set(1).await.unwrap();
    good.set(1).await.unwrap();
    schema
        .sql("UPDATE slots SET value = '{not json' WHERE key = 'bad'")
        .await;
    let e = bad.get().await.unwrap_err();
    assert_eq!(e.slot(), Some(bad.slot()), "the error names the slot: {e}");
    assert!(
        matches!(
            pg_error(&e),
            PgError::MalformedRow(RowError {
                version: Some(1),
                ..
            })
        ),
        "{e}"
    );
    // An op that needs the old value fails and changes nothing; other slots work.
    let e = bad.increment(1).await.unwrap_err();
    assert!(matches!(pg_error(&e), PgError::MalformedRow(_)), "{e}");
    assert_eq!(good.increment(1).await.unwrap(), 2);
    // A whole-value write replaces it, one version up.
    bad.set_raw(json!(7)).await.unwrap();
    let read = bad.get_versioned().await.unwrap();
    assert_eq!((read.value, read.version), (Some(7), 2));
}

/// A whole-value write over an unreadable value keeps its version and expiry (the shared
/// check).
#[tokio::test]
async fn repairing_an_unreadable_value_keeps_its_version_and_expiry() {
    let schema = Schema::new("repair_ttl");
    let store = Arc::new(PgStore::open_with(schema.options()).await.unwrap());
    let unreadable = format!(
        "UPDATE slots SET value = '{}' WHERE namespace = 'Repair'",
        conformance::UNREADABLE_VALUE
    );
    conformance::assert_repairs_keep_version_and_expiry::<PgError, _, _>(store, || async {
        schema.sql(&unreadable).await;
        schema
            .sql("UPDATE slots SET expires_at = 1 WHERE namespace = 'Repair' AND key = 'expired'")
            .await;
    })
    .await;
}

/// Versions stop one below PostgreSQL's largest BIGINT, so a clear at the top still fits (it
/// used to fail with "bigint out of range", leaving the scope impossible to clear).
#[tokio::test]
async fn versions_stop_where_a_clear_still_fits() {
    let schema = Schema::new("top");
    let store = Arc::new(PgStore::open_with(schema.options()).await.unwrap());
    conformance::assert_versions_stop_where_a_clear_still_fits::<PgError>(store).await;
}

#[tokio::test]
async fn a_value_that_no_longer_fits_its_type_or_an_out_of_range_restore_changes_nothing() {
    let schema = Schema::new("fit");
    let store: Arc<dyn Store> = Arc::new(PgStore::open_with(schema.options()).await.unwrap());
    let engine = Engine::with_config(store.clone(), Default::default());
    engine.handle::<i64>(slot("n")).set(1 << 40).await.unwrap();
    let narrow = engine.handle::<u8>(slot("n"));
    let e = narrow.get().await.unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    let e = narrow.increment(1).await.unwrap_err();
    assert!(!matches!(e, Error::Store { .. }), "a typed op error: {e}");
    assert_eq!(store.load(&slot("n")).await.unwrap().version, 1);

    let e = store
        .restore(state_core::Restore::new(vec![(
            slot("big"),
            Record::new(Some(json!(1)), i64::MAX as u64, None),
        )]))
        .await
        .unwrap_err();
    assert!(matches!(pg_error(&e), PgError::VersionRange { .. }), "{e}");
    assert_eq!(e.slot(), Some(&slot("big")));
    assert_eq!(store.load(&slot("big")).await.unwrap().version, 0);
}

// ---- a proxy that breaks connections --------------------------------------------------------

/// What the proxy does to the next connection's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward everything.
    Pass,
    /// Refuse connections (the server is "down").
    Refuse,
    /// After forwarding a `BEGIN`, drop the next message and cut the connection; then refuse.
    CutAfterBegin,
    /// Forward a `COMMIT`, let the server run it, then cut before its answer comes back.
    CutDuringCommit,
}

struct Proxy {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
}

/// A simple-protocol query message carrying exactly `sql`.
fn query_message(sql: &str) -> Vec<u8> {
    let mut m = vec![b'Q'];
    m.extend_from_slice(&(4 + sql.len() as u32 + 1).to_be_bytes());
    m.extend_from_slice(sql.as_bytes());
    m.push(0);
    m
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let shared = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *shared.lock().unwrap() == Mode::Refuse {
                    drop(client);
                    continue;
                }
                let mode = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        pump(client, server, mode).await;
                    }
                });
            }
        });
        Proxy { addr, mode }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

async fn pump(mut client: TcpStream, mut server: TcpStream, mode: Arc<Mutex<Mode>>) {
    let (mut cbuf, mut sbuf) = (vec![0u8; 65536], vec![0u8; 65536]);
    let begin = query_message("BEGIN");
    let commit = query_message("COMMIT");
    let mut begun = false;
    loop {
        tokio::select! {
            n = client.read(&mut cbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return; }
                let chunk = &cbuf[..n];
                let current = *mode.lock().unwrap();
                match current {
                    Mode::CutAfterBegin if begun => {
                        *mode.lock().unwrap() = Mode::Refuse;
                        return;
                    }
                    Mode::CutAfterBegin if contains(chunk, &begin) => begun = true,
                    Mode::CutDuringCommit if contains(chunk, &commit) => {
                        *mode.lock().unwrap() = Mode::Pass;
                        let _ = server.write_all(chunk).await;
                        // Let the server commit, then lose its answer.
                        let _ = server.read(&mut sbuf).await;
                        return;
                    }
                    _ => {}
                }
                if server.write_all(chunk).await.is_err() { return; }
            }
            n = server.read(&mut sbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { return; }
                if client.write_all(&sbuf[..n]).await.is_err() { return; }
            }
        }
    }
}

struct UrlParts {
    user: String,
    password: String,
    host: String,
    rest: String,
}

impl std::fmt::Display for UrlParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}:{}@{}/{}",
            self.user, self.password, self.host, self.rest
        )
    }
}

/// STATE_PG_URL taken apart (postgres://user:password@host:port/rest).
fn url_parts() -> UrlParts {
    let url = common::url();
    let body = url
        .split_once("://")
        .map(|(_, b)| b)
        .expect("STATE_PG_URL is postgres://user:password@host:port/database");
    let (auth, rest) = body.split_once('@').expect("STATE_PG_URL has user@host");
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, rest) = rest.split_once('/').unwrap_or((rest, ""));
    UrlParts {
        user: user.into(),
        password: password.into(),
        host: host.into(),
        rest: rest.into(),
    }
}

async fn proxied(schema: &Schema, retry_for: Duration) -> (Proxy, PgStore) {
    let parts = url_parts();
    let upstream = tokio::net::lookup_host(&parts.host)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let url = UrlParts {
        host: proxy.addr.to_string(),
        ..parts
    };
    let store = PgStore::open_with(
        PgOptions::new(url.to_string())
            .schema(&schema.0)
            .retry_for(retry_for)
            .connect_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    (proxy, store)
}

fn increment(key: &str) -> Batch {
    Batch::new(vec![Write::apply(
        slot(key),
        vec![state_core::Op::increment(
            state_core::Path::root(),
            1u64.into(),
            state_core::NumKind::U64,
        )],
    )])
    .max_value_bytes(state_core::DEFAULT_MAX_VALUE_BYTES)
}

/// What an operator sees of a lost server: the transaction's safe failures retried (DEBUG),
/// then given up on (one WARN and one error counted, by class); once the server is back, the
/// reconnect (INFO, counted).
#[test]
fn a_lost_server_is_reported_retried_given_up_and_reconnected() {
    use state_sql::testing::{events, metric, observe};
    let schema = Schema::new("down_seen");
    let ((), seen, recorded) = observe(async {
        let (proxy, store) = proxied(&schema, Duration::from_millis(500)).await;
        store.commit(increment("n")).await.unwrap();
        proxy.set(Mode::CutAfterBegin);
        store.commit(increment("n")).await.unwrap_err();
        proxy.set(Mode::Pass);
        store.commit(increment("n")).await.unwrap();
    });
    let retried = events(&seen, "store busy, retrying");
    assert!(!retried.is_empty(), "the lost connection was retried");
    let gave_up = events(&seen, "store error, gave up");
    assert_eq!(gave_up.len(), 1, "{gave_up:#?}");
    assert_eq!(gave_up[0].level, tracing::Level::WARN);
    assert_eq!(gave_up[0].field("backend"), Some("postgres"));
    assert_eq!(gave_up[0].field("class"), Some("connection"));
    let reconnected = events(&seen, "reconnected");
    assert!(!reconnected.is_empty(), "{seen:#?}");
    assert_eq!(reconnected[0].level, tracing::Level::INFO);
    let connection = [("backend", "postgres"), ("class", "connection")];
    let count = |name, labels: &[(&str, &str)]| metric(&recorded, name, labels).map(|m| m.count());
    assert_eq!(count("state_store_errors_total", &connection), Some(1));
    assert_eq!(
        count("state_store_retries_total", &connection),
        Some(retried.len() as u64)
    );
    assert_eq!(
        count("state_reconnects_total", &[("backend", "postgres")]),
        Some(reconnected.len() as u64)
    );
}

/// A connection lost during `COMMIT` is one WARN naming the class `commit_outcome_unknown`
/// (counted as a store error), never retried and never reported as given up.
#[test]
fn an_unknown_commit_outcome_is_a_warn_naming_its_class() {
    use state_sql::testing::{events, metric, observe};
    let schema = Schema::new("unknown_seen");
    let ((), seen, recorded) = observe(async {
        let (proxy, store) = proxied(&schema, Duration::from_secs(5)).await;
        store.commit(increment("n")).await.unwrap();
        proxy.set(Mode::CutDuringCommit);
        store.commit(increment("n")).await.unwrap_err();
    });
    let unknown = events(&seen, "commit outcome unknown");
    assert_eq!(unknown.len(), 1, "{seen:#?}");
    assert_eq!(unknown[0].level, tracing::Level::WARN);
    assert_eq!(unknown[0].field("class"), Some("commit_outcome_unknown"));
    assert!(events(&seen, "store busy, retrying").is_empty());
    assert!(events(&seen, "store error, gave up").is_empty());
    let class = [("backend", "postgres"), ("class", "commit_outcome_unknown")];
    let errors = metric(&recorded, "state_store_errors_total", &class);
    assert_eq!(errors.map(|m| m.count()), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gone_mid_commit_is_a_typed_error_and_nothing_is_written() {
    let schema = Schema::new("down");
    let (proxy, store) = proxied(&schema, Duration::from_millis(500)).await;
    let direct = PgStore::open_with(schema.options()).await.unwrap();
    assert!(matches!(
        store.commit(increment("n")).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
    // The connection breaks inside the transaction and the server stays unreachable for
    // longer than the store retries.
    proxy.set(Mode::CutAfterBegin);
    let e = store.commit(increment("n")).await.unwrap_err();
    assert!(
        matches!(
            pg_error(&e),
            PgError::ConnectionLost { .. } | PgError::Unreachable { .. }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("nothing was written")
            || matches!(pg_error(&e), PgError::Unreachable { .. }),
        "{e}"
    );
    assert_eq!(direct.load(&slot("n")).await.unwrap().value, Some(json!(1)));
    // The server comes back: the store reconnects by itself.
    proxy.set(Mode::Pass);
    assert!(matches!(
        store.commit(increment("n")).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
    assert_eq!(direct.load(&slot("n")).await.unwrap().version, 2);
    assert!(store.stats().reconnects >= 1, "{:?}", store.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_before_commit_is_retried_on_a_new_connection() {
    let schema = Schema::new("retry");
    let (proxy, store) = proxied(&schema, Duration::from_secs(20)).await;
    store.commit(increment("n")).await.unwrap();
    proxy.set(Mode::CutAfterBegin);
    let unblock = {
        let mode = proxy.mode.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            *mode.lock().unwrap() = Mode::Pass;
        })
    };
    // Nothing was written by the broken attempt, so running it again is safe: the caller
    // sees one success and exactly one increment.
    match store.commit(increment("n")).await.unwrap() {
        CommitOutcome::Committed(out) => assert_eq!(out[0].version, 2),
        other => panic!("{other:?}"),
    }
    unblock.await.unwrap();
    assert!(store.stats().retries >= 1, "{:?}", store.stats());
    assert_eq!(store.load(&slot("n")).await.unwrap().value, Some(json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_is_an_unknown_outcome_never_success_or_failure() {
    let schema = Schema::new("unknown");
    let (proxy, store) = proxied(&schema, Duration::from_secs(5)).await;
    store.commit(increment("n")).await.unwrap();
    proxy.set(Mode::CutDuringCommit);
    let e = store.commit(increment("n")).await.unwrap_err();
    assert!(
        matches!(pg_error(&e), PgError::CommitOutcomeUnknown { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("may or may not have applied"), "{e}");
    // Here it did apply (the server got the COMMIT): that is why "failed" would be a lie.
    let direct = PgStore::open_with(schema.options()).await.unwrap();
    assert_eq!(direct.load(&slot("n")).await.unwrap().version, 2);
    // The store goes on with a new connection, and was not retried behind the caller's back.
    store.commit(increment("n")).await.unwrap();
    assert_eq!(direct.load(&slot("n")).await.unwrap().value, Some(json!(3)));
}

/// A schema purged before migration 0005 kept its floor at the highest version purged, where
/// the latest token from before the purge still matched: the migration raises it by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_kept_before_migration_0005_is_raised_above_the_purged_version() {
    let schema = common::schema("floor");
    let open = || async {
        Engine::new(
            PgStore::open_with(PgOptions::new(common::url()).schema(&schema))
                .await
                .unwrap(),
        )
    };
    let e = open().await;
    let h = e.handle::<u32>(slot("n"));
    for _ in 0..3 {
        h.increment(1).await.unwrap();
    }
    e.purge_execution("run-1").await.unwrap();
    drop((h, e));
    let mut conn = common::connect().await;
    conn.execute(
        format!(
            "UPDATE \"{schema}\".scope_floors SET floor = 3; \
             DELETE FROM \"{schema}\"._sqlx_migrations WHERE version = 5;"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let e = open().await;
    let h = e.handle::<u32>(slot("n"));
    assert_eq!(h.get_versioned().await.unwrap().version, 4);
    assert!(matches!(
        h.set_if(3, 9).await,
        Err(Error::VersionMismatch { .. })
    ));
    drop((h, e));
    common::drop_schemas(&[schema]).await;
}

/// A schema holding another application's tables is refused, created or not, and left with
/// exactly what it held; an empty schema is a store's to fill.
#[tokio::test]
async fn another_applications_schema_is_refused_untouched() {
    let tables = |schema: String| async move {
        let mut conn = common::connect().await;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        )
        .bind(&schema)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        names
    };
    for (tag, sql) in [
        (
            "foreign",
            "CREATE TABLE users (id int); INSERT INTO users VALUES (1)",
        ),
        (
            "othersqlx",
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT, \
             installed_on TIMESTAMPTZ, success BOOLEAN, checksum BYTEA, execution_time BIGINT); \
             INSERT INTO _sqlx_migrations VALUES (1, 'theirs', now(), TRUE, '\\x00', 0)",
        ),
    ] {
        let schema = Schema::new(tag);
        let mut conn = common::connect().await;
        conn.execute(&*format!("CREATE SCHEMA \"{}\"", schema.0))
            .await
            .unwrap();
        schema.sql(sql).await;
        let before = tables(schema.0.clone()).await;
        for create in [true, false] {
            let e = PgStore::open_with(schema.options().create_if_missing(create))
                .await
                .err()
                .unwrap_or_else(|| panic!("{tag}: opened"));
            assert!(
                matches!(pg_error(&e), PgError::ForeignSchema { .. }),
                "{tag}: {e}"
            );
        }
        assert_eq!(
            tables(schema.0.clone()).await,
            before,
            "{tag}: tables were added"
        );
    }
    let empty = Schema::new("empty");
    let mut conn = common::connect().await;
    conn.execute(&*format!("CREATE SCHEMA \"{}\"", empty.0))
        .await
        .unwrap();
    drop(
        PgStore::open_with(empty.options().create_if_missing(true))
            .await
            .unwrap(),
    );
    assert!(tables(empty.0.clone()).await.contains(&"slots".to_owned()));
}
