//! Still pictures off the capture: a short-lived branch on the raw frames in front of the
//! H.264 encoder, where the VP8 encode hangs too, takes one frame; a pipeline of its own
//! encodes it as JPEG; the branch is taken off again.
//!
//! ```text
//!   <source> ! … ─▶ tee name=raw ─▶ <H.264 encoder> ! tee name=fanout ─▶ viewers
//!                                ├─▶ (VP8 encode, while a VP8 viewer watches)
//!                                └─▶ bin snapshot-N: queue leaky ! appsink      (one frame)
//!
//!   on a thread of its own:  appsrc (that frame) ! videoconvert ! videoscale
//!                              ! capsfilter (size) ! jpegenc | v4l2jpegenc ! appsink
//! ```
//!
//! The encode is not in the capture's pipeline because a failure there would not stay there:
//! an element of a tee's branch that fails (an encoder refusing a size, a hardware encoder
//! gone wrong) makes the tee fail the push, and the capture's source stops with an "internal
//! data stream error" for every viewer (tried: a branch `queue leaky ! identity error-after=10`
//! stopped `videotestsrc ! tee` after 11 frames). The branch on the capture is a leaky queue
//! and an appsink, which take any raw video and never hold up the capture, the H.264 encode
//! or the viewers. The frame is encoded off GStreamer's streaming threads, so that an encode
//! that hangs holds up nobody: the worker answers when the picture's time is up.
//!
//! The encoder is the Pi's hardware JPEG encoder (`v4l2jpegenc`) where it is registered and a
//! two-frame trial works ([`choose`]), else `jpegenc`. This file builds, attaches and detaches
//! a branch, encodes its frame and chooses the encoder; fanout.rs owns the pipeline and the
//! raw tee, and the worker decides when a picture is taken and what its answer is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use peercam_wire::SnapshotSpec;

use crate::probe::Probe;
use crate::MediaError;

/// Branch bins are named `snapshot-<number>`: an error from inside one is that picture's.
pub const BIN_PREFIX: &str = "snapshot-";

/// The hardware encoder's two-frame trial: what [`choose`] runs before trusting it.
pub const HARDWARE_TRIAL: &str = "videotestsrc num-buffers=2 ! \
     video/x-raw,format=I420,width=640,height=480 ! v4l2jpegenc ! fakesink";

/// How long the trial may take: as for the hardware H.264 encoder's (select.rs).
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Raw frames the branch's queue holds before it drops the oldest, nanoseconds: 100 ms, a few
/// frames; the picture is of one of them.
const QUEUE_TIME_NS: u64 = 100_000_000;

/// The longest a frame's encode may take: a 4K frame in software on a Pi takes well under it.
/// An encode that takes longer is given up (its thread left to finish or not).
const ENCODE_LIMIT: Duration = Duration::from_secs(3);

/// A picture's bytes, or why there is none; tagged with the picture's number.
pub type Delivery = (u64, Result<Vec<u8>, String>);

/// Which JPEG encoder a picture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegEncoder {
    /// The Raspberry Pi's codec block (`v4l2jpegenc`).
    Hardware,
    /// libjpeg (`jpegenc`, gstreamer1.0-plugins-good).
    Software,
}

impl JpegEncoder {
    /// The element's factory.
    pub fn factory(self) -> &'static str {
        match self {
            JpegEncoder::Hardware => "v4l2jpegenc",
            JpegEncoder::Software => "jpegenc",
        }
    }

    /// The encoder element, at `quality` (1 to 100).
    fn element(self, quality: u32) -> Result<gst::Element, String> {
        let encoder = gst::ElementFactory::make(self.factory())
            .build()
            .map_err(|_| MediaError::MissingElement(self.factory().to_owned()).to_string())?;
        let quality = i32::try_from(quality.min(100)).unwrap_or(85);
        match self {
            // V4L2's JPEG compression-quality control, under the name GStreamer gives it.
            JpegEncoder::Hardware if encoder.find_property("extra-controls").is_some() => {
                let controls = gst::Structure::builder("controls")
                    .field("compression_quality", quality)
                    .build();
                encoder.set_property("extra-controls", controls);
            }
            JpegEncoder::Software if encoder.find_property("quality").is_some() => {
                encoder.set_property("quality", quality);
            }
            _ => log::warn!("{} takes no quality here", self.factory()),
        }
        Ok(encoder)
    }
}

/// The JPEG encoder to use on this machine: the hardware one when its element is registered
/// and two test frames encode in time, else the software one.
pub fn choose(probe: &dyn Probe) -> JpegEncoder {
    if !probe.has_element(JpegEncoder::Hardware.factory()) {
        return JpegEncoder::Software;
    }
    match probe.trial(HARDWARE_TRIAL, TRIAL_TIMEOUT) {
        Ok(()) => {
            log::info!("still pictures: the hardware JPEG encoder (v4l2jpegenc)");
            JpegEncoder::Hardware
        }
        Err(why) => {
            log::info!("still pictures: v4l2jpegenc present but not usable ({why}); jpegenc");
            JpegEncoder::Software
        }
    }
}

/// The caps a picture is scaled to: `spec`'s size with square pixels (so that a picture of
/// another shape than the stream gets borders, never a squashed picture), or any size.
pub fn picture_caps(spec: &SnapshotSpec) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw");
    if let Some((width, height)) = spec.size {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        caps = caps
            .field("width", clamp(width))
            .field("height", clamp(height))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    }
    caps.build()
}

/// Encodes one raw frame (`sample`: buffer and caps) as a JPEG of `spec` with `encoder`, in a
/// pipeline of its own, waiting at most [`ENCODE_LIMIT`]. Blocking.
pub fn encode(
    sample: &gst::Sample,
    spec: &SnapshotSpec,
    encoder: JpegEncoder,
) -> Result<Vec<u8>, String> {
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|_| MediaError::MissingElement(factory.to_owned()).to_string())
    };
    let caps = sample.caps().ok_or("the frame has no caps")?.to_owned();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let filter = make("capsfilter")?;
    filter.set_property("caps", picture_caps(spec));
    let encode = encoder.element(spec.quality)?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    let elements = [
        src.upcast_ref(),
        &convert,
        &scale,
        &filter,
        &encode,
        sink.upcast_ref(),
    ];
    pipeline.add_many(elements).map_err(|e| e.to_string())?;
    gst::Element::link_many(elements).map_err(|e| e.to_string())?;
    let result = run_once(&pipeline, &src, &sink, sample);
    let _ = pipeline.set_state(gst::State::Null);
    result.map_err(|e| format!("{}: {e}", encoder.factory()))
}

/// Plays `pipeline`, feeds it `sample` and the end of the stream, and takes what reaches
/// `sink`; the first error on its bus instead, as soon as there is one.
fn run_once(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    sink: &gst_app::AppSink,
    sample: &gst::Sample,
) -> Result<Vec<u8>, String> {
    let bus = pipeline.bus().ok_or("no bus")?;
    let first_error = || {
        bus.pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(first_error().unwrap_or_else(|| "did not start".into()));
    }
    src.push_sample(sample).map_err(|e| format!("{e:?}"))?;
    let _ = src.end_of_stream();
    let deadline = std::time::Instant::now() + ENCODE_LIMIT;
    let jpeg = loop {
        if let Some(jpeg) = sink.try_pull_sample(gst::ClockTime::from_mseconds(20)) {
            break jpeg;
        }
        if let Some(error) = first_error() {
            return Err(error);
        }
        if sink.is_eos() {
            return Err("the encoder made no JPEG of the frame".into());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("no JPEG within {} s", ENCODE_LIMIT.as_secs()));
        }
    };
    let buffer = jpeg.buffer().ok_or("a JPEG sample without a buffer")?;
    let map = buffer
        .map_readable()
        .map_err(|_| "an unreadable JPEG buffer")?;
    Ok(map.as_slice().to_vec())
}

/// One picture's branch, attached to the raw tee.
pub struct Picture {
    /// Its number (names its bin).
    pub number: u64,
    /// The encoder its frame is encoded with.
    pub encoder: JpegEncoder,
    /// `queue ! appsink`, in the pipeline.
    bin: gst::Bin,
    /// The raw tee's pad feeding it.
    raw_pad: gst::Pad,
}

impl Picture {
    /// Builds picture `number`'s branch, adds it to `pipeline` and feeds it from `raw`. Its
    /// first frame is encoded on a thread of its own; the JPEG (or why there is none) goes to
    /// `deliver`.
    pub fn attach(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        number: u64,
        spec: &SnapshotSpec,
        encoder: JpegEncoder,
        deliver: mpsc::Sender<Delivery>,
    ) -> Result<Picture, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("picture: {e}"));
        let queue = crate::payload::leaky_queue(QUEUE_TIME_NS)?;
        let sink = appsink(number, *spec, encoder, deliver);
        let bin = gst::Bin::builder()
            .name(format!("{BIN_PREFIX}{number}"))
            .build();
        bin.add_many([&queue, sink.upcast_ref()])
            .map_err(|e| fail(&e))?;
        queue.link(&sink).map_err(|e| fail(&e))?;
        let queue_sink = queue
            .static_pad("sink")
            .ok_or_else(|| fail(&"queue has no sink pad"))?;
        let ghost = gst::GhostPad::with_target(&queue_sink).map_err(|e| fail(&e))?;
        bin.add_pad(&ghost).map_err(|e| fail(&e))?;

        pipeline.add(&bin).map_err(|e| fail(&e))?;
        let undo = || {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
        };
        // Up to the pipeline's state before linking, as with a viewer's branch.
        if bin.sync_state_with_parent().is_err() {
            undo();
            return Err(fail(&"the branch did not start"));
        }
        let Some(raw_pad) = raw.request_pad_simple("src_%u") else {
            undo();
            return Err(fail(&"the raw tee refused a pad"));
        };
        if let Err(e) = raw_pad.link(&ghost) {
            raw.release_request_pad(&raw_pad);
            undo();
            return Err(fail(&format!("{e:?}")));
        }
        Ok(Picture {
            number,
            encoder,
            bin,
            raw_pad,
        })
    }

    /// Detaches the branch from the raw tee (between two frames) and takes it out of `pipeline`.
    pub fn detach(self, pipeline: &gst::Pipeline) {
        crate::fanout::release_tee_pad(&self.raw_pad);
        if let Err(err) = self.bin.set_state(gst::State::Null) {
            log::warn!("picture {}'s branch did not stop: {err}", self.number);
        }
        let _ = pipeline.remove(&self.bin);
    }
}

/// The branch's end: hands the first frame to a thread that encodes it and sends the JPEG to
/// `deliver`, and ignores the rest. Not synchronised to the clock (the frame is wanted as soon
/// as it comes), and not asynchronous in its state changes (it joins a pipeline already
/// playing).
fn appsink(
    number: u64,
    spec: SnapshotSpec,
    encoder: JpegEncoder,
    deliver: mpsc::Sender<Delivery>,
) -> gst_app::AppSink {
    let taken = Arc::new(AtomicBool::new(false));
    gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(1)
        .drop(true)
        .enable_last_sample(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    // Ok whatever happens here: a flow error would travel back through the
                    // raw tee to the capture.
                    let Ok(sample) = sink.pull_sample() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    if taken.swap(true, Ordering::Relaxed) {
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    let to_worker = deliver.clone();
                    let spawned = std::thread::Builder::new()
                        .name("peercam-jpeg".into())
                        .spawn(move || {
                            let jpeg = encode(&sample, &spec, encoder);
                            // The worker reads continuously; a full queue means it stops.
                            let _ = to_worker.try_send((number, jpeg));
                        });
                    if let Err(e) = spawned {
                        let why = format!("no thread to encode the picture: {e}");
                        let _ = deliver.try_send((number, Err(why)));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::Path;

    /// A machine with or without the hardware encoder, whose trial passes or fails.
    struct Machine {
        hardware: bool,
        trial_ok: bool,
        trials: RefCell<Vec<String>>,
    }

    impl Probe for Machine {
        fn cameras(&self) -> crate::probe::Cameras {
            Default::default()
        }
        fn has_element(&self, factory: &str) -> bool {
            factory != "v4l2jpegenc" || self.hardware
        }
        fn read_sysfs(&self, _: &Path) -> Option<String> {
            None
        }
        fn trial(&self, launch: &str, timeout: Duration) -> Result<(), String> {
            assert_eq!(timeout, TRIAL_TIMEOUT);
            self.trials.borrow_mut().push(launch.to_owned());
            if self.trial_ok {
                Ok(())
            } else {
                Err("no end of stream within 2s".into())
            }
        }
    }

    fn machine(hardware: bool, trial_ok: bool) -> Machine {
        Machine {
            hardware,
            trial_ok,
            trials: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn the_hardware_encoder_is_used_only_where_present_and_its_trial_works() {
        let pi = machine(true, true);
        assert_eq!(choose(&pi), JpegEncoder::Hardware);
        assert_eq!(*pi.trials.borrow(), [HARDWARE_TRIAL]);
        let broken = machine(true, false);
        assert_eq!(choose(&broken), JpegEncoder::Software);
        let pc = machine(false, true);
        assert_eq!(choose(&pc), JpegEncoder::Software);
        assert!(
            pc.trials.borrow().is_empty(),
            "no trial without the element"
        );
    }

    #[test]
    fn this_machine_chooses_what_it_has() {
        let probe = crate::probe::SystemProbe::new().unwrap();
        let chosen = choose(&probe);
        assert_eq!(
            chosen == JpegEncoder::Hardware,
            gst::ElementFactory::find("v4l2jpegenc").is_some()
                && probe.trial(HARDWARE_TRIAL, TRIAL_TIMEOUT).is_ok()
        );
    }

    /// One raw frame of `caps` from videotestsrc.
    fn frame(caps: &str) -> gst::Sample {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=1 ! {caps} ! appsink name=out"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(5));
        pipeline.set_state(gst::State::Null).unwrap();
        sample.unwrap()
    }

    #[test]
    fn a_frame_encodes_to_a_jpeg_of_the_size_asked_and_quality_matters() {
        let raw = frame("video/x-raw,format=I420,width=320,height=240");
        let spec = |size, quality| SnapshotSpec { size, quality };
        let full = encode(&raw, &spec(None, 85), JpegEncoder::Software).unwrap();
        assert!(full.starts_with(&[0xff, 0xd8]) && full.ends_with(&[0xff, 0xd9]));
        let small = encode(&raw, &spec(Some((160, 90)), 85), JpegEncoder::Software).unwrap();
        assert!(small.len() < full.len());
        let rough = encode(&raw, &spec(None, 10), JpegEncoder::Software).unwrap();
        let fine = encode(&raw, &spec(None, 100), JpegEncoder::Software).unwrap();
        assert!(rough.len() < full.len() && full.len() < fine.len());
    }

    #[test]
    fn a_frame_the_encoder_cannot_take_is_an_error_not_a_hang() {
        // Caps without a size: nothing can be negotiated.
        let raw = frame("video/x-raw,format=I420,width=320,height=240");
        let broken = gst::Sample::builder()
            .buffer(&raw.buffer_owned().unwrap())
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            )
            .build();
        let started = std::time::Instant::now();
        let spec = SnapshotSpec {
            size: None,
            quality: 85,
        };
        assert!(encode(&broken, &spec, JpegEncoder::Software).is_err());
        assert!(started.elapsed() < ENCODE_LIMIT + Duration::from_secs(1));
    }

    #[test]
    fn a_size_is_scaled_to_with_square_pixels_and_none_keeps_the_streams() {
        gst::init().unwrap();
        let sized = picture_caps(&SnapshotSpec {
            size: Some((640, 360)),
            quality: 85,
        });
        let s = sized.structure(0).unwrap();
        assert_eq!(s.get::<i32>("width").unwrap(), 640);
        assert_eq!(s.get::<i32>("height").unwrap(), 360);
        assert_eq!(
            s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(),
            gst::Fraction::new(1, 1)
        );
        let any = picture_caps(&SnapshotSpec {
            size: None,
            quality: 85,
        });
        assert!(!any.structure(0).unwrap().has_field("width"));
    }
}
