//! `cargo run --example quickstart`: a research workflow's typed state, persisted to
//! `quickstart.db` in the working directory. Run it twice: the workflow's totals carry over.

use state_core::Engine;
use state_sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("QUICKSTART_DB").unwrap_or_else(|_| "quickstart.db".into());
    let engine = Engine::new(SqliteStore::open(&path).await?);
    let report = examples::quickstart::run(engine).await?;
    let r = &report.research;
    println!("run #{} (state in {path})", report.run);
    println!("  attempts:   {}", r.attempts);
    println!("  articles:   {}", r.articles.len());
    println!("  total cost: ${:.2}", r.total_cost);
    println!("  by source:  {:?}", r.by_source);
    println!("  reviewer:   {:?}", r.reviewer);
    println!("  theme:      {:?} (user state, kept across runs)", r.theme);
    let t = &report.totals;
    println!(
        "workflow totals across runs: {} started, {} finished, {} articles",
        t.runs, t.finished, t.articles
    );
    // This run's check of what the state layer promises (no lost update): an error, not a panic.
    if r.attempts != 41 || r.articles.len() != 40 {
        return Err(format!(
            "this run lost writes: {} attempts, {} articles",
            r.attempts,
            r.articles.len()
        )
        .into());
    }
    Ok(())
}
