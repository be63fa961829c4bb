// `sqlx::migrate!` embeds the migrations at compile time, but cargo only rebuilds when a source file
// changes: without this, a new migration file could be left out of the binary until something else changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
