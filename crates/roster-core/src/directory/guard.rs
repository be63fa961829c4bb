//! The deletion guard's settings, the same for every directory type (issue 20): flattened into each
//! type's settings, so a settings file writes `max_deletions = 500` at the top level. With them, the
//! grace period before a departed user is deleted (`delete_after`).

use serde::{Deserialize, Serialize};

use super::{SettingsError, settings_error};

/// The default of `max_deletions`: Microsoft Entra Connect's export threshold.
pub const DEFAULT_MAX_DELETIONS: u64 = 500;
/// The default of `max_deletions_percent`.
pub const DEFAULT_MAX_DELETIONS_PERCENT: u8 = 10;

/// How many users one sync may delete before it stops and asks for approval. A sync whose plan deletes
/// more than either limit applies nothing (not even its creations): a filter or base DN edited by
/// mistake, an OU renamed or a service account that lost its read rights look like everybody leaving.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct DeletionGuardSettings {
    /// The most users one sync deletes without approval (0: every deletion needs approval).
    #[serde(default = "default_max_deletions")]
    pub max_deletions: u64,
    /// The most users one sync deletes without approval, in percent of the users linked to this
    /// directory (100: no limit by share).
    #[serde(default = "default_max_deletions_percent")]
    pub max_deletions_percent: u8,
    /// The grace period: a user the directory no longer returns is first suspended (can't log on, keeps
    /// privileges, folder and link), and deleted only by a sync after this long that still doesn't see
    /// them. A duration such as `"14d"` or `"12h"`; `"0d"` (the default) deletes at once.
    #[serde(default = "default_delete_after")]
    pub delete_after: String,
}

fn default_delete_after() -> String {
    "0d".to_owned()
}

fn default_max_deletions() -> u64 {
    DEFAULT_MAX_DELETIONS
}

fn default_max_deletions_percent() -> u8 {
    DEFAULT_MAX_DELETIONS_PERCENT
}

impl Default for DeletionGuardSettings {
    fn default() -> Self {
        DeletionGuardSettings {
            max_deletions: DEFAULT_MAX_DELETIONS,
            max_deletions_percent: DEFAULT_MAX_DELETIONS_PERCENT,
            delete_after: default_delete_after(),
        }
    }
}

impl DeletionGuardSettings {
    pub(crate) fn check(&self) -> Result<(), SettingsError> {
        if self.max_deletions_percent > 100 {
            return Err(settings_error(
                "max_deletions_percent",
                format!(
                    "{} is not a percentage; give 0 to 100 (100: no limit by share)",
                    self.max_deletions_percent
                ),
            ));
        }
        self.delete_after_seconds()?;
        Ok(())
    }

    /// The grace period in seconds (0: delete at once).
    pub fn delete_after_seconds(&self) -> Result<u64, SettingsError> {
        let text = self.delete_after.trim();
        humantime::parse_duration(text)
            .map(|d| d.as_secs())
            .map_err(|e| {
                settings_error(
                    "delete_after",
                    format!(
                        "{text:?} is not a duration ({e}); write it like \"14d\", \"36h\" or \"0d\" (delete at once)"
                    ),
                )
            })
    }

    /// For the audit log's description of the settings.
    pub(crate) fn describe(&self) -> String {
        format!(
            ", max deletions {} or {}%, delete after {}",
            self.max_deletions, self.max_deletions_percent, self.delete_after
        )
    }

    /// Whether a plan that deletes `deletions` of the `linked` users linked to this directory stops, and
    /// at which limit. Pure: the preview asks it too, to say that the sync would stop.
    pub fn judge(&self, deletions: u64, linked: u64) -> Option<GuardLimit> {
        if deletions > self.max_deletions {
            return Some(GuardLimit::Count {
                max: self.max_deletions,
            });
        }
        // deletions / linked > percent / 100, in integers.
        if u128::from(deletions) * 100 > u128::from(self.max_deletions_percent) * u128::from(linked)
        {
            return Some(GuardLimit::Percent {
                max: self.max_deletions_percent,
                linked,
            });
        }
        None
    }
}

/// The limit a plan passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum GuardLimit {
    /// `max_deletions`.
    Count { max: u64 },
    /// `max_deletions_percent` of the `linked` users.
    Percent { max: u8, linked: u64 },
}

impl std::fmt::Display for GuardLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardLimit::Count { max } => write!(f, "more than max_deletions = {max}"),
            GuardLimit::Percent { max, linked } => write!(
                f,
                "more than max_deletions_percent = {max}% of the {linked} users linked to this directory"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_stops_at_either_limit() {
        let guard = DeletionGuardSettings::default();
        assert_eq!(guard.judge(0, 0), None);
        assert_eq!(guard.judge(10, 100), None, "10% is not more than 10%");
        assert_eq!(
            guard.judge(11, 100),
            Some(GuardLimit::Percent {
                max: 10,
                linked: 100
            })
        );
        assert_eq!(guard.judge(500, 100_000), None);
        assert_eq!(
            guard.judge(501, 100_000),
            Some(GuardLimit::Count { max: 500 })
        );
        let off = DeletionGuardSettings {
            max_deletions: u64::MAX,
            max_deletions_percent: 100,
            ..DeletionGuardSettings::default()
        };
        assert_eq!(off.judge(100, 100), None);
        let every = DeletionGuardSettings {
            max_deletions: 0,
            max_deletions_percent: 100,
            ..DeletionGuardSettings::default()
        };
        assert_eq!(every.judge(1, 100), Some(GuardLimit::Count { max: 0 }));
        assert!(
            DeletionGuardSettings {
                max_deletions_percent: 101,
                ..guard.clone()
            }
            .check()
            .is_err()
        );
        assert_eq!(
            GuardLimit::Percent {
                max: 10,
                linked: 30
            }
            .to_string(),
            "more than max_deletions_percent = 10% of the 30 users linked to this directory"
        );
    }

    #[test]
    fn the_grace_period_is_a_duration() {
        let with = |text: &str| DeletionGuardSettings {
            delete_after: text.into(),
            ..DeletionGuardSettings::default()
        };
        assert_eq!(with("0d").delete_after_seconds(), Ok(0));
        assert_eq!(with("14d").delete_after_seconds(), Ok(14 * 86_400));
        assert_eq!(with(" 36h ").delete_after_seconds(), Ok(36 * 3600));
        let e = with("two weeks").delete_after_seconds().unwrap_err();
        assert_eq!(e.key, "delete_after");
        assert!(e.message.contains("\"14d\""), "{e}");
        assert!(with("-1d").check().is_err());
    }

    #[test]
    fn left_out_the_defaults_apply() {
        let guard: DeletionGuardSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(guard, DeletionGuardSettings::default());
    }
}
