//! The one nextRTC WebSocket client of the tests, over ws or wss, whose every wait is bounded.
//!
//! It reads the server's messages strictly: every frame must be a text frame holding an
//! envelope with all five fields, strings only, so a change of wire shape fails every test
//! rather than slipping through a lenient parser; a binary frame or anything unparseable
//! fails the test at once. It checks every nextRTC `ping` against its own member id and skips
//! it, and checks that every addressed message is addressed to the same member, so tests
//! speak only about the messages they care about.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::WAIT;

/// What the WebSocket library may return.
pub type WsError = tokio_tungstenite::tungstenite::Error;

/// A plain or TLS byte stream under the WebSocket.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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

/// What reading the socket produced, pings aside.
#[derive(Debug)]
pub enum Next {
    /// A message other than `ping`.
    Msg(Msg),
    /// The server closed: its close code if a Close frame came, `None` if the socket just ended.
    Closed(Option<u16>),
}

/// What reading one frame produced.
enum Event {
    /// A message or the end.
    Next(Next),
    /// A nextRTC `ping`, already checked.
    Ping,
}

/// A nextRTC client over a real WebSocket.
pub struct Client {
    /// Names this client in failure messages.
    label: String,
    /// The socket.
    ws: WebSocketStream<Box<dyn Io>>,
    /// Messages read while waiting for a ping, handed out by the next `recv`.
    pending: VecDeque<Msg>,
    /// This member's id, as the server's `ping` said.
    id: Option<String>,
    /// The `to` of the first addressed message; every later one must match it.
    seen_to: Option<String>,
    /// When the handshake completed, to time the first ping.
    connected_at: Instant,
    /// How long after the handshake the first ping came.
    first_ping_after: Option<Duration>,
    /// Set once the server closed; the close code if it sent one.
    closed: Option<Option<u16>>,
}

impl Client {
    /// Performs the WebSocket handshake for `request` (`ws://` or, with `tls`, `wss://`), on
    /// a connection to the host and port its URL names. Headers set on `request` (Origin,
    /// Host) go out as they are.
    pub async fn connect(
        request: Request,
        tls: Option<&TlsConnector>,
        label: &str,
    ) -> Result<Client, WsError> {
        Client::connect_from(request, tls, None, label).await
    }

    /// As [`Client::connect`], from the local address `from` when given (e.g. `127.0.0.2`, a
    /// second client address on loopback).
    pub async fn connect_from(
        request: Request,
        tls: Option<&TlsConnector>,
        from: Option<std::net::IpAddr>,
        label: &str,
    ) -> Result<Client, WsError> {
        let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = request
            .uri()
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let handshake = async {
            let tcp = match from {
                None => TcpStream::connect((host.as_str(), port)).await?,
                Some(local) => {
                    let remote = tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .next()
                        .ok_or_else(|| std::io::Error::other("host has no address"))?;
                    let socket = if local.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.bind(std::net::SocketAddr::new(local, 0))?;
                    socket.connect(remote).await?
                }
            };
            // Browsers disable Nagle on WebSockets; with it on, a second small message waits
            // for the ACK of the first and arrives tens of milliseconds late, which reorders
            // it against other members' messages in ways no browser would.
            tcp.set_nodelay(true)?;
            let stream: Box<dyn Io> = match tls {
                None => Box::new(tcp),
                Some(connector) => {
                    let name = rustls_pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    Box::new(connector.connect(name, tcp).await?)
                }
            };
            let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
            Ok::<_, WsError>(ws)
        };
        let ws = tokio::time::timeout(WAIT, handshake)
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
                Ok(Event::Next(Next::Closed(code))) => {
                    panic!("{}: closed ({code:?}) while waiting for a ping", self.label)
                }
                Ok(Event::Next(Next::Msg(m))) => self.pending.push_back(m),
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
    pub async fn try_send(&mut self, msg: Message) -> Result<(), WsError> {
        match tokio::time::timeout(WAIT, self.ws.send(msg)).await {
            Ok(result) => result,
            Err(_) => panic!("{}: a send stalled for {WAIT:?}", self.label),
        }
    }

    /// The next message other than `ping`, or the end of the connection, however long it
    /// takes. Cancel-safe: a message is never lost when the future is dropped, so it may be
    /// raced against other events (a `select!`); the caller bounds the wait.
    pub async fn next(&mut self) -> Next {
        if let Some(m) = self.pending.pop_front() {
            return Next::Msg(m);
        }
        loop {
            if let Event::Next(next) = self.next_event().await {
                return next;
            }
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
        match tokio::time::timeout(limit, self.next()).await {
            Err(_) => None,
            Ok(Next::Msg(m)) => Some(m),
            Ok(Next::Closed(code)) => panic!(
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
        match tokio::time::timeout(WAIT, self.next()).await {
            Err(_) => panic!("{}: still open after {WAIT:?}", self.label),
            Ok(Next::Msg(m)) => panic!(
                "{}: expected the connection to close, got {m:?}",
                self.label
            ),
            Ok(Next::Closed(code)) => code,
        }
    }

    /// The messages (besides pings) until the server closes the connection, which it must do
    /// within `within`, and the code of the close frame that ended it (`None`: the
    /// connection ended without one).
    pub async fn until_closed(&mut self, within: Duration) -> (Vec<Msg>, Option<u16>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut messages = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Err(_) => panic!(
                    "{}: still open after {within:?}; got {messages:?}",
                    self.label
                ),
                Ok(Next::Msg(m)) => messages.push(m),
                Ok(Next::Closed(code)) => return (messages, code),
            }
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

    /// Reads one frame and checks it. Cancel-safe: everything after the read is synchronous.
    async fn next_event(&mut self) -> Event {
        if let Some(code) = self.closed {
            return Event::Next(Next::Closed(code));
        }
        loop {
            let frame = match self.ws.next().await {
                None | Some(Err(_)) => Err(None),
                Some(Ok(Message::Close(frame))) => Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(frame)) => Ok(frame),
            };
            let frame = match frame {
                Ok(f) => f,
                Err(code) => {
                    self.closed = Some(code);
                    return Event::Next(Next::Closed(code));
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
                return Event::Next(Next::Msg(m));
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
}
