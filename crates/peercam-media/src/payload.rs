//! The RTP end of a viewer's branch, per codec the camera sends: the payload types it offers
//! them under, their RTP caps, and the `queue ! payloader ! capsfilter` chain that turns one
//! shared encode into a viewer's packets.
//!
//! ```text
//!   H.264 tee ─▶ sink     ─▶ queue leaky ! rtph264pay ! capsfilter ─┐
//!                                                                    ├─ funnel ─▶ webrtcbin
//!   VP8 tee   ─▶ sink_vp8 ─▶ queue leaky ! rtpvp8pay  ! capsfilter ─┘
//! ```
//!
//! An offering branch has both chains and is fed on one at a time (H.264 until the answer
//! says VP8). Each payloader sends under an SSRC of its own: SRTP refuses a sequence number
//! that goes back within one SSRC, which switching payloaders would do. The offer states no
//! SSRC, so the viewer takes the one its codec arrives on. It owns no state: peer.rs builds
//! the branch from these and links it.

use std::hash::{BuildHasher, Hasher};

use gstreamer as gst;
use gstreamer::prelude::*;

use peercam_sdp::Codec;

use crate::MediaError;

/// The RTP payload type of the device's H.264 video when it offers.
pub const OFFER_PT: u8 = 96;

/// The RTP payload type of the device's VP8 video when it offers.
pub const OFFER_VP8_PT: u8 = 97;

/// The retransmission payload type for VP8 in the device's offer (webrtcbin 1.22 makes one
/// for the first codec only, under the next free number, 98).
pub const OFFER_VP8_RTX_PT: u8 = 99;

/// How much encoded video a viewer's queue holds before it drops the oldest, nanoseconds: a
/// viewer whose network or branch stalls loses frames, never holds up the shared encode.
const QUEUE_TIME_NS: u64 = 500_000_000;

/// The payload type a codec is offered under.
pub fn offer_pt(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => OFFER_PT,
        Codec::Vp8 => OFFER_VP8_PT,
    }
}

/// The device's offer as it is sent, from webrtcbin's text: retransmission offered for every
/// codec in `codecs`, not only the first.
pub fn complete_offer(sdp: &str, codecs: &[Codec]) -> String {
    if codecs.contains(&Codec::Vp8) {
        peercam_sdp::add_rtx(sdp, OFFER_VP8_PT, OFFER_VP8_RTX_PT)
    } else {
        sdp.to_owned()
    }
}

/// The name of a branch's sink pad for a codec's encoded stream.
pub fn sink_name(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "sink",
        Codec::Vp8 => "sink_vp8",
    }
}

/// `application/x-rtp` caps for `codec` under `pt`.
pub fn rtp_caps(codec: Codec, pt: u8) -> gst::Caps {
    let name = match codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
    };
    gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", name)
        .field("payload", i32::from(pt))
        .field("clock-rate", 90000i32)
        .build()
}

/// Whether RTP caps say enough for an offer or answer: H.264 caps once they carry the
/// stream's `profile-level-id`, VP8 caps at once.
pub fn caps_ready(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| {
        s.has_field("profile-level-id")
            || s.get::<&str>("encoding-name")
                .is_ok_and(|n| n.eq_ignore_ascii_case("VP8"))
    })
}

/// A random SSRC for a payloader.
pub fn random_ssrc() -> u32 {
    // RandomState is seeded per process and per instance from the OS.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

/// One codec's chain in a branch.
pub struct Chain {
    /// Its codec.
    pub codec: Codec,
    /// The leaky queue the shared encode feeds.
    pub queue: gst::Element,
    /// The payloader.
    pub pay: gst::Element,
    /// The RTP caps it sends.
    pub capsfilter: gst::Element,
}

fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_owned()))
}

impl Chain {
    /// `queue ! payloader ! capsfilter` for `codec` under `pt`; linked, not yet in a bin.
    pub fn new(codec: Codec, pt: u8) -> Result<Chain, MediaError> {
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", QUEUE_TIME_NS)
            .property_from_str("leaky", "downstream")
            .build()
            .map_err(|_| MediaError::MissingElement("queue".into()))?;
        let pay = match codec {
            Codec::H264 => {
                let pay = make("rtph264pay")?;
                pay.set_property("config-interval", -1i32);
                pay.set_property_from_str("aggregate-mode", "zero-latency");
                pay
            }
            Codec::Vp8 => {
                let pay = make("rtpvp8pay")?;
                // The picture id lets a receiver tell a lost frame from a late one.
                pay.set_property_from_str("picture-id-mode", "15-bit");
                pay
            }
        };
        pay.set_property("pt", u32::from(pt));
        pay.set_property("ssrc", random_ssrc());
        let capsfilter = make("capsfilter")?;
        capsfilter.set_property("caps", rtp_caps(codec, pt));
        Ok(Chain {
            codec,
            queue,
            pay,
            capsfilter,
        })
    }

    /// Sends under `pt` instead (an answer uses the remote offer's number).
    pub fn set_pt(&self, pt: u8) {
        self.pay.set_property("pt", u32::from(pt));
        self.capsfilter
            .set_property("caps", rtp_caps(self.codec, pt));
    }

    /// The elements, upstream first.
    pub fn elements(&self) -> [&gst::Element; 3] {
        [&self.queue, &self.pay, &self.capsfilter]
    }

    /// The chain's output.
    pub fn src(&self) -> Result<gst::Pad, MediaError> {
        self.capsfilter
            .static_pad("src")
            .ok_or_else(|| MediaError::Pipeline("capsfilter has no src pad".into()))
    }

    /// The chain's input.
    pub fn sink(&self) -> Result<gst::Pad, MediaError> {
        self.queue
            .static_pad("sink")
            .ok_or_else(|| MediaError::Pipeline("queue has no sink pad".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_ready_with_a_profile_or_as_vp8() {
        gst::init().unwrap(); // tests only
        assert!(!caps_ready(&rtp_caps(Codec::H264, 96)));
        let mut h264 = rtp_caps(Codec::H264, 96);
        h264.make_mut()
            .structure_mut(0)
            .unwrap() // built above with one structure
            .set("profile-level-id", "42c01f");
        assert!(caps_ready(&h264));
        assert!(caps_ready(&rtp_caps(Codec::Vp8, 97)));
        assert_ne!(OFFER_PT, OFFER_VP8_PT);
    }
}
