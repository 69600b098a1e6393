//! Every example scenario, run as a test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_counts_every_worker_write() {
    let s = examples::quickstart::run().await.unwrap();
    assert_eq!(s.attempts, 41);
    assert_eq!(s.articles.len(), 40);
    let mut sorted = s.articles.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 40, "no append lost or duplicated");
    assert!((s.total_cost - 10.5).abs() < 1e-9, "cost {}", s.total_cost);
    assert_eq!(s.by_source.len(), 8);
    assert!(s.by_source.values().all(|&n| n == 5));
    assert_eq!(s.reviewer.as_ref().map(|r| r.reviews), Some(1));
    assert_eq!(s.theme.as_deref(), Some("dark"));
    assert!(
        s.last_response.is_some(),
        "temp state lives for the invocation"
    );
}
