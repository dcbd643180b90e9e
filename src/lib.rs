//! peercam: a LAN camera appliance. A nextRTC signaling server over WebSocket, and the
//! camera itself as a WebRTC peer, served from one port.

pub mod config;
pub mod discovery;
pub mod install;
pub mod logging;
pub mod media;
pub mod memory;
pub mod net;
pub mod service;
pub mod signaling;
pub mod systemd;
pub mod tls;
pub mod web;
