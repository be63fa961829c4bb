//! A directory in memory, for the use cases' tests: what a run records, that the preview shows the sync,
//! and the failure paths, without a server. It stands in for a connector behind `Roster::with_connectors`
//! only; what a real connector does is checked against real servers (`roster-directory`'s contract
//! suite and `ldap_sync`).
//!
//! It lives here, not in `roster-testkit`: only these tests use it, and the kit is for real servers (it
//! doesn't depend on the connectors' crate).

use roster_core::directory::{DirectoryEntry, DirectorySettings, Secret};
use roster_directory::{
    Connector, ConnectorFactory, DirectoryError, DirectoryRead, DirectoryReader, LogonOutcome,
    LogonSubject, PasswordChecker, ReadProgress, RejectReason,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where the fake's entries live.
pub const PEOPLE: &str = "ou=People,dc=example,dc=com";

/// An entry for `name`, with the id `id-<name>` and the DN `uid=<name>,ou=People,...`.
pub fn person(name: &str, full_name: &str, emails: &[&str]) -> DirectoryEntry {
    DirectoryEntry {
        id: format!("id-{name}"),
        dn: format!("uid={name},{PEOPLE}"),
        name: Some(name.to_owned()),
        full_name: Some(full_name.to_owned()),
        emails: Some(emails.iter().map(|e| (*e).to_owned()).collect()),
    }
}

/// Entries the fake reports per page (a progress call after each).
const PAGE: usize = 2;

/// How the next reads fail: after `after` entries (reported to the progress callback first), with the
/// error `error(after)`.
#[derive(Debug, Clone, Copy)]
struct ReadFailure {
    after: usize,
    error: fn(u64) -> DirectoryError,
}

/// A logon the fake was asked to check, as it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLogon {
    pub name: String,
    pub dn: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<DirectoryEntry>,
    read_failure: Option<ReadFailure>,
    /// Entry id → password.
    passwords: HashMap<String, String>,
    /// Logons fail with an error (the directory can't be reached).
    logons_fail: bool,
    reads: u64,
    logons: Vec<SeenLogon>,
}

/// Entries in memory, settable per test; can be told to fail its reads; checks passwords if made
/// [`FakeDirectory::with_passwords`].
#[derive(Debug, Default)]
pub struct FakeDirectory {
    checks_passwords: bool,
    state: Mutex<State>,
}

impl FakeDirectory {
    /// A directory whose users can't log on with a directory password (like an LDIF file).
    pub fn new() -> Arc<FakeDirectory> {
        Arc::new(FakeDirectory::default())
    }

    /// A directory that checks passwords: `passwords` maps user names to their password.
    pub fn with_passwords(passwords: &[(&str, &str)]) -> Arc<FakeDirectory> {
        let fake = FakeDirectory {
            checks_passwords: true,
            state: Mutex::default(),
        };
        fake.state.lock().unwrap().passwords = passwords
            .iter()
            .map(|(name, pw)| (format!("id-{name}"), (*pw).to_owned()))
            .collect();
        Arc::new(fake)
    }

    pub fn set_entries(&self, entries: Vec<DirectoryEntry>) {
        self.state.lock().unwrap().entries = entries;
    }

    /// Reads fail at once with `error(0)`.
    pub fn fail_reads(&self, error: fn(u64) -> DirectoryError) {
        self.fail_reads_after(0, error);
    }

    /// Reads report `after` entries to the progress callback, then fail with `error(after)`.
    pub fn fail_reads_after(&self, after: usize, error: fn(u64) -> DirectoryError) {
        self.state.lock().unwrap().read_failure = Some(ReadFailure { after, error });
    }

    pub fn read_normally(&self) {
        self.state.lock().unwrap().read_failure = None;
    }

    pub fn fail_logons(&self, fail: bool) {
        self.state.lock().unwrap().logons_fail = fail;
    }

    /// How many reads were asked for.
    pub fn reads(&self) -> u64 {
        self.state.lock().unwrap().reads
    }

    /// The logons the checker was asked about, oldest first.
    pub fn logons(&self) -> Vec<SeenLogon> {
        self.state.lock().unwrap().logons.clone()
    }
}

#[async_trait::async_trait]
impl DirectoryReader for FakeDirectory {
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        let (entries, failure) = {
            let mut state = self.state.lock().unwrap();
            state.reads += 1;
            (state.entries.clone(), state.read_failure)
        };
        let stop = failure.map_or(entries.len(), |f| f.after.min(entries.len()));
        let mut pages = 0;
        let mut done = 0;
        // Page by page, as a server would answer: progress after each.
        loop {
            let page = (stop - done).min(PAGE);
            done += page;
            pages += 1;
            progress.entries_read(done as u64);
            tokio::task::yield_now().await;
            if done >= stop {
                break;
            }
        }
        if let Some(failure) = failure {
            return Err((failure.error)(done as u64));
        }
        let without_stable_id = entries.iter().filter(|e| e.id.starts_with("dn:")).count() as u64;
        Ok(DirectoryRead {
            entries,
            pages,
            without_stable_id,
            references_skipped: 0,
            ..Default::default()
        })
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl PasswordChecker for FakeDirectory {
    /// The contract of a real checker: empty passwords refused unasked; with an id only that entry,
    /// found by DN or by name; without one, the one entry with the name.
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(RejectReason::EmptyPassword));
        }
        let mut state = self.state.lock().unwrap();
        state.logons.push(SeenLogon {
            name: subject.name.to_owned(),
            dn: subject.dn.map(str::to_owned),
            id: subject.id.map(str::to_owned),
        });
        if state.logons_fail {
            return Err(DirectoryError::Connect {
                target: "the fake directory".into(),
                detail: "told to fail".into(),
                hint: "check the fake",
            });
        }
        let linked = |e: &&DirectoryEntry| subject.id.is_none_or(|id| e.id == id);
        let by_dn = subject
            .dn
            .and_then(|dn| state.entries.iter().find(|e| e.dn == dn))
            .filter(linked);
        let found = match by_dn {
            Some(e) => vec![e],
            None => state
                .entries
                .iter()
                .filter(|e| e.name.as_deref() == Some(subject.name))
                .filter(linked)
                .collect(),
        };
        let entry = match found.as_slice() {
            [] => return Ok(LogonOutcome::Rejected(RejectReason::NotFound)),
            [only] => *only,
            _ => return Ok(LogonOutcome::Rejected(RejectReason::Ambiguous)),
        };
        Ok(
            if state.passwords.get(&entry.id).map(String::as_str) == Some(password.expose()) {
                LogonOutcome::Accepted {
                    dn: entry.dn.clone(),
                }
            } else {
                LogonOutcome::Rejected(RejectReason::WrongPassword)
            },
        )
    }
}

/// Gives the one [`FakeDirectory`] for any configured settings, as a connector of the settings' kind.
#[derive(Debug, Clone)]
pub struct FakeConnectors(pub Arc<FakeDirectory>);

impl ConnectorFactory for FakeConnectors {
    fn connector(&self, settings: &DirectorySettings) -> Result<Connector, DirectoryError> {
        let kind = match settings {
            DirectorySettings::None => return Err(DirectoryError::NotConfigured),
            DirectorySettings::Unsupported => return Err(DirectoryError::UnsupportedType),
            configured => configured.kind().ok_or(DirectoryError::NotConfigured)?,
        };
        let fake = self.0.clone();
        let passwords: Option<Arc<dyn PasswordChecker>> = if fake.checks_passwords {
            Some(fake.clone())
        } else {
            None
        };
        Ok(Connector {
            kind,
            reader: fake,
            passwords,
            listing: None,
            accounts: None,
        })
    }
}
