//! Start-up order, the running service and its shutdown.
//!
//! [`Device`] is the service's parts: hub, HTTP routes, camera. [`Device::serve`] takes the
//! listener and the shutdown future from its caller, so tests bind `127.0.0.1:0` and stop it
//! when they like. [`run`] is the whole appliance around it:
//!
//! 1. signal handlers, then bind the port, then the TLS certificate (read, or made on the
//!    first start; its fingerprint is advertised);
//! 2. start the camera and the mDNS advertiser side by side (both take a moment);
//! 3. `READY=1`: the port is bound, the camera's conversation exists, the device is
//!    registered with the mDNS responder;
//! 4. serve; every half watchdog period check health and ping `WATCHDOG=1` only if healthy
//!    (the HTTP port answers, and frames advance whenever someone watches);
//! 5. on SIGTERM or SIGINT: `STOPPING=1`, stop accepting, end the camera's broadcast (viewers
//!    get `left` then `end`), close every member's socket once its queue is written (the
//!    others take it as `left`), send the mDNS goodbye, exit. All of it within
//!    [`SHUTDOWN_LIMIT`]; a second signal exits at once.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

use crate::camera::CameraError;
use crate::camera::{self, CameraHandle, CameraSettings, CameraStats};
use crate::config::Config;
use crate::discovery::{Advertisement, Advertiser};
use crate::net::{self, Listener};
use crate::signaling::{Hub, SignalingServer};
use crate::systemd::{FrameHealth, FrameWatch, Notifier};
use crate::tls::{Identity, TlsError};
use crate::web::{self, AppState, DeviceInfo};
use peercam_wire::Capture;
use peercam_wire::IceSettings;

/// From the first signal to the process's exit, at most.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(2);

/// Time given to HTTP requests in flight to finish once accepting has stopped; short, as no
/// request of this service takes long (WebSockets are handled apart, below).
const HTTP_DRAIN: Duration = Duration::from_millis(250);

/// Time given to the mDNS goodbye (sent, then repeated by the responder ~120 ms later).
const GOODBYE_TIME: Duration = Duration::from_millis(600);

/// Margin kept between the end of the graceful steps and [`SHUTDOWN_LIMIT`], for the
/// runtime's own teardown.
const EXIT_MARGIN: Duration = Duration::from_millis(250);

/// Health check period when systemd listens but has no watchdog: only the status line is
/// kept current.
const STATUS_PERIOD: Duration = Duration::from_secs(5);

/// The device's long-lived parts.
pub struct Device {
    /// Signaling state shared by every member.
    pub hub: Arc<Hub>,
    /// The WebSocket endpoint.
    pub signaling: Arc<SignalingServer>,
    /// What `/api/info` reports.
    pub info: Arc<DeviceInfo>,
    /// The camera peer, once started.
    pub camera: Option<CameraHandle>,
    /// TLS for https and wss on the same port, once enabled.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Device {
    /// Builds the device from a configuration.
    pub fn new(config: &Config) -> Device {
        let hub = Hub::new(config.signaling_settings());
        let signaling = SignalingServer::new(
            hub.clone(),
            config.transport_limits(),
            config.server.allowed_origins.clone(),
        );
        let info = Arc::new(DeviceInfo {
            name: config.server.name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            conversation: config.camera.conversation.clone(),
            signaling: "/signaling",
            tls: false,
            fingerprint: None,
        });
        Device {
            hub,
            signaling,
            info,
            camera: None,
            tls: None,
        }
    }

    /// Makes the port answer https and wss with `identity`, besides plain http.
    pub fn enable_tls(&mut self, identity: &Identity) {
        self.tls = Some(identity.server_config());
        self.info = Arc::new(DeviceInfo {
            tls: true,
            fingerprint: Some(identity.fingerprint().to_owned()),
            ..(*self.info).clone()
        });
    }

    /// Starts the camera peer: its media workers run `program worker` (the media program,
    /// `peercam-media`) with `capture` (a description ending in H.264, or the configuration's
    /// choice). Blocks until the first worker is ready: choosing may probe the encoders.
    pub fn start_camera(
        &mut self,
        config: &Config,
        capture: Capture,
        program: &Path,
    ) -> Result<(), CameraError> {
        let c = &config.camera;
        let settings = CameraSettings {
            conversation: c.conversation.clone(),
            max_viewers: c.max_viewers,
            capture,
            ice: IceSettings {
                addresses: c.ice_addresses.clone(),
                stun: c.stun.clone(),
            },
            negotiation_timeout: Duration::from_secs(c.negotiation_timeout_secs),
            log_level: config.log.level.clone(),
            program: program.to_owned(),
            stream_profile: None,
        };
        let camera = camera::start(self.hub.clone(), settings)?;
        if let Some(chosen) = camera.chosen() {
            log::info!(
                conversation = config.camera.conversation.as_str(),
                source = chosen.source.as_str(),
                encoder = chosen.encoder.as_str();
                "camera: {}", chosen.summary
            );
        }
        self.camera = Some(camera);
        Ok(())
    }

    /// Serves HTTP and signaling on `listener` (https and wss as well once
    /// [`Device::enable_tls`] ran) until `shutdown` resolves; then stops accepting and
    /// returns once the HTTP requests in flight are answered. WebSocket connections outlive
    /// it: [`Device::shutdown`] closes them.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = web::router(AppState {
            signaling: self.signaling.clone(),
            info: self.info.clone(),
            camera: self.camera.as_ref().map(|c| c.stats().clone()),
            primer: self.camera.as_ref().map(|c| c.primer()),
        });
        net::serve(
            Listener::new(listener),
            app,
            self.tls.clone(),
            net::HANDSHAKE_TIMEOUT,
            shutdown,
        )
        .await
    }

    /// Ends the camera's broadcast (its viewers get `left` then `end`) and closes every
    /// member that was in a conversation once its queue is written, so each one's last
    /// messages go out and the others hear `left`. Waits for those sockets until `within`
    /// has passed.
    pub async fn shutdown(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        // Taken before the camera leaves: its viewers are in no conversation afterwards.
        let members: Vec<String> = self.hub.with_core(|core| {
            core.conversation_ids()
                .flat_map(|conv| core.members_of(conv).unwrap_or_default().iter().cloned())
                .collect()
        });
        if let Some(camera) = self.camera.take() {
            // Stopping joins the camera thread, which sets its pipelines to Null.
            let stopping = tokio::task::spawn_blocking(move || camera.stop());
            if timeout_at(deadline, stopping).await.is_err() {
                log::warn!("the camera did not stop in time");
            }
        }
        // Removing a member drops its queue's sender: its connection writes what is queued
        // (ending with `left`/`end`), finds the queue closed, and closes the socket.
        for member in &members {
            self.hub.disconnect(member);
        }
        // Members never in a conversation hold no messages worth waiting for; every other
        // connection is one just disconnected, still writing.
        while self.signaling.connections() > self.hub.stats().members {
            if Instant::now() >= deadline {
                log::warn!(
                    "{} connections still writing at shutdown",
                    self.signaling.connections()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The service could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The HTTP port could not be bound.
    #[error("binding {addr}: {error}")]
    Bind {
        /// `server.listen`.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(TlsError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The camera did not start.
    #[error("starting the camera: {0}")]
    Camera(CameraError),
    /// A start-up task died.
    #[error("start-up: {0}")]
    Task(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

// Each message carries its cause's text, so none is chained as a `source` as well: a report
// that prints the chain (`{:#}`) would say it twice.
impl From<CameraError> for ServiceError {
    fn from(e: CameraError) -> ServiceError {
        ServiceError::Camera(e)
    }
}

/// Runs the appliance until SIGTERM or SIGINT: see the module comment for the order of
/// things. With `camera.enabled = false` it serves signaling only.
pub async fn run(config: Config) -> Result<(), ServiceError> {
    let started = std::time::Instant::now();
    let notifier = Notifier::from_env();
    notifier.status("starting");
    let (stop_tx, stop_rx) = watch::channel(false);
    // Installed first, so a SIGTERM during start-up is a clean stop and not a kill.
    spawn_signal_handler(stop_tx)?;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|error| ServiceError::Bind {
            addr: config.server.listen,
            error,
        })?;
    let local = listener.local_addr().map_err(|error| ServiceError::Bind {
        addr: config.server.listen,
        error,
    })?;

    let tls = match tls_settings(&config) {
        Some(settings) => Some(
            tokio::task::spawn_blocking(move || Identity::load(&settings))
                .await
                .map_err(|e| ServiceError::Task(e.to_string()))?
                .map_err(ServiceError::Tls)?,
        ),
        None => None,
    };
    let fingerprint = tls.as_ref().map(|t| t.fingerprint().to_owned());

    let ad = match advertisement(&config, local, fingerprint.as_deref()) {
        Some(ad) if config.discovery.enabled => Some(ad),
        Some(_) => None,
        None => {
            if config.discovery.enabled {
                log::info!("not advertised on the LAN: listening on loopback only");
            }
            None
        }
    };
    let advertising = ad.map(|ad| tokio::task::spawn_blocking(move || Advertiser::start(ad)));
    let device = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || build_device(&config, tls.as_ref()))
    };
    let mut device = device
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;
    let advertiser = match advertising {
        None => None,
        Some(task) => match task.await {
            Ok(Ok(advertiser)) => Some(advertiser),
            Ok(Err(e)) => {
                // The camera still works by address; a missing LAN name is not worth a
                // restart loop.
                log::error!("not advertised on the LAN: {e}");
                None
            }
            Err(e) => {
                log::error!("not advertised on the LAN: {e}");
                None
            }
        },
    };

    let url = format!("http://{local}/");
    let advertised = match &advertiser {
        Some(a) => format!(", advertised as {:?} on {}", config.server.name, a.host()),
        None => String::new(),
    };
    // A signal during start-up: go straight to stopping, never having been ready.
    if !*stop_rx.borrow() {
        notifier.ready(&format!("serving {url}{advertised}"));
    }
    log::info!(
        conversation = config.camera.conversation.as_str(),
        listen:% = local,
        startup_ms = started.elapsed().as_millis() as u64;
        "peercam {} ready: {url} (signaling at /signaling){advertised}",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(fingerprint) = &fingerprint {
        log::info!("https on {local}, certificate SHA-256 {fingerprint}");
    }

    let health = tokio::spawn(health_loop(
        notifier.clone(),
        probe_address(local),
        device.camera.as_ref().map(|c| c.stats().clone()),
        Duration::from_secs(config.camera.stall_timeout_secs),
        device.signaling.clone(),
        url.clone(),
        stop_rx.clone(),
    ));

    // Stopping: no ping may follow STOPPING=1, so the health loop ends first.
    let begin_stopping = || {
        health.abort();
        notifier.stopping("stopping");
        log::info!("stopping");
        Instant::now()
    };
    let mut shutdown_started = None;
    let served = {
        let mut stop = stop_rx.clone();
        let mut serving = std::pin::pin!(device.serve(listener, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
        let mut stop = stop_rx.clone();
        tokio::select! {
            served = &mut serving => served,
            _ = stop.wait_for(|stop| *stop) => {
                shutdown_started = Some(begin_stopping());
                // Accepting stopped with the signal; requests in flight get a moment.
                timeout(HTTP_DRAIN, serving).await.unwrap_or(Ok(()))
            }
        }
    };
    // Serving ended on its own (an error): stop all the same.
    let shutdown_started = shutdown_started.unwrap_or_else(begin_stopping);

    let goodbye = advertiser
        .map(|advertiser| tokio::task::spawn_blocking(move || advertiser.shutdown(GOODBYE_TIME)));
    // The goodbye and the device's shutdown run side by side, to one deadline.
    let deadline = shutdown_started + SHUTDOWN_LIMIT.saturating_sub(EXIT_MARGIN);
    device
        .shutdown(deadline.saturating_duration_since(Instant::now()))
        .await;
    if let Some(goodbye) = goodbye {
        if timeout_at(deadline, goodbye).await.is_err() {
            log::warn!("mDNS goodbye did not finish in time");
        }
    }
    log::info!("stopped in {} ms", shutdown_started.elapsed().as_millis());
    served.map_err(ServiceError::Serve)
}

/// Builds the device and starts its camera. Blocking: the encoder probe may run a
/// two-frame trial and the camera prepares its DTLS certificate.
fn build_device(config: &Config, tls: Option<&Identity>) -> Result<Device, ServiceError> {
    let mut device = Device::new(config);
    if let Some(identity) = tls {
        device.enable_tls(identity);
    }
    if config.camera.enabled {
        let program = crate::install::this_media_program().map_err(|e| {
            ServiceError::Camera(CameraError::Pipeline(format!(
                "finding the media program ({}): {e}",
                crate::install::MEDIA_PROGRAM
            )))
        })?;
        device.start_camera(config, Capture::Select(config.camera.clone()), &program)?;
    }
    Ok(device)
}

/// Where the TLS identity comes from; `None` with TLS off.
fn tls_settings(config: &Config) -> Option<crate::tls::Settings> {
    let t = &config.tls;
    t.enabled.then(|| crate::tls::Settings {
        files: t.cert.clone().zip(t.key.clone()),
        state_dir: config
            .server
            .state_dir
            .clone()
            .or_else(crate::tls::default_state_dir),
        name: config.server.name.clone(),
    })
}

/// What to publish over mDNS for a device serving on `local` (with TLS when `fingerprint`
/// is given); `None` when bound to loopback and no address is configured: no other machine
/// could reach it, and the responder would still join the mDNS group on every interface
/// (development runs and benchmarks bind 127.0.0.1 and should stay off the LAN).
fn advertisement(
    config: &Config,
    local: SocketAddr,
    fingerprint: Option<&str>,
) -> Option<Advertisement> {
    let addresses = if !config.discovery.addresses.is_empty() {
        config.discovery.addresses.clone()
    } else if local.ip().is_loopback() {
        return None;
    } else if !local.ip().is_unspecified() {
        // Bound to one address: the others would lead nowhere.
        vec![local.ip()]
    } else {
        Vec::new()
    };
    Some(Advertisement {
        name: config.server.name.clone(),
        port: local.port(),
        conversation: config.camera.conversation.clone(),
        tls: fingerprint.is_some(),
        auth: false,
        fingerprint: fingerprint.map(crate::discovery::fingerprint_txt),
        addresses,
    })
}

/// Where the health check reaches the HTTP port: the bound address, or loopback when bound
/// to every address.
fn probe_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Exit status after a second signal: the shell's 128 + signal number.
fn exit_status(signal: libc::c_int) -> i32 {
    128 + signal
}

/// Leaves the process now, without running exit handlers: used when a clean stop was
/// refused (second signal) or did not finish in time, where waiting on a wedged thread in an
/// exit handler would defeat the point.
fn exit_now(status: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(status) }
}

/// Watches SIGTERM and SIGINT: the first sets `stop` and arms the exit deadline, the second
/// exits at once.
fn spawn_signal_handler(stop: watch::Sender<bool>) -> Result<(), ServiceError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log::info!("{first}: shutting down (a second signal exits at once)");
        let _ = stop.send(true);
        // A plain thread, so the deadline holds even if the runtime is what hangs.
        let _ = std::thread::Builder::new()
            .name("exit-deadline".into())
            .spawn(|| {
                std::thread::sleep(SHUTDOWN_LIMIT - Duration::from_millis(100));
                log::error!("shutdown took too long; exiting");
                exit_now(1);
            });
        let second = tokio::select! {
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
        };
        log::warn!("second signal: exiting now");
        exit_now(exit_status(second));
    });
    Ok(())
}

/// Every half watchdog period: checks health, pings when healthy, keeps the status line
/// current. Runs on the service's runtime, so a runtime that stopped running tasks stops
/// the pings too.
async fn health_loop(
    notifier: Notifier,
    probe: SocketAddr,
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
        let mut problem = probe_http(probe, period.min(Duration::from_secs(2)))
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

/// One `GET /api/stats` on the service's own port: proves the accept loop, the HTTP stack
/// and the signaling hub's lock all work.
async fn probe_http(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /api/stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
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
    use super::*;

    #[test]
    fn the_probe_reaches_a_wildcard_listener_over_loopback() {
        let any4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_address(any4), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:81".parse().unwrap();
        assert_eq!(probe_address(any6), "[::1]:81".parse().unwrap());
        let one: SocketAddr = "192.0.2.4:80".parse().unwrap();
        assert_eq!(probe_address(one), one);
    }

    #[test]
    fn the_advertisement_follows_the_listen_address() {
        let mut config = Config::default();
        config.server.name = "Porch".into();
        let ad = advertisement(&config, "0.0.0.0:8080".parse().unwrap(), None).unwrap();
        assert!(ad.addresses.is_empty());
        assert_eq!((ad.name.as_str(), ad.port), ("Porch", 8080));
        assert_eq!(ad.conversation, "camera");
        let ad = advertisement(&config, "192.0.2.4:9000".parse().unwrap(), None).unwrap();
        assert_eq!(ad.addresses, vec!["192.0.2.4".parse::<IpAddr>().unwrap()]);
        // Loopback only: nothing to tell the LAN, unless addresses are configured.
        assert!(advertisement(&config, "127.0.0.1:9000".parse().unwrap(), None).is_none());
        assert!(advertisement(&config, "[::1]:9000".parse().unwrap(), None).is_none());
        config.discovery.addresses = vec!["192.0.2.9".parse().unwrap()];
        let ad = advertisement(&config, "192.0.2.4:9000".parse().unwrap(), None).unwrap();
        assert_eq!(ad.addresses, config.discovery.addresses);
        let ad = advertisement(&config, "127.0.0.1:9000".parse().unwrap(), None).unwrap();
        assert_eq!(ad.addresses, config.discovery.addresses);
        assert!(!ad.tls && ad.fingerprint.is_none());
        // With TLS: `tls=1` and the fingerprint, in the TXT form.
        let ad = advertisement(&config, "192.0.2.4:9000".parse().unwrap(), Some("AB:CD")).unwrap();
        assert!(ad.tls);
        assert_eq!(ad.fingerprint.as_deref(), Some("sha-256 AB:CD"));
    }

    #[test]
    fn a_second_signal_exits_with_the_shell_status() {
        assert_eq!(exit_status(libc::SIGINT), 130);
        assert_eq!(exit_status(libc::SIGTERM), 143);
    }

    #[tokio::test]
    async fn the_probe_tells_a_working_port_from_a_dead_one() {
        let device = Device::new(&Config::default());
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
        assert_eq!(probe_http(addr, Duration::from_secs(2)).await, Ok(()));
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
        assert!(probe_http(addr, Duration::from_secs(2)).await.is_err());
    }

    #[tokio::test]
    async fn a_wedged_port_fails_the_probe_in_time() {
        // Accepts (the backlog does) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Instant::now();
        let r = probe_http(addr, Duration::from_millis(300)).await;
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
