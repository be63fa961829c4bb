//! How `roster serve` takes connections: the HTTP/1 settings below the router, which no router layer can
//! change. The tests that serve the router in-process use [`serve`] too, so they check what the binary does.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The longest request head (the request line and the headers) the router answers normally; a longer one
/// is answered 431 with the error body (`HT011-head-too-large`) by [`limit_head`]. 64 KiB is far more
/// than a browser sends (its cookies are limited to a few KiB per site).
pub const HEAD_LIMIT_BYTES: usize = 64 << 10;

/// hyper's read buffer per connection. A head that doesn't fit is answered 431 by hyper itself, with an
/// empty body and before any of our code runs (no hook gives it one), so the buffer is large enough for
/// heads far past [`HEAD_LIMIT_BYTES`] (the penetration test's 1 MB header) to reach [`limit_head`] and
/// get the explanation. It is the body limit: what one request may make the server hold was already
/// that much (hyper's default is about 400 KB). Only a head over 2 MiB still gets hyper's empty 431.
pub(crate) const READ_BUFFER_BYTES: usize = crate::error::BODY_LIMIT_BYTES;

/// Serves `app` on `listener` (non-blocking), with TLS when `tls` is given, until `handle` is told to
/// shut down. Each request carries its client's address (the logon limit counts by it).
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle);
            server
                .http_builder()
                .http1()
                .max_buf_size(READ_BUFFER_BYTES);
            server.serve(service).await
        }
        Some(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle);
            server
                .http_builder()
                .http1()
                .max_buf_size(READ_BUFFER_BYTES);
            server.serve(service).await
        }
    }
}

/// Answers a request whose head is over [`HEAD_LIMIT_BYTES`] with 431 and the error body.
pub(crate) async fn limit_head(request: Request, next: Next) -> Response {
    if head_bytes(&request) > HEAD_LIMIT_BYTES {
        return crate::error::ApiError::from(crate::error::HttpError::HeadTooLarge).into_response();
    }
    next.run(request).await
}

/// The head's size as sent in HTTP/1: the target, and each header's name and value with ": " and CRLF.
fn head_bytes(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    request.headers().iter().fold(target, |sum, (name, value)| {
        sum.saturating_add(name.as_str().len() + value.len() + 4)
    })
}
