//! The data directory's lock: `roster.lock`, locked with `flock(2)`.
//!
//! Every process that opens the SQLite store (`roster serve`, and every CLI command) holds a shared lock
//! on it for as long as the store is open; `roster restore` takes it exclusively, so it refuses a data
//! directory that any Roster process is using, and a process that starts during a restore is refused
//! until it is done.
//!
//! Why a lock file and not SQLite's own locks: SQLite holds file locks only while a connection is open
//! and (in WAL mode) mostly only inside a transaction, and the store's pool closes idle connections, so an
//! idle server can hold no SQLite lock at all. A `flock` lock belongs to the open file, so it lasts
//! exactly as long as the process (the kernel releases it when the process ends, even by SIGKILL: there is
//! never a stale lock to clean up), and needs no PID file that could name a reused process id.

use crate::{Result, StoreError};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "roster.lock";

/// A lock on a data directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// The lock every process using the store holds. Refused only while a restore holds the directory.
    /// A file system without `flock` support gets a warning and no lock, rather than no Roster at all.
    pub(crate) fn shared(data_dir: &Path) -> Result<Option<DataDirLock>> {
        let (file, path) = open_lock_file(data_dir)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(DataDirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(StoreError::RestoreInProgress(
                data_dir.display().to_string(),
            )),
            Err(TryLockError::Error(e)) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "can't lock the data directory; `roster restore` won't see that this process uses it"
                );
                Ok(None)
            }
        }
    }

    /// The lock `roster restore` holds while it replaces the database: only if no other process uses the
    /// data directory. Creates the directory if it doesn't exist.
    pub fn exclusive(data_dir: &Path) -> Result<DataDirLock> {
        let (file, path) = open_lock_file(data_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                Err(StoreError::DataDirInUse(data_dir.display().to_string()))
            }
            Err(TryLockError::Error(e)) => Err(StoreError::BackupFailed(format!(
                "can't lock {}: {e}; the data directory must be on a file system that supports flock(2)",
                path.display()
            ))),
        }
    }
}

fn open_lock_file(data_dir: &Path) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::Open(format!(
            "can't create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let path = data_dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    // Never truncated, never removed: removing a lock file while another process waits on it would let
    // two processes each hold a lock on a different file of the same name.
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .map_err(|e| StoreError::Open(format!("can't open {}: {e}", path.display())))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn shared_locks_go_together_and_keep_the_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = DataDirLock::shared(dir.path()).unwrap();
        let b = DataDirLock::shared(dir.path()).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(matches!(
            DataDirLock::exclusive(dir.path()),
            Err(StoreError::DataDirInUse(_))
        ));
        drop((a, b));
        let exclusive = DataDirLock::exclusive(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::shared(dir.path()),
            Err(StoreError::RestoreInProgress(_))
        ));
        drop(exclusive);
        assert!(DataDirLock::shared(dir.path()).unwrap().is_some());
    }
}
