//! The health check behind the systemd watchdog: the HTTP port must answer a request, and
//! the camera's frames must advance whenever someone watches. Pings `WATCHDOG=1` only while
//! healthy and keeps the status line current.
//!
//! It must not restart or stop anything: withholding the ping is all it does, and systemd
//! decides the rest. It stops as soon as the service is stopping, so no ping follows
//! `STOPPING=1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::access::{Access, Token};
use crate::camera::CameraStats;
use crate::signaling::SignalingServer;
use crate::systemd::{FrameHealth, FrameWatch, Notifier};

/// Health check period when systemd listens but has no watchdog: only the status line is
/// kept current.
const STATUS_PERIOD: Duration = Duration::from_secs(5);

/// Where the health check reaches the HTTP port: the bound address, or loopback when bound
/// to every address.
pub(super) fn probe_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Every half watchdog period: checks health, pings when healthy, keeps the status line
/// current. Runs on the service's runtime, so a runtime that stopped running tasks stops
/// the pings too.
/// What the health check requests its own port with.
pub(super) struct Probe {
    /// The address (see [`probe_address`]).
    pub addr: SocketAddr,
    /// The device's access policy: the probe carries the token like any client.
    pub access: Arc<Access>,
}

pub(super) async fn health_loop(
    notifier: Notifier,
    probe: Probe,
    camera: Option<Arc<CameraStats>>,
    stall: Duration,
    signaling: Arc<SignalingServer>,
    url: String,
    stopping: watch::Receiver<bool>,
) {
    if !notifier.enabled() {
        return;
    }
    let period = notifier.watchdog_period().unwrap_or(STATUS_PERIOD);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut frames = FrameWatch::new(std::time::Instant::now(), stall);
    let mut last_problem: Option<String> = None;
    let mut last_status = String::new();
    loop {
        ticker.tick().await;
        // The probe must answer within the period, or the next ping would be late anyway.
        let token = probe.access.token();
        let mut problem = probe_http(
            probe.addr,
            token.as_ref(),
            period.min(Duration::from_secs(2)),
        )
        .await
        .err()
        .map(|e| format!("HTTP port not answering: {e}"));
        if *stopping.borrow() {
            // The port closed for the shutdown; the service is about to say STOPPING=1.
            return;
        }
        let mut viewers = 0;
        if let Some(stats) = &camera {
            let s = stats.snapshot();
            viewers = s.connected;
            let watched = s.branches > 0;
            if let FrameHealth::Stalled(quiet) =
                frames.observe(std::time::Instant::now(), watched, s.frames)
            {
                problem.get_or_insert(format!(
                    "camera wedged: no frame for {} s with {} viewer(s) attached",
                    quiet.as_secs(),
                    s.branches
                ));
            }
        }
        let status = match &problem {
            None => {
                notifier.watchdog();
                if last_problem.take().is_some() {
                    log::info!("healthy again; watchdog pings resumed");
                }
                format!(
                    "serving {url}; {} connection(s), {viewers} viewer(s)",
                    signaling.connections()
                )
            }
            Some(problem) => {
                if last_problem.as_deref() != Some(problem.as_str()) {
                    log::error!("{problem}; withholding watchdog pings");
                }
                last_problem = Some(problem.clone());
                format!("unhealthy: {problem}")
            }
        };
        if status != last_status {
            notifier.status(&status);
            last_status = status;
        }
    }
}

/// One `GET /api/stats` on the service's own port, with the access token when one is
/// needed: proves the accept loop, the HTTP stack, the access check and the signaling hub's
/// lock all work.
async fn probe_http(
    addr: SocketAddr,
    token: Option<&Token>,
    within: Duration,
) -> Result<(), String> {
    let authorization = token.map_or(String::new(), |t| {
        format!("Authorization: Bearer {}\r\n", t.reveal())
    });
    let request = format!(
        "GET /api/stats HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut status = [0u8; 12];
        stream
            .read_exact(&mut status)
            .await
            .map_err(|e| e.to_string())?;
        if status.starts_with(b"HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!(
                "answered {:?}",
                String::from_utf8_lossy(&status).trim()
            ))
        }
    };
    timeout(within, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {within:?}")))
}

#[cfg(test)]
mod tests {
    use super::super::Device;
    use super::*;
    use crate::config::Config;
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    #[test]
    fn the_probe_reaches_a_wildcard_listener_over_loopback() {
        let any4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_address(any4), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:81".parse().unwrap();
        assert_eq!(probe_address(any6), "[::1]:81".parse().unwrap());
        let one: SocketAddr = "192.0.2.4:80".parse().unwrap();
        assert_eq!(probe_address(one), one);
    }

    #[tokio::test]
    async fn the_probe_tells_a_working_port_from_a_dead_one() {
        let device = Device::new(&Config::default());
        let token = device.access.token();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            device
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        assert_eq!(
            probe_http(addr, token.as_ref(), Duration::from_secs(2)).await,
            Ok(())
        );
        // Without the token the port answers, but 401: not what a healthy probe gets.
        let refused = probe_http(addr, None, Duration::from_secs(2)).await;
        assert!(refused.unwrap_err().contains("401"));
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
        assert!(probe_http(addr, token.as_ref(), Duration::from_secs(2))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_wedged_port_fails_the_probe_in_time() {
        // Accepts (the backlog does) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Instant::now();
        let r = probe_http(addr, None, Duration::from_millis(300)).await;
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
