//! The REST API under `/api/v1` (JSON), with its OpenAPI document at `/api/v1/openapi.json`, and the web
//! console at `/` (`console/`: server-rendered pages over the same use cases).
//!
//! Handlers only translate HTTP to [`roster_app::Roster`] calls and back: authorization, validation and
//! auditing live in the app, so the CLI gets exactly the same behaviour.
//!
//! - `router`: the routes, and the answers for unknown paths and methods.
//! - `error`: the error body and its stable `HT…` codes; [`error::Input`] answers any extractor's rejection
//!   in that format.
//! - `auth`: who is calling (today a bearer token).
//! - `api/`: the handlers, one file per area.
//! - `openapi`: the OpenAPI document and what every operation shares.
//! - `console/`: the web console: cookie sessions, CSRF tokens, one file per page area.
//! - `health`: `GET /healthz` and `GET /readyz`; `metrics`: `GET /metrics` (Prometheus text format) and
//!   what is counted, with the middleware that counts HTTP requests by route template.

mod api;
mod auth;
mod console;
mod error;
mod health;
mod limits;
mod listen;
mod metrics;
mod openapi;
mod router;

pub use api::negotiate::SingleSignOn;
pub use limits::LogonLimits;
pub use listen::{HEAD_LIMIT_BYTES, serve};
pub use metrics::Metrics;

/// Put on the router (`Extension`) when served over HTTPS: the console's session cookie is then `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct SecureCookies;
pub use router::{router, router_with, router_with_metrics};
