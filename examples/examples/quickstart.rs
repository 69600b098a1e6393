//! `cargo run --example quickstart`: a research workflow's state, end to end.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let summary = examples::quickstart::run().await?;
    println!(
        "attempts:   {} (slot version {})",
        summary.attempts, summary.attempts_version
    );
    println!("articles:   {}", summary.articles.len());
    println!("total cost: ${:.2}", summary.total_cost);
    println!("by source:  {:?}", summary.by_source);
    assert_eq!(summary.attempts, 41, "40 fetches and one review");
    Ok(())
}
