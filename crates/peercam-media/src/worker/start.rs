//! Start-up: GStreamer initialised, the elements every session needs present, and the
//! capture settled (the configured launch line, or the one chosen for the camera).
//!
//! It runs once, before the worker answers `Ready`; it must not build peers or keep any
//! pipeline (a validated capture is built and dropped).

use gstreamer as gst;
use peercam_wire::{Capture, Chosen, WorkerSettings};

use crate::fanout::Fanout;
use crate::MediaError;

/// Elements every session needs, checked by name so that a missing plugin package is named at
/// start-up instead of failing the first viewer.
const REQUIRED: [&str; 6] = [
    "webrtcbin",
    "rtph264pay",
    "queue",
    "capsfilter",
    "tee",
    "dtlsdec",
];

/// Initialises GStreamer and settles the capture: `Err((selecting, message))`.
pub(super) fn start(settings: &WorkerSettings) -> Result<(String, Option<Chosen>), (bool, String)> {
    gst::init().map_err(|e| (false, format!("GStreamer init: {e}")))?;
    for factory in REQUIRED {
        if gst::ElementFactory::find(factory).is_none() {
            return Err((
                false,
                MediaError::MissingElement(factory.into()).to_string(),
            ));
        }
    }
    let (launch, chosen) = match &settings.capture {
        Capture::Launch(launch) => (launch.clone(), None),
        Capture::Select(camera) => {
            let selection =
                crate::select::capture_pipeline(camera).map_err(|e| (true, e.to_string()))?;
            let chosen = Chosen {
                source: selection.source.fragment.name.clone(),
                encoder: selection.encoder.fragment.name.clone(),
                summary: selection.to_string(),
            };
            (selection.launch, Some(chosen))
        }
    };
    if settings.validate {
        drop(Fanout::new(&launch).map_err(|e| (false, e.to_string()))?);
    }
    Ok((launch, chosen))
}
