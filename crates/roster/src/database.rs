//! `roster backup`, `roster restore` and `roster db check`.
//!
//! A backup carries the secret key (`secret.key`, or `ROSTER_SECRET_KEY` when that is set) beside the
//! database, so that a restore ends with a directory password that can be decrypted: without it the
//! restored settings would hold a password no key opens, and every run would fail until an administrator
//! typed it again. That makes the backup file as sensitive as the data directory: it is created readable
//! by its owner only, and the command says so.

use crate::cli::Args;
use crate::output;
use anyhow::Result;
use roster_app::secrets::{KEY_FILE, KeySource};
use roster_app::{AppError, Caller, Roster};
use roster_store::{Companion, RestoreOptions, StoreError, StoreLocation};
use serde_json::json;
use std::path::Path;

fn uses_postgres(args: &Args) -> bool {
    args.database_url.as_deref().is_some_and(|u| !u.is_empty())
}

fn secret_key_env() -> Option<String> {
    std::env::var("ROSTER_SECRET_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
}

/// `roster backup` and `roster db check` look at a database that exists: opening the store would create an
/// empty one (and an administrator) in a mistyped data directory.
pub fn require_database(args: &Args) -> Result<()> {
    if uses_postgres(args) {
        return Ok(());
    }
    let file = StoreLocation::sqlite_file(&args.data_dir);
    if file.exists() {
        return Ok(());
    }
    Err(AppError::NotFound(format!(
        "there is no database in {} (no roster.db); is --data-dir (ROSTER_DATA_DIR) right?",
        args.data_dir.display()
    ))
    .into())
}

/// Backup and restore copy the SQLite file: with PostgreSQL, pg_dump and pg_restore do (the error says
/// how).
pub fn refuse_postgres(args: &Args) -> Result<()> {
    if uses_postgres(args) {
        return Err(AppError::from(StoreError::BackupUnsupported).into());
    }
    Ok(())
}

pub async fn backup(
    roster: &Roster,
    me: &Caller,
    data_dir: &Path,
    file: &Path,
    as_json: bool,
) -> Result<()> {
    let env_key = secret_key_env();
    let (key, source) = roster_app::secrets::key_for_backup(data_dir, env_key.as_deref())?;
    let companions = [Companion {
        name: KEY_FILE.to_owned(),
        contents: key.into_bytes(),
    }];
    let summary = roster.backup_database(me, file, &companions).await?;
    let source = match source {
        KeySource::File => "secret.key",
        KeySource::Environment => "ROSTER_SECRET_KEY",
    };
    if as_json {
        return output::json(&json!({
            "file": summary.path,
            "bytes": summary.bytes,
            "users": summary.users,
            "schema_version": summary.schema_version,
            "secret_key_from": source,
        }));
    }
    output::line(&format!(
        "backed up {} users (schema version {}) to {} ({} bytes), with the secret key (from {source})",
        summary.users,
        summary.schema_version,
        summary.path.display(),
        summary.bytes
    ))?;
    eprintln!(
        "roster: the backup holds password hashes and the key that decrypts the directory password: it is readable by you only; keep it as safe as the data directory."
    );
    Ok(())
}

/// `roster restore`: before any store is opened (opening would create a database, and hold the lock the
/// restore needs alone).
pub async fn restore(
    args: &Args,
    file: &Path,
    force: bool,
    now: roster_core::Timestamp,
    as_json: bool,
) -> Result<()> {
    refuse_postgres(args)?;
    let restored =
        roster_store::backup::restore(file, &args.data_dir, RestoreOptions { force, now })
            .await
            .map_err(AppError::from)?;
    let info = &restored.info;
    let files: Vec<&str> = info.companions.iter().map(|c| c.name.as_str()).collect();
    // The key the restored password was sealed with is now in secret.key, but ROSTER_SECRET_KEY, when set,
    // is the one Roster uses.
    let key = info.companions.iter().find(|c| c.name == KEY_FILE);
    let key_warning = match (key, secret_key_env()) {
        (None, _) => Some(
            "the backup carries no secret key: unless the data directory's key is the one its directory password was sealed with, set the password again (roster directory set)".to_owned(),
        ),
        (Some(k), Some(env)) if String::from_utf8_lossy(&k.contents).trim() != env.trim() => Some(
            format!(
                "ROSTER_SECRET_KEY is set and is not the backup's key: Roster uses it instead of {}, and the restored directory password can't be decrypted with it; unset it, or set it to the contents of that file",
                args.data_dir.join(KEY_FILE).display()
            ),
        ),
        _ => None,
    };
    if as_json {
        output::json(&json!({
            "database": restored.database,
            "set_aside": restored.set_aside,
            "created_at": info.created_at,
            "roster_version": info.roster_version,
            "schema_version": info.schema_version,
            "users": info.users,
            "files": files,
        }))?;
    } else {
        output::line(&format!(
            "restored {} from {}: a backup made {} by Roster {} (schema version {}), {} users{}",
            restored.database.display(),
            file.display(),
            info.created_at,
            info.roster_version,
            info.schema_version,
            info.users,
            if files.is_empty() {
                String::new()
            } else {
                format!(", with {}", files.join(", "))
            }
        ))?;
        if let Some(aside) = &restored.set_aside {
            output::line(&format!(
                "the data directory's previous files are kept in {}",
                aside.display()
            ))?;
        }
    }
    if let Some(warning) = key_warning {
        eprintln!("roster: warning: {warning}");
    }
    if !as_json {
        eprintln!("roster: check it with `roster db check`, then start Roster.");
    }
    Ok(())
}

/// `roster db check`: every problem on standard output, then exit code 1 (`AP021-database-inconsistent`).
pub async fn check(roster: &Roster, me: &Caller, as_json: bool) -> Result<()> {
    let check = roster.check_database(me).await?;
    if as_json {
        output::json(&json!({
            "ok": check.problems.is_empty(),
            "backend": check.backend,
            "users": check.users,
            "problems": check.problems,
            "notes": check.notes,
        }))?;
    } else {
        for problem in &check.problems {
            output::line(&format!("problem: {problem}"))?;
        }
        for note in &check.notes {
            output::line(&format!("note: {note}"))?;
        }
        if check.problems.is_empty() {
            output::line(&format!(
                "ok: the database is consistent ({}, {} users)",
                check.backend, check.users
            ))?;
        }
    }
    if check.problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Inconsistent {
            problems: check.problems.len(),
        }
        .into())
    }
}
