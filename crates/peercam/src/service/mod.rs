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
//!
//! This module holds the [`Device`] and the service's error. The start-up order and the
//! shutdown are in `run`, the signal handling in `signals`, the watchdog's health check in
//! `health`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::{timeout_at, Instant};

use crate::access::{Access, AccessError};
use crate::camera::CameraError;
use crate::camera::{self, CameraHandle, CameraSettings};
use crate::config::Config;
use crate::discovery::Neighbourhood;
use crate::net::{self, Listener};
use crate::signaling::{Hub, SignalingServer};
use crate::snapshot::Snapshots;
use crate::tls::{Identity, TlsError};
use crate::web::{self, AppState, DeviceInfo};
use peercam_wire::IceSettings;
use peercam_wire::{AudioCapture, Capture, Talkback};

mod health;
mod run;
mod signals;

pub use run::run;

/// From the first signal to the process's exit, at most.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(2);

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
    /// The browse for the other cameras on the LAN, once started.
    pub neighbourhood: Option<Neighbourhood>,
    /// Who may use the page, the API and the WebSocket.
    pub access: Arc<Access>,
    /// The camera's still pictures (`/snapshot.jpg`), once the camera started.
    pub snapshots: Option<Arc<Snapshots>>,
}

impl Device {
    /// Builds the device from a configuration, with the configuration's access policy and,
    /// when that needs the state directory's token, a token made for this device alone (see
    /// [`Access::in_memory`]; the service uses [`Device::with_access`]).
    pub fn new(config: &Config) -> Device {
        // Invariant: only the OS's random source can fail here (a configuration's token is
        // validated when it is read), and getrandom(2) blocks rather than fail once booted.
        let access = Access::in_memory(config).expect("the system's random source works");
        Device::with_access(config, access)
    }

    /// Builds the device from a configuration and an access policy.
    pub fn with_access(config: &Config, access: Arc<Access>) -> Device {
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
            neighbourhood: None,
            access,
            snapshots: None,
        }
    }

    /// Lists the other cameras on the LAN on the page from now on (the device is advertised
    /// as `own`, which is left out).
    pub fn follow_neighbours(&mut self, own: &str) {
        self.neighbourhood = Some(Neighbourhood::start(own));
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
            publish: crate::publish::Target::of(config),
            audio: AudioCapture::Select {
                audio: config.audio.clone(),
                pipelines_dir: c.pipelines_dir.clone(),
            },
            talkback: if config.talkback.enabled {
                Talkback::Select {
                    talkback: config.talkback.clone(),
                    pipelines_dir: c.pipelines_dir.clone(),
                }
            } else {
                Talkback::None
            },
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
        self.snapshots = Some(Arc::new(Snapshots::new(
            camera.snapshots(),
            config.snapshot.spec(),
        )));
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
            whep: self.camera.as_ref().map(|c| c.whep_door()),
            neighbours: self.neighbourhood.as_ref().map(|n| n.table()),
            access: self.access.clone(),
            snapshots: self.snapshots.clone(),
        });
        self.access.spawn_watch();
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
    /// The access token cannot be read.
    #[error("{0}")]
    Access(AccessError),
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
