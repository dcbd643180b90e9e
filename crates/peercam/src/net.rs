//! The port: accepting connections, telling https from http on each, and serving the HTTP
//! routes (with WebSocket upgrades) over either.
//!
//! Every accepted connection gets TCP_NODELAY (signaling messages are small and
//! latency-bound; Nagle would hold back-to-back messages for tens of milliseconds) and a task
//! of its own. With TLS on, the task peeks at the first byte: a TLS handshake record (0x16)
//! goes through rustls, anything else is plain HTTP on the same port. Peeking and the
//! handshake together get [`HANDSHAKE_TIMEOUT`], so a client that connects and says nothing
//! (or stops halfway through its hello) holds only its own task, and only for that long; the
//! accept loop never waits on a client. HTTP/1.1 then has hyper's header-read timeout.
//!
//! Running out of file descriptors: when `accept` fails with EMFILE/ENFILE the pending
//! connection would sit in the backlog and the accept loop would spin. Instead a spare
//! descriptor is kept open: it is released, the pending connection is accepted and closed at
//! once (the client sees a refusal, not a hang), and the spare is taken back. Existing
//! connections are untouched throughout.
//!
//! Shutdown: when the shutdown future resolves the listener is closed, connections still
//! peeking or in their handshake are dropped (they have sent no request), HTTP connections
//! finish the request in flight and close (within [`SHUTDOWN_DRAIN`]), and [`serve`] returns
//! once they have. Upgraded WebSockets are no longer HTTP connections and are not waited
//! for: their owner closes them.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

/// Time a new connection has to send its first byte and, for https, to complete the TLS
/// handshake. A browser does both in one round trip or two.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time an HTTP connection is given after shutdown to finish the request in flight. No
/// request of this service takes long; what is still going after this is a client that has
/// not finished sending its request (hyper cannot tell it from one being answered).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(1);

/// The accepting socket, with the behaviour above.
pub struct Listener {
    inner: TcpListener,
    spare: Option<File>,
    refused: Arc<AtomicU64>,
}

impl Listener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Listener {
            inner,
            spare: File::open("/dev/null").ok(),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counter of connections refused for lack of descriptors.
    pub fn refused_counter(&self) -> Arc<AtomicU64> {
        self.refused.clone()
    }

    fn out_of_descriptors(e: &io::Error) -> bool {
        // EMFILE (per process) or ENFILE (system-wide).
        matches!(e.raw_os_error(), Some(23 | 24))
    }

    /// The next connection, with TCP_NODELAY set; waits through accept errors (see the
    /// module comment for running out of descriptors).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Failing to set the option only costs latency.
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                Err(e) if Self::out_of_descriptors(&e) => {
                    self.spare = None;
                    // EMFILE comes before the kernel looks at the backlog, so this may wait
                    // for the next connection while members close. If the spare can be taken
                    // back with that connection open, there is room for it after all.
                    if let Ok((stream, addr)) = self.inner.accept().await {
                        self.spare = File::open("/dev/null").ok();
                        if self.spare.is_some() {
                            let _ = stream.set_nodelay(true);
                            return (stream, addr);
                        }
                        let n = self.refused.fetch_add(1, Ordering::Relaxed);
                        if n.is_power_of_two() || n == 0 {
                            log::warn!("out of file descriptors; refusing new connections ({e})");
                        }
                        drop(stream);
                    }
                    self.spare = File::open("/dev/null").ok();
                    if self.spare.is_none() {
                        // Someone else took the descriptor back; avoid a hot loop.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => {
                    // Per-connection failures (reset before accept) are routine.
                    log::debug!("accept failed: {e}");
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::Interrupted
                    ) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Who is on the other end of a request's connection: the routes read it from the request's
/// extensions (the access check counts failures per address; cookies are `Secure` over TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS (https, wss).
    pub tls: bool,
}

/// What a connection speaks, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TLS: https or wss.
    Tls,
    /// Plain HTTP (or anything else, which HTTP then refuses).
    Plain,
}

/// 0x16 is a TLS handshake record, with which every TLS connection opens (its ClientHello);
/// an HTTP request opens with a method's ASCII capital letter.
pub fn sniff(first: u8) -> Protocol {
    if first == 0x16 {
        Protocol::Tls
    } else {
        Protocol::Plain
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, https and http on the same port
/// when `tls` is given (plain HTTP only otherwise); see the module comment for connections,
/// timeouts and shutdown. `handshake_timeout` is [`HANDSHAKE_TIMEOUT`] but for tests.
pub async fn serve(
    mut listener: Listener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    // Tells every connection task that shutdown has come (a dropped sender says the same).
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection task holds a receiver; once all are dropped every task has ended.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (app, acceptor, stop, done) = (
            app.clone(),
            acceptor.clone(),
            stop_rx.clone(),
            done_rx.clone(),
        );
        tokio::spawn(async move {
            connection(stream, peer, app, acceptor, handshake_timeout, stop).await;
            drop(done);
        });
    }
    // New connections are refused from here on.
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// One connection from accept to close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let plain = Peer {
        addr: peer,
        tls: false,
    };
    let Some(acceptor) = acceptor else {
        return http(stream, app, plain, stop).await;
    };
    let opened = tokio::select! {
        opened = tokio::time::timeout(handshake_timeout, open(stream, acceptor)) => opened,
        // Nothing asked yet, so nothing to answer.
        () = stopped(&mut stop) => return,
    };
    match opened {
        Ok(Ok(Opened::Plain(stream))) => http(stream, app, plain, stop).await,
        Ok(Ok(Opened::Tls(stream))) => {
            let tls = Peer {
                addr: peer,
                tls: true,
            };
            http(*stream, app, tls, stop).await
        }
        Ok(Err(e)) => log::debug!("{peer}: {e}"),
        Err(_) => log::debug!("{peer}: no request or handshake within {handshake_timeout:?}"),
    }
}

/// A connection whose protocol is known.
enum Opened {
    Plain(TcpStream),
    /// Boxed: the TLS state is a few hundred bytes.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Peeks at the first byte and, for TLS, does the handshake.
async fn open(stream: TcpStream, acceptor: TlsAcceptor) -> io::Result<Opened> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed without sending anything",
        ));
    }
    match sniff(first[0]) {
        Protocol::Plain => Ok(Opened::Plain(stream)),
        Protocol::Tls => match acceptor.accept(stream).await {
            Ok(tls) => Ok(Opened::Tls(Box::new(tls))),
            Err(e) => Err(io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
        },
    }
}

/// Resolves once shutdown has come.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// HTTP/1.1 with upgrades (the WebSocket at /signaling) over `io`, until the client closes,
/// an upgrade takes the connection over, or shutdown: then the request in flight is answered
/// and the connection closed.
async fn http<I>(io: I, app: Router, peer: Peer, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    // Without a timer hyper applies no header-read timeout (30 s by default) at all.
    builder.timer(TokioTimer::new());
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer);
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_DRAIN, conn).await {
                Ok(result) => result,
                Err(_) => {
                    log::debug!("HTTP connection: no complete request within {SHUTDOWN_DRAIN:?} of shutdown; closed");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        // Resets and timeouts are routine.
        log::debug!("HTTP connection: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_tls_from_http() {
        assert_eq!(sniff(0x16), Protocol::Tls);
        for first in *b"GPHDOCT" {
            assert_eq!(sniff(first), Protocol::Plain, "{}", first as char);
        }
        // TLS alerts, change-cipher-spec and application data never open a connection.
        for first in [0x14, 0x15, 0x17, 0x00, 0xff] {
            assert_eq!(sniff(first), Protocol::Plain);
        }
    }
}
