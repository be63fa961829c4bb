//! Times `plan_sync` for a first synchronization of N entries (nobody in the store yet) and for a re-sync
//! with nothing changed, so that the planner's share of a sync can be compared between builds.
//!
//!   cargo run --release -p roster-core --example plan_timing -- [N] [REPS]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use roster_core::directory::DirectoryEntry;
use roster_core::plan::{CurrentUser, PlanOptions, plan_sync};
use roster_core::user::{AuthMethod, DirectoryLink};
use roster_core::{EmailAddress, UserName};
use std::time::Instant;

fn entries(n: usize) -> Vec<DirectoryEntry> {
    (0..n)
        .map(|i| {
            let name = format!("user{i:06}");
            let mut emails = vec![format!("{name}@example.com")];
            if i % 2 == 0 {
                emails.push(format!("alias.{name}@mail.example.com"));
            }
            DirectoryEntry {
                id: format!("{i:08x}-7c5f-1041-89be-791965f5c6b2"),
                dn: format!("uid={name},ou=People,dc=example,dc=com"),
                name: Some(name),
                full_name: Some(format!("Person {i}")),
                emails: Some(emails),
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(100_000);
    let reps: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(7);
    let options = PlanOptions {
        scope: roster_core::plan::PlanScope::All,
        now: roster_core::Timestamp(0),
        delete_after_seconds: 0,
        source: "ldap".into(),
        delete_users: true,
    };
    let current: Vec<CurrentUser> = entries(n)
        .into_iter()
        .zip(1_i64..)
        .map(|(e, id)| CurrentUser {
            departed_at: None,
            id,
            name: UserName::parse(e.name.as_deref().unwrap()).unwrap(),
            full_name: e.full_name.clone().unwrap(),
            emails: e
                .emails
                .iter()
                .flatten()
                .map(|a| EmailAddress::parse(a).unwrap())
                .collect(),
            auth: AuthMethod::Directory,
            link: Some(DirectoryLink {
                source: "ldap".into(),
                id: e.id.clone(),
                dn: Some(e.dn.clone()),
            }),
            builtin_admin: false,
            folder_messages: 0,
        })
        .collect();
    for (what, users) in [
        ("first sync", &[][..]),
        ("re-sync, nothing changed", &current[..]),
    ] {
        let mut times = Vec::new();
        for _ in 0..reps {
            let input = entries(n);
            let t = Instant::now();
            let plan = plan_sync(users, input, &options);
            times.push(t.elapsed().as_secs_f64());
            std::hint::black_box(plan);
        }
        println!(
            "plan_sync, {what}, {n} entries: median {:.3} s over {reps} runs",
            median(times)
        );
    }
}
