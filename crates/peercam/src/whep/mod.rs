//! The WHEP door (draft-ietf-wish-whep): any WebRTC player watches the camera by posting a
//! recvonly SDP offer over HTTP, without speaking nextRTC.
//!
//! ```text
//! POST /whep (application/sdp offer) ──▶ camera loop: session `whep-<random>`, handed to the
//!                                        active media worker as an offer to the camera
//!        201 Created, answer, Location ◀── the worker's answer, its candidates in it
//! PATCH /whep/ID (trickle-ice-sdpfrag) ──▶ the client's candidates, to its peer
//! DELETE /whep/ID ───────────────────────▶ the peer is released
//! ```
//!
//! A WHEP viewer is a viewer like the others: the same worker and shared encode, the same
//! checks of what it sent (a refusal comes back as `400` with the worker's sentence), the same
//! watch on its RTCP (a player that vanishes without `DELETE` is released when it falls
//! silent), and it counts against the camera's viewer limit (`503` with `Retry-After`). The
//! routes sit behind the access check (a player sends the token as `Authorization: Bearer`);
//! CORS preflights are answered before it, since a browser sends them without credentials.
//!
//! This file is the HTTP side; `camera/whep.rs` keeps the sessions in the camera loop;
//! `trickle.rs` reads `PATCH` bodies.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use crate::web::AppState;

pub mod trickle;

/// Where the door is.
pub const PATH: &str = "/whep";

/// Largest offer or fragment taken: a browser's offer with audio and video is ~5 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// The longest a `POST` waits for the camera's answer: a warm worker answers within a few
/// hundred milliseconds; one that is starting after a failure may take seconds.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// What a refused player is told to wait before trying again, seconds.
const RETRY_AFTER: &str = "10";

/// What the door asks of the camera loop.
#[derive(Debug)]
pub enum DoorRequest {
    /// A player's offer: a new session.
    Open {
        /// The offer.
        offer: String,
        /// The session and its answer, or why not.
        reply: oneshot::Sender<Result<Opened, Refusal>>,
    },
    /// A player's `PATCH`: candidates for its session.
    Patch {
        /// The session.
        id: String,
        /// The SDP fragment.
        frag: String,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// A player's `DELETE`: the session ends.
    Close {
        /// The session.
        id: String,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
}

/// A session opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its id, the last part of its URL.
    pub id: String,
    /// The camera's answer.
    pub answer: String,
}

/// Why the camera refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The camera serves its limit of viewers.
    Full {
        /// The limit.
        limit: usize,
    },
    /// What the player sent cannot be used: the sentence says why.
    Unusable(String),
    /// No such session (it ended, or never was).
    NotFound,
    /// The player asked for an ICE restart, which a session does not do.
    Restart,
    /// The camera cannot serve now: the sentence says why.
    Unavailable(String),
}

/// The door's end of the channel into the camera loop.
#[derive(Debug, Clone)]
pub struct Door(pub mpsc::Sender<DoorRequest>);

/// The WHEP routes, to merge into the device's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, post(open))
        .route(
            &format!("{PATH}/{{id}}"),
            axum::routing::delete(close).patch(patch),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// CORS for the door, outermost: a preflight is answered here (browsers send it without
/// credentials, so it must not meet the access check), and every answer of the door lets a
/// player on another origin read it and its `Location` and `ETag`. Credentials are never
/// allowed across origins: a page elsewhere gets in only with the token itself.
pub async fn cors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let ours = path == PATH || path.starts_with(&format!("{PATH}/"));
    if !ours {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, If-Match"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        // Private Network Access: a browser asks before a page from elsewhere (a public site,
        // a blank page) may reach a device on the LAN; the door is meant to be reached so.
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
        if path == PATH {
            h.insert("accept-post", HeaderValue::from_static("application/sdp"));
        }
        r
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Retry-After"),
    );
    response
}

/// `POST /whep`.
async fn open(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !content_type_is(&headers, "application/sdp") {
        return unsupported_type("application/sdp");
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return plain(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
    };
    if !offer.trim_start().starts_with("v=0") {
        return plain(
            StatusCode::BAD_REQUEST,
            "the body is not an SDP offer (it must start with v=0)",
        );
    }
    match ask(&state, |reply| DoorRequest::Open { offer, reply }).await {
        Ok(Opened { id, answer }) => {
            let mut response = (StatusCode::CREATED, answer).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            for (name, value) in [
                (header::LOCATION, format!("{PATH}/{id}")),
                (header::ETAG, etag(&id)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            response
        }
        Err(refusal) => refused(refusal),
    }
}

/// `PATCH /whep/ID`: trickled candidates (RFC 9725, section 4.3).
async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return unsupported_type("application/trickle-ice-sdpfrag");
    }
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    match if_match {
        // An ICE restart is asked for with `If-Match: *`.
        Some("*") => return refused(Refusal::Restart),
        Some(tag) if tag != etag(&id) => {
            return plain(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not name this session's current ETag",
            )
        }
        _ => {}
    }
    let Ok(frag) = String::from_utf8(body.to_vec()) else {
        return plain(StatusCode::BAD_REQUEST, "the fragment is not UTF-8 text");
    };
    match ask(&state, |reply| DoorRequest::Patch { id, frag, reply }).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refusal) => refused(refusal),
    }
}

/// `DELETE /whep/ID`.
async fn close(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match ask(&state, |reply| DoorRequest::Close { id, reply }).await {
        Ok(()) => plain(StatusCode::OK, "session ended"),
        Err(refusal) => refused(refusal),
    }
}

/// Sends the request `make` builds to the camera loop and waits for its reply.
async fn ask<T>(
    state: &AppState,
    make: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> DoorRequest,
) -> Result<T, Refusal> {
    let Some(door) = &state.whep else {
        return Err(Refusal::Unavailable("this device runs no camera".into()));
    };
    let (tx, rx) = oneshot::channel();
    door.0
        .try_send(make(tx))
        .map_err(|_| Refusal::Unavailable("the camera is too busy to take this now".into()))?;
    match tokio::time::timeout(ANSWER_WAIT, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Refusal::Unavailable("the camera stopped".into())),
        Err(_) => Err(Refusal::Unavailable(format!(
            "the camera did not answer within {} s",
            ANSWER_WAIT.as_secs()
        ))),
    }
}

/// The session's entity tag: it changes only with an ICE restart, which a session does not do.
fn etag(id: &str) -> String {
    format!("\"{id}\"")
}

/// Whether the request's `Content-Type` is `wanted` (parameters aside).
fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

fn unsupported_type(wanted: &'static str) -> Response {
    let mut r = plain(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &format!("send the body as Content-Type: {wanted}"),
    );
    r.headers_mut()
        .insert("accept-post", HeaderValue::from_static(wanted));
    r
}

/// The response to a refusal, its reason in words.
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Full { limit } => {
            let s = if limit == 1 { "" } else { "s" };
            retry_later(&format!(
                "the camera already serves its limit of {limit} viewer{s}; try again later"
            ))
        }
        Refusal::Unusable(why) => plain(StatusCode::BAD_REQUEST, &why),
        Refusal::NotFound => plain(StatusCode::NOT_FOUND, "no such session (it has ended)"),
        Refusal::Restart => plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this device takes trickled candidates but not ICE restarts: \
             end the session and post a new offer",
        ),
        Refusal::Unavailable(why) => retry_later(&why),
    }
}

fn retry_later(why: &str) -> Response {
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, why);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    r
}

/// A plain-text response, its sentence on a line.
fn plain(status: StatusCode, sentence: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{sentence}\n"),
    )
        .into_response()
}
