//! What peercam's two programs share, and nothing else: the device (`peercam`) and its media
//! worker (`peercam-media`) are built from this crate's types so that they agree on them.
//!
//! - [`protocol`]: the messages between the device and a media worker, versioned.
//! - [`config`]: the configuration file (the device reads it; the worker is handed the camera
//!   part, and `peercam-media check` the whole).
//! - [`logging`], [`memory`], [`install`]: how either program logs, tunes its allocator and
//!   finds the other and the pipeline descriptions.
//!
//! No GStreamer and no server here: a build of either program pulls in only what it uses.

pub mod config;
pub mod install;
pub mod logging;
pub mod memory;
pub mod protocol;

pub use protocol::*;
