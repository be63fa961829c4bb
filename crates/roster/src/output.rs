//! What the CLI prints: `--json` gives the same objects as the API; otherwise short, aligned text.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use roster_app::RunSummary;
use roster_app::{RunReport, SyncPhase, SyncProgress};
use roster_core::plan::{ReportCounts, ReportLine};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::{AuditEntry, Folder, User};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Written through one buffer: a report of 100,000 lines is 15 MB of JSON, which shouldn't be built as one
/// string first. A closed pipe (`roster sync --json | head`) ends the output quietly, as it would for `cat`.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| {
            out.write_all(b"\n")?;
            out.flush()
        });
    quiet_on_closed_pipe(written)
}

/// Everything else the CLI prints goes through here: buffered, and a closed pipe (`roster audit | head -1`)
/// ends the output quietly, where `println!` would panic.
fn emit(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = write(&mut out).and_then(|()| out.flush());
    quiet_on_closed_pipe(written)
}

/// One line of text on standard output.
pub fn line(text: &str) -> Result<()> {
    emit(|out| writeln!(out, "{text}"))
}

fn quiet_on_closed_pipe(result: std::io::Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn privileges(u: &User) -> String {
    u.privileges
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn users(users: &[User], as_json: bool) -> Result<()> {
    if as_json {
        return json(users);
    }
    emit(|out| {
        writeln!(
            out,
            "{:<24} {:<24} {:<10} {:<30} PRIVILEGES",
            "NAME", "FULL NAME", "AUTH", "EMAIL"
        )?;
        for u in users {
            writeln!(
                out,
                "{:<24} {:<24} {:<10} {:<30} {}",
                u.name.as_str(),
                u.full_name,
                u.auth.as_str(),
                u.emails.first().map(|e| e.as_str()).unwrap_or(""),
                match u.departed_at {
                    Some(since) =>
                        format!("{} (departed since {})", privileges(u), since.to_rfc3339()),
                    None => privileges(u),
                }
            )?;
        }
        Ok(())
    })
}

pub fn user(u: &User, as_json: bool) -> Result<()> {
    if as_json {
        return json(u);
    }
    emit(|out| {
        writeln!(out, "name:           {}", u.name)?;
        writeln!(out, "full name:      {}", u.full_name)?;
        writeln!(
            out,
            "emails:         {}",
            u.emails
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out, "authentication: {}", u.auth.as_str())?;
        writeln!(out, "privileges:     {}", privileges(u))?;
        for f in &u.folders {
            writeln!(
                out,
                "folder access:  {} [{}]",
                f.folder,
                f.rights
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
        }
        if let Some(l) = &u.directory {
            writeln!(
                out,
                "directory:      {} id {} ({})",
                l.source,
                l.id,
                l.dn.as_deref().unwrap_or("-")
            )?;
        }
        if let Some(since) = u.departed_at {
            writeln!(
                out,
                "departed since {}: suspended (can't log on) until the entry comes back or the grace period ends",
                since.to_rfc3339()
            )?;
        }
        if u.builtin_admin {
            writeln!(out, "built-in administrator")?;
        }
        Ok(())
    })
}

pub fn defaults(d: &DefaultPrivileges, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    emit(|out| {
        writeln!(
            out,
            "privileges: {}",
            d.privileges
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )?;
        writeln!(
            out,
            "own folder: {}",
            d.own_folder
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )?;
        Ok(())
    })
}

pub fn directory(view: &roster_app::DirectorySettingsView, as_json: bool) -> Result<()> {
    if as_json {
        return json(view);
    }
    // Through a JSON value, whose keys are sorted: the same order whatever the type.
    let v = serde_json::to_value(view)?;
    match toml::to_string(&v) {
        Ok(t) => emit(|out| write!(out, "{t}")),
        Err(_) => json(&v),
    }
}

/// `roster directory domains`: one line each, name, accounts, description.
pub fn directory_domains(domains: &[roster_app::DirectoryDomain], as_json: bool) -> Result<()> {
    if as_json {
        return json(&domains);
    }
    emit(|out| {
        for d in domains {
            writeln!(
                out,
                "{}\t{} accounts\t{}",
                d.name, d.accounts, d.description
            )?;
        }
        Ok(())
    })
}

/// `roster directory groups`: one line each, address and name.
pub fn directory_groups(groups: &[roster_app::DirectoryGroup], as_json: bool) -> Result<()> {
    if as_json {
        return json(&groups);
    }
    emit(|out| {
        for g in groups {
            writeln!(out, "{}\t{}", g.address, g.name)?;
        }
        Ok(())
    })
}

pub fn report(r: &RunReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    emit(|out| {
        let c = &r.counts;
        writeln!(
            out,
            "{} #{} ({}): {} entries read{}",
            if r.preview {
                "Test Settings (preview, nothing committed)"
            } else {
                "Synchronization"
            },
            r.run_id,
            r.directory_type,
            r.entries_read,
            match r.read_mode {
                Some(mode) => format!(" ({} read)", mode.as_str()),
                None => String::new(),
            }
        )?;
        writeln!(out, "{}", counts(c, ", "))?;
        Ok(())
    })?;
    lines(&r.lines)
}

/// A run's counts as text, each as "created 3"; `sep` between them (", " in a report, " " in a table).
fn counts(c: &ReportCounts, sep: &str) -> String {
    [
        ("created", c.created),
        ("updated", c.updated),
        ("renamed", c.renamed),
        ("linked", c.linked),
        ("deleted", c.deleted),
        ("folders kept", c.folders_kept),
        ("unchanged", c.unchanged),
        ("conflicts", c.conflicts),
        ("skipped", c.skipped),
    ]
    .map(|(what, n)| format!("{what} {n}"))
    .join(sep)
}

/// Buffered (through `emit`): a line per system call would be 100,000 calls for a first sync's report.
fn lines(lines: &[ReportLine]) -> Result<()> {
    emit(|out| {
        lines.iter().try_for_each(|l| {
            writeln!(
                out,
                "  {:<9} {:<24} {}",
                l.action.as_str(),
                l.user,
                l.reason
            )
        })
    })
}

pub fn runs(runs: &[RunSummary], as_json: bool) -> Result<()> {
    if as_json {
        return json(runs);
    }
    emit(|out| {
        writeln!(
            out,
            "{:<6} {:<8} {:<10} {:<25} {:<8} {:<8} {:<12} RESULT",
            "RUN", "KIND", "STATUS", "STARTED", "BY", "ENTRIES", "READ"
        )?;
        for r in runs {
            let result = match (&r.counts, &r.error) {
                (_, Some(e)) => e.clone(),
                (Some(c), None) => counts(c, " "),
                (None, None) => String::new(),
            };
            writeln!(
                out,
                "{:<6} {:<8} {:<10} {:<25} {:<8} {:<8} {:<12} {}",
                r.id,
                r.kind.as_str(),
                r.status.as_str(),
                r.started_at.to_rfc3339(),
                r.triggered_by,
                r.entries_read,
                r.read_mode.map(|m| m.as_str()).unwrap_or("-"),
                result
            )?;
        }
        Ok(())
    })
}

pub fn run(r: &RunSummary, l: &[ReportLine], as_json: bool) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({"run": r, "lines": l}));
    }
    runs(std::slice::from_ref(r), false)?;
    if let Some(by) = r.approved_in_run {
        line(&format!(
            "approved: its deletions were applied by run #{by}"
        ))?;
    }
    lines(l)
}

pub fn folders(folders: &[Folder], as_json: bool) -> Result<()> {
    if as_json {
        return json(folders);
    }
    emit(|out| {
        writeln!(out, "{:<6} {:<24} {:<24} MESSAGES", "ID", "NAME", "OWNER")?;
        for f in folders {
            writeln!(
                out,
                "{:<6} {:<24} {:<24} {}",
                f.id,
                f.name,
                f.owner.as_deref().unwrap_or("(none: owner deleted)"),
                f.message_count
            )?;
        }
        Ok(())
    })
}

pub fn audit(entries: &[AuditEntry], as_json: bool) -> Result<()> {
    if as_json {
        return json(entries);
    }
    emit(|out| {
        for e in entries {
            writeln!(
                out,
                "{} {:<16} {:<22} {:<20} {}",
                e.at.to_rfc3339(),
                e.actor,
                e.action,
                e.target,
                e.details
            )?;
        }
        Ok(())
    })
}

/// A spinner with the number of entries read; indicatif hides it when stderr is not a terminal.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new() -> Progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("connecting");
        Progress(bar)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl SyncProgress for Progress {
    fn phase(&self, phase: SyncPhase) {
        self.0.set_message(match phase {
            SyncPhase::Reading => "reading the directory".to_owned(),
            SyncPhase::Planning => format!("{} entries read; planning", self.0.position()),
            SyncPhase::Applying => "applying in one transaction".to_owned(),
            SyncPhase::Recording => "recording the report".to_owned(),
        });
    }

    fn entries_read(&self, total: u64) {
        self.0.set_position(total);
        self.0
            .set_message(format!("reading the directory: {total} entries"));
    }
}
