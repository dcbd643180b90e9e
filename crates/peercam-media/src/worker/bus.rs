//! The capture pipeline's bus and frame count: errors are forwarded to the loop as the path
//! of the element that failed, warnings are logged, and encoded frames are counted for the
//! device's health checks.
//!
//! Its handlers run on GStreamer's threads: they only count, log and forward; they must not
//! touch peers or the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

/// Counts encoded frames (for health checks) and forwards pipeline errors to the loop as the
/// name of the element that failed.
pub(super) fn watch(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    errors: mpsc::Sender<String>,
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
                let _ = errors.try_send(path);
            }
            gst::MessageView::Warning(w) => {
                log::warn!("capture pipeline warning: {}", w.error())
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}
