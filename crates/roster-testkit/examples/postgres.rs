//! A throwaway PostgreSQL for measurements by hand (`roster-store`'s `apply_timing`, `roster sync` with
//! `--database-url`): prints the URL of an empty database and keeps the server until standard input ends.
//!
//!   cargo run -p roster-testkit --example postgres
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;

fn main() {
    let postgres = roster_testkit::TestPostgres::private().expect("starting PostgreSQL");
    // `create_database` gives the database's URL.
    let url = postgres
        .create_database("bench")
        .expect("creating a database");
    println!("{url}");
    eprintln!("PostgreSQL is running; end standard input (Ctrl-D) to stop it");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
