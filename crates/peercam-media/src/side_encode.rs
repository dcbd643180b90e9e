//! An encode beside the main one, hung off the raw frames in front of it: the VP8 encode
//! ([`crate::vp8`]) and the small H.264 encode ([`crate::small`]). Each is a chain of elements
//! ending in a tee its viewers' branches link to; this file adds the chain to the capture
//! pipeline and attaches it to the raw tee, and detaches it between two frames when its last
//! viewer has gone. What the chain is, and when it runs, are the callers'.
//!
//! ```text
//!   tee name=raw ─▶ <chain: queue leaky ! … ! encoder ! …> ! tee ─▶ viewers
//! ```

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::fanout::{force_keyframe_at, gate_keyframe_requests};
use crate::keyframes::KeyframeGate;
use crate::MediaError;

/// A running side encode.
pub struct SideEncode {
    /// Its elements, in the capture pipeline (not in a bin of their own: a viewer's branch
    /// links to the tee, which must be its sibling); the last is the tee.
    elements: Vec<gst::Element>,
    /// The tee its viewers' branches are linked to.
    tee: gst::Element,
    /// The raw tee's pad feeding it.
    raw_pad: gst::Pad,
    /// Spaces the keyframes its viewers ask for.
    keyframes: Arc<Mutex<KeyframeGate>>,
    /// What it is, for the log ("VP8 encode", "small encode").
    what: &'static str,
}

/// A tee for a side encode's viewers.
pub fn viewers_tee() -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make("tee")
        .property("allow-not-linked", true)
        .build()
        .map_err(|_| MediaError::MissingElement("tee".into()))
}

impl SideEncode {
    /// Adds `elements` (a chain ending in a [`viewers_tee`]) to `pipeline`, links them, starts
    /// them and feeds them from `raw`; on failure, takes them out again.
    pub fn attach(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        elements: Vec<gst::Element>,
        what: &'static str,
    ) -> Result<SideEncode, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("{what}: {e}"));
        let (Some(first), Some(tee)) = (elements.first(), elements.last().cloned()) else {
            return Err(fail(&"no elements"));
        };
        let sink = first
            .static_pad("sink")
            .ok_or_else(|| fail(&"its first element has no sink pad"))?;
        let keyframes = Arc::new(Mutex::new(KeyframeGate::default()));
        gate_keyframe_requests(&tee, &keyframes);

        pipeline.add_many(&elements).map_err(|e| fail(&e))?;
        let undo = |elements: &[gst::Element]| {
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
        Ok(SideEncode {
            elements,
            tee,
            raw_pad,
            keyframes,
            what,
        })
    }

    /// The tee its viewers are fed from.
    pub fn tee(&self) -> &gst::Element {
        &self.tee
    }

    /// Viewers fed from it (those on their way to it included).
    pub fn branches(&self) -> usize {
        self.tee.src_pads().len()
    }

    /// Asks its encoder for a keyframe, through its gate.
    pub fn force_keyframe(&self) {
        force_keyframe_at(&self.tee, &self.keyframes);
    }

    /// Detaches it from the raw tee (between two frames) and takes it out of `pipeline`;
    /// `why` ends the log line.
    pub fn stop(self, pipeline: &gst::Pipeline, why: &str) {
        crate::fanout::release_tee_pad(&self.raw_pad);
        for e in &self.elements {
            if let Err(err) = e.set_state(gst::State::Null) {
                log::warn!("the {}'s {} did not stop: {err}", self.what, e.name());
            }
        }
        let _ = pipeline.remove_many(&self.elements);
        log::info!("{} stopped: {why}", self.what);
    }
}
