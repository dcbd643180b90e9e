//! Plain `GET`s over HTTP/1.0, on a plain or TLS stream: the server closes the connection
//! after the body, so no HTTP client dependency is needed. Every wait is bounded by [`WAIT`].

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// `GET path` on a new plain connection to `addr`; the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
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
