//! The camera's SDP policy, pure: everything a remote member's offer or answer says is read,
//! bounded and checked here before any of it reaches GStreamer, and the codec the camera
//! sends is chosen here.
//!
//! - [`parse`]: SDP text into [`Session`], bounded in size and count, never panicking.
//! - [`check`]: the rules an offer or answer must meet to be usable (payload types and ports in
//!   range, ICE credentials, a DTLS fingerprint), each failure a sentence a person can act on.
//! - [`choose`]: which of the offered video formats the camera sends.
//! - [`rewrite`]: the text edits webrtcbin needs (the H.264 `profile-level-id` label, the
//!   DTLS fingerprint, retransmission for a second codec).
//!
//! No GStreamer, no I/O: the media worker calls it, the fuzz target drives it.

pub mod check;
pub mod choose;
pub mod parse;
pub mod rewrite;

pub use check::{check_answer, check_offer, Unusable};
pub use choose::{Choice, Codec};
pub use parse::{parse, Direction, Media, RtpMap, SdpError, Session};
pub use rewrite::{add_rtx, relabel_h264, set_fingerprint};
