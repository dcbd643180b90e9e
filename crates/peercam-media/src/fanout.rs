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
//!
//! Keyframe requests (the viewers' PLI/FIR, which webrtcbin turns into upstream
//! GstForceKeyUnit events, and the device's own) all reach the encoder through the tee's sink
//! pad, where a probe applies [`KeyframeGate`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use super::keyframes::{KeyframeGate, Verdict};
use super::MediaError;
use crate::source_switch::SourceSwitch;

/// The shared capture pipeline and its tee.
pub struct Fanout {
    pipeline: gst::Pipeline,
    tee: gst::Element,
    branches: usize,
    /// The camera source's switch, when the launch line has one.
    switch: Option<SourceSwitch>,
    /// Spaces the keyframes the shared encoder is asked for.
    keyframes: Arc<Mutex<KeyframeGate>>,
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
        let keyframes = Arc::new(Mutex::new(KeyframeGate::default()));
        gate_keyframe_requests(&tee, &keyframes);
        Ok(Fanout {
            pipeline,
            tee,
            branches: 0,
            switch,
            keyframes,
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

    /// Takes a branch (fed or not) out of the pipeline without stopping it: its owner stops
    /// it once its webrtcbin has settled (see [`crate::retiring`]). Stops capture when it was
    /// the last.
    pub fn detach(&mut self, bin: &gst::Bin, tee_pad: Option<&gst::Pad>) {
        self.branches = self.branches.saturating_sub(1);
        if let Some(pad) = tee_pad {
            if let Some(peer) = pad.peer() {
                // Unlink between two buffers so the tee never pushes into a half-removed
                // branch.
                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                    let _ = pad.unlink(&peer);
                    let _ = tx.try_send(());
                    gst::PadProbeReturn::Remove
                });
                // Branch queues are leaky, so the tee is never blocked for long.
                let _ = rx.recv_timeout(Duration::from_secs(2));
            }
            self.tee.release_request_pad(pad);
        }
        let _ = self.pipeline.remove(bin);
        if self.branches == 0 {
            // Nothing streams after this.
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }

    /// Asks the encoder for a keyframe with SPS/PPS (a viewer joined): always sent, and
    /// counted by the keyframe gate.
    pub fn force_keyframe(&self) {
        lock(&self.keyframes).force(Instant::now());
        // Pushed from the tee's sink pad, the event travels upstream to the encoder.
        if let Some(pad) = self.tee.static_pad("sink") {
            pad.push_event(gated_key_unit_event());
        }
    }
}

/// Set on the keyframe requests that already went through the gate (the device's own and
/// released held ones), so the probe lets them pass. Encoders ignore unknown fields.
const GATED: &str = "peercam-gated";

/// A keyframe request the probe on the tee's sink pad lets through.
fn gated_key_unit_event() -> gst::Event {
    let mut s = force_key_unit_structure();
    s.set(GATED, true);
    gst::event::CustomUpstream::new(s)
}

/// The gate's lock; a panic elsewhere while holding it leaves plain data behind, still usable.
fn lock(gate: &Mutex<KeyframeGate>) -> std::sync::MutexGuard<'_, KeyframeGate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts `gate` in front of the encoder: every upstream keyframe request leaving the tee's sink
/// pad that has not been through the gate is passed, held or dropped as it says.
fn gate_keyframe_requests(tee: &gst::Element, gate: &Arc<Mutex<KeyframeGate>>) {
    let Some(pad) = tee.static_pad("sink") else {
        return;
    };
    let gate = gate.clone();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |pad, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(s) = ev.structure() else {
            return gst::PadProbeReturn::Ok;
        };
        if s.name() != "GstForceKeyUnit" || s.has_field(GATED) {
            return gst::PadProbeReturn::Ok;
        }
        let verdict = lock(&gate).request(Instant::now());
        if let Verdict::Hold(after) = verdict {
            log::debug!("keyframe request held for {after:?}");
            release_later(pad.downgrade(), gate.clone(), after);
        }
        match verdict {
            Verdict::Pass => gst::PadProbeReturn::Ok,
            // Handled, not Drop: the bindings release the event the probe was given, and with
            // Handled the pad leaves it alone (with Drop it then unrefs a null pointer: a
            // GStreamer-CRITICAL for every request dropped).
            Verdict::Hold(_) | Verdict::Drop => gst::PadProbeReturn::Handled,
        }
    });
}

/// After `after`, asks the gate to release its held request and sends it if so.
fn release_later(pad: glib::WeakRef<gst::Pad>, gate: Arc<Mutex<KeyframeGate>>, after: Duration) {
    let clock = gst::SystemClock::obtain();
    let at = clock.time() + gst::ClockTime::from_nseconds(after.as_nanos() as u64);
    let timer = clock.new_single_shot_id(at);
    let armed = timer.wait_async(move |_, _, _| {
        let verdict = lock(&gate).release(Instant::now());
        match verdict {
            Verdict::Pass => {
                if let Some(pad) = pad.upgrade() {
                    pad.push_event(gated_key_unit_event());
                }
            }
            Verdict::Hold(after) => release_later(pad, gate, after),
            Verdict::Drop => {}
        }
    });
    if armed.is_err() {
        log::warn!("could not arm the keyframe timer; a held keyframe request is dropped");
    }
}

fn force_key_unit_structure() -> gst::Structure {
    gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", true)
        .field("count", 0u32)
        .build()
}

impl Drop for Fanout {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
