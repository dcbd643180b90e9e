//! The accepting socket: sets TCP_NODELAY on every connection (signaling messages are small
//! and latency-bound; Nagle would hold back-to-back messages for tens of milliseconds) and
//! survives running out of file descriptors.
//!
//! When `accept` fails with EMFILE/ENFILE the pending connection would sit in the backlog and
//! the accept loop would spin. Instead a spare descriptor is kept open: it is released, the
//! pending connection is accepted and closed at once (the client sees a refusal, not a hang),
//! and the spare is taken back. Existing connections are untouched throughout.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A listener for `axum::serve` with the behaviour above.
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
}

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
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

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
