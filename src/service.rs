//! Start-up order and the running service: build the hub and HTTP routes from a config,
//! serve them on a given listener until a given shutdown future resolves.
//!
//! The listener and the shutdown future are passed in so that tests bind `127.0.0.1:0` and
//! stop the service when they like.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::media::camera::{self, CameraHandle, CameraSettings};
use crate::media::peer::IceSettings;
use crate::media::MediaError;
use crate::net::Listener;
use crate::signaling::{Hub, SignalingServer};
use crate::web::{self, AppState, DeviceInfo};

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
        });
        Device {
            hub,
            signaling,
            info,
            camera: None,
        }
    }

    /// Starts the camera peer with a capture description (`launch`, ending in H.264).
    pub fn start_camera(&mut self, config: &Config, launch: String) -> Result<(), MediaError> {
        let c = &config.camera;
        let settings = CameraSettings {
            conversation: c.conversation.clone(),
            max_viewers: c.max_viewers,
            launch,
            ice: IceSettings {
                addresses: c.ice_addresses.clone(),
                stun: c.stun.clone(),
            },
            negotiation_timeout: std::time::Duration::from_secs(30),
        };
        self.camera = Some(camera::start(self.hub.clone(), settings)?);
        Ok(())
    }

    /// Serves HTTP and signaling on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = web::router(AppState {
            signaling: self.signaling.clone(),
            info: self.info.clone(),
            camera: self.camera.as_ref().map(|c| c.stats().clone()),
        });
        axum::serve(Listener::new(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
