//! The process' metrics, served at `GET /metrics` in the Prometheus text format (0.0.4) by
//! `prometheus-client`, the Prometheus project's own Rust client (issue 27).
//!
//! What is counted, and where:
//! - runs, their duration, entries read, users per action and deletion guard stops: the app tells
//!   [`Metrics`] as its [`roster_app::observe::Observer`] at the end of every run;
//! - logons by method and outcome, and the accounts' throttling: the app, at every logon attempt;
//! - the per-address logon limit's refusals: `limits.rs`;
//! - HTTP requests by route and status: [`count_requests`], around every route.
//!
//! No label carries a user name, an address, a directory server or anything a client typed: every label
//! value is one of a fixed set, and the HTTP route is the matched route's template
//! (`/api/v1/users/{name}`), never the path.
//!
//! The counts are this process' since it started (runs of the CLI or of another instance are not in
//! them); `GET /readyz` reads the last run of any process from the database.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use roster_app::RunKind;
use roster_app::observe::{LogonMethod, LogonOutcome, Observer, ReadMode, RunEnd, RunFinished};
use std::sync::Arc;

/// The route label of a request that matched no route (a 404 outside the API, or under it).
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// Run durations, in seconds: from a preview of a small LDIF file (tens of milliseconds) to a first sync
/// of 100,000 users from a slow directory, up to the default deadline of an hour.
const RUN_DURATION_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: &'static str,
    outcome: &'static str,
    read_mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogonLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The matched route's template, or [`UNMATCHED_ROUTE`].
    route: String,
    method: &'static str,
    status: u16,
}

fn run_duration_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS)
}

/// Every metric of the process. Give the same one to the app (`Roster::with_observer`) and to the router
/// (`router_with_metrics`).
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: Family<RunLabels, Histogram, fn() -> Histogram>,
    entries_read: Family<KindLabels, Counter>,
    users: Family<ActionLabels, Counter>,
    guard_stops: Counter,
    logons: Family<LogonLabels, Counter>,
    logons_throttled: Family<LimitLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The series that exist from the start, at 0, so that a rate is defined before the first event: every
/// run kind and outcome, every user action, the usual logons.
const KINDS: [RunKind; 2] = [RunKind::Preview, RunKind::Sync];
const RUN_ENDS: [RunEnd; 4] = [
    RunEnd::Succeeded,
    RunEnd::Failed,
    RunEnd::Cancelled,
    RunEnd::Stopped,
];
const USER_ACTIONS: [&str; 9] = [
    "created",
    "updated",
    "renamed",
    "linked",
    "deleted",
    "suspended",
    "reactivated",
    "conflict",
    "skipped",
];
/// The logons' usual series (the rarer ones appear when they first happen): every method accepted or
/// rejected; a throttled attempt is refused before its name is looked up, so its method is `password`.
const LOGON_SERIES: [(LogonMethod, LogonOutcome); 8] = [
    (LogonMethod::PasswordLocal, LogonOutcome::Accepted),
    (LogonMethod::PasswordLocal, LogonOutcome::Rejected),
    (LogonMethod::PasswordDirectory, LogonOutcome::Accepted),
    (LogonMethod::PasswordDirectory, LogonOutcome::Rejected),
    (LogonMethod::Password, LogonOutcome::Rejected),
    (LogonMethod::Password, LogonOutcome::Throttled),
    (LogonMethod::Kerberos, LogonOutcome::Accepted),
    (LogonMethod::Kerberos, LogonOutcome::Rejected),
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("roster");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Directory runs (previews and syncs) of this process, by how they ended",
            runs.clone(),
        );
        let run_duration = Family::<RunLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            run_duration_histogram,
        );
        registry.register(
            "run_duration_seconds",
            "How long directory runs took, from being recorded as running to their end",
            run_duration.clone(),
        );
        let entries_read = Family::<KindLabels, Counter>::default();
        registry.register(
            "directory_entries_read",
            "Directory entries read by runs (a run that failed counts what it read)",
            entries_read.clone(),
        );
        let users = Family::<ActionLabels, Counter>::default();
        registry.register(
            "sync_users",
            "Users changed by applied syncs, by action (conflict and skipped: entries not applied)",
            users.clone(),
        );
        let guard_stops = Counter::default();
        registry.register(
            "deletion_guard_stops",
            "Syncs the deletion guard stopped (nothing applied, waiting for an approval)",
            guard_stops.clone(),
        );
        let logons = Family::<LogonLabels, Counter>::default();
        registry.register(
            "logons",
            "Logon attempts by method and outcome",
            logons.clone(),
        );
        let logons_throttled = Family::<LimitLabels, Counter>::default();
        registry.register(
            "logons_throttled",
            "Logon attempts refused without a check: the account is throttled or locked (account), or the client address made too many attempts (address, answered 429)",
            logons_throttled.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        for kind in KINDS {
            for end in RUN_ENDS {
                drop(runs.get_or_create(&run_labels(kind, end, Some(ReadMode::Full))));
            }
            drop(entries_read.get_or_create(&KindLabels {
                kind: kind.as_str(),
            }));
        }
        for action in USER_ACTIONS {
            drop(users.get_or_create(&ActionLabels { action }));
        }
        for (method, outcome) in LOGON_SERIES {
            drop(logons.get_or_create(&LogonLabels {
                method: method.as_str(),
                outcome: outcome.as_str(),
            }));
        }
        for limit in ["account", "address"] {
            drop(logons_throttled.get_or_create(&LimitLabels { limit }));
        }
        Metrics {
            registry,
            runs,
            run_duration,
            entries_read,
            users,
            guard_stops,
            logons,
            logons_throttled,
            http_requests,
        }
    }

    /// The Prometheus text format (0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// A logon attempt refused by the per-address limit (`limits.rs`).
    pub(crate) fn address_throttled(&self) {
        self.logons_throttled
            .get_or_create(&LimitLabels { limit: "address" })
            .inc();
    }

    fn http_request(&self, route: String, method: &'static str, status: StatusCode) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
    }
}

fn run_labels(kind: RunKind, end: RunEnd, read_mode: Option<ReadMode>) -> RunLabels {
    RunLabels {
        kind: kind.as_str(),
        outcome: end.as_str(),
        read_mode: read_mode.map_or("none", ReadMode::as_str),
    }
}

impl Observer for Metrics {
    fn run_finished(&self, run: &RunFinished) {
        let labels = run_labels(run.kind, run.outcome, run.read_mode);
        self.runs.get_or_create(&labels).inc();
        self.run_duration
            .get_or_create(&labels)
            .observe(run.duration.as_secs_f64());
        self.entries_read
            .get_or_create(&KindLabels {
                kind: run.kind.as_str(),
            })
            .inc_by(run.entries_read);
        if run.outcome == RunEnd::Stopped {
            self.guard_stops.inc();
        }
        if let Some(c) = &run.applied {
            for (action, n) in [
                ("created", c.created),
                ("updated", c.updated),
                ("renamed", c.renamed),
                ("linked", c.linked),
                ("deleted", c.deleted),
                ("suspended", c.suspended),
                ("reactivated", c.reactivated),
                ("conflict", c.conflicts),
                ("skipped", c.skipped),
            ] {
                if n > 0 {
                    self.users.get_or_create(&ActionLabels { action }).inc_by(n);
                }
            }
        }
    }

    fn logon(&self, method: LogonMethod, outcome: LogonOutcome) {
        self.logons
            .get_or_create(&LogonLabels {
                method: method.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        if outcome == LogonOutcome::Throttled {
            self.logons_throttled
                .get_or_create(&LimitLabels { limit: "account" })
                .inc();
        }
    }
}

/// A method as a label: the standard ones by name, anything else (a client may send any token) as
/// `other`, so that a client can't make up series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware around every route (and the fallbacks): counts the request by the route it matched.
pub(crate) async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    // The access log, at debug: the route's template, never the path (it may hold a user name) nor
    // anything else the client sent.
    tracing::debug!(
        method,
        route = %route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis(),
        "answered"
    );
    metrics.http_request(route, method, response.status());
    response
}

/// `GET /metrics`.
pub(crate) async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "couldn't encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::plan::ReportCounts;

    #[test]
    fn runs_and_logons_are_counted_with_fixed_labels() {
        let m = Metrics::new();
        m.run_finished(&RunFinished {
            kind: RunKind::Sync,
            outcome: RunEnd::Succeeded,
            read_mode: Some(ReadMode::Full),
            duration: std::time::Duration::from_millis(300),
            entries_read: 12,
            applied: Some(ReportCounts {
                created: 12,
                ..Default::default()
            }),
        });
        m.run_finished(&RunFinished {
            kind: RunKind::Sync,
            outcome: RunEnd::Stopped,
            read_mode: Some(ReadMode::Full),
            duration: std::time::Duration::from_secs(2),
            entries_read: 3,
            applied: None,
        });
        m.logon(LogonMethod::PasswordLocal, LogonOutcome::Accepted);
        m.logon(LogonMethod::Password, LogonOutcome::Throttled);
        m.address_throttled();
        let text = m.encode().unwrap();
        for line in [
            "roster_runs_total{kind=\"sync\",outcome=\"succeeded\",read_mode=\"full\"} 1",
            "roster_runs_total{kind=\"sync\",outcome=\"stopped\",read_mode=\"full\"} 1",
            "roster_runs_total{kind=\"preview\",outcome=\"failed\",read_mode=\"full\"} 0",
            "roster_run_duration_seconds_bucket{kind=\"sync\",outcome=\"succeeded\",read_mode=\"full\",le=\"0.5\"} 1",
            "roster_run_duration_seconds_count{kind=\"sync\",outcome=\"stopped\",read_mode=\"full\"} 1",
            "roster_directory_entries_read_total{kind=\"sync\"} 15",
            "roster_sync_users_total{action=\"created\"} 12",
            "roster_deletion_guard_stops_total 1",
            "roster_logons_total{method=\"password_local\",outcome=\"accepted\"} 1",
            "roster_logons_total{method=\"password\",outcome=\"throttled\"} 1",
            "roster_logons_throttled_total{limit=\"account\"} 1",
            "roster_logons_throttled_total{limit=\"address\"} 1",
            "# TYPE roster_runs_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
    }
}
