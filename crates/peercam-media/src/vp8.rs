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
//! encode. Keyframe requests from VP8 viewers go through a [`KeyframeGate`] of its own, as
//! H.264 ones do.
//!
//! This file builds, attaches and detaches the encode; fanout.rs decides when (the first VP8
//! viewer, the last one gone) and owns the pipeline.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::fanout::{force_keyframe_at, gate_keyframe_requests};
use crate::keyframes::KeyframeGate;
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
    /// `queue ! videoconvert ! vp8enc ! tee`, in the capture pipeline (not in a bin of their
    /// own: a viewer's branch links to the tee, which must be its sibling).
    elements: [gst::Element; 4],
    /// The tee its viewers' branches are linked to.
    tee: gst::Element,
    /// The raw tee's pad feeding it.
    raw_pad: gst::Pad,
    /// Spaces the keyframes its viewers ask for.
    keyframes: Arc<Mutex<KeyframeGate>>,
}

impl Vp8Encode {
    /// Builds the encode at `bitrate` bits/s, adds it to `pipeline` and feeds it from `raw`.
    pub fn start(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        bitrate: u32,
    ) -> Result<Vp8Encode, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("VP8 encode: {e}"));
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
        let tee = gst::ElementFactory::make("tee")
            .property("allow-not-linked", true)
            .build()
            .map_err(|_| MediaError::MissingElement("tee".into()))?;
        let elements = [queue, convert, enc, tee.clone()];
        let sink = elements[0]
            .static_pad("sink")
            .ok_or_else(|| fail(&"queue has no sink pad"))?;
        let keyframes = Arc::new(Mutex::new(KeyframeGate::default()));
        gate_keyframe_requests(&tee, &keyframes);

        pipeline.add_many(&elements).map_err(|e| fail(&e))?;
        let undo = |elements: &[gst::Element; 4]| {
            for e in elements {
                let _ = e.set_state(gst::State::Null);
            }
            let _ = pipeline.remove_many(elements);
        };
        if let Err(e) = gst::Element::link_many(&elements) {
            undo(&elements);
            return Err(fail(&e));
        }
        // Up to the pipeline's state before linking, as with a viewer's branch; downstream
        // first, so that nothing pushes into an element not yet running.
        for e in elements.iter().rev() {
            let _ = e.sync_state_with_parent();
        }
        let Some(raw_pad) = raw.request_pad_simple("src_%u") else {
            undo(&elements);
            return Err(fail(&"the raw tee refused a pad"));
        };
        if let Err(e) = raw_pad.link(&sink) {
            raw.release_request_pad(&raw_pad);
            undo(&elements);
            return Err(fail(&format!("{e:?}")));
        }
        log::info!("VP8 encode started ({} kbit/s)", bitrate / 1000);
        Ok(Vp8Encode {
            elements,
            tee,
            raw_pad,
            keyframes,
        })
    }

    /// The tee VP8 viewers are fed from.
    pub fn tee(&self) -> &gst::Element {
        &self.tee
    }

    /// Sets the encode's rate, bits/s, while it runs.
    pub fn set_bitrate(&self, bps: u32) {
        crate::encoder_rate::set_bitrate(&self.elements[2], bps);
    }

    /// Asks the encoder for a keyframe (a viewer joined, or the picture changed).
    pub fn force_keyframe(&self) {
        force_keyframe_at(&self.tee, &self.keyframes);
    }

    /// Detaches the encode from the raw tee (between two frames) and takes it out of `pipeline`.
    pub fn stop(self, pipeline: &gst::Pipeline) {
        crate::fanout::release_tee_pad(&self.raw_pad);
        for e in &self.elements {
            if let Err(err) = e.set_state(gst::State::Null) {
                log::warn!("the VP8 encode's {} did not stop: {err}", e.name());
            }
        }
        let _ = pipeline.remove_many(&self.elements);
        log::info!("VP8 encode stopped: no VP8 viewer left");
    }
}
