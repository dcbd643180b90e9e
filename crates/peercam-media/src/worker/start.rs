//! Start-up: GStreamer initialised, the elements every session needs present, and the
//! capture settled (the configured launch line, or the one chosen for the camera), and the
//! microphone's encode, if any (see [`crate::audio`]).
//!
//! It runs once, before the worker answers `Ready`; it must not build peers or keep any
//! pipeline (a validated capture is built and dropped).

use gstreamer as gst;
use peercam_wire::{Capture, Chosen, WorkerSettings};

use crate::fanout::Fanout;
use crate::speaker::SpeakerChoice;
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

/// What start-up settled.
pub(super) struct Started {
    /// The capture's launch line, ending in H.264.
    pub launch: String,
    /// What was chosen for the camera, when it was chosen here.
    pub chosen: Option<Chosen>,
    /// The microphone's encode (see [`crate::audio::encode_launch`]), if there is sound.
    pub audio: Option<String>,
    /// The speaker talkback plays on, if any.
    pub speaker: SpeakerChoice,
}

/// Initialises GStreamer and settles the capture: `Err((selecting, message))`.
pub(super) fn start(settings: &WorkerSettings) -> Result<Started, (bool, String)> {
    gst::init().map_err(|e| (false, format!("GStreamer init: {e}")))?;
    for factory in REQUIRED {
        if gst::ElementFactory::find(factory).is_none() {
            return Err((
                false,
                MediaError::MissingElement(factory.into()).to_string(),
            ));
        }
    }
    let (launch, mut chosen) = match &settings.capture {
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
    // A named audio source that cannot be used is a configuration error; a missing
    // microphone under `auto` is only no sound.
    let sound = crate::audio::choose_here(&settings.audio).map_err(|e| (true, e))?;
    log::info!("sound: {}", sound.why);
    // Not built here: a broken audio description costs the sound alone (the first viewer's
    // capture goes on without it, with a warning), and an idle worker that built it would
    // keep the Opus libraries mapped (~0.6 MB) for nothing.
    // A configured output that cannot be used is a configuration error, as for the sound.
    let speaker = crate::speaker::choose_here(&settings.talkback).map_err(|e| (true, e))?;
    let echo = (speaker.launch.is_some() && speaker.echo_cancel && sound.launch.is_some())
        .then_some(crate::speaker::ECHO_PROBE);
    match echo {
        Some(_) => log::info!(
            "talkback: {}; the microphone's echo of it is cancelled",
            speaker.why
        ),
        None => log::info!("talkback: {}", speaker.why),
    }
    let audio = sound
        .launch
        .as_deref()
        .map(|source| crate::audio::encode_launch(source, sound.bitrate_kbps, echo));
    if settings.validate {
        drop(Fanout::new(&launch).map_err(|e| (false, e.to_string()))?);
    }
    if let Some(chosen) = chosen.as_mut() {
        chosen.summary = format!("{}; sound: {}", chosen.summary, sound.why);
    }
    Ok(Started {
        launch,
        chosen,
        audio,
        speaker,
    })
}
