//! Times `Store::snapshot` (every current user with their addresses, as a re-sync loads them) on an
//! existing data directory's SQLite store, in process, so that it can be set beside the same queries in
//! the `sqlite3` shell on the same file (BENCHMARKS.md, issue 26):
//!
//!   cargo run --release -p roster-store --example snapshot_timing -- DATA_DIR [REPS]
//!
//! The data directory must not be in use by a sync (the store is opened as `roster` opens it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use roster_store::{SqliteStore, Store};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: snapshot_timing DATA_DIR [REPS]");
    let reps: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(5);
    let store = SqliteStore::open(std::path::Path::new(&dir)).await.unwrap();
    let mut walls = Vec::new();
    let mut users = 0;
    let mut addresses = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let snapshot = store.snapshot().await.unwrap();
        walls.push(t.elapsed().as_secs_f64());
        users = snapshot.users.len();
        addresses = snapshot.users.iter().map(|u| u.emails.len()).sum::<usize>();
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "snapshot of {users} users with {addresses} addresses, {reps} runs: wall median {:.3} s (min {:.3}, max {:.3})",
        walls[reps / 2],
        walls[0],
        walls[reps - 1]
    );
}
