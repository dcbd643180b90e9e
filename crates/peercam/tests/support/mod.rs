//! What the integration tests (and the camera benchmark) share, one concern a file: the
//! device in-process or as a child process ([`device`]), the one strict nextRTC WebSocket
//! client ([`ws`]), plain and TLS HTTP requests ([`http`]), a TLS client that trusts exactly a
//! device's certificate ([`tls`]), scratch directories ([`scratch`]), the receiving
//! GStreamer peer ([`gst_viewer`]) and a watcher sampling its frames ([`watch`]), SDP
//! sent in place of a real peer's ([`fixtures`]), a WHEP player ([`whep`]), a WHIP endpoint
//! the device publishes to ([`whip_endpoint`]), a lossy two-namespace LAN for the
//! root-only browser tests ([`lan`]), and Janus with its WHIP front as a media server in one of
//! its namespaces ([`janus`]).
//!
//! Every wait here is bounded, so a broken device fails a test instead of hanging it. Nothing
//! here decides what a test expects: it only connects, reads, waits and cleans up.

use std::time::Duration;

pub mod device;
pub mod fixtures;
pub mod gst_viewer;
pub mod http;
pub mod janus;
pub mod lan;
pub mod scratch;
pub mod tls;
pub mod watch;
pub mod whep;
pub mod whip_endpoint;
pub mod ws;

/// The longest any single expected event may take. Generous against a loaded machine, short
/// enough that a broken server fails the test quickly instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(5);
