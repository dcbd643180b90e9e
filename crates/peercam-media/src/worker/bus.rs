//! The capture pipeline's bus and frame count: errors are forwarded to the loop with the
//! part they belong to (a peer's branch, the camera source behind the switch, or the
//! microphone and its encode), warnings
//! are logged, and encoded frames are counted for the device's health checks.
//!
//! Its handlers run on GStreamer's threads: they only count, log and forward; they must not
//! touch peers or the pipeline.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use crate::source_switch::SourceSwitch;

/// A pipeline error as the loop needs it.
#[derive(Debug)]
pub(super) struct PipelineError {
    /// The remote member whose branch (`peer-<id>`) holds the failing element, if one does;
    /// `None` for the capture and encoder, which every peer shares.
    pub peer: Option<String>,
    /// The failing element is (inside) one of the camera source's elements, which can fail
    /// alone (see `crate::source_switch`).
    pub source: bool,
    /// The failing element is the microphone or its encode, which fail alone (the sound is
    /// cut off, the video goes on).
    pub audio: bool,
    /// The still picture whose branch (`snapshot-<number>`, see `crate::jpeg`) holds the
    /// failing element, if one does: that picture fails alone.
    pub picture: Option<u64>,
    /// What GStreamer said.
    pub message: String,
}

/// The branch bins are named `peer-<remote member>` (see peer.rs).
const BRANCH_PREFIX: &str = "peer-";

/// The remote member whose branch holds `element`: the name of its ancestor that is a direct
/// child of the pipeline, when that is a branch.
fn peer_of(element: &gst::Object) -> Option<String> {
    top_level_name(element)?
        .strip_prefix(BRANCH_PREFIX)
        .map(str::to_owned)
}

/// The still picture a branch named `name` takes, when it is one.
fn picture_of(name: &str) -> Option<u64> {
    name.strip_prefix(crate::jpeg::BIN_PREFIX)?.parse().ok()
}

/// The name of `element`'s ancestor (or itself) that is a direct child of the pipeline.
fn top_level_name(element: &gst::Object) -> Option<String> {
    let mut node = element.clone();
    loop {
        let parent = node.parent()?;
        if parent.is::<gst::Pipeline>() {
            return Some(node.name().to_string());
        }
        node = parent;
    }
}

/// Counts encoded frames (for health checks) and forwards pipeline errors to the loop with
/// the peer they belong to, or marked as the source's when the failing element is inside the
/// camera source behind `switch`.
///
/// The count is the device's proof that the media worker and its encoder work (it withholds
/// the watchdog's pings when the count stands still while someone watches), so it counts
/// every encoded frame, the placeholder's included: a camera that fails or is unplugged is
/// bridged by the placeholder and reopened with back-off for as long as it is away, which a
/// service restart could not do better, and viewers keep their connections. A wedged
/// encoder, or a worker stuck stopping a wedged camera (the count reaches the device only
/// through the worker's loop), stops the count, and systemd restarts the service.
pub(super) fn watch(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    errors: mpsc::Sender<PipelineError>,
    switch: Option<&SourceSwitch>,
    audio: Vec<String>,
) {
    let source: HashSet<String> = switch.map(|s| s.element_names()).unwrap_or_default();
    if let Some(tee) = pipeline.by_name("fanout") {
        if let Some(pad) = tee.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
    }
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let path = e
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                log::error!(
                    "pipeline error from {path}: {} ({})",
                    e.error(),
                    e.debug().unwrap_or_default()
                );
                let top = e.src().and_then(top_level_name);
                let _ = errors.try_send(PipelineError {
                    peer: e.src().and_then(peer_of),
                    source: top.as_ref().is_some_and(|name| source.contains(name)),
                    picture: top.as_deref().and_then(picture_of),
                    audio: top.as_ref().is_some_and(|name| audio.contains(name)),
                    message: e.error().to_string(),
                });
            }
            gst::MessageView::Warning(w) => {
                log::warn!("capture pipeline warning: {}", w.error())
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}
