//! The capture pipeline's bus and frame count: errors are forwarded to the loop with the
//! peer they belong to (if the failing element is inside a peer's branch), warnings are
//! logged, and encoded frames are counted for the device's health checks.
//!
//! Its handlers run on GStreamer's threads: they only count, log and forward; they must not
//! touch peers or the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

/// A pipeline error as the loop needs it.
#[derive(Debug)]
pub(super) struct PipelineError {
    /// The remote member whose branch (`peer-<id>`) holds the failing element, if one does;
    /// `None` for the capture and encoder, which every peer shares.
    pub peer: Option<String>,
    /// What GStreamer said.
    pub message: String,
}

/// The branch bins are named `peer-<remote member>` (see peer.rs).
const BRANCH_PREFIX: &str = "peer-";

/// The remote member whose branch holds `element`: the name of its ancestor that is a direct
/// child of the pipeline, when that is a branch.
fn peer_of(element: &gst::Object) -> Option<String> {
    let mut node = element.clone();
    loop {
        let parent = node.parent()?;
        if parent.is::<gst::Pipeline>() {
            return node.name().strip_prefix(BRANCH_PREFIX).map(str::to_owned);
        }
        node = parent;
    }
}

/// Counts encoded frames (for health checks) and forwards pipeline errors to the loop with
/// the peer they belong to.
pub(super) fn watch(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    errors: mpsc::Sender<PipelineError>,
) {
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
                let _ = errors.try_send(PipelineError {
                    peer: e.src().and_then(peer_of),
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
