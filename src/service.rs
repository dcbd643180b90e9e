//! Start-up order and the running service: build the hub and HTTP routes from a config,
//! serve them on a given listener until a given shutdown future resolves.
//!
//! The listener and the shutdown future are passed in so that tests bind `127.0.0.1:0` and
//! stop the service when they like.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
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
        }
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
        });
        axum::serve(Listener::new(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
