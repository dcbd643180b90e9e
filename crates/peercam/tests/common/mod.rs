//! Shared by the integration tests: a [`Device`] served on `127.0.0.1:0`, a nextRTC WebSocket
//! client whose every wait is bounded, and a plain HTTP GET for the JSON endpoints.
//!
//! The client reads the server's messages strictly (all five envelope fields, strings only), so
//! a change of wire shape fails every test rather than slipping through a lenient parser. It
//! checks every nextRTC `ping` it sees against its own member id and skips it, so tests speak
//! only about the messages they care about.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use peercam::config::Config;
use peercam::service::Device;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single expected event may take. Generous against a loaded machine, short
/// enough that a broken server fails the test quickly instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(5);

/// A device serving HTTP and signaling on an ephemeral loopback port.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The device, for tests that look inside (hub, camera).
    pub device: Arc<Device>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Builds a device from `config` and serves it.
    pub async fn start(config: &Config) -> Server {
        Server::serve(Device::new(config)).await
    }

    /// Serves an already built device (e.g. one whose camera was started).
    pub async fn serve(device: Device) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let device = Arc::new(device);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = device.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async move {
                    // A dropped sender stops the server as well as an explicit stop.
                    let _ = stopped.await;
                })
                .await
        });
        Server {
            addr,
            device,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The signaling endpoint's URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/signaling", self.addr)
    }

    /// The signaling endpoint as a request, to add headers (Origin, Host) before connecting.
    pub fn ws_request(&self) -> Request {
        self.ws_url()
            .into_client_request()
            .expect("a valid ws:// URL")
    }

    /// Opens a WebSocket to the signaling endpoint; `label` names it in failure messages.
    pub async fn connect(&self, label: &str) -> Client {
        Client::connect(self.ws_request(), label)
            .await
            .unwrap_or_else(|e| panic!("{label}: WebSocket handshake failed: {e}"))
    }

    /// GETs `path` over plain HTTP/1.0; returns the status code and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// The counts `/api/stats` reports.
    pub async fn stats(&self) -> Stats {
        let (status, body) = self.get("/api/stats").await;
        assert_eq!(status, 200, "/api/stats answered {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/stats is not JSON: {e}: {body}"))
    }

    /// Polls `/api/stats` until `ok` holds; the server updates its counts asynchronously after
    /// a socket closes, so a single read could see the moment before.
    pub async fn wait_stats(&self, what: &str, ok: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if ok(&stats) {
                return stats;
            }
            if Instant::now() >= deadline {
                panic!("/api/stats never showed {what}; last: {stats:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until members, conversations and pairs are exactly these.
    pub async fn expect_counts(&self, members: usize, conversations: usize, pairs: usize) -> Stats {
        self.wait_stats(
            &format!("members={members} conversations={conversations} pairs={pairs}"),
            |s| s.members == members && s.conversations == conversations && s.pairs == pairs,
        )
        .await
    }

    /// Resolves the shutdown future and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self
            .task
            .take()
            .expect("the serving task is present until stop");
        match tokio::time::timeout(WAIT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => panic!("the serving task failed: {e}"),
            Err(_) => panic!("the server did not stop within {WAIT:?}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What `/api/stats` reports about signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Connected members.
    pub members: usize,
    /// Live conversations.
    pub conversations: usize,
    /// Pairs negotiating or connected.
    pub pairs: usize,
}

/// A plain `GET` over HTTP/1.0, so the server closes the connection after the body and no
/// HTTP client dependency is needed.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no connection within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: connecting: {e}"));
    get_over(stream, &addr.to_string(), path).await
}

/// `GET path` over HTTP/1.0 on an open stream, plain or TLS; the status and the body.
pub async fn get_over<S>(mut stream: S, host: &str, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let exchange = async {
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete response within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header/body separator in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    (status, body.to_owned())
}

/// One message from the server, read strictly: every field present and a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Msg {
    /// The member the message is from or about; empty for the server's own.
    pub from: String,
    /// The receiver's own member id (empty only on a refusal before it became a member).
    pub to: String,
    /// The camelCase signal name.
    pub signal: String,
    /// Conversation id, SDP, candidate, text or error code, by signal.
    pub content: String,
    /// Extra strings: `type` on `created`, `message` on `error`.
    pub custom: BTreeMap<String, String>,
}

/// What reading the socket produced.
enum Event {
    Msg(Msg),
    /// A nextRTC `ping`, already checked.
    Ping,
    /// The server closed: its close code if a Close frame came, `None` if the socket just ended.
    Closed(Option<u16>),
}

/// A nextRTC client over a real WebSocket.
pub struct Client {
    /// Names this client in failure messages.
    label: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for a ping, handed out by the next `recv`.
    pending: VecDeque<Msg>,
    /// This member's id, as the server's `ping` said.
    id: Option<String>,
    /// The `to` of the first addressed message; every later one must match it.
    seen_to: Option<String>,
    /// When the handshake completed, to time the first ping.
    connected_at: Instant,
    first_ping_after: Option<Duration>,
    /// Set once the server closed; the close code if it sent one.
    closed: Option<Option<u16>>,
}

impl Client {
    /// Performs the WebSocket handshake for `request`.
    pub async fn connect(
        request: Request,
        label: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        // Browsers disable Nagle on WebSockets; with it on, a second small message waits for
        // the ACK of the first and arrives tens of milliseconds late, which reorders it
        // against other members' messages in ways no browser would.
        let handshake = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (ws, _response) = tokio::time::timeout(WAIT, handshake)
            .await
            .unwrap_or_else(|_| panic!("{label}: no WebSocket handshake within {WAIT:?}"))?;
        Ok(Client {
            label: label.to_owned(),
            ws,
            pending: VecDeque::new(),
            id: None,
            seen_to: None,
            connected_at: Instant::now(),
            first_ping_after: None,
            closed: None,
        })
    }

    /// The name used in failure messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This member's id; [`Client::learn_id`] must have run.
    pub fn id(&self) -> &str {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("{}: id not known yet; call learn_id", self.label))
    }

    /// How long after the handshake the first `ping` came, if it came.
    pub fn first_ping_after(&self) -> Option<Duration> {
        self.first_ping_after
    }

    /// Waits for a `ping` (the first comes about a second after connecting) and returns this
    /// member's id from its `to`. Other messages meanwhile are kept for `recv`.
    pub async fn learn_id(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.id.is_none() {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => panic!("{}: no ping within {WAIT:?}", self.label),
                Ok(Event::Closed(code)) => {
                    panic!("{}: closed ({code:?}) while waiting for a ping", self.label)
                }
                Ok(Event::Msg(m)) => self.pending.push_back(m),
                Ok(Event::Ping) => {}
            }
        }
        self.id().to_owned()
    }

    /// Sends an envelope; `to` and `content` go out as `null` when empty, as nextRTC's
    /// JavaScript client sends them.
    pub async fn send(&mut self, signal: &str, to: &str, content: &str, custom: &[(&str, &str)]) {
        let custom: serde_json::Map<String, serde_json::Value> = custom
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        let or_null = |s: &str| {
            if s.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::from(s)
            }
        };
        let envelope = serde_json::json!({
            "from": serde_json::Value::Null,
            "to": or_null(to),
            "signal": signal,
            "content": or_null(content),
            "custom": custom,
        });
        self.send_text(envelope.to_string()).await;
    }

    /// Sends one text frame as is.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let label = self.label.clone();
        self.try_send(Message::text(text.into()))
            .await
            .unwrap_or_else(|e| panic!("{label}: send failed: {e}"));
    }

    /// Sends any frame; errors are returned, for tests that write to a socket the server may
    /// already have closed.
    pub async fn try_send(
        &mut self,
        msg: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        match tokio::time::timeout(WAIT, self.ws.send(msg)).await {
            Ok(result) => result,
            Err(_) => panic!("{}: a send stalled for {WAIT:?}", self.label),
        }
    }

    /// The next message other than `ping`, within [`WAIT`].
    pub async fn recv(&mut self) -> Msg {
        match self.recv_within(WAIT).await {
            Some(m) => m,
            None => panic!("{}: no message within {WAIT:?}", self.label),
        }
    }

    /// The next message other than `ping`, or `None` if none comes within `limit`. Panics if
    /// the connection closes.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Msg> {
        if let Some(m) = self.pending.pop_front() {
            return Some(m);
        }
        match self
            .next_non_ping(tokio::time::Instant::now() + limit)
            .await
        {
            None | Some(Event::Ping) => None,
            Some(Event::Msg(m)) => Some(m),
            Some(Event::Closed(code)) => panic!(
                "{}: connection closed ({code:?}) while waiting for a message",
                self.label
            ),
        }
    }

    /// The next message, which must be `signal`.
    pub async fn recv_signal(&mut self, signal: &str) -> Msg {
        let m = self.recv().await;
        assert_eq!(
            m.signal, signal,
            "{}: expected {signal}, got {m:?}",
            self.label
        );
        m
    }

    /// The next message, which must be `signal` from `from`.
    pub async fn recv_from(&mut self, signal: &str, from: &str) -> Msg {
        let m = self.recv_signal(signal).await;
        assert_eq!(
            m.from, from,
            "{}: {signal} from the wrong member: {m:?}",
            self.label
        );
        m
    }

    /// The next message, which must be `error` with this code and a human-readable sentence.
    pub async fn expect_error(&mut self, code: &str) -> Msg {
        let m = self.recv().await;
        assert!(
            m.signal == "error" && m.content == code,
            "{}: expected error {code}, got {m:?}",
            self.label
        );
        let sentence = m.custom.get("message").map(String::as_str).unwrap_or("");
        assert!(
            !sentence.trim().is_empty(),
            "{}: error {code} without custom.message: {m:?}",
            self.label
        );
        m
    }

    /// Reads for `period` and fails on any message other than `ping`. Keeps answering the
    /// server's WebSocket Pings meanwhile, so a quiet test client still counts as alive.
    pub async fn expect_silence(&mut self, period: Duration) {
        if let Some(m) = self.recv_within(period).await {
            panic!("{}: expected nothing, got {m:?}", self.label);
        }
    }

    /// Waits for the server to close the connection, allowing only `ping`s before; returns
    /// the close code if a Close frame came.
    pub async fn expect_closed(&mut self) -> Option<u16> {
        if let Some(m) = self.pending.pop_front() {
            panic!(
                "{}: expected the connection to close, got {m:?}",
                self.label
            );
        }
        match self.next_non_ping(tokio::time::Instant::now() + WAIT).await {
            None | Some(Event::Ping) => panic!("{}: still open after {WAIT:?}", self.label),
            Some(Event::Msg(m)) => {
                panic!(
                    "{}: expected the connection to close, got {m:?}",
                    self.label
                )
            }
            Some(Event::Closed(code)) => code,
        }
    }

    /// Closes with a close handshake and waits for the server's side of it.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let label = self.label.clone();
        let drained = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        assert!(
            drained.is_ok(),
            "{label}: the server never finished the close handshake"
        );
    }

    /// Drops the TCP connection without a close handshake, as a crashed browser would.
    pub fn abort(self) {
        drop(self);
    }

    async fn next_event(&mut self) -> Event {
        if let Some(code) = self.closed {
            return Event::Closed(code);
        }
        loop {
            let frame = match self.ws.next().await {
                None => Err(None),
                Some(Err(_)) => Err(None),
                Some(Ok(Message::Close(frame))) => Err(Some(frame.map(|f| u16::from(f.code)))),
                Some(Ok(frame)) => Ok(frame),
            };
            let frame = match frame {
                Ok(f) => f,
                Err(code) => {
                    let code = code.flatten();
                    self.closed = Some(code);
                    return Event::Closed(code);
                }
            };
            let text = match frame {
                Message::Text(t) => t,
                Message::Binary(b) => panic!("{}: server sent a binary frame: {b:?}", self.label),
                // WebSocket control frames: tungstenite answers Pings by itself.
                _ => continue,
            };
            let m: Msg = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a nextRTC envelope ({e}): {text}", self.label));
            if !m.to.is_empty() {
                match &self.seen_to {
                    None => self.seen_to = Some(m.to.clone()),
                    Some(to) => assert_eq!(
                        &m.to, to,
                        "{}: a message addressed to another member: {m:?}",
                        self.label
                    ),
                }
            }
            if m.signal != "ping" {
                return Event::Msg(m);
            }
            assert!(
                !m.to.is_empty() && m.from.is_empty() && m.content.is_empty(),
                "{}: a ping must carry only the receiver's id in `to`: {m:?}",
                self.label
            );
            if self.id.is_none() {
                self.id = Some(m.to.clone());
                self.first_ping_after = Some(self.connected_at.elapsed());
            }
            return Event::Ping;
        }
    }

    /// The next event other than a ping, until `deadline`.
    async fn next_non_ping(&mut self, deadline: tokio::time::Instant) -> Option<Event> {
        loop {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return None,
                Ok(Event::Ping) => continue,
                Ok(event) => return Some(event),
            }
        }
    }
}

/// A configuration with the given tweaks; tests state only the limits they exercise.
pub fn config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    tweak(&mut config);
    config
}
