//! A viewer's sound, for talkback: what its webrtcbin receives on the audio transceiver,
//! decoded and handed to the speaker (see crate::speaker) while the viewer holds the floor
//! (see crate::talk).
//!
//! ```text
//!   webrtcbin src (Opus RTP) ─▶ queue leaky ! valve ! rtpopusdepay ! opusdec ! audioconvert
//!                               ! audioresample ! capsfilter (48 kHz mono) ! appsink ─▶ speaker
//! ```
//!
//! The chain is built in the viewer's own branch when its sound first arrives (webrtcbin adds
//! the pad then), so a failure in it (a malformed stream) is a failure of that peer alone.
//! The valve is shut unless the viewer holds the floor: a client that sends sound without
//! asking, or after its turn, costs the device its receive and nothing more (nothing is
//! decoded). The decoder conceals lost packets and never gives up on a bad one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Received sound the chain's queue holds before dropping the oldest, nanoseconds.
const QUEUE_TIME_NS: u64 = 200_000_000;

/// A peer's side of talkback, shared with its webrtcbin's callbacks.
#[derive(Default)]
pub struct Hearing {
    /// The speaker's input, once the peer may be heard.
    input: Mutex<Option<gst_app::AppSrc>>,
    /// The chain's valve, once the chain is built.
    valve: Mutex<Option<gst::Element>>,
    /// The peer holds the floor.
    talking: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hearing {
    /// The peer's sound may be played on `input` (the speaker's), while it holds the floor.
    pub fn hear_into(&self, input: gst_app::AppSrc) {
        *lock(&self.input) = Some(input);
    }

    /// Whether the peer's sound can reach the speaker at all.
    pub fn can_hear(&self) -> bool {
        lock(&self.input).is_some()
    }

    /// Opens (the peer holds the floor) or shuts the way to the speaker.
    pub fn set_talking(&self, on: bool) {
        self.talking.store(on, Ordering::SeqCst);
        if let Some(valve) = lock(&self.valve).as_ref() {
            valve.set_property("drop", !on);
        }
    }

    /// Builds the chain for `pad` (a webrtcbin source pad carrying Opus) in `bin`: true if
    /// it did. Called on a GStreamer thread from `pad-added`.
    pub fn attach(&self, bin: &gst::Bin, pad: &gst::Pad) -> bool {
        let Some(input) = lock(&self.input).clone() else {
            return false;
        };
        if !is_opus(pad) {
            return false;
        }
        match self.build(bin, pad, input) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("talkback: cannot hear this peer: {e}");
                false
            }
        }
    }

    fn build(&self, bin: &gst::Bin, pad: &gst::Pad, input: gst_app::AppSrc) -> Result<(), String> {
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| format!("{factory} is missing"))
        };
        let queue = make("queue")?;
        queue.set_property("max-size-time", QUEUE_TIME_NS);
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property_from_str("leaky", "downstream");
        let valve = make("valve")?;
        valve.set_property("drop", !self.talking.load(Ordering::SeqCst));
        let depay = make("rtpopusdepay")?;
        let decoder = make("opusdec")?;
        decoder.set_property("plc", true);
        // Never give up on a stream: a bad packet is concealed like a lost one.
        decoder.set_property("max-errors", -1i32);
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps: gst::Caps = crate::speaker::CAPS
            .parse()
            .map_err(|_| "bad speaker caps".to_owned())?;
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", &caps)
            .build()
            .map_err(|_| "capsfilter is missing".to_owned())?;
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(50)
            .drop(true)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buffer) = sample.buffer_owned() {
                            // Flushing while the speaker is closed: the sound is let go.
                            let _ = input.push_buffer(buffer);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        let chain = [
            &queue,
            &valve,
            &depay,
            &decoder,
            &convert,
            &resample,
            &filter,
            sink.upcast_ref(),
        ];
        bin.add_many(chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(chain).map_err(|e| e.to_string())?;
        for element in chain {
            element
                .sync_state_with_parent()
                .map_err(|e| e.to_string())?;
        }
        let sink_pad = queue.static_pad("sink").ok_or("queue without a sink pad")?;
        pad.link(&sink_pad).map_err(|e| format!("{e:?}"))?;
        *lock(&self.valve) = Some(valve);
        Ok(())
    }
}

/// Whether `pad` carries Opus RTP.
fn is_opus(pad: &gst::Pad) -> bool {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    caps.structure(0).is_some_and(|s| {
        s.get::<&str>("media").is_ok_and(|m| m == "audio")
            && s.get::<&str>("encoding-name")
                .is_ok_and(|e| e.eq_ignore_ascii_case("opus"))
    })
}
