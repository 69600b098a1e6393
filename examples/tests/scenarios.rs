//! Every example scenario, run as a test.

use state_core::Engine;
use state_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_counts_every_worker_write_and_carries_state_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quickstart.db");
    for expected_run in 1..=2u64 {
        // A fresh store on the same file each time, as two runs of the binary would be.
        let engine = Engine::new(SqliteStore::open(&path).await.unwrap());
        let report = examples::quickstart::run(engine).await.unwrap();
        let s = &report.research;
        assert_eq!(report.run, expected_run);
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
        assert_eq!(report.totals.runs, expected_run);
        assert_eq!(
            report.totals.articles,
            40 * expected_run,
            "carried over from run to run"
        );
    }
}
