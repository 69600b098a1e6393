//! `cargo run --example observability`: a contended counter on SQLite with the operator's
//! wiring a service would have — `tracing-subscriber` printing the library's events (and,
//! with `STATE_LOG=debug`, every commit and transaction span as it closes, with its fields),
//! `STATE_LOG_FORMAT=json` for JSON lines, and a Prometheus recorder whose exposition text
//! is printed at the end (`state_*` lines).

use metrics_exporter_prometheus::PrometheusBuilder;
use state_core::{Engine, EngineConfig, TraceIds};
use state_sqlite::SqliteStore;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = match std::env::var("STATE_LOG").as_deref() {
        Ok("trace") => LevelFilter::TRACE,
        Ok("debug") => LevelFilter::DEBUG,
        _ => LevelFilter::INFO,
    };
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false);
    if std::env::var("STATE_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init();
    } else {
        logs.compact().init();
    }
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    state_core::telemetry::describe_metrics();

    let dir = std::env::temp_dir().join(format!("observability-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(dir.join("state.db")).await?;
    // Scope ids can be personal data: hashed under a key the service keeps.
    let config = EngineConfig::default().trace_ids(TraceIds::hashed(*b"example-key-0001"));
    let engine = Engine::with_config(std::sync::Arc::new(store), config);
    let report = examples::observability::run(engine).await?;
    println!(
        "\n{} orders counted, {} updates acknowledged, {} gave up on a conflict\n",
        report.orders, report.acknowledged, report.gave_up
    );
    for line in prometheus.render().lines() {
        if line.contains("state_") {
            println!("{line}");
        }
    }
    std::fs::remove_dir_all(&dir)?;
    if report.orders != report.acknowledged {
        return Err(format!("lost updates: {report:?}").into());
    }
    Ok(())
}
