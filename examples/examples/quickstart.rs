//! `cargo run --example quickstart`: a research workflow's typed state, end to end.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = examples::quickstart::run().await?;
    println!("attempts:   {}", state.attempts);
    println!("articles:   {}", state.articles.len());
    println!("total cost: ${:.2}", state.total_cost);
    println!("by source:  {:?}", state.by_source);
    println!("reviewer:   {:?}", state.reviewer);
    println!("theme:      {:?}", state.theme);
    assert_eq!(state.attempts, 41, "40 fetches and one review");
    Ok(())
}
