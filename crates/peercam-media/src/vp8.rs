//! The one shared VP8 encode, for viewers that cannot decode H.264 (Firefox without its
//! H.264 plugin): it hangs off the raw frames in front of the H.264 encoder and runs only
//! while at least one VP8 viewer is fed from it.
//!
//! ```text
//!   <source> ! … ─▶ tee name=raw ─▶ <H.264 encoder> ! tee name=fanout ─▶ H.264 viewers
//!                                └─▶ queue leaky ! videoconvert ! vp8enc ! tee name=vp8-fanout
//!                                                                           ─▶ VP8 viewers
//! ```
//!
//! Its queue is leaky and holds at most 200 ms of frames: an encoder that falls behind
//! (software VP8 on a Pi) drops frames of its own, never holds up the capture or the H.264
//! encode. Keyframe requests from VP8 viewers go through a
//! [`crate::keyframes::KeyframeGate`] of its own, as H.264 ones do.
//!
//! This file builds the encode (side_encode.rs attaches and detaches it); fanout.rs decides
//! when (the first VP8 viewer, the last one gone) and owns the pipeline.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::side_encode::{viewers_tee, SideEncode};
use crate::MediaError;

/// Elements the VP8 encode and its viewers' chains need.
pub const ELEMENTS: [&str; 3] = ["vp8enc", "rtpvp8pay", "funnel"];

/// Frames between keyframes the encoder makes on its own: two seconds at 30 fps, like the
/// H.264 encoders' `{keyint}`, so that a viewer whose repair failed is back within two seconds
/// even if its keyframe requests are lost.
const KEYFRAME_MAX_DIST: i32 = 60;

/// libvpx's speed for real time: the fastest setting, where a Pi's cores keep up at 720p.
const CPU_USED: i32 = 16;

/// Encoder threads: one. libvpx's threads wait for each other on every frame, so on a busy
/// machine one descheduled thread holds up the frame; one thread on one core (of a Pi's four)
/// kept 30 fps where two did not (BENCHMARKS.md), and leaves the other cores to the capture,
/// the H.264 encode and the network.
const THREADS: i32 = 1;

/// Raw frames the encode's queue holds before it drops the oldest, nanoseconds: 200 ms (six
/// frames at 30 fps) ride out the moments a busy machine does not schedule the encoder,
/// without letting a slow encoder fall further behind than that.
const QUEUE_TIME_NS: u64 = 200_000_000;

/// Whether the VP8 encode can be built on this machine.
pub fn available() -> bool {
    ELEMENTS
        .iter()
        .all(|f| gst::ElementFactory::find(f).is_some())
}

/// The running VP8 encode.
pub struct Vp8Encode {
    /// `queue ! videoconvert ! vp8enc ! tee`, off the raw tee.
    side: SideEncode,
    /// The encoder.
    encoder: gst::Element,
}

impl Vp8Encode {
    /// Builds the encode at `bitrate` bits/s, adds it to `pipeline` and feeds it from `raw`.
    pub fn start(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        bitrate: u32,
    ) -> Result<Vp8Encode, MediaError> {
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| MediaError::MissingElement(factory.to_owned()))
        };
        let queue = crate::payload::leaky_queue(QUEUE_TIME_NS)?;
        let convert = make("videoconvert")?;
        let enc = make("vp8enc")?;
        enc.set_property("deadline", 1i64);
        enc.set_property("cpu-used", CPU_USED);
        enc.set_property("threads", THREADS);
        enc.set_property("lag-in-frames", 0i32);
        enc.set_property("keyframe-max-dist", KEYFRAME_MAX_DIST);
        enc.set_property_from_str("end-usage", "cbr");
        enc.set_property("target-bitrate", i32::try_from(bitrate).unwrap_or(i32::MAX));
        enc.set_property_from_str("error-resilient", "default");
        let elements = vec![queue, convert, enc.clone(), viewers_tee()?];
        let side = SideEncode::attach(pipeline, raw, elements, "VP8 encode")?;
        log::info!("VP8 encode started ({} kbit/s)", bitrate / 1000);
        Ok(Vp8Encode { side, encoder: enc })
    }

    /// The tee VP8 viewers are fed from.
    pub fn tee(&self) -> &gst::Element {
        self.side.tee()
    }

    /// Sets the encode's rate, bits/s, while it runs.
    pub fn set_bitrate(&self, bps: u32) {
        crate::encoder_rate::set_bitrate(&self.encoder, bps);
    }

    /// Asks the encoder for a keyframe (a viewer joined, or the picture changed).
    pub fn force_keyframe(&self) {
        self.side.force_keyframe();
    }

    /// Detaches the encode from the raw tee (between two frames) and takes it out of `pipeline`.
    pub fn stop(self, pipeline: &gst::Pipeline) {
        self.side.stop(pipeline, "no VP8 viewer left");
    }
}
