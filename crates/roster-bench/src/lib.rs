//! What the tools that measure `roster serve` from the outside share: `logon-flood`
//! (bench/logon-flood.sh) and `load` (bench/load.sh). A throwaway slapd and a data directory synchronized
//! from it, `roster serve` with its memory watched ([`serve`]), a small HTTP/1.1 client ([`http`]), and the
//! machine: what it is, how busy it was, a process' CPU time and memory, and its Argon2id rate
//! ([`machine`]).

// A measurement tool, not product code: anything unexpected must stop the run loudly rather than produce
// figures that look fine. It also sleeps between samples on threads of its own, with no runtime to block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

pub mod http;
pub mod machine;
pub mod serve;

/// The workspace's root (this crate is two levels below it): where the release build and
/// `bench/results/` are.
pub fn workspace_root() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}
