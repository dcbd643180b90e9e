//! A WHIP endpoint for the device to publish to, on `127.0.0.1:0` over real HTTP, whose
//! sessions are receiving GStreamer `webrtcbin`s ([`Viewer`]s that decode and count frames):
//! the device's offer is answered by a real WebRTC peer, as a media server's would be.
//!
//! ```text
//! POST /whip (application/sdp, Bearer token) ─▶ per the script: a status and a body, an
//!                                               unusable answer, a redirect to /whip/other,
//!                                               or a Viewer's answer with its candidates
//!                                               gathered; Location /whip/session/N (relative)
//! DELETE /whip/session/N ─────────────────────▶ the session's Viewer stops; recorded
//! ```
//!
//! It records every request (what came, when, with which headers); what a test expects of the
//! device is the test's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use tokio::task::JoinHandle;

use super::gst_viewer::{Viewer, ViewerEvent};

/// How a `POST` is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This status, with this body.
    Refuse(u16, &'static str),
    /// `201` with an answer the device cannot use (its video declined).
    Unusable,
    /// `307` to `/whip/other`, which answers the next `POST` in the script.
    Redirect,
    /// `201` with a [`Viewer`]'s answer.
    Serve,
    /// `201` with a [`Viewer`]'s answer, but no candidate on either side: the connection
    /// never comes up (a media server whose ports a firewall closes).
    Unreachable,
}

/// A request as it came.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST` or `DELETE`.
    pub method: String,
    /// Its path.
    pub path: String,
    /// When it came.
    pub at: Instant,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its `Content-Type` header.
    pub content_type: Option<String>,
    /// Its body (the offer).
    pub body: String,
}

/// What the endpoint holds.
#[derive(Default)]
struct Inner {
    /// How each `POST` in turn is answered; [`Reply::Serve`] once the script is used up.
    script: Vec<Reply>,
    /// Requests so far.
    seen: Vec<Seen>,
    /// The sessions served, by number.
    sessions: HashMap<u64, Arc<Viewer>>,
    /// Sessions made (numbers them).
    made: u64,
}

/// The endpoint.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    inner: Arc<Mutex<Inner>>,
    /// The server.
    task: JoinHandle<()>,
    /// It answers https.
    tls: bool,
}

/// An answer that parses but declines the video: the device cannot use it.
const UNUSABLE: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE video0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
    a=mid:video0\r\na=inactive\r\n";

impl Endpoint {
    /// Starts the endpoint over plain HTTP: `POST`s are answered by `script` in turn, then
    /// served.
    pub async fn start(script: Vec<Reply>) -> Endpoint {
        Endpoint::start_with(script, None).await
    }

    /// As [`Endpoint::start`], over https (and http) with `tls`.
    pub async fn start_tls(script: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> Endpoint {
        Endpoint::start_with(script, Some(tls)).await
    }

    async fn start_with(script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> Endpoint {
        let inner = Arc::new(Mutex::new(Inner {
            script,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/whip", post(offer))
            .route("/whip/other", post(offer))
            .route("/whip/session/{n}", delete(end))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("address");
        let tls_on = tls.is_some();
        let task = tokio::spawn(async move {
            let listener = peercam::net::Listener::new(listener);
            let stop = std::future::pending();
            let _ = peercam::net::serve(listener, app, tls, peercam::net::HANDSHAKE_TIMEOUT, stop)
                .await;
        });
        Endpoint {
            addr,
            inner,
            task,
            tls: tls_on,
        }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/whip", self.addr)
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// The newest session still open, and its number.
    pub fn session(&self) -> Option<(u64, Arc<Viewer>)> {
        let inner = self.inner.lock().unwrap();
        inner
            .sessions
            .iter()
            .max_by_key(|(n, _)| **n)
            .map(|(n, v)| (*n, v.clone()))
    }

    /// Waits (up to `limit`) until `ok` holds of the requests; they are returned.
    pub async fn wait(
        &self,
        limit: Duration,
        what: &str,
        ok: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.seen();
            if ok(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; requests: {:#?}",
                seen.iter()
                    .map(|s| format!("{} {}", s.method, s.path))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(
    inner: &Arc<Mutex<Inner>>,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: String,
) {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    inner.lock().unwrap().seen.push(Seen {
        method: method.into(),
        path,
        at: Instant::now(),
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        body,
    });
}

async fn offer(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let offer = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_owned();
    record(&inner, "POST", path.clone(), &headers, offer.clone());
    let reply = {
        let mut inner = inner.lock().unwrap();
        if inner.script.is_empty() {
            Reply::Serve
        } else {
            inner.script.remove(0)
        }
    };
    let answer = match reply {
        Reply::Refuse(status, body) => {
            let status = StatusCode::from_u16(status).expect("a status");
            return (status, body).into_response();
        }
        Reply::Unusable => UNUSABLE.to_owned(),
        Reply::Redirect => {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, "/whip/other")],
            )
                .into_response()
        }
        Reply::Serve | Reply::Unreachable => {
            let unreachable = reply == Reply::Unreachable;
            let offer = if unreachable {
                without_candidates(&offer)
            } else {
                offer
            };
            let viewer = Viewer::new();
            let answer = answer_with_candidates(viewer, &offer).await.map(|(v, a)| {
                (
                    v,
                    if unreachable {
                        without_candidates(&a)
                    } else {
                        a
                    },
                )
            });
            let (viewer, answer) = match answer {
                Some(a) => a,
                None => return (StatusCode::INTERNAL_SERVER_ERROR, "no answer").into_response(),
            };
            let mut inner = inner.lock().unwrap();
            inner.made += 1;
            let n = inner.made;
            inner.sessions.insert(n, Arc::new(viewer));
            return created(&path, n, answer);
        }
    };
    let n = {
        let mut inner = inner.lock().unwrap();
        inner.made += 1;
        inner.made
    };
    created(&path, n, answer)
}

/// `201` with `answer` and the session's URL, relative to the request's `path`.
fn created(path: &str, n: u64, answer: String) -> Response {
    let location = if path == "/whip" {
        format!("whip/session/{n}")
    } else {
        format!("session/{n}")
    };
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            // Relative, to be read against the URL that answered.
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

/// `sdp` without its candidates.
fn without_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
        .collect()
}

/// The viewer's answer to `offer`, with the candidates it gathered within a moment.
async fn answer_with_candidates(mut viewer: Viewer, offer: &str) -> Option<(Viewer, String)> {
    viewer.on_offer(offer);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut answer = None;
    let mut candidates = Vec::new();
    loop {
        // Host candidates on loopback take milliseconds once the answer is set.
        let wait = if answer.is_some() {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, viewer.events.recv()).await {
            Ok(Some(ViewerEvent::Answer(sdp))) => answer = Some(sdp),
            Ok(Some(ViewerEvent::Candidate(_, c))) => candidates.push(c),
            Ok(Some(ViewerEvent::Offer(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let mut answer = answer?;
    for c in candidates {
        answer.push_str(&format!("a={c}\r\n"));
    }
    Some((viewer, answer))
}

async fn end(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(n): Path<u64>,
    headers: HeaderMap,
) -> StatusCode {
    record(
        &inner,
        "DELETE",
        format!("/whip/session/{n}"),
        &headers,
        String::new(),
    );
    let viewer = inner.lock().unwrap().sessions.remove(&n);
    match viewer {
        Some(viewer) => {
            viewer.stop();
            StatusCode::OK
        }
        None => StatusCode::NOT_FOUND,
    }
}
