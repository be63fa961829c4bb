//! Logon throttling per account (issue 20): after a few failed logons each further attempt must wait
//! longer, and after many in a row the account is locked for a while. Pure: the state is stored by the
//! caller (in the database, so that it survives a restart and holds across instances), and time is an
//! argument.
//!
//! Keyed by the name as typed ([`crate::names::name_key`]), whether or not such a user exists: an unknown
//! name is throttled exactly like a known one, so the answers and their timing don't tell them apart.

use crate::clock::Timestamp;

/// The rules. Every number is settable ([`ThrottlePolicy::default`] gives the issue's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures in a row after which attempts must wait.
    pub free_failures: u32,
    /// The wait before the next attempt after failure `free_failures`, `+ 1`, …, in seconds; the last
    /// one repeats.
    pub delays_seconds: Vec<u32>,
    /// Failures in a row that lock the account.
    pub lock_after: u32,
    /// How long a lock lasts, in seconds. When it ends, the count starts again from zero.
    pub lock_seconds: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 3,
            delays_seconds: vec![1, 3, 5, 10],
            lock_after: 20,
            lock_seconds: 15 * 60,
        }
    }
}

/// An account's failed logons, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failed logons in a row since the last success (or the end of the last lock).
    pub failures: u32,
    pub last_failure_at: Timestamp,
    /// Locked until then.
    pub locked_until: Option<Timestamp>,
}

/// What an attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Check the password.
    Check,
    /// Too soon after the last failure: refused without a check, until then.
    Wait { until: Timestamp },
    /// Locked: refused without a check, until then.
    Locked { until: Timestamp },
}

impl ThrottlePolicy {
    /// No throttling at all: every attempt is checked, no account is ever locked.
    pub fn unlimited() -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: u32::MAX,
            delays_seconds: Vec::new(),
            lock_after: u32::MAX,
            lock_seconds: 0,
        }
    }

    /// The wait after `failures` failures in a row, in seconds.
    fn delay_after(&self, failures: u32) -> u32 {
        if failures < self.free_failures {
            return 0;
        }
        let step = usize::try_from(failures - self.free_failures).unwrap_or(usize::MAX);
        self.delays_seconds
            .get(step)
            .or(self.delays_seconds.last())
            .copied()
            .unwrap_or(0)
    }

    /// Whether an attempt at `now` may be checked.
    pub fn verdict(&self, state: Option<&ThrottleState>, now: Timestamp) -> ThrottleVerdict {
        let Some(state) = state else {
            return ThrottleVerdict::Check;
        };
        if let Some(until) = state.locked_until {
            return if now < until {
                ThrottleVerdict::Locked { until }
            } else {
                ThrottleVerdict::Check
            };
        }
        let until = state
            .last_failure_at
            .plus_seconds(i64::from(self.delay_after(state.failures)));
        if now < until {
            ThrottleVerdict::Wait { until }
        } else {
            ThrottleVerdict::Check
        }
    }

    /// The state after a checked attempt failed at `now`.
    pub fn after_failure(&self, state: Option<&ThrottleState>, now: Timestamp) -> ThrottleState {
        // A lock that has ended starts the count again.
        let before = match state {
            Some(s) if s.locked_until.is_some_and(|until| now >= until) => 0,
            Some(s) => s.failures,
            None => 0,
        };
        let failures = before.saturating_add(1);
        ThrottleState {
            failures,
            last_failure_at: now,
            locked_until: (failures >= self.lock_after)
                .then(|| now.plus_seconds(i64::from(self.lock_seconds))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_then_a_lock_follow_the_schedule() {
        let policy = ThrottlePolicy::default();
        let t0 = Timestamp(1_000_000);
        let mut state: Option<ThrottleState> = None;
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..20 {
            assert_eq!(policy.verdict(state.as_ref(), now), ThrottleVerdict::Check);
            let s = policy.after_failure(state.as_ref(), now);
            state = Some(s);
            match policy.verdict(state.as_ref(), now) {
                ThrottleVerdict::Check => waits.push(0),
                ThrottleVerdict::Wait { until } => {
                    waits.push((until.0 - now.0) / 1000);
                    // One millisecond early is still too soon.
                    assert_eq!(
                        policy.verdict(state.as_ref(), until.minus_millis(1)),
                        ThrottleVerdict::Wait { until }
                    );
                    now = until;
                }
                ThrottleVerdict::Locked { until } => {
                    assert_eq!(s.failures, 20);
                    assert_eq!(until, now.plus_seconds(900));
                    waits.push(-1);
                }
            }
        }
        assert_eq!(
            waits,
            [
                0, 0, 1, 3, 5, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, -1
            ]
        );
        // The lock ends after 15 minutes, and the count starts again.
        let locked = state.unwrap();
        let until = locked.locked_until.unwrap();
        assert_eq!(
            policy.verdict(Some(&locked), until.minus_millis(1)),
            ThrottleVerdict::Locked { until }
        );
        assert_eq!(policy.verdict(Some(&locked), until), ThrottleVerdict::Check);
        assert_eq!(policy.after_failure(Some(&locked), until).failures, 1);
    }
}
