//! Logon by Kerberos (HTTP Negotiate): the server accepted a ticket for `user@REALM`, and this decides
//! whether that is a Roster user who may log on. There is no password to check, so everything else a
//! logon checks is checked here, and a refusal looks exactly like a failed password logon to the caller
//! (`AP…-logon-failed`) with the reason in the audit log.
//!
//! The rules (issue 25):
//! * Only with Active Directory settings, and only for principals of the domain's realm: a ticket from a
//!   trusted realm names someone the settings never synchronised.
//! * The principal's name is the account's `sAMAccountName`, which is the Roster user's name for
//!   Active Directory; that user must be a directory user linked to Active Directory. A local user of
//!   the same name (the built-in `admin`, say) never logs on by Kerberos.
//! * The directory is asked, through the user's link, whether the entry is still in scope and enabled.
//! * Departed (suspended) and throttled users are refused; `log_on` is required as for any logon.

use roster_core::directory::{DirectoryKind, DirectorySettings};
use roster_core::names::UserName;
use roster_core::user::{AuthMethod, User};

use crate::observe::{LogonMethod, LogonOutcome};
use crate::{AppError, Result, Roster, Session};

impl Roster {
    /// Starts a session for the user a Kerberos ticket named (`principal` = `user@REALM`, as the GSSAPI
    /// library reported the ticket's client).
    pub async fn logon_with_kerberos(&self, principal: &str) -> Result<Session> {
        let mut throttled = false;
        let result = self.kerberos_logon(principal, &mut throttled).await;
        let outcome = if throttled {
            LogonOutcome::Throttled
        } else {
            LogonOutcome::of(&result)
        };
        self.observer.logon(LogonMethod::Kerberos, outcome);
        result
    }

    /// [`Roster::logon_with_kerberos`] without the observer.
    async fn kerberos_logon(&self, principal: &str, throttled: &mut bool) -> Result<Session> {
        let (name, realm) = principal.rsplit_once('@').unwrap_or((principal, ""));
        let key = roster_core::names::name_key(name);
        let state = self.store.logon_throttle(&key).await?;
        match self.throttle.verdict(state.as_ref(), self.now()) {
            roster_core::throttle::ThrottleVerdict::Check => {}
            roster_core::throttle::ThrottleVerdict::Wait { .. }
            | roster_core::throttle::ThrottleVerdict::Locked { .. } => {
                *throttled = true;
                self.refuse_kerberos(
                    name,
                    principal,
                    "the account is throttled or locked after failed logons",
                )
                .await?;
                return Err(AppError::LogonFailed);
            }
        }
        let user = self.check_kerberos_logon(name, realm, principal).await?;
        self.start_session(user, &format!("session started by Kerberos ({principal})"))
            .await
    }

    async fn check_kerberos_logon(&self, name: &str, realm: &str, principal: &str) -> Result<User> {
        let refuse = |why: String| async move {
            self.refuse_kerberos(name, principal, &why).await?;
            Err::<User, AppError>(AppError::LogonFailed)
        };
        let settings = self.load_directory_settings().await?;
        let Some(DirectorySettings::ActiveDirectory(ad)) = &settings else {
            return refuse("Kerberos logons need Active Directory settings".into()).await;
        };
        let domain_realm = ad.domain_name().to_ascii_uppercase();
        if !realm.eq_ignore_ascii_case(&domain_realm) {
            return refuse(format!(
                "the principal's realm {realm:?} is not the domain's ({domain_realm})"
            ))
            .await;
        }
        if name.contains('/') || name.is_empty() {
            return refuse("a service principal, not a user".into()).await;
        }
        let creds = match UserName::parse_existing(name) {
            Ok(n) => self.store.credentials(&n).await?,
            Err(_) => None,
        };
        let Some(creds) = creds else {
            return refuse("no Roster user of that name".into()).await;
        };
        let link = creds
            .link
            .as_ref()
            .filter(|l| l.source == DirectoryKind::ActiveDirectory.name());
        if creds.auth != AuthMethod::Directory || link.is_none() {
            return refuse(format!(
                "the Roster user {} is not an Active Directory user (it logs on with a {} password)",
                creds.name,
                creds.auth.as_str()
            ))
            .await;
        }
        if creds.departed {
            return refuse(
                "suspended since the directory stopped returning the user (departed)".into(),
            )
            .await;
        }
        let directory = self
            .directory(settings.as_ref().unwrap_or(&DirectorySettings::None))
            .await?;
        let Some(accounts) = directory.accounts.as_ref() else {
            return refuse("the directory can't check Kerberos accounts".into()).await;
        };
        let subject = roster_directory::LogonSubject {
            name: creds.name.as_str(),
            dn: link.and_then(|l| l.dn.as_deref()),
            id: link.map(|l| l.id.as_str()),
        };
        match accounts.account_usable(&subject).await {
            Ok(roster_directory::LogonOutcome::Accepted { .. }) => {}
            Ok(roster_directory::LogonOutcome::Rejected(reason)) => {
                return refuse(format!("the directory refused: {}", reason.describe())).await;
            }
            Err(e) => {
                tracing::warn!(user = %creds.name, code = e.code(), error = %e, "the directory could not check a Kerberos logon");
                return Err(AppError::DirectoryUnavailableAtLogon);
            }
        }
        if !creds.can_log_on {
            return Err(AppError::LogonNotAllowed);
        }
        self.store
            .get_user_by_id(creds.user_id)
            .await?
            .ok_or(AppError::LogonFailed)
    }

    async fn refuse_kerberos(&self, name: &str, principal: &str, why: &str) -> Result<()> {
        tracing::info!(principal, reason = why, "Kerberos logon refused");
        self.store
            .audit(
                &crate::Actor(name.trim().to_owned()),
                "logon.failed",
                name.trim(),
                &format!("Kerberos logon of {principal} refused: {why}"),
                self.now(),
            )
            .await?;
        Ok(())
    }
}
