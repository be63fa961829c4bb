//! Times `apply_plan` for a first synchronization of N users into a fresh SQLite store, and then for a
//! synchronization that deletes them all again (every user left the directory), in process, so that the
//! store's share of a sync can be compared between builds without the noise of a directory read.
//!
//!   cargo run --release -p roster-store --example apply_timing -- [N] [REPS] [random|sequential|shuffled]
//!
//! With `ROSTER_DATABASE_URL=postgres://...` set, into that PostgreSQL database instead (it must hold no
//! users but the administrator: each repetition deletes its users again). For a throwaway server, the
//! test kit's: `cargo run -p roster-testkit --example postgres` prints a URL and holds it.
//!
//! It also times `snapshot` (loading every user, as a re-sync does) on the store the first sync made. With
//! `APPLY_TIMING_KEEP=DIR`, the last repetition's database as that snapshot found it is copied into DIR
//! (SQLite's file and its WAL), to time the same query in the `sqlite3` shell or measure SQLite's floor for
//! the apply's rows (BENCHMARKS.md, issue 26).
//!
//! The directory ids are random by default, like Active Directory's GUIDs; `sequential` gives ids in the
//! order of the entries, like the entryUUIDs of a directory loaded in one go (bench/ldap-sync.sh);
//! `shuffled` gives random ids and the names in no order, like a directory whose entries come in the order
//! they were created.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use roster_core::plan::{NewUser, PlannedChanges, UserDeletion};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::DirectoryLink;
use roster_core::{EmailAddress, Timestamp, UserName};
use roster_store::{Actor, NewRun, PgStore, RunKind, RunRecord, SqliteStore, Store};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(100_000);
    let reps: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(5);
    let (sequential, shuffled) = match args.next().as_deref() {
        None | Some("random") => (false, false),
        Some("sequential") => (true, false),
        Some("shuffled") => (false, true),
        Some(other) => panic!("expected random, sequential or shuffled, not {other}"),
    };
    let create: Vec<NewUser> = (0..n)
        .map(|i| {
            // `shuffled`: the names in no order either, as a directory that hands out entries in the
            // order they were created gives them (7919 is a prime, so i -> 7919 i mod n is a permutation
            // for any n it doesn't divide).
            let number = if shuffled { i * 7919 % n } else { i };
            let name = format!("user{number:06}");
            let mut emails = vec![EmailAddress::parse(&format!("{name}@example.com")).unwrap()];
            if i % 2 == 0 {
                emails
                    .push(EmailAddress::parse(&format!("alias.{name}@mail.example.com")).unwrap());
            }
            NewUser {
                name: UserName::parse(&name).unwrap(),
                full_name: format!("Person {i}"),
                emails,
                link: DirectoryLink {
                    source: "ldap".into(),
                    id: if sequential {
                        format!("{i:08x}-7c5f-1041-89be-791965f5c6b2")
                    } else {
                        format!(
                            "{:08x}-7c5f-1041-89be-791965f5c6b2",
                            i.wrapping_mul(2_654_435_761) % (1 << 32)
                        )
                    },
                    dn: Some(format!("uid={name},ou=People,dc=example,dc=com")),
                },
            }
        })
        .collect();
    let changes = PlannedChanges {
        suspend: Vec::new(),
        create,
        update: vec![],
        delete: vec![],
    };
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut delete_walls = Vec::new();
    let mut snapshot_walls = Vec::new();
    let keep = std::env::var_os("APPLY_TIMING_KEEP").map(std::path::PathBuf::from);
    for rep in 0..reps {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn Store> = match std::env::var("ROSTER_DATABASE_URL") {
            Ok(url) => Box::new(PgStore::open(&url).await.unwrap()),
            Err(_) => Box::new(SqliteStore::open(dir.path()).await.unwrap()),
        };
        store.ensure_admin("x", Timestamp(1)).await.unwrap();
        let run = NewRun {
            kind: RunKind::Sync,
            triggered_by: "bench".into(),
            actor: Actor("bench".into()),
            directory_type: "ldap".into(),
        };
        let run_id = store
            .begin_run(&run, Timestamp(2), Timestamp(0))
            .await
            .unwrap();
        let version = store.user_db_version().await.unwrap();
        let (t, c) = (Instant::now(), cpu_seconds());
        store
            .apply_plan(
                run_id,
                version,
                &changes,
                &DefaultPrivileges::default(),
                // No report lines: this times the apply itself (a real sync also records its report).
                &mut RunRecord {
                    entries_read: 0,
                    counts: Default::default(),
                    lines: Vec::new(),
                    deleted_lines: Vec::new(),
                    approves: None,
                    read_mode: None,
                    read_state: None,
                },
                &Actor("bench".into()),
                Timestamp(3),
            )
            .await
            .unwrap();
        walls.push(t.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c);
        // Everyone leaves: one deletion per user, folders without messages go with them.
        let t = Instant::now();
        let snapshot = store.snapshot().await.unwrap();
        snapshot_walls.push(t.elapsed().as_secs_f64());
        assert_eq!(snapshot.users.len(), n + 1);
        if let (Some(keep), true) = (&keep, rep + 1 == reps) {
            std::fs::create_dir_all(keep).unwrap();
            for file in ["roster.db", "roster.db-wal"] {
                let from = dir.path().join(file);
                if from.exists() {
                    std::fs::copy(&from, keep.join(file)).unwrap();
                }
            }
        }
        let delete = PlannedChanges {
            suspend: Vec::new(),
            create: vec![],
            update: vec![],
            delete: snapshot
                .users
                .iter()
                .filter(|u| !u.builtin_admin)
                .map(|u| UserDeletion {
                    user_id: u.id,
                    name: u.name.clone(),
                    keep_folder: false,
                })
                .collect(),
        };
        let run_id = store
            .begin_run(&run, Timestamp(5), Timestamp(0))
            .await
            .unwrap();
        let t = Instant::now();
        store
            .apply_plan(
                run_id,
                snapshot.version,
                &delete,
                &DefaultPrivileges::default(),
                &mut RunRecord {
                    entries_read: 0,
                    counts: Default::default(),
                    lines: Vec::new(),
                    deleted_lines: Vec::new(),
                    approves: None,
                    read_mode: None,
                    read_state: None,
                },
                &Actor("bench".into()),
                Timestamp(6),
            )
            .await
            .unwrap();
        delete_walls.push(t.elapsed().as_secs_f64());
    }
    delete_walls.sort_by(f64::total_cmp);
    snapshot_walls.sort_by(f64::total_cmp);
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "apply_plan, {n} new users with {} ids, {reps} runs: wall median {:.3} s (min {:.3}), CPU median {:.2} s",
        if sequential { "sequential" } else { "random" },
        walls[reps / 2],
        walls[0],
        cpus[reps / 2]
    );
    println!(
        "snapshot of those {} users: wall median {:.3} s (min {:.3})",
        n + 1,
        snapshot_walls[reps / 2],
        snapshot_walls[0]
    );
    println!(
        "apply_plan, the same {n} users deleted: wall median {:.3} s (min {:.3})",
        delete_walls[reps / 2],
        delete_walls[0]
    );
}
