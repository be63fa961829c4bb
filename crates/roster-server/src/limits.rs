//! The limit on logon attempts per client address (issue 20): a token bucket per address, from the
//! `governor` crate (a maintained, lock-free keyed rate limiter) rather than one of our own. Beside the
//! per-account throttling of `roster_app` (which holds across instances, in the database), this one is per
//! process and in memory: it stops one address from trying many names quickly, and answers 429 with
//! `Retry-After` before any password is checked.

use crate::error::{ApiError, HttpError};
use crate::metrics::Metrics;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// How many logon attempts one client address may make: `burst` at once, then `per_minute` a minute.
/// Either 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogonLimits {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for LogonLimits {
    /// Generous enough for an office behind one NAT address where everyone logs on at nine (100 at once,
    /// then 2 a second), and far below what guessing passwords needs.
    fn default() -> Self {
        LogonLimits {
            per_minute: 120,
            burst: 100,
        }
    }
}

/// Addresses kept before the limiter forgets the ones whose bucket has refilled.
const ADDRESSES_KEPT: usize = 10_000;

pub(crate) struct LogonLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    /// Counts the refusals (`roster_logons_throttled_total{limit="address"}`).
    metrics: Option<Arc<Metrics>>,
}

impl LogonLimiter {
    /// `None` when the limits turn it off.
    pub(crate) fn new(
        limits: LogonLimits,
        metrics: Option<Arc<Metrics>>,
    ) -> Option<Arc<LogonLimiter>> {
        let per_minute = NonZeroU32::new(limits.per_minute)?;
        let burst = NonZeroU32::new(limits.burst)?;
        Some(Arc::new(LogonLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
            metrics,
        }))
    }

    /// `Err(seconds to wait)` when this address has used its attempts.
    fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > ADDRESSES_KEPT {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Rounded up: coming back after the whole seconds said always works.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Middleware on `POST /sessions`. A server started without client addresses (in-process tests) has
/// no address to count by, and lets every request through.
pub(crate) async fn limit_logons(
    State(limiter): State<Arc<LogonLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    if let Some(address) = address
        && let Err(retry_after_seconds) = limiter.check(address)
    {
        if let Some(metrics) = &limiter.metrics {
            metrics.address_throttled();
        }
        return ApiError::from(HttpError::TooManyLogons {
            retry_after_seconds,
        })
        .into_response();
    }
    next.run(request).await
}
