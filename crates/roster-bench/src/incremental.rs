//! `roster-bench N --incremental` (behind `bench/ldap-sync.sh N --incremental`): issue 26's incremental
//! target. slapd runs the content synchronization provider (syncprov, with a session log), the settings
//! have `incremental = true` and `delete_users = true`, and each round measures, on a new data directory:
//!
//! * **baseline**: the paged `ldapsearch` of every entry, as in the other modes;
//! * **full sync**: `roster sync --json` into an empty store (a full read, which also takes the cookie);
//! * **incremental**: after 10 entries were changed (displayName) and 2 deleted with `ldapmodify`,
//!   `roster sync --json` again: an incremental run, checked to say `read_mode` incremental and to have
//!   updated exactly 10 users and deleted exactly 2.
//!
//! Each round changes other entries (the deleted ones stay deleted), so round r reads N - 2(r-1) entries.

use super::{Ctx, Opts, Sample, Source, mib};
use roster_testkit::Slapd;
use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

/// `syncprov-sessionlog`: far more operations than a round makes.
pub(crate) const SESSION_LOG: u32 = 10_000;
const CHANGED: usize = 10;
const DELETED: usize = 2;

pub(crate) fn settings_toml(port: u16, wide: bool) -> String {
    super::settings_toml(port, wide).replace(
        "delete_users = false\n",
        "delete_users = true\nincremental = true\n",
    )
}

pub(crate) fn run(opts: &Opts, source: &Source, slapd: &Slapd) {
    let (_work, ctx) = super::context(opts, source, None);
    ctx.check_baseline_output();
    let load_before = super::load_average();
    let mut rows: Vec<[Sample; 3]> = Vec::new();
    let mut incremental_recorded: Vec<Duration> = Vec::new();
    for round in 0..opts.reps {
        let present = opts.n - DELETED * round;
        let baseline = ctx.measure(&mut ctx.ldapsearch(), "baseline");
        let (dir, _) = ctx.prepared_data_dir();
        let full = ctx.measure(
            &mut ctx.roster(dir.path(), &["sync", "--json"]),
            "full sync",
        );
        check_run(
            &ctx,
            dir.path(),
            "full",
            present as u64,
            (present as u64, 0, 0),
        );
        // The change: users this round hasn't touched yet (1-based numbering, as in directory_ldif).
        let first = 1 + round * (CHANGED + DELETED) * 7;
        let mut ldif = String::new();
        for i in first..first + CHANGED {
            writeln!(
                ldif,
                "dn: uid=user{i:06},ou=People,{}\nchangetype: modify\nreplace: displayName\ndisplayName: Changed {round} {i}\n",
                super::SUFFIX
            )
            .unwrap();
        }
        for i in first + CHANGED..first + CHANGED + DELETED {
            writeln!(
                ldif,
                "dn: uid=user{i:06},ou=People,{}\nchangetype: delete\n",
                super::SUFFIX
            )
            .unwrap();
        }
        slapd
            .modify(&ldif)
            .expect("changing the directory with ldapmodify");
        let incremental = ctx.measure(
            &mut ctx.roster(dir.path(), &["sync", "--json"]),
            "incremental",
        );
        let recorded = check_run(
            &ctx,
            dir.path(),
            "incremental",
            CHANGED as u64,
            (0, CHANGED as u64, DELETED as u64),
        );
        incremental_recorded.push(recorded);
        for (what, s) in [
            ("baseline", &baseline),
            ("full sync", &full),
            ("incremental", &incremental),
        ] {
            eprintln!(
                "roster-bench: round {}: {what:<12} {:>7.3} s  {:>7.1} MiB  cpu {:>6.3} s  slapd cpu {:>6.3} s",
                round + 1,
                s.wall.as_secs_f64(),
                mib(s.max_rss_kib),
                s.cpu.as_secs_f64(),
                s.slapd_cpu.as_secs_f64()
            );
        }
        rows.push([baseline, full, incremental]);
    }
    let load_after = super::load_average();
    let med = |k: usize, f: &dyn Fn(&Sample) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(|r| f(&r[k])).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = med(0, &|s| s.wall.as_secs_f64());
    let mut table = String::from(
        "| measurement | wall median (s) | × baseline | CPU median (s) | slapd CPU median (s) | peak RSS median (MiB) |\n|:---|---:|---:|---:|---:|---:|\n",
    );
    for (k, label) in [
        "baseline: ldapsearch, paged (every entry)",
        "roster sync, empty store (full read, cookie taken)",
        "roster sync after 10 changed and 2 deleted entries (incremental)",
    ]
    .iter()
    .enumerate()
    {
        let wall = med(k, &|s| s.wall.as_secs_f64());
        writeln!(
            table,
            "| {label} | {wall:.3} | {:.3} | {:.3} | {:.3} | {:.1} |",
            wall / base,
            med(k, &|s| s.cpu.as_secs_f64()),
            med(k, &|s| s.slapd_cpu.as_secs_f64()),
            med(k, &|s| mib(s.max_rss_kib)),
        )
        .unwrap();
    }
    let mut recorded: Vec<f64> = incremental_recorded
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    recorded.sort_by(f64::total_cmp);
    let text = format!(
        "# Incremental LDAP synchronization benchmark (issue 26)\n\n\
         `{}` with {} users, {} rounds, `{}`. slapd with syncprov (session log {SESSION_LOG}); settings \
         `incremental = true`, `delete_users = true`; each round a new data directory, a full sync, then \
         {CHANGED} entries changed and {DELETED} deleted with `ldapmodify` and an incremental sync \
         (checked: read_mode incremental, {CHANGED} updated, {DELETED} deleted). Load average before: \
         {load_before}; after: {load_after}.\n\n{table}\n\
         The incremental run as recorded in the store (its start to its end, without process start and \
         opening the store): median {:.3} s. Target (issue 26): the incremental run ≤ 0.1× the baseline.\n",
        opts.command,
        opts.n,
        opts.reps,
        opts.roster.display(),
        recorded[recorded.len() / 2],
    );
    println!("\n{text}");
    if let Some(parent) = opts.out.parent() {
        fs::create_dir_all(parent).expect("creating the results directory");
    }
    fs::write(&opts.out, text).expect("writing the results");
    eprintln!("roster-bench: wrote {}", opts.out.display());
}

/// Checks the last run (succeeded, read mode, entries read, created/updated/deleted) and returns its
/// recorded duration.
fn check_run(
    ctx: &Ctx<'_>,
    data_dir: &std::path::Path,
    read_mode: &str,
    entries_read: u64,
    (created, updated, deleted): (u64, u64, u64),
) -> Duration {
    let out = ctx
        .roster(data_dir, &["runs", "list", "--limit", "1", "--json"])
        .output()
        .expect("running roster runs list");
    assert!(out.status.success(), "roster runs list failed");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let run = &runs[0];
    let counts = &run["counts"];
    let ok = run["status"] == "succeeded"
        && run["read_mode"] == read_mode
        && run["entries_read"] == entries_read
        && counts["created"] == created
        && counts["updated"] == updated
        && counts["deleted"] == deleted
        && ["renamed", "linked", "conflicts", "skipped"]
            .iter()
            .all(|k| counts[*k] == 0);
    assert!(ok, "unexpected {read_mode} run: {run:#}");
    let ms = |key: &str| run[key].as_i64().expect("a timestamp in milliseconds");
    Duration::from_millis(u64::try_from(ms("finished_at") - ms("started_at")).unwrap_or(0))
}
