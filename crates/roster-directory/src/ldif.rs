//! Users from an LDIF file: read, filtered and mapped like an LDAP read, without a server.
//!
//! Only a regular file is read (a symbolic link is followed: exports are often published as a link to
//! the latest one). A FIFO would block the open and the read for as long as nobody writes, a device
//! such as /dev/zero never ends, and opening some devices does something; so the type is checked when
//! the settings are saved, and again before each open, by `stat`, without opening. The path may change
//! in between, so the file is opened with `O_NONBLOCK` (an open that can't hang) and what was opened is
//! checked again. Its size is checked then too, and the reader enforces the limits while it reads.

use std::fs::{File, Metadata};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_core::directory::{DirectoryKind, LdifSettings};
use roster_core::dn;
use roster_core::filter::LdapFilter;
use roster_core::ldif::{LdifLimits, LdifReader};

use crate::connector::{Connector, DirectoryRead, DirectoryReader, ReadProgress};
use crate::error::DirectoryError;
use crate::ids::IdPolicy;
use crate::mapping::AttributeMap;

/// A file has nobody to ask about passwords: the connector has no [`crate::PasswordChecker`].
pub(crate) fn connector(settings: &LdifSettings) -> Result<Connector, DirectoryError> {
    Ok(Connector {
        kind: DirectoryKind::Ldif,
        reader: Arc::new(LdifDirectory::new(settings)?),
        passwords: None,
        listing: None,
        accounts: None,
    })
}

#[derive(Debug)]
struct LdifDirectory {
    config: Arc<LdifConfig>,
}

#[derive(Debug)]
struct LdifConfig {
    file: PathBuf,
    base_dn: String,
    filter: LdapFilter,
    attributes: AttributeMap,
    limits: LdifLimits,
}

impl LdifDirectory {
    fn new(settings: &LdifSettings) -> Result<LdifDirectory, DirectoryError> {
        let filter = settings.checked_filter()?;
        // Extensible matches need the server's matching rules; `matches` refuses them whatever the
        // entry, so trying an empty entry finds them now rather than in the middle of a read.
        if let Err(e) = filter.matches(|_| Vec::new()) {
            return Err(DirectoryError::settings("filter", e.to_string()));
        }
        // A file that doesn't exist (yet) is allowed: the export may be written after the settings.
        if let Ok(metadata) = std::fs::metadata(&settings.file)
            && let Some(what) = not_a_regular_file(&metadata)
        {
            return Err(DirectoryError::settings(
                "file",
                format!(
                    "{} is {what}, not a regular file; give the path of an LDIF export",
                    settings.file.display()
                ),
            ));
        }
        Ok(LdifDirectory {
            config: Arc::new(LdifConfig {
                file: settings.file.clone(),
                base_dn: settings.base_dn.trim().to_owned(),
                filter,
                attributes: AttributeMap::new(&settings.mapping, IdPolicy::GENERIC_LDAP)?,
                limits: settings.limits.limits(),
            }),
        })
    }
}

#[async_trait::async_trait]
impl DirectoryReader for LdifDirectory {
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        // The file may hold 100k entries: parse it on a blocking thread and pass the counts back, since
        // `progress` is borrowed and can't go to that thread itself.
        let config = self.config.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let task = tokio::task::spawn_blocking(move || config.read(&tx));
        while let Some(count) = rx.recv().await {
            progress.entries_read(count);
        }
        task.await.map_err(|e| DirectoryError::Internal {
            message: format!("the LDIF reader stopped unexpectedly: {e}"),
        })?
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || config.open().map(drop))
            .await
            .map_err(|e| DirectoryError::Internal {
                message: format!("checking the LDIF file stopped unexpectedly: {e}"),
            })?
    }
}

impl LdifConfig {
    fn ldif_error(&self, message: String) -> DirectoryError {
        DirectoryError::Ldif {
            file: self.file.display().to_string(),
            message,
        }
    }

    /// Opens the file if it is a regular file within `max_file_bytes`, without ever blocking.
    fn open(&self) -> Result<File, DirectoryError> {
        let cannot_open = |e: std::io::Error| self.ldif_error(format!("cannot open it ({e})"));
        self.check_metadata(&std::fs::metadata(&self.file).map_err(cannot_open)?)?;
        let file = open_without_blocking(&self.file).map_err(cannot_open)?;
        self.check_metadata(&file.metadata().map_err(cannot_open)?)?;
        Ok(file)
    }

    fn check_metadata(&self, metadata: &Metadata) -> Result<(), DirectoryError> {
        if let Some(what) = not_a_regular_file(metadata) {
            return Err(self.ldif_error(format!(
                "it is {what}, not a regular file, so it was not read; `file` must name an LDIF export"
            )));
        }
        let max = self.limits.max_file_bytes;
        if metadata.len() > max {
            return Err(self.ldif_error(format!(
                "it is {} bytes, larger than `max_file_bytes` ({max} bytes), so it was not read; if it is \
                 the right file, raise `max_file_bytes` in the directory settings",
                metadata.len()
            )));
        }
        Ok(())
    }

    fn read(
        &self,
        progress: &tokio::sync::mpsc::UnboundedSender<u64>,
    ) -> Result<DirectoryRead, DirectoryError> {
        let reader = LdifReader::with_limits(BufReader::new(self.open()?), self.limits);
        let mut read = DirectoryRead {
            entries: Vec::new(),
            pages: 1,
            without_stable_id: 0,
            references_skipped: 0,
            ..Default::default()
        };
        let mut seen: u64 = 0;
        let mut in_base: u64 = 0;
        for record in reader {
            // Any error fails the whole read: a half-read file would look like deleted users.
            let entry = record.map_err(|e| self.ldif_error(e.to_string()))?;
            seen += 1;
            if seen.is_multiple_of(1000) {
                // The receiver only goes away if the read was cancelled; nothing to do then.
                let _ = progress.send(read.entries.len() as u64);
            }
            if !dn::is_at_or_below(&entry.dn, &self.base_dn) {
                continue;
            }
            in_base += 1;
            // Values the filter looks at must be text: a damaged byte or another encoding (Latin-1)
            // would make the entry miss the filter and its user look deleted. Elsewhere (a photo, a
            // description) bytes are left alone.
            let not_text: std::cell::Cell<Option<String>> = std::cell::Cell::new(None);
            let keep = self
                .filter
                .matches(|attr| {
                    let values = entry.values(attr);
                    if values.iter().any(|v| std::str::from_utf8(v).is_err()) {
                        not_text.set(Some(attr.to_owned()));
                    }
                    values
                })
                .map_err(|e| DirectoryError::settings("filter", e.to_string()))?;
            if let Some(attr) = not_text.take() {
                return Err(self.ldif_error(format!(
                    "line {}: a value of '{attr}', which the filter looks at, is not valid UTF-8 (the file may be damaged, or saved in another encoding such as Latin-1); save the file as UTF-8",
                    entry.line
                )));
            }
            if !keep {
                continue;
            }
            let (mapped, stable) = self.attributes.map(&entry.dn, |attr| entry.values(attr));
            if !stable {
                read.without_stable_id += 1;
            }
            read.entries.push(mapped);
        }
        if seen == 0 {
            // An empty file is a failed export or a wrong path far more often than an empty company,
            // and read as such, every user from it would look deleted.
            return Err(self.ldif_error(
                "it holds no entries (it is empty, or holds only comments); check that `file` names the export"
                    .to_owned(),
            ));
        }
        if in_base == 0 {
            // An LDAP server answers a base DN that doesn't exist with an error; so does a file. A read
            // of nothing would make every user from it look deleted.
            return Err(self.ldif_error(format!(
                "none of its {seen} entries is at or below the base DN {:?}; check `base_dn`",
                self.base_dn
            )));
        }
        let _ = progress.send(read.entries.len() as u64);
        Ok(read)
    }
}

/// What the file is when it is not a regular file, for a message.
fn not_a_regular_file(metadata: &Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("a device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a file")
}

/// Opening a FIFO for reading waits for a writer; with `O_NONBLOCK` it returns at once (and the type
/// check that follows refuses it). On a regular file the flag changes nothing.
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, item 3: the path may become a FIFO between the `stat` and the open, so the open itself
    /// must not wait for a writer, and what it opened is refused.
    #[test]
    fn opening_a_fifo_does_not_wait_for_a_writer() {
        let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
        let fifo = dir.path().join("fifo.ldif");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let opened = open_without_blocking(&path).and_then(|file| file.metadata());
            let _ = tx.send(opened.map(|metadata| not_a_regular_file(&metadata)));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(answer) => assert_eq!(answer.unwrap(), Some("a FIFO (named pipe)")),
            Err(_) => {
                // Let the stuck open go, so the test process can end.
                use std::os::unix::fs::OpenOptionsExt as _;
                drop(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&fifo),
                );
                panic!("opening the FIFO waited for a writer");
            }
        }
    }
}
