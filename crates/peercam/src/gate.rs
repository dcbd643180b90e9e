//! The HTTP side of [`crate::access`]: one middleware in front of every route. It reads the
//! request's credentials and its client address, asks [`Access::check`], and then lets the
//! request through (setting the session cookie when the page was opened with the token),
//! answers `401` (the page explaining in words how to get the link) or `429` with
//! `Retry-After`. A WebSocket upgrade is always let through to `/signaling` with its
//! [`Admission`]: the signaling server answers a refusal on the socket itself
//! (`error UNAUTHORIZED` or `RATE_LIMITED`, then close 1008), as nextRTC clients expect.
//!
//! It must not judge credentials itself, and logs request paths only through [`redact`].

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::carrier::set_cookie;
use crate::access::{redact, Access, Credentials, Verdict};
use crate::net::Peer;
use crate::signaling::protocol::ErrorCode;
use crate::signaling::Admission;

/// How to get the link, in the words of every refusal.
const HOW_TO_GET_THE_LINK: &str = "run `peercam token` on the device, or look in its journal \
     (`journalctl -u peercam`) for the line \"open https://... to watch\"";

/// The middleware: see the module comment.
pub async fn guard(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !access.required() {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<Peer>().copied();
    let addr = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.addr.ip());
    let tls = peer.is_some_and(|p| p.tls);
    let verdict = {
        let headers = request.headers();
        let text = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
        };
        let credentials = Credentials::from_parts(
            request.uri().query(),
            text(header::AUTHORIZATION),
            text(header::COOKIE),
        );
        access.check(Instant::now(), addr, &credentials)
    };
    let websocket = request.uri().path() == "/signaling"
        && request
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let page = request.uri().path() == "/";
    match verdict {
        Verdict::Open => next.run(request).await,
        Verdict::Granted { by_cookie } => {
            if websocket {
                request
                    .extensions_mut()
                    .insert(Admission::Granted(access.sessions()));
            }
            let mut response = next.run(request).await;
            if page && !by_cookie && response.status().is_success() {
                let cookie = access
                    .cookie_value()
                    .and_then(|v| HeaderValue::from_str(&set_cookie(&v, tls)).ok());
                if let Some(cookie) = cookie {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response
        }
        Verdict::Missing | Verdict::Wrong => {
            let wrong = verdict == Verdict::Wrong;
            if wrong {
                log::info!(
                    "refused {} from {addr}: wrong access token",
                    shown(&request)
                );
            } else {
                log::debug!("refused {} from {addr}: no access token", shown(&request));
            }
            let why = if wrong {
                "The access token given is not this camera's (the link may be out of date: \
                 the token can be changed with `peercam token --rotate`)."
            } else {
                "This camera is private: it needs the link with its access token."
            };
            if websocket {
                let message = format!("{why} To get the link, {HOW_TO_GET_THE_LINK}.");
                let refusal = Admission::Refused(ErrorCode::Unauthorized, message);
                request.extensions_mut().insert(refusal);
                return next.run(request).await;
            }
            unauthorized(page, why)
        }
        Verdict::Limited(wait) => {
            log::debug!("refused {} from {addr}: rate-limited", shown(&request));
            let message = format!(
                "too many wrong access tokens from your address; try again in {} s",
                wait.as_secs()
            );
            if websocket {
                request
                    .extensions_mut()
                    .insert(Admission::Refused(ErrorCode::RateLimited, message));
                return next.run(request).await;
            }
            limited(wait, message)
        }
    }
}

/// The request's path and query as they may be logged: without any token.
fn shown(request: &Request) -> String {
    redact(request.uri().path_and_query().map_or("/", |p| p.as_str())).into_owned()
}

/// `401`: for the page a short HTML page saying in words how to get the link, for the API a
/// sentence of plain text.
fn unauthorized(page: bool, why: &str) -> Response {
    let common = [
        (header::CACHE_CONTROL, "no-store"),
        (header::WWW_AUTHENTICATE, "Bearer realm=\"peercam\""),
    ];
    if page {
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>This camera needs its access link</title></head>\n<body>\
             <h1>This camera needs its access link</h1>\n<p>{why}</p>\n\
             <p>To get the link, run <code>peercam token</code> on the device, or look in its \
             journal (<code>journalctl -u peercam</code>) for the line \
             <q>open https://&hellip;/?token=&hellip; to watch</q>. Open that link once: this \
             browser then remembers it, and the plain address (or a bookmark of it) works \
             without the token.</p>\n</body></html>\n",
            why = why.replace('`', "")
        );
        let mut response = (StatusCode::UNAUTHORIZED, common, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    } else {
        let body = format!("{why} To get the link, {HOW_TO_GET_THE_LINK}.\n");
        (StatusCode::UNAUTHORIZED, common, body).into_response()
    }
}

/// `429` with `Retry-After` in whole seconds.
fn limited(wait: Duration, message: String) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, wait.as_secs().max(1).to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        format!("{message}\n"),
    )
        .into_response()
}
