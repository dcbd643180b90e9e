//! One capture, one encode, every viewer.
//!
//! ```text
//!   <source> ! <encoder> ! video/x-h264,stream-format=avc ! tee name=fanout
//!                                                              ├─ viewer branch (peer.rs)
//!                                                              └─ viewer branch ...
//! ```
//!
//! The pipeline plays only while at least one branch is attached, so the camera and encoder
//! are idle when nobody watches. Branches are added and removed while it plays; a new branch
//! asks the encoder for a keyframe so the viewer does not wait for the next GOP.
//!
//! When the launch line marks where its source ends, the source sits behind a switch
//! ([`SourceSwitch`]) that can feed the encoder a placeholder instead; the worker opens and
//! stops the source, so it does not start with the pipeline.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::MediaError;
use crate::source_switch::SourceSwitch;

/// The shared capture pipeline and its tee.
pub struct Fanout {
    pipeline: gst::Pipeline,
    tee: gst::Element,
    branches: usize,
    /// The camera source's switch, when the launch line has one.
    switch: Option<SourceSwitch>,
}

impl Fanout {
    /// Builds (but does not start) `launch ! tee`. `launch` must end in encoded H.264.
    pub fn new(launch: &str) -> Result<Fanout, MediaError> {
        let desc = format!("{launch} ! tee name=fanout allow-not-linked=true");
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| MediaError::Pipeline(format!("{e}: {desc}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Pipeline(format!("not a pipeline: {desc}")))?;
        let tee = pipeline
            .by_name("fanout")
            .ok_or_else(|| MediaError::Pipeline("tee missing".into()))?;
        let switch = SourceSwitch::find(&pipeline)?;
        Ok(Fanout {
            pipeline,
            tee,
            branches: 0,
            switch,
        })
    }

    /// The pipeline (for its bus and for adding branch elements).
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// The encoded stream's caps, once the encoder has set them.
    pub fn current_caps(&self) -> Option<gst::Caps> {
        self.tee.static_pad("sink").and_then(|p| p.current_caps())
    }

    /// The camera source's switch, if the launch line marks one. Its source is not started
    /// with the pipeline: the caller opens it.
    pub fn switch(&self) -> Option<&SourceSwitch> {
        self.switch.as_ref()
    }

    /// Attached branches.
    pub fn branches(&self) -> usize {
        self.branches
    }

    /// Whether capture and encoding are running.
    pub fn is_playing(&self) -> bool {
        self.pipeline.current_state() == gst::State::Playing
            || self.pipeline.pending_state() == gst::State::Playing
    }

    /// Adds a branch (a bin with a `sink` pad) to the pipeline, starting capture if this is
    /// the first. The branch is brought to the pipeline's state but not yet fed.
    pub fn add(&mut self, bin: &gst::Bin) -> Result<(), MediaError> {
        if !self.is_playing() {
            self.pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| MediaError::Pipeline("capture pipeline failed to start".into()))?;
        }
        self.pipeline
            .add(bin)
            .map_err(|e| MediaError::Pipeline(format!("adding branch: {e}")))?;
        self.branches += 1;
        // Bring the branch up to the pipeline's state *before* linking: linking first can
        // freeze a running tee.
        let _ = bin.sync_state_with_parent();
        Ok(())
    }

    /// Feeds an added branch from the tee and asks for a keyframe. Returns the tee pad,
    /// needed to remove the branch.
    pub fn link(&mut self, bin: &gst::Bin) -> Result<gst::Pad, MediaError> {
        let sink = bin
            .static_pad("sink")
            .ok_or_else(|| MediaError::Pipeline("branch has no sink pad".into()))?;
        let tee_pad = self
            .tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| MediaError::Pipeline("tee refused a pad".into()))?;
        if let Err(e) = tee_pad.link(&sink) {
            self.tee.release_request_pad(&tee_pad);
            return Err(MediaError::Pipeline(format!("linking branch: {e:?}")));
        }
        // A branch added to a playing pipeline is not part of the latency computed at start;
        // without this, each rtpsession warns for every packet and RTCP times drift.
        let _ = self.pipeline.recalculate_latency();
        self.force_keyframe();
        Ok(tee_pad)
    }

    /// Removes a branch (fed or not); stops capture when it was the last.
    pub fn remove(&mut self, bin: &gst::Bin, tee_pad: Option<&gst::Pad>) {
        self.branches = self.branches.saturating_sub(1);
        if self.branches == 0 {
            // Nothing streams after this, so the branch can be taken apart directly.
            let _ = self.pipeline.set_state(gst::State::Null);
        } else if let Some(peer) = tee_pad.and_then(|p| p.peer()) {
            // Unlink between two buffers so the tee never pushes into a half-removed branch.
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            if let Some(pad) = tee_pad {
                pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                    let _ = pad.unlink(&peer);
                    let _ = tx.try_send(());
                    gst::PadProbeReturn::Remove
                });
            }
            // Branch queues are leaky, so the tee is never blocked for long.
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
        if let Some(pad) = tee_pad {
            self.tee.release_request_pad(pad);
        }
        let _ = bin.set_state(gst::State::Null);
        let _ = self.pipeline.remove(bin);
    }

    /// Asks the encoder for a keyframe with SPS/PPS.
    pub fn force_keyframe(&self) {
        // Pushed from the tee's sink pad, the event travels upstream to the encoder.
        if let Some(pad) = self.tee.static_pad("sink") {
            pad.push_event(force_key_unit_event());
        }
    }
}

/// The upstream GstForceKeyUnit event that encoders (x264enc, openh264enc, v4l2h264enc) obey.
pub fn force_key_unit_event() -> gst::Event {
    let s = gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", true)
        .field("count", 0u32)
        .build();
    gst::event::CustomUpstream::new(s)
}

impl Drop for Fanout {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
