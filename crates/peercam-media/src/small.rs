//! The small H.264 encode, for viewers whose link takes much less than the main stream (which
//! viewers, and its rate: [`crate::small_policy`]): it hangs off the raw frames in front of
//! the main encoder, as the VP8 encode does, and runs only while at least one viewer is fed
//! from it.
//!
//! ```text
//!   <source> ! … ─▶ tee name=raw ─▶ <H.264 encoder> ! tee name=fanout ─▶ viewers
//!                                └─▶ queue leaky ! videoscale ! videoconvert
//!                                    ! video/x-raw,format=I420,height=360,pixel-aspect-ratio=1/1
//!                                    ! <software H.264 encoder> ! h264parse ! <H264_CAPS>
//!                                    ! tee ─▶ viewers on poor links
//! ```
//!
//! At most 360 lines high, the width following the picture's shape (640x360 of 1280x720,
//! 480x360 of 640x480): about a third of a 720p picture's pixels, for about a third of its
//! rate. Its encoder is software whatever the main one is: x264 (`ultrafast`, zero latency)
//! when installed, OpenH264 otherwise. Where the main encoder is the Pi's hardware one, the
//! small encode does not share the hardware block with it (one codec engine, whose frame time
//! would be split between the two streams); a 360-line software encode costs a fraction of
//! one of a Pi's four cores. Its stream is in the main one's form ([`H264_CAPS`]): a viewer's
//! payloader takes either, sending the new parameter sets in front of the first keyframe.
//!
//! Its queue is leaky and holds at most 200 ms of frames: an encoder that falls behind drops
//! frames of its own, never holds up the capture or the main encode. Keyframe requests from
//! its viewers go through a [`crate::keyframes::KeyframeGate`] of its own.
//!
//! This file builds the encode (side_encode.rs attaches and detaches it); fanout.rs decides
//! when and owns the pipeline; relink.rs moves a viewer between the two encodes.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::launch::H264_CAPS;
use crate::side_encode::{viewers_tee, SideEncode};
use crate::MediaError;

/// The encoders it can use, best first.
const ENCODERS: [&str; 2] = ["x264enc", "openh264enc"];

/// The other elements it needs.
const ELEMENTS: [&str; 4] = ["videoscale", "videoconvert", "h264parse", "tee"];

/// The small picture's height, lines, when the main one is taller.
pub const HEIGHT: i32 = 360;

/// Frames between keyframes the encoder makes on its own: two seconds at 30 fps, as the main
/// encoders' `{keyint}`.
const KEYFRAME_INTERVAL: u32 = 60;

/// Raw frames the encode's queue holds before it drops the oldest, nanoseconds (as the VP8
/// encode's).
const QUEUE_TIME_NS: u64 = 200_000_000;

/// The encoder the small encode would use on this machine, if it can be built.
pub fn encoder_factory() -> Option<&'static str> {
    if !ELEMENTS
        .iter()
        .all(|f| gst::ElementFactory::find(f).is_some())
    {
        return None;
    }
    ENCODERS
        .into_iter()
        .find(|f| gst::ElementFactory::find(f).is_some())
}

/// The running small encode.
pub struct SmallEncode {
    /// `queue ! videoscale ! videoconvert ! capsfilter ! encoder ! h264parse ! capsfilter !
    /// tee`, off the raw tee.
    side: SideEncode,
    /// The encoder.
    encoder: gst::Element,
}

impl SmallEncode {
    /// Builds the encode at `bitrate` bits/s, adds it to `pipeline` and feeds it from `raw`.
    pub fn start(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        bitrate: u32,
    ) -> Result<SmallEncode, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("small encode: {e}"));
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| MediaError::MissingElement(factory.to_owned()))
        };
        let factory = encoder_factory()
            .ok_or_else(|| MediaError::MissingElement("x264enc or openh264enc".into()))?;
        let encoder = make(factory)?;
        configure(&encoder, factory);
        crate::encoder_rate::set_bitrate(&encoder, bitrate);
        let raw_caps = make("capsfilter")?;
        raw_caps.set_property("caps", small_caps(raw));
        let h264_caps = make("capsfilter")?;
        let caps = H264_CAPS
            .parse::<gst::Caps>()
            .map_err(|e| fail(&format!("{H264_CAPS}: {e}")))?;
        h264_caps.set_property("caps", caps);
        let elements = vec![
            crate::payload::leaky_queue(QUEUE_TIME_NS)?,
            make("videoscale")?,
            make("videoconvert")?,
            raw_caps,
            encoder.clone(),
            make("h264parse")?,
            h264_caps,
            viewers_tee()?,
        ];
        let side = SideEncode::attach(pipeline, raw, elements, "small encode")?;
        log::info!(
            "small encode started ({factory}, at most {HEIGHT} lines, {} kbit/s)",
            bitrate / 1000
        );
        Ok(SmallEncode { side, encoder })
    }

    /// The tee its viewers are fed from.
    pub fn tee(&self) -> &gst::Element {
        self.side.tee()
    }

    /// Viewers fed from it (those on their way to it included).
    pub fn branches(&self) -> usize {
        self.side.branches()
    }

    /// Sets the encode's rate, bits/s, while it runs.
    pub fn set_bitrate(&self, bps: u32) {
        crate::encoder_rate::set_bitrate(&self.encoder, bps);
    }

    /// Asks the encoder for a keyframe (a viewer moves to it, or the picture changed).
    pub fn force_keyframe(&self) {
        self.side.force_keyframe();
    }

    /// Detaches the encode from the raw tee (between two frames) and takes it out of
    /// `pipeline`.
    pub fn stop(self, pipeline: &gst::Pipeline) {
        self.side.stop(pipeline, "no viewer on it");
    }
}

/// Sets a software encoder up as the capture's encoders are (pipelines/encoders/): frames
/// out as they come, a keyframe every [`KEYFRAME_INTERVAL`] frames.
fn configure(encoder: &gst::Element, factory: &str) {
    match factory {
        "x264enc" => {
            encoder.set_property_from_str("tune", "zerolatency");
            encoder.set_property_from_str("speed-preset", "ultrafast");
            encoder.set_property("key-int-max", KEYFRAME_INTERVAL);
        }
        "openh264enc" => {
            encoder.set_property_from_str("complexity", "low");
            encoder.set_property_from_str("rate-control", "bitrate");
            encoder.set_property("gop-size", KEYFRAME_INTERVAL);
        }
        _ => {}
    }
}

/// The small picture's raw caps: I420 (what both encoders take), at most [`HEIGHT`] lines,
/// square pixels so that the scaler picks the width that keeps the picture's shape. A source
/// no taller than that keeps its own height (known when the raw frames already flow).
fn small_caps(raw: &gst::Element) -> gst::Caps {
    let height = raw
        .static_pad("sink")
        .and_then(|p| p.current_caps())
        .and_then(|c| c.structure(0).and_then(|s| s.get::<i32>("height").ok()))
        .map_or(HEIGHT, |h| h.min(HEIGHT));
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("height", height)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}
