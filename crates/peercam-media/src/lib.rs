//! peercam-media, the media program: GStreamer lives here and nowhere else. The device
//! (`peercam serve`) runs it as its media worker (capture, one shared encode, one webrtcbin per
//! remote peer) over a socket speaking `peercam-wire`'s protocol, and `peercam check` runs it
//! to report what the machine can capture and encode.
//!
//! - Choosing the capture: [`pipeline`] (the descriptions in `pipelines/`), [`launch`] (turning
//!   them into a gst-launch line), [`probe`] (cameras and encoders present), [`select`]
//!   (the choice), [`check`] (the report).
//! - The microphone: [`audio`] (its descriptions in `pipelines/audio/`, the choice, and the
//!   shared Opus encode beside the video).
//! - Serving peers: [`worker`] (the process and its loop), [`negotiation`] (each peer's
//!   negotiation, pure), [`fanout`] (capture, encode and the tee), [`keyframes`] (when the
//!   shared encoder may start a keyframe, pure), [`vp8`] (the shared VP8 encode for viewers
//!   without H.264), [`jpeg`] (still pictures off the raw frames), [`payload`] (a branch's
//!   per-codec RTP chain), [`source_switch`] (the placeholder fed to the encoder while the
//!   camera source has failed), [`source_health`] (when the source has failed and when to
//!   reopen it, pure), [`peer`] (one webrtcbin branch), [`retiring`] (when a departed peer may
//!   be stopped, pure), [`ice`] (remote candidates), [`certificate`] (the DTLS certificate a
//!   peer presents).

pub mod audio;
pub mod bitrate;
pub mod certificate;
pub mod check;
pub mod description;
pub mod encoder_rate;
pub mod fanout;
pub mod hearing;
pub mod ice;
pub mod jpeg;
pub mod keyframes;
pub mod launch;
pub mod moves;
pub mod negotiation;
pub mod payload;
pub mod peer;
pub mod pipeline;
pub mod probe;
pub mod reception;
pub mod relink;
pub mod retiring;
pub mod select;
pub mod side_encode;
pub mod small;
pub mod small_policy;
pub mod source_health;
pub mod source_switch;
pub mod speaker;
pub mod talk;
pub mod vp8;
pub mod worker;

pub use peercam_wire::{config, install, logging};

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
