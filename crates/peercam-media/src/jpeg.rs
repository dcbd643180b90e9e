//! Still pictures off the capture: a short-lived branch on the raw frames in front of the
//! H.264 encoder, where the VP8 encode hangs too, that encodes one frame as JPEG and is taken
//! off again.
//!
//! ```text
//!   <source> ! … ─▶ tee name=raw ─▶ <H.264 encoder> ! tee name=fanout ─▶ viewers
//!                                ├─▶ (VP8 encode, while a VP8 viewer watches)
//!                                └─▶ bin snapshot-N: queue leaky ! videoconvert ! videoscale
//!                                      ! capsfilter (size) ! jpegenc | v4l2jpegenc ! appsink
//! ```
//!
//! Its queue is leaky and holds at most a few frames, so a slow JPEG encode (software, at
//! full size, on a Pi) never holds up the capture, the H.264 encode or the viewers: it is the
//! picture that waits. The appsink keeps the first JPEG and ignores the rest until the branch
//! is detached, between two frames as the VP8 encode is.
//!
//! The encoder is the Pi's hardware JPEG encoder (`v4l2jpegenc`) where it is registered and a
//! two-frame trial works ([`choose`]), else `jpegenc`. This file builds, attaches and detaches
//! a branch and chooses the encoder; fanout.rs owns the pipeline and the raw tee, and the
//! worker decides when a picture is taken and what its answer is.

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

/// A picture's bytes, or why there is none; tagged with the picture's number.
pub type Delivery = (u64, Result<Vec<u8>, String>);

/// Which JPEG encoder a branch uses.
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
    fn element(self, quality: u32) -> Result<gst::Element, MediaError> {
        let encoder = gst::ElementFactory::make(self.factory())
            .build()
            .map_err(|_| MediaError::MissingElement(self.factory().to_owned()))?;
        let quality = quality.min(100);
        match self {
            // V4L2's JPEG compression-quality control, under the name GStreamer gives it.
            JpegEncoder::Hardware => {
                let controls = gst::Structure::builder("controls")
                    .field("compression_quality", i32::try_from(quality).unwrap_or(85))
                    .build();
                encoder.set_property("extra-controls", controls);
            }
            JpegEncoder::Software => {
                encoder.set_property("quality", i32::try_from(quality).unwrap_or(85))
            }
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

/// One picture's branch, attached to the raw tee.
pub struct Picture {
    /// Its number (names its bin).
    pub number: u64,
    /// The encoder it uses.
    pub encoder: JpegEncoder,
    /// `queue ! videoconvert ! videoscale ! capsfilter ! encoder ! appsink`, in the pipeline.
    bin: gst::Bin,
    /// The raw tee's pad feeding it.
    raw_pad: gst::Pad,
}

impl Picture {
    /// Builds picture `number`'s branch, adds it to `pipeline` and feeds it from `raw`; its
    /// JPEG (or why there is none) goes to `deliver` from GStreamer's streaming thread.
    pub fn attach(
        pipeline: &gst::Pipeline,
        raw: &gst::Element,
        number: u64,
        spec: &SnapshotSpec,
        encoder: JpegEncoder,
        deliver: mpsc::Sender<Delivery>,
    ) -> Result<Picture, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("picture: {e}"));
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| MediaError::MissingElement(factory.to_owned()))
        };
        let queue = crate::payload::leaky_queue(QUEUE_TIME_NS)?;
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let filter = make("capsfilter")?;
        filter.set_property("caps", picture_caps(spec));
        let encode = encoder.element(spec.quality)?;
        let sink = appsink(number, deliver);
        let bin = gst::Bin::builder()
            .name(format!("{BIN_PREFIX}{number}"))
            .build();
        let elements = [queue, convert, scale, filter, encode, sink.upcast()];
        bin.add_many(&elements).map_err(|e| fail(&e))?;
        gst::Element::link_many(&elements).map_err(|e| fail(&e))?;
        let queue_sink = elements[0]
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
            return Err(fail(&format!("{} did not start", encoder.factory())));
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

    /// Detaches the branch from `raw` (between two frames) and takes it out of `pipeline`.
    pub fn detach(self, pipeline: &gst::Pipeline, raw: &gst::Element) {
        if let Some(peer) = self.raw_pad.peer() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            self.raw_pad
                .add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                    let _ = pad.unlink(&peer);
                    let _ = tx.try_send(());
                    gst::PadProbeReturn::Remove
                });
            // The branch's queue is leaky, so the raw tee is never blocked for long.
            let _ = rx.recv_timeout(Duration::from_secs(2));
        }
        raw.release_request_pad(&self.raw_pad);
        if let Err(err) = self.bin.set_state(gst::State::Null) {
            log::warn!("picture {}'s branch did not stop: {err}", self.number);
        }
        let _ = pipeline.remove(&self.bin);
    }
}

/// The branch's end: keeps the first JPEG and sends it to `deliver`, ignores the rest.
/// Not synchronised to the clock (a picture is wanted as soon as it is encoded), and not
/// asynchronous in its state changes (it joins a pipeline already playing).
fn appsink(number: u64, deliver: mpsc::Sender<Delivery>) -> gst_app::AppSink {
    let delivered = Arc::new(AtomicBool::new(false));
    gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(1)
        .drop(true)
        .enable_last_sample(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    if delivered.swap(true, Ordering::Relaxed) {
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    let bytes = sample
                        .buffer()
                        .ok_or("a JPEG sample without a buffer")
                        .and_then(|b| b.map_readable().map_err(|_| "an unreadable JPEG buffer"))
                        .map(|map| map.as_slice().to_vec())
                        .map_err(str::to_owned);
                    // The worker reads continuously; a full queue means it is stopping.
                    let _ = deliver.try_send((number, bytes));
                    // Ok, never Eos: an end here would travel back through the raw tee.
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
