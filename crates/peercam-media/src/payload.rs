//! The RTP end of a viewer's branch, per codec the camera sends: the payload types it offers
//! them under, their RTP caps, and the `queue ! payloader ! capsfilter` chain that turns one
//! shared encode into a viewer's packets.
//!
//! ```text
//!   H.264 tee ─▶ sink     ─▶ queue leaky ! rtph264pay ! capsfilter ─┐
//!                                                                    ├─ funnel ─▶ webrtcbin
//!   VP8 tee   ─▶ sink_vp8 ─▶ queue leaky ! rtpvp8pay  ! capsfilter ─┘
//! ```
//!
//! An offering branch is fed H.264 until the answer says VP8; the VP8 chain is built then
//! ([`Feeds::switch_to`]). Both payloaders send under the one video SSRC ([`video_ssrc`]),
//! which the offer states with its retransmission SSRC (`a=ssrc-group:FID`): a receiver that
//! learns SSRCs from the packets (Firefox) would otherwise take a retransmission for a new
//! stream. The VP8 payloader continues the H.264 one's sequence numbers, as SRTP refuses a
//! number that goes back within one SSRC.
//!
//! A branch that listens has a chain of its own for the sound, into a second webrtcbin pad
//! (the offer's audio section, after the video's):
//!
//! ```text
//!   audio tee ─▶ sink_audio ─▶ queue leaky ! rtpopuspay ! capsfilter ─▶ webrtcbin
//! ```
//!
//! peer.rs owns the branch and its webrtcbin; this file builds and switches what feeds it.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;

use peercam_sdp::Codec;

use crate::MediaError;

/// The RTP payload type of the device's H.264 video when it offers.
pub const OFFER_PT: u8 = 96;

/// The RTP payload type of the device's VP8 video when it offers.
pub const OFFER_VP8_PT: u8 = 97;

/// The retransmission payload type for VP8 in the device's offer (webrtcbin 1.22 makes one
/// for the first codec only, under the next free number, 98).
pub const OFFER_VP8_RTX_PT: u8 = 99;

/// The RTP payload type of the device's Opus audio when it offers (browsers' own choice).
pub const OFFER_OPUS_PT: u8 = 111;

/// The name of a branch's sink pad for the shared Opus encode.
pub const AUDIO_SINK: &str = "sink_audio";

/// How much encoded sound a listener's queue holds before it drops the oldest, nanoseconds.
const AUDIO_QUEUE_TIME_NS: u64 = 200_000_000;

/// How much encoded video a viewer's queue holds before it drops the oldest, nanoseconds: a
/// viewer whose network or branch stalls loses frames, never holds up the shared encode.
const QUEUE_TIME_NS: u64 = 500_000_000;

/// The payload type a codec is offered under.
pub fn offer_pt(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => OFFER_PT,
        Codec::Vp8 => OFFER_VP8_PT,
    }
}

/// The device's offer as it is sent, from webrtcbin's text: retransmission offered for every
/// codec in `codecs`, not only the first.
pub fn complete_offer(sdp: &str, codecs: &[Codec]) -> String {
    if codecs.contains(&Codec::Vp8) {
        peercam_sdp::add_rtx(sdp, OFFER_VP8_PT, OFFER_VP8_RTX_PT)
    } else {
        sdp.to_owned()
    }
}

/// The name of a branch's sink pad for a codec's encoded stream.
pub fn sink_name(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "sink",
        Codec::Vp8 => "sink_vp8",
    }
}

/// `application/x-rtp` caps for `codec` under `pt`.
pub fn rtp_caps(codec: Codec, pt: u8) -> gst::Caps {
    let name = match codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
    };
    gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", name)
        .field("payload", i32::from(pt))
        .field("clock-rate", 90000i32)
        .build()
}

/// Whether RTP caps say enough for an offer or answer: H.264 caps once they carry the
/// stream's `profile-level-id`, VP8 caps at once.
pub fn caps_ready(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| {
        s.has_field("profile-level-id")
            || s.get::<&str>("encoding-name")
                .is_ok_and(|n| n.eq_ignore_ascii_case("VP8"))
    })
}

/// A random SSRC.
pub fn random_ssrc() -> u32 {
    // RandomState is seeded per process and per instance from the OS.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

/// The SSRC the camera's video is sent under, to every viewer: drawn once per worker.
///
/// Each viewer's connection is an RTP session of its own, with its own SRTP keys, so one
/// value never meets itself. A value per viewer would cost memory for good: webrtcbin keeps
/// each video SSRC it sends as a field name of a GStreamer structure, and GLib never frees
/// the names it has seen (its quarks), so thousands of viewers coming and going would grow
/// the worker without end.
pub fn video_ssrc() -> u32 {
    static SSRC: OnceLock<u32> = OnceLock::new();
    *SSRC.get_or_init(random_ssrc)
}

/// The SSRC of the camera's sound, to every listener, drawn once per worker as
/// [`video_ssrc`] and different from it.
pub fn audio_ssrc() -> u32 {
    static SSRC: OnceLock<u32> = OnceLock::new();
    *SSRC.get_or_init(|| loop {
        let ssrc = random_ssrc();
        if ssrc != video_ssrc() {
            return ssrc;
        }
    })
}

/// One codec's chain in a branch.
pub struct Chain {
    /// Its codec.
    pub codec: Codec,
    /// The leaky queue the shared encode feeds.
    pub queue: gst::Element,
    /// The payloader.
    pub pay: gst::Element,
    /// The RTP caps it sends.
    pub capsfilter: gst::Element,
}

fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_owned()))
}

/// A queue holding up to `max_time_ns` of buffers that drops the oldest when full, so the
/// tee feeding it is never held up by what follows it.
pub(crate) fn leaky_queue(max_time_ns: u64) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", max_time_ns)
        .property_from_str("leaky", "downstream")
        .build()
        .map_err(|_| MediaError::MissingElement("queue".into()))
}

/// Makes a branch's queue answer the encoder's allocation query itself. The query is
/// serialized: a queue holds it until everything queued before it has left, and what follows
/// a branch can hold still for good (webrtcbin keeps media back until DTLS is up, which a
/// peer whose ICE never connects never reaches). Held there, the query would hold the tee,
/// the encoder and the capture with it: no frame for anyone, and the worker's loop stuck
/// reopening a source it takes for stalled. A payloader wants nothing from the encoder's
/// allocation, so the empty answer costs nothing.
fn answer_allocation_queries(queue: &gst::Element) {
    let Some(sink) = queue.static_pad("sink") else {
        return;
    };
    sink.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        match &info.data {
            Some(gst::PadProbeData::Query(q)) if q.type_() == gst::QueryType::Allocation => {
                gst::PadProbeReturn::Handled
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

impl Chain {
    /// `queue ! payloader ! capsfilter` for `codec` under `pt` as `ssrc`, its first sequence
    /// number `seqnum` (random if `None`); linked, not yet in a bin.
    pub fn new(codec: Codec, pt: u8, ssrc: u32, seqnum: Option<u16>) -> Result<Chain, MediaError> {
        let queue = leaky_queue(QUEUE_TIME_NS)?;
        answer_allocation_queries(&queue);
        let pay = match codec {
            Codec::H264 => {
                let pay = make("rtph264pay")?;
                pay.set_property("config-interval", -1i32);
                pay.set_property_from_str("aggregate-mode", "zero-latency");
                pay
            }
            Codec::Vp8 => {
                let pay = make("rtpvp8pay")?;
                // The picture id lets a receiver tell a lost frame from a late one.
                pay.set_property_from_str("picture-id-mode", "15-bit");
                pay
            }
        };
        pay.set_property("pt", u32::from(pt));
        pay.set_property("ssrc", ssrc);
        if let Some(seqnum) = seqnum {
            pay.set_property("seqnum-offset", i32::from(seqnum));
        }
        let capsfilter = make("capsfilter")?;
        capsfilter.set_property("caps", rtp_caps(codec, pt));
        Ok(Chain {
            codec,
            queue,
            pay,
            capsfilter,
        })
    }

    /// Sends under `pt` instead (an answer uses the remote offer's number).
    pub fn set_pt(&self, pt: u8) {
        self.pay.set_property("pt", u32::from(pt));
        self.capsfilter
            .set_property("caps", rtp_caps(self.codec, pt));
    }

    /// The elements, upstream first.
    pub fn elements(&self) -> [&gst::Element; 3] {
        [&self.queue, &self.pay, &self.capsfilter]
    }

    /// The chain's output.
    pub fn src(&self) -> Result<gst::Pad, MediaError> {
        self.capsfilter
            .static_pad("src")
            .ok_or_else(|| MediaError::Pipeline("capsfilter has no src pad".into()))
    }

    /// The chain's input.
    pub fn sink(&self) -> Result<gst::Pad, MediaError> {
        self.queue
            .static_pad("sink")
            .ok_or_else(|| MediaError::Pipeline("queue has no sink pad".into()))
    }
}

/// What feeds a branch's webrtcbin: the chain of each codec it is fed, joined by a funnel,
/// and the codecs it offers whose chain is built once an answer chooses them.
pub struct Feeds {
    /// The branch's bin, which holds the chains.
    bin: gst::Bin,
    /// The chains built, the first the one fed at first.
    chains: Vec<Chain>,
    /// Codecs offered whose chain is not built yet.
    later: Vec<Codec>,
    /// Joins the chains, when the branch offers several codecs. A branch of one codec links
    /// its chain to webrtcbin directly: webrtcbin matches an offer to the transceiver whose
    /// pad's peer answers the caps query with that codec, which a funnel does not.
    funnel: Option<gst::Element>,
    /// Holds the stream back from webrtcbin until the offer is made, when the branch
    /// offers several codecs ([`hold_until_offered`]).
    held: Arc<Mutex<Option<gst::PadProbeId>>>,
}

impl Feeds {
    /// Builds the first codec's chain in `bin`, ghosted as its sink pad for that codec; the
    /// others are offered and built later.
    pub fn build(bin: &gst::Bin, codecs: &[Codec]) -> Result<Feeds, MediaError> {
        let Some((&first, later)) = codecs.split_first() else {
            return Err(MediaError::Pipeline("a branch needs a codec".into()));
        };
        let funnel = match later {
            [] => None,
            _ => {
                let funnel = make("funnel")?;
                funnel.set_property("forward-sticky-events", true);
                bin.add(&funnel).map_err(fail)?;
                Some(funnel)
            }
        };
        let mut feeds = Feeds {
            bin: bin.clone(),
            chains: Vec::new(),
            later: later.to_vec(),
            funnel,
            held: Arc::new(Mutex::new(None)),
        };
        feeds.add_chain(first, None)?;
        if !feeds.later.is_empty() {
            let held = hold_until_offered(&feeds.out()?);
            *feeds.held.lock().unwrap_or_else(|e| e.into_inner()) = held;
        }
        Ok(feeds)
    }

    fn add_chain(&mut self, codec: Codec, seqnum: Option<u16>) -> Result<(), MediaError> {
        let chain = Chain::new(codec, offer_pt(codec), video_ssrc(), seqnum)?;
        self.bin.add_many(chain.elements()).map_err(fail)?;
        gst::Element::link_many(chain.elements()).map_err(fail)?;
        if let Some(funnel) = &self.funnel {
            let pad = funnel
                .request_pad_simple("sink_%u")
                .ok_or_else(|| MediaError::Pipeline("funnel refused a pad".into()))?;
            chain
                .src()?
                .link(&pad)
                .map_err(|e| MediaError::Pipeline(format!("linking funnel: {e:?}")))?;
        }
        let ghost = gst::GhostPad::builder_with_target(&chain.sink()?)
            .map_err(fail)?
            .name(sink_name(codec))
            .build();
        // A ghost pad added to a running bin must be activated by hand.
        let _ = ghost.set_active(true);
        self.bin.add_pad(&ghost).map_err(fail)?;
        for e in chain.elements().into_iter().rev() {
            let _ = e.sync_state_with_parent();
        }
        self.chains.push(chain);
        Ok(())
    }

    /// What feeds webrtcbin: the funnel, or the one chain.
    pub fn out(&self) -> Result<gst::Pad, MediaError> {
        match (&self.funnel, self.chains.first()) {
            (Some(funnel), _) => funnel
                .static_pad("src")
                .ok_or_else(|| MediaError::Pipeline("funnel has no src pad".into())),
            (None, Some(chain)) => chain.src(),
            (None, None) => Err(MediaError::Pipeline("a branch needs a codec".into())),
        }
    }

    /// The chain fed at first.
    pub fn first(&self) -> Option<&Chain> {
        self.chains.first()
    }

    /// The caps an offer is made with: `h264`'s for H.264, then every other codec's, all
    /// stating the branch's SSRC when it offers several.
    pub fn offered(&self, h264: &gst::Caps) -> gst::Caps {
        let mut caps = h264.clone();
        for &codec in &self.later {
            caps.make_mut().append(rtp_caps(codec, offer_pt(codec)));
        }
        if !self.later.is_empty() {
            for s in caps.make_mut().iter_mut() {
                s.set("ssrc", video_ssrc());
            }
        }
        caps
    }

    /// Lets the stream reach webrtcbin once the offer is made (call from the offer's reply).
    pub fn release_when_offered(&self) -> impl Fn() + Send + Sync + 'static {
        let (out, held) = (self.out().ok(), self.held.clone());
        move || {
            let id = held.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let (Some(out), Some(id)) = (&out, id) {
                out.remove_probe(id);
            }
        }
    }

    /// Makes `codec` (offered, its chain not built yet) what feeds webrtcbin: the chains fed
    /// so far are cut off at the funnel, and the new one continues their sequence numbers.
    /// Its sink pad is then ready to be linked.
    pub fn switch_to(&mut self, codec: Codec) -> Result<(), MediaError> {
        if self.chains.iter().any(|c| c.codec == codec) {
            return Ok(());
        }
        if !self.later.contains(&codec) {
            return Err(MediaError::Pipeline(format!(
                "{} was not offered to this viewer",
                codec.name()
            )));
        }
        let mut next = None;
        for chain in &self.chains {
            let src = chain.src()?;
            // Nothing of theirs reaches webrtcbin from now on, so the last sequence number
            // they sent is at most the one read after this.
            src.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                |_, _| gst::PadProbeReturn::Drop,
            );
            let seqnum = chain.pay.property::<u32>("seqnum");
            next = Some((seqnum as u16).wrapping_add(1));
        }
        self.later.retain(|&c| c != codec);
        self.add_chain(codec, next)
    }
}

/// `application/x-rtp` caps for Opus under `pt`; with `fec`, stating that the stream carries
/// in-band forward error correction (`useinbandfec=1` in the SDP).
pub fn opus_caps(pt: u8, fec: bool) -> gst::Caps {
    let mut caps = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", i32::from(pt))
        .field("clock-rate", 48000i32)
        .field("encoding-params", "2")
        .build();
    if fec {
        if let Some(s) = caps.make_mut().structure_mut(0) {
            s.set("useinbandfec", "1");
        }
    }
    caps
}

/// A listener's `queue ! rtpopuspay ! capsfilter` under `pt`, added to `bin` and linked, its
/// input ghosted as [`AUDIO_SINK`]; its output, for webrtcbin.
pub fn add_audio_chain(bin: &gst::Bin, pt: u8) -> Result<gst::Pad, MediaError> {
    let queue = leaky_queue(AUDIO_QUEUE_TIME_NS)?;
    let pay = make("rtpopuspay")?;
    pay.set_property("pt", u32::from(pt));
    pay.set_property("ssrc", audio_ssrc());
    let capsfilter = make("capsfilter")?;
    capsfilter.set_property("caps", opus_caps(pt, false));
    let elements = [&queue, &pay, &capsfilter];
    bin.add_many(elements).map_err(fail)?;
    gst::Element::link_many(elements).map_err(fail)?;
    let sink = queue
        .static_pad("sink")
        .ok_or_else(|| MediaError::Pipeline("queue has no sink pad".into()))?;
    let ghost = gst::GhostPad::builder_with_target(&sink)
        .map_err(fail)?
        .name(AUDIO_SINK)
        .build();
    let _ = ghost.set_active(true);
    bin.add_pad(&ghost).map_err(fail)?;
    for e in elements.into_iter().rev() {
        let _ = e.sync_state_with_parent();
    }
    capsfilter
        .static_pad("src")
        .ok_or_else(|| MediaError::Pipeline("capsfilter has no src pad".into()))
}

fn fail(e: impl std::fmt::Display) -> MediaError {
    MediaError::Pipeline(e.to_string())
}

/// Blocks `pad` (what feeds webrtcbin) until the probe is removed. webrtcbin 1.22 makes an
/// offer from the codec preferences narrowed to the caps its pad has received: an H.264
/// stream that reached it first would take VP8 out of the offer.
fn hold_until_offered(pad: &gst::Pad) -> Option<gst::PadProbeId> {
    pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
        gst::PadProbeReturn::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_ready_with_a_profile_or_as_vp8() {
        gst::init().unwrap(); // tests only
        assert!(!caps_ready(&rtp_caps(Codec::H264, 96)));
        let mut h264 = rtp_caps(Codec::H264, 96);
        h264.make_mut()
            .structure_mut(0)
            .unwrap() // built above with one structure
            .set("profile-level-id", "42c01f");
        assert!(caps_ready(&h264));
        assert!(caps_ready(&rtp_caps(Codec::Vp8, 97)));
        assert_ne!(OFFER_PT, OFFER_VP8_PT);
    }
}
