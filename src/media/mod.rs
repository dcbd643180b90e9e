//! The camera as a WebRTC peer: pipeline descriptions, the shared capture/encode fan-out, one
//! webrtcbin per remote peer, the media worker process that runs them, and the device-side
//! loop that ties the worker to signaling.

pub mod camera;
pub mod check;
pub mod fanout;
pub mod ice;
pub mod launch;
pub mod peer;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod select;
pub mod stats;
pub mod wire;
pub mod worker;

/// Media failures the service reports.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A GStreamer element is not installed.
    #[error("GStreamer element {0:?} is missing (install gstreamer1.0-plugins-bad / -good / gstreamer1.0-nice)")]
    MissingElement(String),
    /// No capture pipeline fits the configuration and the machine.
    #[error("choosing the camera pipeline: {0}")]
    Select(String),
    /// A pipeline could not be built or changed state.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// A remote description could not be used.
    #[error("SDP: {0}")]
    BadSdp(String),
}
