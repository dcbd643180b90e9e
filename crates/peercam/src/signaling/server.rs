//! The WebSocket transport: one task per connection that admits it (Origin, connection cap),
//! reads frames under a size and rate limit, feeds them to the [`Hub`], writes the member's
//! bounded queue back out, sends nextRTC `ping`s, and notices a silently dead peer. Once many
//! connections have closed, it has their freed memory handed back to the system
//! ([`TrimPolicy`]).
//!
//! A connection admitted with the access token ([`Admission::Granted`]) ends, with `error
//! UNAUTHORIZED` and close 1008, when the token changes; one refused by the access check
//! gets its `error` and the close at once.
//!
//! It never interprets a message beyond parsing it; every rule lives in the core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures_util::SinkExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use super::hub::{Hub, MemberSink, Overflow};
use super::limits::{origin_allowed, Limits, Liveness, RateLimiter, Tick, Verdict};
use super::protocol::{ErrorCode, Incoming, Outgoing};
use crate::memory::{release_free_memory, TrimPolicy};

/// The signaling endpoint: hub, limits and the live connection count.
pub struct SignalingServer {
    hub: Arc<Hub>,
    limits: Limits,
    allowed_origins: Vec<String>,
    connections: AtomicUsize,
    /// Whether the task that releases the memory of closed connections has started.
    trimming: AtomicBool,
}

/// What the access check said of a WebSocket upgrade (see `crate::gate`).
#[derive(Debug, Clone)]
pub enum Admission {
    /// No token is needed.
    Open,
    /// Admitted with the token; the receiver changes when the token does, and the connection
    /// then ends.
    Granted(Option<watch::Receiver<u64>>),
    /// Refused: this error, then close 1008.
    Refused(ErrorCode, String),
}

/// Close codes (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TRY_LATER: u16 = 1013;

/// The longest a connection the hub has let go waits to write its close frame.
const GOING_AWAY_WAIT: Duration = Duration::from_secs(1);

/// How often the connection count is shown to the [`TrimPolicy`].
const TRIM_CHECK: Duration = Duration::from_secs(1);

/// Keeps the connection count right however a connection task ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serializes for one WebSocket member and queues the text.
struct WsSink(mpsc::Sender<Utf8Bytes>);

impl MemberSink for WsSink {
    fn deliver(&self, to: &str, msg: &Outgoing) -> Result<(), Overflow> {
        self.0
            .try_send(Utf8Bytes::from(msg.to_json(to)))
            .map_err(|_| Overflow)
    }
}

impl SignalingServer {
    /// A server over `hub`.
    pub fn new(hub: Arc<Hub>, limits: Limits, allowed_origins: Vec<String>) -> Arc<Self> {
        Arc::new(SignalingServer {
            hub,
            limits,
            allowed_origins,
            connections: AtomicUsize::new(0),
            trimming: AtomicBool::new(false),
        })
    }

    /// The hub behind this endpoint.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Answers an upgrade request on `/signaling`, as the access check has `admission`.
    pub fn upgrade(
        self: Arc<Self>,
        ws: WebSocketUpgrade,
        origin: Option<&str>,
        host: Option<&str>,
        admission: Admission,
    ) -> axum::response::Response {
        let mut sessions = None;
        let refusal = if !origin_allowed(origin, host, &self.allowed_origins) {
            log::info!("refusing WebSocket from origin {origin:?}");
            Some((
                ErrorCode::ForbiddenOrigin,
                format!("origin {} may not use this camera", origin.unwrap_or("")),
                CLOSE_POLICY,
            ))
        } else {
            match admission {
                Admission::Open => None,
                Admission::Granted(receiver) => {
                    sessions = receiver;
                    None
                }
                Admission::Refused(code, message) => Some((code, message, CLOSE_POLICY)),
            }
        };
        let max = self.limits.max_message_bytes;
        ws.read_buffer_size(2048)
            .write_buffer_size(0)
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| async move {
                if let Some((code, message, close)) = refusal {
                    refuse(socket, code, message, close).await;
                } else {
                    self.serve(socket, sessions).await;
                }
            })
    }

    async fn serve(self: Arc<Self>, socket: WebSocket, sessions: Option<watch::Receiver<u64>>) {
        if !self.trimming.swap(true, Ordering::Relaxed) {
            tokio::spawn(release_after_departures(Arc::downgrade(&self)));
        }
        let count = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let _slot = Slot(&self.connections);
        if count > self.limits.max_connections {
            log::warn!("connection cap {} reached", self.limits.max_connections);
            let limit = self.limits.max_connections;
            let s = if limit == 1 { "" } else { "s" };
            let msg = format!("the camera is serving its limit of {limit} connection{s}");
            refuse(socket, ErrorCode::ServerBusy, msg, CLOSE_TRY_LATER).await;
            return;
        }
        // Bounded so one slow reader can only ever hold `send_queue` messages; past that the
        // hub drops it rather than let memory grow.
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        let id = self.hub.connect(Arc::new(WsSink(tx)));
        log::debug!(member = id.as_str(); "connected");
        let mut conn = Connection {
            server: &self,
            id: &id,
            socket,
            rx,
            sessions,
        };
        let reason = conn.run().await;
        log::debug!(member = id.as_str(); "disconnected: {reason}");
        self.hub.disconnect(&id);
    }
}

/// For as long as the server lives: hands the memory of closed connections back to the
/// system when the [`TrimPolicy`] says enough have gone.
async fn release_after_departures(server: Weak<SignalingServer>) {
    let mut policy = TrimPolicy::new();
    let mut check = tokio::time::interval(TRIM_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        check.tick().await;
        let Some(connections) = server.upgrade().map(|s| s.connections()) else {
            return;
        };
        if policy.due(connections, std::time::Instant::now()) {
            // malloc_trim holds the allocator for milliseconds: not on an async thread.
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

/// Sends one `error` and closes.
async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String, close: u16) {
    let text = Outgoing::error(code, message.clone()).to_json("");
    let _ = timeout(Duration::from_secs(2), async {
        socket.send(Message::Text(text.into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close,
                reason: Utf8Bytes::from(code.as_str()),
            })))
            .await
    })
    .await;
}

struct Connection<'a> {
    server: &'a SignalingServer,
    id: &'a str,
    socket: WebSocket,
    rx: mpsc::Receiver<Utf8Bytes>,
    /// Changes when the access token does (admitted with a token only).
    sessions: Option<watch::Receiver<u64>>,
}

/// Resolves when the access token changes; never without a token (or once the device is
/// gone, when the connection ends some other way).
async fn token_changed(sessions: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = sessions {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Why a connection ended.
type Reason = &'static str;

impl Connection<'_> {
    async fn run(&mut self) -> Reason {
        let limits = &self.server.limits;
        let mut ping =
            tokio::time::interval_at(Instant::now() + limits.first_ping, limits.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = Liveness::new(
            std::time::Instant::now(),
            limits.keepalive_after,
            limits.ping_interval,
            limits.idle_timeout,
        );
        let mut limiter = RateLimiter::new(
            limits.rate_per_sec,
            limits.rate_burst,
            std::time::Instant::now(),
        );
        loop {
            tokio::select! {
                out = self.rx.recv() => {
                    let Some(first) = out else {
                        // The service is stopping, or the member was dropped (too slow).
                        self.going_away().await;
                        return "dropped by the hub";
                    };
                    if let Err(r) = self.flush_queue(first).await {
                        return r;
                    }
                }
                frame = self.socket.recv() => {
                    let msg = match frame {
                        None => return "closed",
                        Some(Err(e)) => return self.read_error(e).await,
                        Some(Ok(m)) => m,
                    };
                    liveness.heard(std::time::Instant::now());
                    if let Err(r) = self.on_frame(msg, &mut limiter).await {
                        return r;
                    }
                }
                () = token_changed(&mut self.sessions) => {
                    let _ = self
                        .reply_error(
                            ErrorCode::Unauthorized,
                            "This camera's access token has changed: open the new link (run \
                             `peercam token` on the device, or look in its journal)"
                                .into(),
                        )
                        .await;
                    self.close(CLOSE_POLICY, ErrorCode::Unauthorized).await;
                    return "access token changed";
                }
                _ = ping.tick() => {
                    let Tick::Ping { probe } = liveness.tick(std::time::Instant::now()) else {
                        return "peer silent; taken for dead";
                    };
                    let text = Outgoing::Ping.to_json(self.id);
                    if let Err(r) = self.write(Message::Text(text.into())).await {
                        return r;
                    }
                    if probe {
                        if let Err(r) = self.write(Message::Ping(Default::default())).await {
                            return r;
                        }
                    }
                }
            }
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn flush_queue(&mut self, first: Utf8Bytes) -> Result<(), Reason> {
        let limit = self.server.limits.write_timeout;
        let rx = &mut self.rx;
        let socket = &mut self.socket;
        let res = timeout(limit, async {
            socket.feed(Message::Text(first)).await?;
            while let Ok(next) = rx.try_recv() {
                socket.feed(Message::Text(next)).await?;
            }
            socket.flush().await
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("write failed"),
            Err(_) => Err("write stalled"),
        }
    }

    async fn write(&mut self, msg: Message) -> Result<(), Reason> {
        match timeout(self.server.limits.write_timeout, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("write failed"),
            Err(_) => Err("write stalled"),
        }
    }

    async fn reply_error(&mut self, code: ErrorCode, message: String) -> Result<(), Reason> {
        let text = Outgoing::error(code, message).to_json(self.id);
        self.write(Message::Text(text.into())).await
    }

    async fn close(&mut self, code: u16, reason: ErrorCode) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.as_str()),
        };
        let _ = self.write(Message::Close(Some(frame))).await;
    }

    /// Ends the connection with a close frame (1001, going away), waiting for it to be written
    /// [`GOING_AWAY_WAIT`] at most: a member dropped for being too slow may not take it.
    async fn going_away(&mut self) {
        let frame = CloseFrame {
            code: CLOSE_GOING_AWAY,
            reason: Utf8Bytes::from_static("going away"),
        };
        let _ = timeout(
            GOING_AWAY_WAIT,
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
    }

    async fn read_error(&mut self, e: axum::Error) -> Reason {
        let too_big = e
            .into_inner()
            .downcast_ref::<tungstenite::Error>()
            .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
        if too_big {
            let max = self.server.limits.max_message_bytes;
            let _ = self
                .reply_error(
                    ErrorCode::MessageTooLarge,
                    format!("messages are limited to {max} bytes"),
                )
                .await;
            self.close(CLOSE_TOO_BIG, ErrorCode::MessageTooLarge).await;
            return "message too large";
        }
        "read failed"
    }

    async fn on_frame(&mut self, msg: Message, limiter: &mut RateLimiter) -> Result<(), Reason> {
        let counted = matches!(msg, Message::Text(_) | Message::Binary(_));
        if counted {
            match limiter.check(std::time::Instant::now(), self.server.limits.max_strikes) {
                Verdict::Allow => {}
                Verdict::Refuse { first } => {
                    if first {
                        let wait = limiter.wait_time();
                        self.reply_error(
                            ErrorCode::RateLimited,
                            format!("too many messages; slow down (next in {wait:?})"),
                        )
                        .await?;
                    }
                    return Ok(());
                }
                Verdict::Disconnect => {
                    self.reply_error(
                        ErrorCode::RateLimited,
                        "still flooding after repeated warnings; closing".into(),
                    )
                    .await?;
                    self.close(CLOSE_POLICY, ErrorCode::RateLimited).await;
                    return Err("rate limited repeatedly");
                }
            }
        }
        match msg {
            Message::Text(text) => match Incoming::parse(&text) {
                Ok(incoming) => {
                    self.server.hub.handle(self.id, incoming);
                    Ok(())
                }
                Err(e) => self.reply_error(e.code, e.message).await,
            },
            Message::Binary(_) => {
                self.reply_error(
                    ErrorCode::BadMessage,
                    "binary frames are not part of the protocol; send JSON text".into(),
                )
                .await
            }
            // tungstenite answers the close handshake itself.
            Message::Close(_) => Err("closed by peer"),
            // Pongs are answered by tungstenite; either way the peer is alive.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }
}
