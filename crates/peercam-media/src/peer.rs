//! One remote peer of the device: a branch of the shared encoded stream ending in its own
//! `webrtcbin`.
//!
//! ```text
//!   tee ! queue leaky ! rtph264pay ! capsfilter(application/x-rtp) ! webrtcbin
//! ```
//!
//! A branch that offers VP8 as well has a second chain, fed from the shared VP8 encode once
//! the viewer's answer chose it (see payload.rs). A branch that offers sound has an Opus chain
//! into a second, audio, transceiver ([`Peer::add_audio`]), after the video's so that the
//! video keeps the offer's first m-line.
//!
//! GStreamer calls back on its own threads; the handlers here hold only weak references and
//! forward [`PeerEvent`]s to the owner (the worker's loop), which does every state change.
//! When the peer leaves, the owner detaches the branch, has it settle ([`Peer::settle`]) and
//! then stops it ([`Peer::stop`]); see [`crate::retiring`].

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use peercam_sdp::{relabel_h264, Codec};

use super::MediaError;
use crate::hearing::Hearing;
use crate::payload::{caps_ready, rtp_caps, Feeds};
use crate::reception::Reception;
use peercam_wire::IceSettings;

/// Identifies a peer: (the device's member that talks to it, the remote member).
pub type PeerKey = (String, String);

/// What a peer reports to its owner.
#[derive(Debug)]
pub enum PeerEvent {
    /// H.264 caps with `profile-level-id` reached webrtcbin: an offer or answer made now
    /// carries the right `a=fmtp` line.
    CapsReady(gst::Caps),
    /// The remote offer was applied (answerer role).
    RemoteOfferSet,
    /// Our offer or answer is ready to send.
    LocalDescription(gst_webrtc::WebRTCSessionDescription),
    /// A local ICE candidate to send.
    LocalCandidate { mline: u32, candidate: String },
    /// The peer connection changed state.
    State(gst_webrtc::WebRTCPeerConnectionState),
    /// Every local candidate has been reported.
    GatheringComplete,
    /// The longest wait for candidates before sending the description anyway has passed.
    GatheringWaitOver,
    /// Negotiation failed.
    Failed(String),
    /// The departed peer's webrtcbin has worked through everything queued before it left
    /// (see [`Peer::settle`]); the number is the one it was retired under.
    Settled(u64),
}

/// Where peer events go; bounded, and events that do not fit are dropped with a log line
/// (a GStreamer thread must never block on the owner).
pub type EventSender = mpsc::Sender<(PeerKey, PeerEvent)>;

/// Whether the device offers (broadcast viewer) or answers (mesh invite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The device makes the offer.
    Offerer,
    /// The device answers a remote offer.
    Answerer,
}

/// How long a connected peer may send nothing (no RTCP: receiver reports, NACKs, keyframe
/// requests) before the device takes its connection for gone. Browsers and aiortc report
/// about every second, GStreamer receivers every 2.5-7.5 s; a viewer whose page crashed,
/// whose network dropped or whose peer connection was closed without a word sends nothing.
/// webrtcbin 1.22 has no ICE consent checks (RFC 7675), so without this its branch would be
/// fed and counted for as long as its member stays connected to signaling.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);

pub use crate::payload::{OFFER_PT, OFFER_VP8_PT};

/// A webrtcbin branch.
pub struct Peer {
    key: PeerKey,
    role: Role,
    bin: gst::Bin,
    webrtc: gst::Element,
    /// What feeds webrtcbin: a payload chain per codec.
    feeds: Feeds,
    /// The tee pad feeding this branch, once attached.
    pub tee_pad: Option<gst::Pad>,
    /// The codec fed through `tee_pad`.
    pub fed: Codec,
    /// The audio tee's pad feeding this branch, once attached.
    pub audio_pad: Option<gst::Pad>,
    /// Answerer: the offer's video m-line.
    offered_mline: Option<u32>,
    /// Answerer: the offer's audio m-line, when the sound is sent to it.
    audio_mline: Option<u32>,
    /// Answerer: the offer's text and H.264 payload type, until our caps have settled.
    pending_offer: Option<(String, u8)>,
    /// Where its events go.
    outbox: Outbox,
    /// When the peer was made: [`Peer::heard`] counts from here.
    born: Instant,
    /// Milliseconds after `born` when the peer was last heard from (its connection coming
    /// up, or RTCP from it); 0 until its connection is up.
    heard: Arc<AtomicU64>,
    /// What its receiver reports say about our stream.
    reception: Reception,
    /// Its sound, for talkback (see crate::hearing).
    hearing: Arc<Hearing>,
    /// The camera's sound goes to it ([`Peer::add_audio`]).
    sends_audio: bool,
}

fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_owned()))
}

/// Pacing of ICE connectivity checks (libnice's Ta), milliseconds.
///
/// webrtcbin's libnice agent uses regular nomination, so as the controlling side the device
/// spends three check intervals before ICE is connected and DTLS may start: the triggered check
/// answering the browser's, the wait for the stopping criterion, and the check that nominates.
/// libnice's default of 20 ms made that ~60 ms of every join. A camera has a handful of
/// candidates per viewer, so 2 ms pacing, only while a viewer connects, adds no meaningful
/// load.
const ICE_PACING_MS: u32 = 2;

/// Tunes the libnice agent webrtcbin made for this peer.
///
/// UPnP: libnice, as webrtcbin creates it, asks the LAN's router (UPnP IGD) to forward a port
/// to every peer and waits for its answer before gathering ends. A LAN camera wants neither
/// its viewers' ports opened to the internet nor a UPnP client per viewer.
fn tune_ice_agent(ice_agent: &glib::Object) {
    if ice_agent.find_property("agent").is_none() {
        return;
    }
    let nice = ice_agent.property::<glib::Object>("agent");
    if nice.find_property("upnp").is_some() {
        nice.set_property("upnp", false);
    }
    if nice.find_property("stun-pacing-timer").is_some() {
        nice.set_property("stun-pacing-timer", ICE_PACING_MS);
    }
}

/// How long a sent packet stays available for retransmission, milliseconds.
///
/// A LAN's round trip is 1-5 ms (Wi-Fi with retries: tens of ms, sometimes 100-200). A
/// receiver notices a loss when the next packet arrives (up to one frame, 33 ms at 30 fps,
/// when a frame's last packet is lost) and Chromium repeats its NACK about once per round trip,
/// up to ten times. One second covers all of that with room, while a retransmission older
/// than that would arrive after the viewer's picture froze and it asked for a keyframe.
const RTX_HISTORY_MS: u32 = 1000;

/// The most packets kept for retransmission: one second at about 8 Mbit/s of ~1200-byte
/// packets (a 1080p stream), so a packet ceiling never cuts [`RTX_HISTORY_MS`] short at the
/// camera's bitrates, and memory stays bounded (~1.2 MB per viewer) whatever the encoder
/// produces. webrtcbin's own default is 500 packets.
const RTX_HISTORY_PACKETS: u32 = 1000;

/// Lets the viewer repair losses: NACK (generic feedback, RFC 4585) and retransmission on
/// an RTX payload type (RFC 4588), offered or answered for this transceiver, and a history
/// sized for a LAN on the `rtprtxsend` webrtcbin then adds. Without it a lost packet costs
/// the viewer a frozen picture until the next keyframe. One encode is shared by every viewer,
/// so this is the repair that costs the encoder nothing: each viewer's retransmissions come
/// from its own branch. Set before the offer or answer is made.
fn repair_losses(webrtc: &gst::Element, transceiver: &gst_webrtc::WebRTCRTPTransceiver) {
    if transceiver.find_property("do-nack").is_some() {
        transceiver.set_property("do-nack", true);
    }
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else {
        return;
    };
    bin.connect_deep_element_added(|_, _, element| {
        let size = |rtx: &gst::Element| {
            rtx.set_property("max-size-time", RTX_HISTORY_MS);
            rtx.set_property("max-size-packets", RTX_HISTORY_PACKETS);
            rtx.connect_notify(Some("payload-type-map"), |rtx, _| {
                let map = rtx.property::<Option<gst::Structure>>("payload-type-map");
                log::debug!(
                    "retransmission payload types: {}",
                    map.map(|m| m.to_string()).unwrap_or_default()
                );
            });
            log::debug!(
                "retransmission history: {RTX_HISTORY_MS} ms, at most {RTX_HISTORY_PACKETS} packets"
            );
        };
        // webrtcbin adds its retransmission sender inside a bin of its own.
        match element.downcast_ref::<gst::Bin>() {
            Some(aux) => aux
                .iterate_recurse()
                .into_iter()
                .flatten()
                .filter(is_rtx_sender)
                .for_each(|e| size(&e)),
            None if is_rtx_sender(element) => size(element),
            None => {}
        }
    });
}

fn is_rtx_sender(element: &gst::Element) -> bool {
    element
        .factory()
        .is_some_and(|f| f.name().as_str() == "rtprtxsend")
}

/// The RTP caps an offer needs for a stream with these H.264 caps (as the encoder produced
/// them, with `codec_data`): what the branch's payloader will report once a frame reaches it.
/// A viewer joining a running stream so gets its offer at once instead of after the next
/// frame. `None` before the encoder has written its parameter sets.
pub fn offer_caps(h264: &gst::CapsRef) -> Option<gst::Caps> {
    let s = h264.structure(0)?;
    let data = s.get::<gst::Buffer>("codec_data").ok()?;
    let map = data.map_readable().ok()?;
    let pli = profile_level_id(&map)?;
    let mut caps = early_offer_caps();
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.set("profile-level-id", pli);
    }
    Some(caps)
}

/// The caps for an offer made before the stream's own have reached the branch: H.264 in
/// packetization mode 1, any profile. webrtcbin then accepts whichever profile the encoder
/// produces (caps naming one would refuse any other and stop the capture), and the offer's
/// text states the profile the stream had before ([`state_profile`]).
pub fn early_offer_caps() -> gst::Caps {
    let mut caps = rtp_caps(Codec::H264, OFFER_PT);
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.set("packetization-mode", "1");
        s.set("level-asymmetry-allowed", "1");
    }
    caps
}

/// An offer's text stating `profile-level-id` for our H.264 payload.
pub fn state_profile(sdp: &str, profile_level_id: &str) -> String {
    relabel_h264(sdp, OFFER_PT, profile_level_id)
}

/// The `profile-level-id` of RTP or offer caps, if they have one.
pub fn profile_of(caps: &gst::CapsRef) -> Option<String> {
    caps.structure(0)?.get::<String>("profile-level-id").ok()
}

/// `profile-level-id` (RFC 6184) from an avcC record (ISO/IEC 14496-15: version 1, then the
/// SPS's profile, compatibility flags and level), as rtph264pay writes it from the SPS.
fn profile_level_id(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, compat, level, ..] => Some(format!("{profile:02x}{compat:02x}{level:02x}")),
        _ => None,
    }
}

/// Where one peer's GStreamer callbacks post its events, until it leaves.
#[derive(Clone)]
struct Outbox {
    /// The owner's queue.
    tx: EventSender,
    /// The peer the events are about.
    key: PeerKey,
    /// Cleared when the peer leaves: a member that comes back under the same key must not
    /// get the departed peer's late events.
    live: Arc<AtomicBool>,
    /// The work asked of webrtcbin and not yet answered.
    tasks: Arc<Tasks>,
}

/// The work a peer has queued on its webrtcbin (making and applying descriptions, which
/// build and bring up its transports), so that a departed peer is stopped only once none is
/// left (see [`crate::retiring`]).
#[derive(Debug)]
struct Tasks {
    /// Queued and not yet answered.
    pending: AtomicUsize,
    /// The number the peer was retired under, once it was ([`NOT_RETIRED`] before).
    retired_as: AtomicU64,
}

/// [`Tasks::retired_as`] of a peer still in service.
const NOT_RETIRED: u64 = u64::MAX;

/// What a promise's change function is given.
type Reply<'a> = Result<Option<&'a gst::StructureRef>, gst::PromiseError>;

impl Outbox {
    /// A promise for a task queued on webrtcbin, counted until it is answered; `then` is
    /// given the answer.
    fn promise(&self, then: impl FnOnce(Reply, &Outbox) + Send + 'static) -> gst::Promise {
        self.tasks.pending.fetch_add(1, Ordering::SeqCst);
        let out = self.clone();
        gst::Promise::with_change_func(move |reply| {
            then(reply, &out);
            if out.tasks.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                out.settled_if_retired();
            }
        })
    }

    /// Reports [`PeerEvent::Settled`] if the peer has been retired and nothing it queued is
    /// pending. Both the retiring and the last answer call it, so at least one sees both;
    /// the owner ignores a second report.
    fn settled_if_retired(&self) {
        let number = self.tasks.retired_as.load(Ordering::SeqCst);
        if number != NOT_RETIRED && self.tasks.pending.load(Ordering::SeqCst) == 0 {
            self.post(PeerEvent::Settled(number));
        }
    }

    fn send(&self, ev: PeerEvent) {
        if self.live.load(Ordering::Acquire) {
            self.post(ev);
        }
    }

    /// Posts even after the peer left (its settling is reported then).
    fn post(&self, ev: PeerEvent) {
        if self.tx.try_send((self.key.clone(), ev)).is_err() {
            log::warn!(peer = self.key.1.as_str(); "peer event dropped: owner busy or gone");
        }
    }
}

impl Peer {
    /// Builds the branch (not yet attached to a tee) for `codecs` (an offerer: those it
    /// offers, the first fed at first; an answerer: the one chosen); its DTLS certificate is
    /// `dtls_pem` (certificate and key) when given, else GStreamer's own.
    pub fn new(
        key: PeerKey,
        role: Role,
        codecs: &[Codec],
        ice: &IceSettings,
        dtls_pem: Option<&str>,
        events: EventSender,
    ) -> Result<Peer, MediaError> {
        let fail = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
        let bin = gst::Bin::with_name(&format!("peer-{}", key.1));
        let Some(&fed) = codecs.first() else {
            return Err(MediaError::Pipeline("a branch needs a codec".into()));
        };
        let webrtc = make("webrtcbin")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        if let Some(pem) = dtls_pem {
            crate::certificate::present(&webrtc, pem);
        }
        if let Some(stun) = &ice.stun {
            webrtc.set_property("stun-server", stun);
        }
        let agent = webrtc.property::<glib::Object>("ice-agent");
        for addr in &ice.addresses {
            agent.emit_by_name::<bool>("add-local-ip-address", &[&addr.to_string()]);
        }
        tune_ice_agent(&agent);
        bin.add(&webrtc).map_err(|e| fail(&e))?;
        let feeds = Feeds::build(&bin, codecs)?;

        let peer = Peer {
            key: key.clone(),
            role,
            bin,
            webrtc,
            feeds,
            tee_pad: None,
            fed,
            audio_pad: None,
            offered_mline: None,
            audio_mline: None,
            pending_offer: None,
            outbox: Outbox {
                tx: events,
                key,
                live: Arc::new(AtomicBool::new(true)),
                tasks: Arc::new(Tasks {
                    pending: AtomicUsize::new(0),
                    retired_as: AtomicU64::new(NOT_RETIRED),
                }),
            },
            born: Instant::now(),
            heard: Arc::new(AtomicU64::new(0)),
            reception: Reception::default(),
            hearing: Arc::new(Hearing::default()),
            sends_audio: false,
        };
        peer.connect_signals();
        if role == Role::Offerer {
            peer.link_webrtc_pad()?;
        }
        Ok(peer)
    }

    /// Marks the peer heard from, now; for GStreamer's threads.
    fn hearing(&self) -> impl Fn() + Send + Sync + 'static {
        let (born, heard) = (self.born, self.heard.clone());
        move || {
            // At least 1: 0 means never.
            let ms = born.elapsed().as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            heard.store(ms, Ordering::Relaxed);
        }
    }

    /// The receiver report that came since the last call, if one did.
    pub fn take_report(&self) -> Option<crate::bitrate::Report> {
        self.reception.take()
    }

    /// How long the peer has been silent at `now`, once its connection has come up; `None`
    /// before.
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        silence(self.born, self.heard.load(Ordering::Relaxed), now)
    }

    /// The branch bin, for the fan-out.
    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }

    /// The device's role with this peer.
    pub fn role(&self) -> Role {
        self.role
    }

    fn connect_signals(&self) {
        let out = self.outbox.clone();
        self.webrtc
            .connect("on-ice-candidate", false, move |values| {
                let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
                let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
                if let (Some(mline), Some(candidate)) = (mline, candidate) {
                    out.send(PeerEvent::LocalCandidate { mline, candidate });
                }
                None
            });
        let out = self.outbox.clone();
        let heard = self.hearing();
        self.webrtc
            .connect_notify(Some("connection-state"), move |webrtc, _| {
                let state =
                    webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
                if state == gst_webrtc::WebRTCPeerConnectionState::Connected {
                    heard();
                }
                out.send(PeerEvent::State(state));
            });
        // rtpbin reports each RTCP packet a remote source sends as that source being active.
        let rtpbin = self.webrtc.downcast_ref::<gst::Bin>().and_then(|bin| {
            bin.iterate_elements()
                .into_iter()
                .flatten()
                .find(|e| e.factory().is_some_and(|f| f.name() == "rtpbin"))
        });
        if let Some(rtpbin) = rtpbin {
            let heard = self.hearing();
            let reception = self.reception.clone();
            rtpbin.connect("on-ssrc-active", false, move |args| {
                heard();
                let rtpbin = args.first().and_then(|v| v.get::<gst::Element>().ok());
                let session = args.get(1).and_then(|v| v.get::<u32>().ok());
                let ssrc = args.get(2).and_then(|v| v.get::<u32>().ok());
                if let (Some(rtpbin), Some(session), Some(ssrc)) = (rtpbin, session, ssrc) {
                    reception.heard(&rtpbin, session, ssrc);
                }
                None
            });
        }
        let out = self.outbox.clone();
        self.webrtc
            .connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
                let state =
                    webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
                if state == gst_webrtc::WebRTCICEGatheringState::Complete {
                    out.send(PeerEvent::GatheringComplete);
                }
            });
        // A talking viewer's sound goes to the speaker; other media the remote sends is not
        // used: give any incoming stream a sink so it cannot stall the bin.
        let bin = self.bin.downgrade();
        let hearing = self.hearing.clone();
        self.webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(bin) = bin.upgrade() else { return };
            if hearing.attach(&bin, pad) {
                return;
            }
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("async", false)
                .property("sync", false)
                .build()
            {
                let _ = bin.add(&sink);
                let _ = sink.sync_state_with_parent();
                if let Some(sp) = sink.static_pad("sink") {
                    let _ = pad.link(&sp);
                }
            }
        });
        // The caps carrying profile-level-id are what make the offer's a=fmtp right.
        let out = self.outbox.clone();
        if let Some(src) = self.feeds.first().and_then(|c| c.src().ok()) {
            src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Event(ev)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                let gst::EventView::Caps(c) = ev.view() else {
                    return gst::PadProbeReturn::Ok;
                };
                let caps = c.caps_owned();
                if caps_ready(&caps) {
                    out.send(PeerEvent::CapsReady(caps));
                    gst::PadProbeReturn::Remove
                } else {
                    gst::PadProbeReturn::Ok
                }
            });
        }
    }

    fn link_webrtc_pad(&self) -> Result<gst::Pad, MediaError> {
        let pad = self
            .webrtc
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Pipeline("webrtcbin refused a sink pad".into()))?;
        self.feeds
            .out()?
            .link(&pad)
            .map_err(|e| MediaError::Pipeline(format!("linking webrtcbin: {e:?}")))?;
        if let Some(t) = pad.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver") {
            t.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
            repair_losses(&self.webrtc, &t);
        }
        Ok(pad)
    }

    /// Its side of talkback.
    pub fn sound_in(&self) -> &Hearing {
        &self.hearing
    }

    /// Offerer, with talkback: the viewer's sound may be played on `input` (the speaker's)
    /// while it holds the floor. The offer's audio section receives as well as sends (or,
    /// when the device has no sound of its own, receives only). Call after
    /// [`Peer::add_audio`], if that is called, and before the offer is made.
    pub fn hear_into(&mut self, input: gstreamer_app::AppSrc) {
        self.hearing.hear_into(input);
        let direction = gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv;
        // The sound's transceiver, made by `add_audio` right after the video's.
        let audio = self.sends_audio.then(|| {
            self.webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>(
                    "get-transceiver",
                    &[&1i32],
                )
        });
        if let Some(Some(t)) = audio {
            t.set_direction(direction);
            return;
        }
        let caps = crate::payload::opus_caps(crate::payload::OFFER_OPUS_PT, true);
        self.webrtc
            .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
    }

    /// Adds the sound, an Opus chain under `pt` into a send-only audio transceiver: an
    /// offerer's section after the video's, or (answerer, after [`Peer::prepare_answer`]) the
    /// one webrtcbin pairs with the offer's audio section `mline`. Call before the branch is
    /// attached.
    pub fn add_audio(&mut self, pt: u8, mline: Option<u32>) -> Result<(), MediaError> {
        if pt > 127 {
            return Err(MediaError::BadSdp(format!(
                "payload type {pt} is out of range"
            )));
        }
        self.audio_mline = mline;
        self.sends_audio = true;
        let out = crate::payload::add_audio_chain(&self.bin, pt)?;
        let pad = self
            .webrtc
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Pipeline("webrtcbin refused an audio pad".into()))?;
        out.link(&pad)
            .map_err(|e| MediaError::Pipeline(format!("linking webrtcbin audio: {e:?}")))?;
        if let Some(t) = pad.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver") {
            t.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
            t.set_property("codec-preferences", crate::payload::opus_caps(pt, true));
        }
        Ok(())
    }

    /// Makes `codec` (which its offer listed) what feeds the branch; its sink pad for that
    /// codec is then ready to be linked to the codec's encode.
    pub fn switch_to(&mut self, codec: Codec) -> Result<(), MediaError> {
        self.feeds.switch_to(codec)?;
        self.fed = codec;
        Ok(())
    }

    /// Offerer: makes the offer (call once caps are ready): H.264 with `caps`, and the
    /// branch's other codecs after it, as second choices.
    pub fn create_offer(&self, caps: &gst::Caps) {
        if let Some(t) = self
            .webrtc
            .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
        {
            t.set_property("codec-preferences", self.feeds.offered(caps));
        }
        let release = self.feeds.release_when_offered();
        let promise = self.outbox.promise(move |reply, out| {
            // The offer is made: the stream may reach webrtcbin now.
            release();
            out.send(description_from_reply(reply, "offer"));
        });
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    /// Offerer: makes and applies an offer for a constrained-baseline stream, waiting for
    /// each step, then closes. A worker does this once with a stand-in peer when a viewer is
    /// about to arrive, so that the viewer's own offer does not pay for the process's first
    /// one (creating and setting up the SDP, ICE, DTLS and RTP elements takes 20-60 ms once).
    pub fn rehearse_offer(&self) -> Result<(), MediaError> {
        let rehearsed = self.rehearse();
        // Stopped whatever happened: a webrtcbin must not be dropped while running.
        let _ = self.bin.set_state(gst::State::Null);
        rehearsed
    }

    fn rehearse(&self) -> Result<(), MediaError> {
        let fail = |what: &str| MediaError::Pipeline(format!("rehearsing an offer: {what}"));
        self.bin
            .set_state(gst::State::Ready)
            .map_err(|_| fail("webrtcbin did not start"))?;
        let caps = self.feeds.offered(&early_offer_caps());
        if let Some(t) = self
            .webrtc
            .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
        {
            t.set_property("codec-preferences", &caps);
        }
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let offer = promise
            .get_reply()
            .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
            .ok_or_else(|| fail("no offer"))?;
        let applied = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("set-local-description", &[&offer, &applied]);
        applied.wait();
        Ok(())
    }

    /// Answerer, step 1: links a sending transceiver for the offer's video, as chosen
    /// (`peercam_sdp::check_offer`: section `mline`, the branch's codec under payload type
    /// `pt`). The
    /// offer is applied later ([`Peer::apply_offer`]), once our stream's caps have settled:
    /// webrtcbin 1.22 pairs an offer's m-line with an existing transceiver of the same kind,
    /// and after the offer is applied it would refuse our caps over a label difference
    /// (encoders write constrained baseline as 42c0xx, browsers offer 42e0xx).
    pub fn prepare_answer(&mut self, sdp: &str, mline: u32, pt: u8) -> Result<(), MediaError> {
        if pt > 127 {
            return Err(MediaError::BadSdp(format!(
                "payload type {pt} is out of range"
            )));
        }
        if let Some(chain) = self.feeds.first() {
            chain.set_pt(pt);
        }
        self.link_webrtc_pad()?;
        self.offered_mline = Some(mline);
        self.pending_offer = Some((sdp.to_owned(), pt));
        Ok(())
    }

    /// Answerer, step 2 (our caps have settled): applies the offer, its H.264 entry labelled
    /// with our stream's `profile-level-id`; reports [`PeerEvent::RemoteOfferSet`].
    ///
    /// Encoders write constrained baseline as 42c0xx, browsers offer 42e0xx: the same profile
    /// to a browser (WebRTC's profile parser maps both to constrained baseline), but webrtcbin
    /// compares the strings and, once the offer is applied, refuses a stream labelled
    /// otherwise. Relabelling the offer makes webrtcbin, our stream and the answer agree.
    pub fn apply_offer(&mut self, ours: &gst::Caps) {
        let Some((sdp, pt)) = self.pending_offer.take() else {
            return;
        };
        let label = ours
            .structure(0)
            .and_then(|s| s.get::<String>("profile-level-id").ok());
        let sdp = match label {
            Some(label) => relabel_h264(&sdp, pt, &label),
            None => sdp,
        };
        let Ok(msg) = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()) else {
            self.outbox
                .send(PeerEvent::Failed("the offer is not valid SDP".into()));
            return;
        };
        let desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, msg);
        let promise = self.outbox.promise(|reply, out| {
            let ev = match reply {
                Ok(Some(s)) if s.has_field("error") => PeerEvent::Failed(format!(
                    "remote offer refused: {}",
                    s.get::<glib::Error>("error")
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )),
                Ok(_) => PeerEvent::RemoteOfferSet,
                Err(e) => PeerEvent::Failed(format!("remote offer: {e:?}")),
            };
            out.send(ev);
        });
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&desc, &promise]);
    }

    /// Answerer, once the offer is applied: declines the offer's other m-lines (the device
    /// sends video; it does not need the remote's media).
    pub fn decline_other_media(&self) {
        let Some(mline) = self.offered_mline else {
            return;
        };
        // `get-transceivers` returns a GArray, which has no safe binding; walk by index over
        // the transceivers webrtcbin made for the offer (one per m-line).
        let count = sdp_media_count(&self.webrtc);
        for i in 0..count as i32 {
            let Some(t) = self
                .webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&i])
            else {
                break;
            };
            let ours = t.mlineindex() == mline || Some(t.mlineindex()) == self.audio_mline;
            if !ours && t.mlineindex() != u32::MAX {
                t.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Inactive);
            }
        }
    }

    /// Answerer: makes the answer (call once caps are ready and the offer is applied).
    pub fn create_answer(&self) {
        let promise = self
            .outbox
            .promise(|reply, out| out.send(description_from_reply(reply, "answer")));
        self.webrtc
            .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    }

    /// Applies our own offer or answer (after it was sent, so it reaches the remote before
    /// any candidate does).
    pub fn set_local(&self, desc: &gst_webrtc::WebRTCSessionDescription) {
        let promise = self.outbox.promise(|_, _| {});
        self.webrtc
            .emit_by_name::<()>("set-local-description", &[desc, &promise]);
    }

    /// Offerer: applies the remote answer.
    pub fn set_remote_answer(&self, sdp: &str) -> Result<(), MediaError> {
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| MediaError::BadSdp("the answer is not valid SDP".into()))?;
        let desc =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
        let promise = self.outbox.promise(|_, _| {});
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&desc, &promise]);
        Ok(())
    }

    /// Adds a remote ICE candidate.
    pub fn add_candidate(&self, mline: u32, candidate: &str) {
        self.webrtc
            .emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
    }

    /// The peer has left, retired under `number`: no more of its events reach the owner, and
    /// [`PeerEvent::Settled`] with `number` is posted once webrtcbin has answered everything
    /// this peer asked of it (at once if nothing is pending).
    pub fn settle(&self, number: u64) {
        self.outbox.live.store(false, Ordering::Release);
        self.outbox.tasks.retired_as.store(number, Ordering::SeqCst);
        self.outbox.settled_if_retired();
    }

    /// Stops the branch, once it has settled and is out of the pipeline. Blocks while
    /// webrtcbin takes down its transports.
    pub fn stop(&self) {
        if let Err(e) = self.bin.set_state(gst::State::Null) {
            log::warn!(peer = self.key.1.as_str(); "branch did not stop: {e}");
        }
    }
}

/// How long since a peer made at `born` was last heard from, `heard` ms after it (0: never).
fn silence(born: Instant, heard: u64, now: Instant) -> Option<Duration> {
    (heard > 0).then(|| now.saturating_duration_since(born + Duration::from_millis(heard)))
}

/// The number of m-lines in the remote description.
fn sdp_media_count(webrtc: &gst::Element) -> u32 {
    webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("remote-description")
        .map_or(0, |d| d.sdp().medias_len())
}

/// Turns a create-offer/answer promise reply into an event.
fn description_from_reply(
    reply: Result<Option<&gst::StructureRef>, gst::PromiseError>,
    field: &str,
) -> PeerEvent {
    match reply {
        Ok(Some(s)) => match s.get::<gst_webrtc::WebRTCSessionDescription>(field) {
            Ok(desc) => PeerEvent::LocalDescription(desc),
            Err(_) => PeerEvent::Failed(match s.get::<glib::Error>("error") {
                Ok(e) => format!("create-{field}: {e}"),
                Err(_) => format!("create-{field} gave no {field}"),
            }),
        },
        Ok(None) => PeerEvent::Failed(format!("create-{field} gave no reply")),
        Err(e) => PeerEvent::Failed(format!("create-{field}: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_level_id_comes_from_the_avcc_header() {
        assert_eq!(
            profile_level_id(&[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]).as_deref(),
            Some("42c01f")
        );
        assert_eq!(
            profile_level_id(&[1, 0x64, 0x00, 0x28]).as_deref(),
            Some("640028")
        );
        assert_eq!(profile_level_id(&[0, 0x42, 0xc0, 0x1f]), None);
        assert_eq!(profile_level_id(&[1, 0x42]), None);
        assert_eq!(profile_level_id(&[]), None);
    }

    /// The offer a branch offering `codecs` makes, as text, as it is sent.
    fn offer_text(codecs: &[Codec]) -> String {
        gst::init().unwrap(); // tests only
        let (tx, _rx) = mpsc::channel(16);
        let key = ("camera".to_owned(), "shape".to_owned());
        let peer = Peer::new(
            key,
            Role::Offerer,
            codecs,
            &IceSettings::default(),
            None,
            tx,
        )
        .expect("branch");
        peer.bin.set_state(gst::State::Ready).expect("ready");
        let t = peer
            .webrtc
            .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
            .expect("transceiver");
        t.set_property("codec-preferences", peer.feeds.offered(&early_offer_caps()));
        let promise = gst::Promise::new();
        peer.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let offer = promise
            .get_reply()
            .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
            .expect("offer");
        let _ = peer.bin.set_state(gst::State::Null);
        crate::payload::complete_offer(&offer.sdp().as_text().expect("text"), codecs)
    }

    #[test]
    fn the_offer_has_h264_first_and_vp8_second_with_the_same_feedback() {
        let text = offer_text(&[Codec::H264, Codec::Vp8]);
        let session = peercam_sdp::parse(&text).expect("parses");
        let [video] = session.media.as_slice() else {
            panic!("one section: {text}")
        };
        assert_eq!(&video.formats[..2], &[OFFER_PT, OFFER_VP8_PT], "{text}");
        assert_eq!(video.rtpmap[&OFFER_PT].encoding, "H264");
        assert_eq!(video.rtpmap[&OFFER_VP8_PT].encoding, "VP8");
        for pt in [OFFER_PT, OFFER_VP8_PT] {
            let fb = video.rtcp_fb.get(&pt).cloned().unwrap_or_default();
            for want in ["nack", "nack pli", "ccm fir", "transport-cc"] {
                assert!(fb.iter().any(|f| f == want), "{pt} lacks {want}: {text}");
            }
            let rtx = video.formats.iter().find(|rtx| {
                video.rtpmap.get(rtx).is_some_and(|m| m.encoding == "rtx")
                    && video.fmtp.get(rtx).and_then(|f| f.get("apt")) == Some(&pt.to_string())
            });
            assert!(rtx.is_some(), "no rtx for {pt}: {text}");
        }
        // One SSRC for whichever codec the viewer takes, with its retransmission SSRC.
        assert!(text.contains("a=ssrc-group:FID "), "{text}");
    }

    #[test]
    fn every_viewer_is_offered_the_video_under_one_ssrc() {
        let ssrcs = |text: &str| -> Vec<u32> {
            text.lines()
                .filter_map(|l| l.strip_prefix("a=ssrc:")?.split(' ').next()?.parse().ok())
                .collect()
        };
        // Offers that state their SSRC: those of branches that may send either codec.
        let first = ssrcs(&offer_text(&[Codec::H264, Codec::Vp8]));
        let second = ssrcs(&offer_text(&[Codec::H264, Codec::Vp8]));
        assert!(first.contains(&crate::payload::video_ssrc()), "{first:?}");
        assert!(second.contains(&crate::payload::video_ssrc()), "{second:?}");
    }

    #[test]
    fn an_h264_only_branch_offers_h264_alone() {
        let text = offer_text(&[Codec::H264]);
        let session = peercam_sdp::parse(&text).expect("parses");
        let video = &session.media[0];
        assert!(
            !video.rtpmap.values().any(|m| m.encoding == "VP8"),
            "{text}"
        );
        assert_eq!(video.formats[0], OFFER_PT);
    }

    #[test]
    fn silence_counts_from_when_the_peer_was_last_heard() {
        let born = Instant::now();
        assert_eq!(silence(born, 0, born + SILENCE_LIMIT * 2), None);
        assert_eq!(
            silence(born, 1500, born + Duration::from_millis(2000)),
            Some(Duration::from_millis(500))
        );
        // A report newer than `now` (read on another thread) is no silence.
        assert_eq!(silence(born, 3000, born), Some(Duration::ZERO));
    }

    #[test]
    fn offer_caps_need_codec_data() {
        gst::init().unwrap(); // tests only
        let bare = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .build();
        assert!(offer_caps(&bare).is_none());
        let avc = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field(
                "codec_data",
                gst::Buffer::from_slice([1u8, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 0]),
            )
            .build();
        let caps = offer_caps(&avc).expect("caps");
        let s = caps.structure(0).expect("structure");
        assert_eq!(s.get::<&str>("encoding-name").unwrap(), "H264");
        assert_eq!(s.get::<&str>("profile-level-id").unwrap(), "42c01f");
        assert_eq!(s.get::<&str>("packetization-mode").unwrap(), "1");
        assert_eq!(s.get::<i32>("payload").unwrap(), i32::from(OFFER_PT));
    }
}
