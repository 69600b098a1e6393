//! Benchmarks of this project next to raw rusqlite and raw sqlx, in one run:
//! `cargo bench -p state-bench` (see `benches/compare.rs` and `BENCHMARKS.md`).
