//! `GET /snapshot.jpg`: a JPEG of the camera's current picture, for whatever wants a still
//! image rather than a stream (Home Assistant's `still_image_url`, a script, a browser).
//!
//! ```text
//!  GET /snapshot.jpg ─▶ Snapshots::take ─(one at a time)─▶ camera loop ─▶ active or spare worker
//!  GET /snapshot.jpg ─▶   └ joins the picture on its way       ◀── JPEG ───┘
//! ```
//!
//! - Requests go to the camera loop one at a time: whoever asks while a picture is on its way
//!   gets that same picture, so a burst of requests (several dashboards refreshing at once)
//!   costs one encode.
//! - Nobody waits longer than [`LIMIT`]: a camera that does not deliver in time is answered
//!   `504` with a sentence, one that cannot (off, starting, restarting, failing) `503` with
//!   `Retry-After` and a sentence.
//! - While the camera source has failed, the capture carries the placeholder (colour bars, see
//!   the media program's `source_switch`), and that is the picture: the same viewers see.
//!
//! This file turns requests into one request to the camera and answers into HTTP. It must not
//! decide which worker takes the picture (the camera's policy does) nor how (the worker does).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::{mpsc, oneshot};

use crate::camera::SnapshotRequest;
use crate::web::AppState;
use peercam_wire::SnapshotSpec;

/// The longest anyone waits for a picture: long enough for an idle camera to be opened and
/// deliver a frame on a Pi, short enough for a client's own timeout (Home Assistant's is 10 s).
pub const LIMIT: Duration = Duration::from_secs(5);

/// `Retry-After` when the camera cannot take a picture now but will again shortly, seconds.
const RETRY_SOON_SECS: u64 = 2;

/// `Retry-After` when the device runs without a camera, seconds: only a new configuration
/// changes that.
const RETRY_NO_CAMERA_SECS: u64 = 3600;

/// Why there is no picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The device runs without a camera.
    #[error("this device runs without a camera (camera.enabled = false)")]
    NoCamera,
    /// The camera's queue of requests is full (it is wedged).
    #[error("the camera is busy; try again in a moment")]
    Busy,
    /// The camera said why it has no picture.
    #[error("{0}")]
    Unavailable(String),
    /// The camera stopped before it answered.
    #[error("the camera is stopping")]
    Stopped,
    /// No picture within [`LIMIT`].
    #[error("the camera delivered no picture within {} s", .0.as_secs())]
    TimedOut(Duration),
}

impl IntoResponse for SnapshotError {
    fn into_response(self) -> Response {
        let (status, retry) = match self {
            SnapshotError::NoCamera => (StatusCode::SERVICE_UNAVAILABLE, RETRY_NO_CAMERA_SECS),
            SnapshotError::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, RETRY_SOON_SECS),
            _ => (StatusCode::SERVICE_UNAVAILABLE, RETRY_SOON_SECS),
        };
        (
            status,
            [
                (header::RETRY_AFTER, retry.to_string()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            format!("no picture: {self}\n"),
        )
            .into_response()
    }
}

/// What everyone waiting for one picture gets.
type Outcome = Result<Bytes, SnapshotError>;

/// One picture on its way, shared by whoever asks for it.
struct Flight {
    /// When it was asked for: a flight older than [`Snapshots::limit`] is over even if
    /// nobody saw its end (everyone who waited hung up).
    asked: Instant,
    /// Its answer.
    answer: Shared<BoxFuture<'static, Outcome>>,
}

/// The still pictures of one camera, for the HTTP route.
pub struct Snapshots {
    /// Requests into the camera loop.
    requests: mpsc::Sender<SnapshotRequest>,
    /// Size and quality (`[snapshot]` of the configuration).
    spec: SnapshotSpec,
    /// The longest anyone waits.
    limit: Duration,
    /// The picture on its way, if any. Held only to look at or replace, never across an
    /// `.await`.
    flight: Mutex<Option<Flight>>,
}

impl Snapshots {
    /// Pictures of `spec` from the camera loop behind `requests`, each waited for at most
    /// [`LIMIT`].
    pub fn new(requests: mpsc::Sender<SnapshotRequest>, spec: SnapshotSpec) -> Snapshots {
        Snapshots::with_limit(requests, spec, LIMIT)
    }

    /// As [`Snapshots::new`], waiting at most `limit`.
    pub fn with_limit(
        requests: mpsc::Sender<SnapshotRequest>,
        spec: SnapshotSpec,
        limit: Duration,
    ) -> Snapshots {
        Snapshots {
            requests,
            spec,
            limit,
            flight: Mutex::new(None),
        }
    }

    /// The camera's current picture: the one on its way if there is one, else a new one.
    pub async fn take(&self) -> Outcome {
        let answer = {
            let mut flight = self.flight.lock().unwrap_or_else(|e| e.into_inner());
            let on_its_way = flight
                .as_ref()
                .filter(|f| f.answer.peek().is_none() && f.asked.elapsed() < self.limit);
            match on_its_way {
                Some(f) => f.answer.clone(),
                None => {
                    let answer = self.ask().boxed().shared();
                    *flight = Some(Flight {
                        asked: Instant::now(),
                        answer: answer.clone(),
                    });
                    answer
                }
            }
        };
        answer.await
    }

    /// One request to the camera loop and its answer, within the limit.
    fn ask(&self) -> impl Future<Output = Outcome> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.try_send(SnapshotRequest {
            spec: self.spec,
            reply,
        });
        let limit = self.limit;
        async move {
            match sent {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return Err(SnapshotError::Busy),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(SnapshotError::Stopped),
            }
            match tokio::time::timeout(limit, answer).await {
                Ok(Ok(Ok(jpeg))) => Ok(Bytes::from(jpeg)),
                Ok(Ok(Err(why))) => Err(SnapshotError::Unavailable(why)),
                Ok(Err(_)) => Err(SnapshotError::Stopped),
                Err(_) => Err(SnapshotError::TimedOut(limit)),
            }
        }
    }
}

/// `GET /snapshot.jpg`.
pub async fn snapshot_jpg(State(state): State<AppState>) -> Response {
    let outcome = match &state.snapshots {
        Some(snapshots) => snapshots.take().await,
        None => Err(SnapshotError::NoCamera),
    };
    match outcome {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                // The current picture: a cached one is an old one.
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Err(e) => {
            log::info!("/snapshot.jpg: {e}");
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const SPEC: SnapshotSpec = SnapshotSpec {
        size: Some((320, 240)),
        quality: 85,
    };

    /// A camera loop that answers each request after `delay` with a picture numbered by the
    /// request (or never, with `None`); counts the requests.
    fn camera(delay: Option<Duration>) -> (mpsc::Sender<SnapshotRequest>, Arc<AtomicUsize>) {
        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(8);
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(request) = rx.recv().await {
                assert_eq!(request.spec, SPEC);
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                match delay {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        let _ = request.reply.send(Ok(vec![0xff, 0xd8, n as u8]));
                    }
                    None => held.push(request),
                }
            }
        });
        (tx, asked)
    }

    #[tokio::test]
    async fn requests_while_a_picture_is_on_its_way_share_it() {
        let (tx, asked) = camera(Some(Duration::from_millis(100)));
        let snapshots = Arc::new(Snapshots::new(tx, SPEC));
        let takes = (0..5).map(|_| {
            let s = snapshots.clone();
            tokio::spawn(async move { s.take().await })
        });
        let pictures: Vec<Outcome> = futures_util::future::join_all(takes)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one request for five");
        for p in &pictures {
            assert_eq!(p.as_deref(), Ok(&[0xff, 0xd8, 1][..]));
        }
        // Once it has arrived, the next request asks again.
        assert_eq!(snapshots.take().await.as_deref(), Ok(&[0xff, 0xd8, 2][..]));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_camera_that_does_not_answer_times_out_and_the_next_request_asks_again() {
        let (tx, asked) = camera(None);
        let limit = Duration::from_millis(100);
        let snapshots = Snapshots::with_limit(tx, SPEC, limit);
        let started = Instant::now();
        assert_eq!(snapshots.take().await, Err(SnapshotError::TimedOut(limit)));
        assert!(started.elapsed() >= limit);
        assert_eq!(snapshots.take().await, Err(SnapshotError::TimedOut(limit)));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flight_whose_waiters_hung_up_is_not_joined_after_the_limit() {
        let (tx, asked) = camera(None);
        let limit = Duration::from_millis(50);
        let snapshots = Snapshots::with_limit(tx, SPEC, limit);
        // Asked, then given up on before the answer.
        let gave_up = tokio::time::timeout(Duration::from_millis(10), snapshots.take()).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(limit).await;
        assert_eq!(snapshots.take().await, Err(SnapshotError::TimedOut(limit)));
        assert_eq!(asked.load(Ordering::SeqCst), 2, "a fresh request");
    }

    #[tokio::test]
    async fn a_refusal_a_stopped_camera_and_a_full_queue_say_why() {
        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(1);
        let snapshots = Snapshots::new(tx, SPEC);
        let answering = tokio::spawn(async move {
            let first = rx.recv().await.unwrap();
            let _ = first.reply.send(Err("the camera is starting".into()));
            // Dropped unanswered: the camera stopped.
            drop(rx.recv().await.unwrap());
            rx
        });
        assert_eq!(
            snapshots.take().await,
            Err(SnapshotError::Unavailable("the camera is starting".into()))
        );
        assert_eq!(snapshots.take().await, Err(SnapshotError::Stopped));
        let rx = answering.await.unwrap();
        // Nobody reads: the one place fills, then requests are refused at once.
        let filler = Snapshots::with_limit(snapshots.requests.clone(), SPEC, Duration::ZERO);
        let _ = filler.take().await;
        assert_eq!(snapshots.take().await, Err(SnapshotError::Busy));
        drop(rx);
        assert_eq!(snapshots.take().await, Err(SnapshotError::Stopped));
    }

    #[test]
    fn refusals_carry_their_status_retry_after_and_sentence() {
        let cases = [
            (SnapshotError::NoCamera, 503, "camera.enabled = false"),
            (SnapshotError::Busy, 503, "busy"),
            (
                SnapshotError::Unavailable("the camera is starting".into()),
                503,
                "starting",
            ),
            (SnapshotError::TimedOut(LIMIT), 504, "within 5 s"),
        ];
        for (error, status, words) in cases {
            assert!(error.to_string().contains(words), "{error}");
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
    }
}
