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
//!
//! A tee (`raw`) in front of the H.264 encoder lets the shared VP8 encode ([`Vp8Encode`]) take
//! the same frames, placeholder included; it runs only while a VP8 viewer is linked. Still
//! pictures ([`Picture`]) hang off it too, each for the moment it takes to get one frame;
//! the pipeline plays while a picture is being taken as while a viewer watches. So does the
//! small H.264 encode ([`crate::small`]) for viewers on poor links, running only while one is
//! fed from it; [`SmallSide`] moves their branches to it and back.
//!
//! The microphone's shared Opus encode ([`crate::audio`]), when there is one, is a second
//! chain of the same pipeline ending in the tee `audio`: same clock, same base time, so the
//! sound's timestamps and the picture's count from the same instant. Its elements are known
//! by name so that an error of theirs cuts off the sound alone ([`Fanout::cut_audio`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use peercam_sdp::Codec;

use super::keyframes::{KeyframeGate, Verdict};
use super::MediaError;
use crate::encoder_rate::{bitrate_of, set_bitrate};
use crate::jpeg::{Delivery, JpegEncoder, Picture};
use crate::moves::SmallSide;
use crate::payload::sink_name;
use crate::source_switch::SourceSwitch;
use crate::vp8::{self, Vp8Encode};
use peercam_wire::SnapshotSpec;

/// The encoders' rate when the H.264 encoder's cannot be read, bits/s.
const FALLBACK_BITRATE: u32 = 1_500_000;

/// How many elements upstream of the tee the H.264 encoder is looked for.
const ENCODER_SEARCH_DEPTH: usize = 16;

/// The shared capture pipeline and its tee.
pub struct Fanout {
    pipeline: gst::Pipeline,
    tee: gst::Element,
    branches: usize,
    /// The camera source's switch, when the launch line has one.
    switch: Option<SourceSwitch>,
    /// Spaces the keyframes the shared encoder is asked for.
    keyframes: Arc<Mutex<KeyframeGate>>,
    /// The tee on the raw frames in front of the H.264 encoder, when one could be put there.
    raw: Option<gst::Element>,
    /// The H.264 encoder, when it could be found upstream of the tee.
    encoder: Option<gst::Element>,
    /// The encoders' rate as configured, bits/s.
    configured_bitrate: u32,
    /// Their rate now, bits/s: the H.264 encoder's, which the VP8 encode matches.
    bitrate: u32,
    /// Whether the VP8 encode's elements are installed.
    vp8_available: bool,
    /// The shared VP8 encode, while a VP8 viewer is linked.
    vp8: Option<Vp8Encode>,
    /// The small H.264 encode and the moves to it and back.
    small: SmallSide,
    /// Still pictures being taken.
    pictures: Vec<Picture>,
    /// The shared Opus encode's tee, when the capture has sound.
    audio: Option<gst::Element>,
    /// The names of the elements upstream of the audio tee: the microphone and its encode.
    audio_elements: Vec<gst::Element>,
    /// The audio source failed and was cut off.
    audio_failed: bool,
}

impl Fanout {
    /// Builds (but does not start) `launch ! tee`. `launch` must end in encoded H.264.
    pub fn new(launch: &str) -> Result<Fanout, MediaError> {
        Fanout::with_audio(launch, None)
    }

    /// Builds (but does not start) `launch ! tee`, and beside it `audio` (ending in the tee
    /// [`crate::audio::TEE`], see [`crate::audio::encode_launch`]) when given.
    pub fn with_audio(launch: &str, audio: Option<&str>) -> Result<Fanout, MediaError> {
        let mut desc = format!("{launch} ! tee name=fanout allow-not-linked=true");
        if let Some(audio) = audio {
            desc.push(' ');
            desc.push_str(audio);
        }
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| MediaError::Pipeline(format!("{e}: {desc}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Pipeline(format!("not a pipeline: {desc}")))?;
        let tee = pipeline
            .by_name("fanout")
            .ok_or_else(|| MediaError::Pipeline("tee missing".into()))?;
        // Before the switch is found: what is downstream of it is shared, not the source's.
        let encoder = find_encoder(&tee);
        // Still pictures take the raw frames too, so the raw tee is put there whether or not
        // VP8 can be encoded.
        let raw = match &encoder {
            Ok(encoder) => match raw_tee(&pipeline, encoder) {
                Ok(raw) => Some(raw),
                Err(why) => {
                    log::info!("no VP8 and no still pictures for this capture: {why}");
                    None
                }
            },
            Err(why) => {
                log::info!("no VP8 and no still pictures for this capture: {why}");
                None
            }
        };
        let encoder = encoder.ok();
        let bitrate = encoder
            .as_ref()
            .map_or(FALLBACK_BITRATE, |e| bitrate_of(e, FALLBACK_BITRATE));
        let switch = SourceSwitch::find(&pipeline)?;
        let audio = audio.and_then(|_| pipeline.by_name(crate::audio::TEE));
        let audio_elements = audio
            .as_ref()
            .map(crate::audio::upstream_of)
            .unwrap_or_default();
        if let Some(tee) = &audio {
            crate::audio::keep_eos_from_listeners(tee);
        }
        let keyframes = Arc::new(Mutex::new(KeyframeGate::default()));
        gate_keyframe_requests(&tee, &keyframes);
        let small = SmallSide::new(raw.is_some() && crate::small::encoder_factory().is_some());
        Ok(Fanout {
            pipeline,
            tee,
            branches: 0,
            switch,
            keyframes,
            raw,
            encoder,
            configured_bitrate: bitrate,
            bitrate,
            vp8_available: vp8::available(),
            vp8: None,
            small,
            pictures: Vec::new(),
            audio,
            audio_elements,
            audio_failed: false,
        })
    }

    /// Whether the capture sends sound (it has a microphone that has not failed).
    pub fn has_audio(&self) -> bool {
        self.audio.is_some() && !self.audio_failed
    }

    /// Opus encodes running: 0 or 1.
    pub fn audio_encoders(&self) -> usize {
        usize::from(self.has_audio() && self.is_playing())
    }

    /// Branches fed the sound.
    pub fn listeners(&self) -> usize {
        self.audio.as_ref().map_or(0, |t| t.src_pads().len())
    }

    /// Whether the audio source failed and was cut off.
    pub fn audio_failed(&self) -> bool {
        self.audio_failed
    }

    /// The names of the microphone's and its encode's elements (an error from one of them is
    /// the sound's alone).
    pub fn audio_element_names(&self) -> Vec<String> {
        self.audio_elements
            .iter()
            .map(|e| e.name().to_string())
            .collect()
    }

    /// Cuts off the failed microphone: its elements stop and stay stopped while the video
    /// goes on; listeners' sound stops (their connections stay).
    pub fn cut_audio(&mut self) {
        if self.audio_failed {
            return;
        }
        self.audio_failed = true;
        for element in &self.audio_elements {
            // Locked, so that the pipeline's own changes of state leave it stopped.
            element.set_locked_state(true);
            let _ = element.set_state(gst::State::Null);
        }
    }

    /// Feeds an added branch's audio input (`sink_audio`) from the shared Opus encode; the
    /// tee pad, needed to unlink it. `None` when the capture has no sound or the branch no
    /// audio input.
    pub fn link_audio(&mut self, bin: &gst::Bin) -> Result<Option<gst::Pad>, MediaError> {
        let (Some(tee), false) = (&self.audio, self.audio_failed) else {
            return Ok(None);
        };
        let Some(sink) = bin.static_pad(crate::payload::AUDIO_SINK) else {
            return Ok(None);
        };
        let tee_pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| MediaError::Pipeline("the audio tee refused a pad".into()))?;
        if let Err(e) = tee_pad.link(&sink) {
            tee.release_request_pad(&tee_pad);
            return Err(MediaError::Pipeline(format!("linking audio: {e:?}")));
        }
        Ok(Some(tee_pad))
    }

    /// The codecs this capture can send, in the camera's order of preference: H.264, and VP8
    /// when its raw frames can be reached and the VP8 elements are installed.
    pub fn codecs(&self) -> Vec<Codec> {
        let mut codecs = vec![Codec::H264];
        if self.raw.is_some() && self.vp8_available {
            codecs.push(Codec::Vp8);
        }
        codecs
    }

    /// Encoders running: (H.264, VP8), each 0 or 1.
    pub fn encoders(&self) -> (usize, usize) {
        (
            usize::from(self.is_playing()),
            usize::from(self.vp8.is_some()),
        )
    }

    /// Branches fed from the VP8 encode.
    pub fn vp8_branches(&self) -> usize {
        self.vp8.as_ref().map_or(0, |v| v.tee().src_pads().len())
    }

    /// Whether viewers on poor links can be moved to a small encode.
    pub fn small_available(&self) -> bool {
        self.small.available()
    }

    /// Small encodes running: 0 or 1.
    pub fn small_encoders(&self) -> usize {
        self.small.encoders()
    }

    /// Branches fed from the small encode (or on their way to it).
    pub fn small_branches(&self) -> usize {
        self.small.branches()
    }

    /// Starts moving the H.264 branch fed through `tee_pad` to the small encode (started at
    /// `bps` bits/s if it is the first), effective at its next keyframe; the branch's tee pad
    /// from now on.
    pub fn move_to_small(&mut self, tee_pad: &gst::Pad, bps: u32) -> Result<gst::Pad, MediaError> {
        self.small
            .to_small(&self.pipeline, self.raw.as_ref(), tee_pad, bps)
    }

    /// Starts moving the branch fed through `tee_pad` (the small encode's) back to the main
    /// encode, effective at its next keyframe, which it is asked for; the branch's tee pad
    /// from now on.
    pub fn move_to_main(&mut self, tee_pad: &gst::Pad) -> Result<gst::Pad, MediaError> {
        let pad = self.small.to_main(tee_pad, &self.tee)?;
        force_keyframe_at(&self.tee, &self.keyframes);
        Ok(pad)
    }

    /// Sets the small encode's rate, bits/s, while it runs.
    pub fn set_small_bitrate(&self, bps: u32) {
        self.small.set_bitrate(bps);
    }

    /// Stops the small encode when no viewer is fed from it any more (its last one moved
    /// back); whether it stopped now.
    pub fn stop_small_if_unwatched(&mut self) -> bool {
        self.small.stop_if_unwatched(&self.pipeline)
    }

    /// The codecs a capture with this launch line can send (built and thrown away, nothing
    /// started); H.264 alone if it cannot be built.
    pub fn codecs_of(launch: &str) -> Vec<Codec> {
        Fanout::new(launch).map_or_else(|_| vec![Codec::H264], |f| f.codecs())
    }

    /// The encoders' rate as configured, bits/s.
    pub fn configured_bitrate(&self) -> u32 {
        self.configured_bitrate
    }

    /// The encoders' rate now, bits/s.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Sets the shared encoders' rate, bits/s (the H.264 encoder's, and the VP8 encode's
    /// while it runs and from its start); whether the H.264 encoder took it.
    pub fn set_bitrate(&mut self, bps: u32) -> bool {
        self.bitrate = bps;
        if let Some(vp8) = &self.vp8 {
            vp8.set_bitrate(bps);
        }
        self.encoder.as_ref().is_some_and(|e| set_bitrate(e, bps))
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

    /// Whether anything needs the capture: a viewer's branch, or a picture being taken.
    pub fn in_use(&self) -> bool {
        self.branches > 0 || !self.pictures.is_empty()
    }

    /// Starts capture and encoding, if not running.
    fn play(&self) -> Result<(), MediaError> {
        if !self.is_playing() {
            self.pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| MediaError::Pipeline("capture pipeline failed to start".into()))?;
        }
        Ok(())
    }

    /// Starts taking picture `number` off the raw frames, starting capture if nothing runs
    /// it; the JPEG goes to `deliver`. The branch stays until [`Fanout::drop_picture`].
    pub fn take_picture(
        &mut self,
        number: u64,
        spec: &SnapshotSpec,
        encoder: JpegEncoder,
        deliver: mpsc::Sender<Delivery>,
    ) -> Result<(), MediaError> {
        let Some(raw) = &self.raw else {
            return Err(MediaError::Pipeline(
                "this capture has no raw frames to take a picture from".into(),
            ));
        };
        self.play()?;
        let picture = Picture::attach(&self.pipeline, raw, number, spec, encoder, deliver)?;
        self.pictures.push(picture);
        Ok(())
    }

    /// Takes picture `number`'s branch off the raw frames (between two frames), if attached;
    /// the encoder it used. Capture runs on while anything else uses it: the caller stops it
    /// when [`Fanout::in_use`] says nothing does.
    pub fn drop_picture(&mut self, number: u64) -> Option<JpegEncoder> {
        let at = self.pictures.iter().position(|p| p.number == number)?;
        let picture = self.pictures.remove(at);
        let encoder = picture.encoder;
        picture.detach(&self.pipeline);
        Some(encoder)
    }

    /// Whether capture and encoding are running.
    pub fn is_playing(&self) -> bool {
        self.pipeline.current_state() == gst::State::Playing
            || self.pipeline.pending_state() == gst::State::Playing
    }

    /// Adds a branch (a bin with a `sink` pad) to the pipeline, starting capture if this is
    /// the first. The branch is brought to the pipeline's state but not yet fed.
    pub fn add(&mut self, bin: &gst::Bin) -> Result<(), MediaError> {
        self.play()?;
        self.pipeline
            .add(bin)
            .map_err(|e| MediaError::Pipeline(format!("adding branch: {e}")))?;
        self.branches += 1;
        // Bring the branch up to the pipeline's state *before* linking: linking first can
        // freeze a running tee.
        let _ = bin.sync_state_with_parent();
        Ok(())
    }

    /// Feeds an added branch from `codec`'s encode (starting the VP8 one if it is the first
    /// VP8 viewer) and asks that encoder for a keyframe. Returns the tee pad, needed to unlink
    /// or remove the branch.
    pub fn link(&mut self, bin: &gst::Bin, codec: Codec) -> Result<gst::Pad, MediaError> {
        let sink = bin
            .static_pad(sink_name(codec))
            .ok_or_else(|| MediaError::Pipeline(format!("branch has no {} input", codec.name())))?;
        let tee = match codec {
            Codec::H264 => self.tee.clone(),
            Codec::Vp8 => self.vp8_tee()?,
        };
        let tee_pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| MediaError::Pipeline("tee refused a pad".into()))?;
        if let Err(e) = tee_pad.link(&sink) {
            tee.release_request_pad(&tee_pad);
            self.stop_vp8_if_unwatched();
            return Err(MediaError::Pipeline(format!("linking branch: {e:?}")));
        }
        // A branch added to a playing pipeline is not part of the latency computed at start;
        // without this, each rtpsession warns for every packet and RTCP times drift.
        let _ = self.pipeline.recalculate_latency();
        match (codec, &self.vp8) {
            (Codec::Vp8, Some(vp8)) => vp8.force_keyframe(),
            _ => force_keyframe_at(&self.tee, &self.keyframes),
        }
        Ok(tee_pad)
    }

    /// The VP8 encode's tee, starting the encode if it is not running.
    fn vp8_tee(&mut self) -> Result<gst::Element, MediaError> {
        if let Some(vp8) = &self.vp8 {
            return Ok(vp8.tee().clone());
        }
        let Some(raw) = &self.raw else {
            return Err(MediaError::Pipeline(
                "this capture has no raw frames to encode VP8 from".into(),
            ));
        };
        let vp8 = Vp8Encode::start(&self.pipeline, raw, self.bitrate)?;
        let tee = vp8.tee().clone();
        self.vp8 = Some(vp8);
        Ok(tee)
    }

    /// Stops the VP8 encode when no viewer is fed from it any more.
    fn stop_vp8_if_unwatched(&mut self) {
        let unwatched = self
            .vp8
            .as_ref()
            .is_some_and(|v| v.tee().src_pads().is_empty());
        if !unwatched {
            return;
        }
        if let Some(vp8) = self.vp8.take() {
            vp8.stop(&self.pipeline);
        }
    }

    /// Stops feeding a branch through `tee_pad` (between two buffers, so the tee never pushes
    /// into a half-unlinked branch) and gives the pad back; the VP8 encode stops with its
    /// last viewer. The branch stays in the pipeline.
    pub fn unlink(&mut self, tee_pad: &gst::Pad) {
        self.small.forget(tee_pad);
        release_tee_pad(tee_pad);
        self.stop_vp8_if_unwatched();
        self.small.stop_if_unwatched(&self.pipeline);
    }

    /// Takes a branch (fed or not) out of the pipeline without stopping it: its owner stops
    /// it once its webrtcbin has settled (see [`crate::retiring`]). The VP8 encode stops with
    /// its last viewer, and capture with the last branch unless a picture is being taken.
    pub fn detach(&mut self, bin: &gst::Bin, tee_pad: Option<&gst::Pad>, audio: Option<&gst::Pad>) {
        self.branches = self.branches.saturating_sub(1);
        if let Some(pad) = tee_pad {
            self.unlink(pad);
        }
        if let Some(pad) = audio {
            self.unlink(pad);
        }
        let _ = self.pipeline.remove(bin);
        if self.branches == 0 {
            // Nothing streams after this.
            if let Some(vp8) = self.vp8.take() {
                vp8.stop(&self.pipeline);
            }
            self.small.stop(&self.pipeline);
            if self.pictures.is_empty() {
                let _ = self.pipeline.set_state(gst::State::Null);
            }
        }
    }

    /// Asks every running encoder for a keyframe (with SPS/PPS for H.264: a viewer
    /// connected, or the picture changed): always sent, and counted by the keyframe gates.
    pub fn force_keyframe(&self) {
        force_keyframe_at(&self.tee, &self.keyframes);
        if let Some(vp8) = &self.vp8 {
            vp8.force_keyframe();
        }
        self.small.force_keyframe();
    }
}

/// Asks the encoder feeding `tee` for a keyframe, past `gate` (which counts it).
pub(crate) fn force_keyframe_at(tee: &gst::Element, gate: &Mutex<KeyframeGate>) {
    lock(gate).force(Instant::now());
    // Pushed from the tee's sink pad, the event travels upstream to the encoder.
    if let Some(pad) = tee.static_pad("sink") {
        pad.push_event(gated_key_unit_event());
    }
}

/// Unlinks a tee's request pad from what it feeds between two buffers (so the tee never pushes
/// into a half-unlinked branch) and gives the pad back to its tee. What it feeds starts with a
/// leaky queue, so the tee is never blocked for long; the wait is bounded all the same.
pub(crate) fn release_tee_pad(tee_pad: &gst::Pad) {
    if let Some(peer) = tee_pad.peer() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            let _ = pad.unlink(&peer);
            let _ = tx.try_send(());
            gst::PadProbeReturn::Remove
        });
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
    if let Some(tee) = tee_pad.parent_element() {
        tee.release_request_pad(tee_pad);
    }
}

/// The H.264 encoder: the first video encoder upstream of `tee`.
fn find_encoder(tee: &gst::Element) -> Result<gst::Element, String> {
    let mut pad = tee.static_pad("sink").and_then(|p| p.peer());
    for _ in 0..ENCODER_SEARCH_DEPTH {
        let Some(element) = pad.as_ref().and_then(|p| p.parent_element()) else {
            break;
        };
        let [sink] = element
            .sink_pads()
            .try_into()
            .map_err(|_| format!("{} does not have exactly one input", element.name()))?;
        let klass = element
            .factory()
            .map(|f| f.metadata("klass").unwrap_or_default().to_owned())
            .unwrap_or_default();
        if klass.contains("Encoder") && klass.contains("Video") {
            return Ok(element);
        }
        pad = sink.peer();
    }
    Err("no video encoder found upstream of the encoded stream".into())
}

/// Puts a tee named `raw` in front of the H.264 `encoder`, so that other encodes can take the
/// same raw frames. The pipeline is left as it was when that cannot be done.
fn raw_tee(pipeline: &gst::Pipeline, encoder: &gst::Element) -> Result<gst::Element, String> {
    let [sink] = encoder
        .sink_pads()
        .try_into()
        .map_err(|_| format!("{} does not have exactly one input", encoder.name()))?;
    let upstream = sink
        .peer()
        .ok_or_else(|| format!("nothing feeds {}", encoder.name()))?;
    let raw = gst::ElementFactory::make("tee")
        .name("raw")
        .property("allow-not-linked", true)
        .build()
        .map_err(|_| "tee missing".to_owned())?;
    pipeline.add(&raw).map_err(|e| e.to_string())?;
    let (raw_sink, raw_src) = match (raw.static_pad("sink"), raw.request_pad_simple("src_%u")) {
        (Some(s), Some(r)) => (s, r),
        _ => return Err("the raw tee has no pads".into()),
    };
    upstream.unlink(&sink).map_err(|e| e.to_string())?;
    // Relinking what was linked cannot fail on caps: the tee passes any.
    upstream.link(&raw_sink).map_err(|e| format!("{e:?}"))?;
    raw_src.link(&sink).map_err(|e| format!("{e:?}"))?;
    Ok(raw)
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
pub(crate) fn gate_keyframe_requests(tee: &gst::Element, gate: &Arc<Mutex<KeyframeGate>>) {
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

/// A keyframe request. Without `all-headers`: the payloader already sends the parameter sets
/// in front of every IDR frame (`config-interval=-1`), inside its access unit; with it, the
/// parser upstream put them out as an access unit of their own, which browsers count as a
/// frame they cannot decode, drop, and answer with another keyframe request: on a clean link
/// a loop of two keyframes a second (as the gate allows) for every viewer.
fn force_key_unit_structure() -> gst::Structure {
    gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", false)
        .field("count", 0u32)
        .build()
}

impl Drop for Fanout {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
