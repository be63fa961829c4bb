//! When a synchronization runs by itself (issue 20): `schedule` in the directory settings, the same for
//! every type, flattened into each type's settings. `roster serve` runs it; see `roster_app`'s
//! `run_due_schedule`.
//!
//! Cron expressions are parsed and evaluated by the `croner` crate (POSIX/Vixie 5-field cron, maintained);
//! the three phrases are ours. Times are UTC: a server's local zone is no setting of ours, and UTC never
//! skips or repeats an hour.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

use super::{SettingsError, settings_error};
use crate::clock::Timestamp;

/// The schedule as given: absent for none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ScheduleSettings {
    /// `"every 30m"` (any duration from 1 minute, counted from the last scheduled run), `"hourly"`,
    /// `"daily at 02:00"` (UTC), or a 5-field cron expression (`"15 2 * * 1-5"`, UTC). Absent: only by
    /// hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Incremental reads (issue 26) where the directory offers them (OpenLDAP's syncprov): a run reads
    /// only what changed since the last one. Absent: yes. `false`: every run reads everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// How often a full read still runs to reconcile when reads are incremental (`"1d"`, `"12h"`).
    /// Absent: daily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read_every: Option<String>,
}

impl ScheduleSettings {
    pub(crate) fn check(&self) -> Result<(), SettingsError> {
        self.full_read_every_seconds()?;
        self.parsed().map(drop)
    }

    /// Whether runs may read incrementally.
    pub fn incremental(&self) -> bool {
        self.incremental.unwrap_or(true)
    }

    /// How long an incremental state may go without a full read, in seconds (default a day).
    pub fn full_read_every_seconds(&self) -> Result<u64, SettingsError> {
        let Some(text) = self.full_read_every.as_deref().map(str::trim) else {
            return Ok(24 * 3600);
        };
        match humantime::parse_duration(text) {
            Ok(d) if d.as_secs() > 0 => Ok(d.as_secs()),
            _ => Err(settings_error(
                "full_read_every",
                format!("{text:?} is not a duration; write it like \"1d\" or \"12h\""),
            )),
        }
    }

    /// The schedule, if one is given.
    pub fn parsed(&self) -> Result<Option<Schedule>, SettingsError> {
        self.schedule
            .as_deref()
            .map(|text| {
                Schedule::parse(text).map_err(|message| settings_error("schedule", message))
            })
            .transpose()
    }

    pub(crate) fn describe(&self) -> String {
        let mut out = match &self.schedule {
            Some(s) => format!(", schedule {s}"),
            None => String::new(),
        };
        if self.incremental == Some(false) {
            out.push_str(", full reads only");
        }
        if let Some(every) = &self.full_read_every {
            out.push_str(&format!(", a full read every {every}"));
        }
        out
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so many seconds after the last scheduled run.
    Every(u64),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let hint = "write \"every 30m\", \"hourly\", \"daily at 02:00\" (UTC) or a 5-field cron expression such as \"15 2 * * *\" (UTC)";
        if let Some(every) = lower.strip_prefix("every ") {
            let d = humantime::parse_duration(every.trim())
                .map_err(|e| format!("{text:?}: {e}; {hint}"))?;
            if d.as_secs() < 60 {
                return Err(format!("{text:?} is more often than once a minute; {hint}"));
            }
            return Ok(Schedule::Every(d.as_secs()));
        }
        let cron = if lower == "hourly" {
            "0 * * * *".to_owned()
        } else if let Some(at) = lower.strip_prefix("daily at ") {
            let (h, m) = at
                .trim()
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
                .filter(|(h, m)| *h < 24 && *m < 60)
                .ok_or_else(|| format!("{text:?}: the time is not HH:MM; {hint}"))?;
            format!("{m} {h} * * *")
        } else {
            if text.split_whitespace().count() != 5 {
                return Err(format!("{text:?} is not a schedule; {hint}"));
            }
            text.to_owned()
        };
        croner::Cron::from_str(&cron)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| format!("{text:?}: {e}; {hint}"))
    }

    /// The first time after `t` (strictly) the schedule says to run.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(secs) => Some(t.plus_seconds(i64::try_from(*secs).ok()?)),
            Schedule::Cron(cron) => {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t.0)?;
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(Timestamp(next.timestamp_millis()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T10:17:00Z.
    const T: Timestamp = Timestamp(1_796_206_620_000);

    fn next(text: &str, t: Timestamp) -> String {
        Schedule::parse(text)
            .unwrap()
            .next_after(t)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn the_phrases_and_cron_give_the_next_time_in_utc() {
        assert_eq!(T.to_rfc3339(), "2026-12-02T10:17:00.000Z");
        assert_eq!(next("every 30m", T), "2026-12-02T10:47:00.000Z");
        assert_eq!(next("Every 2h", T), "2026-12-02T12:17:00.000Z");
        assert_eq!(next("hourly", T), "2026-12-02T11:00:00.000Z");
        assert_eq!(next("daily at 02:00", T), "2026-12-03T02:00:00.000Z");
        assert_eq!(next("daily at 10:30", T), "2026-12-02T10:30:00.000Z");
        assert_eq!(next("15 2 * * 1-5", T), "2026-12-03T02:15:00.000Z");
        assert_eq!(next("*/20 * * * *", T), "2026-12-02T10:20:00.000Z");
        // Strictly after: at 11:00 sharp, hourly is 12:00.
        assert_eq!(
            next("hourly", Timestamp(1_796_209_200_000)),
            "2026-12-02T12:00:00.000Z"
        );
    }

    #[test]
    fn a_bad_schedule_says_how_to_write_one() {
        for bad in [
            "every 10s",
            "every fortnight",
            "daily at 25:00",
            "daily at noon",
            "sometimes",
            "61 * * * *",
            "* * * *",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("every 30m"), "{bad}: {e}");
        }
        let s = ScheduleSettings {
            schedule: Some("weekly-ish".into()),
            ..Default::default()
        };
        assert_eq!(s.check().unwrap_err().key, "schedule");
        let s = ScheduleSettings {
            full_read_every: Some("soon".into()),
            ..Default::default()
        };
        assert_eq!(s.check().unwrap_err().key, "full_read_every");
        assert_eq!(
            ScheduleSettings::default()
                .full_read_every_seconds()
                .unwrap(),
            86_400
        );
        assert!(ScheduleSettings::default().incremental());
        assert!(ScheduleSettings::default().parsed().unwrap().is_none());
    }
}
