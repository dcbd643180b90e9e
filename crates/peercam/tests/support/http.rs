//! Plain HTTP/1.0 requests (`GET`s, and others with a body), on a plain or TLS stream: the server closes the connection
//! after the body, so no HTTP client dependency is needed. Every wait is bounded by [`WAIT`].
//! Requests carry the device's access token the way a client would (an `Authorization:
//! Bearer` header) when given one, and whatever other headers a test sets.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// A response: status, header lines and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header block, lines joined by `\r\n`, without the status line.
    pub head: String,
    /// The body as text.
    pub body: String,
    /// The body as sent (a picture's bytes, which text would mangle).
    pub bytes: Vec<u8>,
}

impl Response {
    /// Every value of header `name` (any case).
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// `GET path` on a new plain connection to `addr`, without credentials; the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = request(addr, path, &[]).await;
    (r.status, r.body)
}

/// `GET path` with `Authorization: Bearer token` when a token is given.
pub async fn get_authorized(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let r = request(addr, path, &headers).await;
    (r.status, r.body)
}

/// `GET path` with `headers` on a new plain connection to `addr`.
pub async fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    send(addr, "GET", path, headers, "").await
}

/// `method path` with `headers` and `body` on a new plain connection to `addr`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no connection within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {path}: connecting: {e}"));
    send_over(stream, &addr.to_string(), method, path, headers, body).await
}

/// `GET path` over HTTP/1.0 on an open stream, plain or TLS, with `Authorization: Bearer
/// token` when a token is given; the status and the body.
pub async fn get_over<S>(stream: S, host: &str, path: &str, token: Option<&str>) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let r = request_over(stream, host, path, &headers).await;
    (r.status, r.body)
}

/// `GET path` with `headers` over HTTP/1.0 on an open stream, plain or TLS.
pub async fn request_over<S>(
    stream: S,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send_over(stream, host, "GET", path, headers, "").await
}

/// `method path` with `headers` and `body` (with its `Content-Length` when not empty) over
/// HTTP/1.0 on an open stream, plain or TLS.
pub async fn send_over<S>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let exchange = async {
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no complete response within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header/body separator in {text:?}"));
    let bytes = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |at| raw[at + 4..].to_vec());
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let head = head
        .split_once("\r\n")
        .map_or("", |(_, rest)| rest)
        .to_owned();
    Response {
        status,
        head,
        body: body.to_owned(),
        bytes,
    }
}
