//! peercam, the serving program: the nextRTC signaling server over WebSocket, the page, TLS,
//! mDNS and systemd, and the supervisor of the media worker that runs the camera. It does not
//! link GStreamer: `peercam-media` does (see the workspace's README, Layout).

pub mod access;
pub mod camera;
pub mod discovery;
pub mod gate;
pub mod net;
pub mod publish;
pub mod service;
pub mod share;
pub mod signaling;
pub mod snapshot;
pub mod systemd;
pub mod tls;
pub mod web;
pub mod whep;

pub use peercam_wire::{config, install, logging, memory};
