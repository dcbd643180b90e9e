//! A receiving GStreamer peer that speaks the protocol over a real WebSocket: joins the
//! camera's conversation, answers its offer and counts the frames it gets.
//!
//! ```text
//!   device: videotestsrc ! x264enc ! tee ! … ! webrtcbin ──ICE/DTLS/SRTP on 127.0.0.1──▶
//!   viewer: webrtcbin ! rtph264depay ! decodebin ! videoconvert ! appsink   (Consume::Decode)
//!           (rtpvp8depay for VP8: Accept::Vp8Only answers as a browser without H.264 does)
//!   viewer: webrtcbin ! rtph264depay ! fakesink                     (Consume::AccessUnits)
//!           webrtcbin ! rtpopusdepay ! opusdec ! appsink         (the camera's sound, if sent)
//! ```
//!
//! Its signaling goes over the shared strict client ([`super::ws::Client`]). Shared by the
//! camera tests and the camera benchmark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::ws::{Client, Msg, Next};

/// What a viewer does with the video it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// Decodes it and counts decoded frames (and records their size): what a viewer sees.
    Decode,
    /// Counts depayloaded access units without decoding, from the first keyframe on. Proves
    /// the stream arrives whole at a fraction of the CPU, so that many viewers can share a
    /// small machine with the device they measure.
    AccessUnits,
}

/// Which of the camera's offered video formats a viewer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// What webrtcbin answers to the camera's offer (its first format: H.264).
    Any,
    /// VP8 only, as a browser without H.264 answers (Firefox offline): the offer's other
    /// formats are removed before webrtcbin sees it.
    Vp8Only,
}

/// What the viewer's GStreamer side tells its signaling loop.
pub enum ViewerEvent {
    /// The SDP answer to send.
    Answer(String),
    /// The SDP offer to send.
    Offer(String),
    /// A local ICE candidate: m-line index and candidate line.
    Candidate(u32, String),
}

/// What a viewer heard of the camera's sound.
#[derive(Default)]
pub struct Heard {
    /// Decoded samples (per channel).
    pub samples: AtomicU64,
    /// The loudest decoded sample so far, in millionths of full scale.
    pub peak: AtomicU64,
    /// The first [`TIMELINE_LIMIT`] decoded sound buffers: when each plays in the viewer's
    /// pipeline (its PTS) and when within it the sound first gets loud, if it does.
    pub onsets: Mutex<Vec<(gst::ClockTime, Option<gst::ClockTime>)>>,
}

/// How many buffers (or frames) a viewer keeps the timing of: a few seconds' worth, for the
/// lip-sync test, and bounded for viewers that watch for long.
pub const TIMELINE_LIMIT: usize = 2000;

/// A sample at least this loud (of full scale) is sound, not silence.
pub const LOUD: f32 = 0.25;

impl Heard {
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// The loudest sample so far, 0.0 to 1.0.
    pub fn peak(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// A receiving peer: a webrtcbin that counts the frames it gets.
pub struct Viewer {
    /// The receiving pipeline.
    pub pipeline: gst::Pipeline,
    /// Its webrtcbin.
    pub webrtc: gst::Element,
    /// Frames decoded ([`Consume::Decode`]) or access units received ([`Consume::AccessUnits`]).
    pub frames: Arc<AtomicU64>,
    /// When the first of `frames` arrived, taken on the streaming thread.
    pub first_at: Arc<OnceLock<Instant>>,
    /// When the peer connection first reported `connected` (ICE and DTLS done).
    pub connected_at: Arc<OnceLock<Instant>>,
    /// Size of the decoded frames ([`Consume::Decode`] only).
    pub size: Arc<Mutex<Option<(i32, i32)>>>,
    /// The encoding name of the video received (`H264`, `VP8`), once it arrives.
    pub codec: Arc<Mutex<Option<String>>>,
    /// The first [`TIMELINE_LIMIT`] decoded frames: PTS, and the picture's mean brightness
    /// (0-255) ([`Consume::Decode`] only).
    pub brightness: Arc<Mutex<Vec<(gst::ClockTime, u8)>>>,
    /// The sound received, decoded.
    pub audio: Arc<Heard>,
    /// Which of the offered formats it takes.
    pub accept: Accept,
    /// Its own offers ask for sound as well (Opus under payload type 109), as a room's
    /// browser does.
    pub offers_audio: bool,
    /// What webrtcbin produced for the signaling loop.
    pub events: mpsc::UnboundedReceiver<ViewerEvent>,
    /// The sending side, for webrtcbin's callbacks.
    events_tx: mpsc::UnboundedSender<ViewerEvent>,
}

impl Viewer {
    /// A decoding viewer.
    pub fn new() -> Viewer {
        Viewer::with(Consume::Decode)
    }

    pub fn with(consume: Consume) -> Viewer {
        Viewer::accepting(consume, Accept::Any)
    }

    pub fn accepting(consume: Consume, accept: Accept) -> Viewer {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .unwrap();
        let agent = webrtc.property::<glib::Object>("ice-agent");
        agent.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]);
        // Browsers do not use UPnP; libnice would start a UPnP client per viewer, whose
        // contexts race for the same loopback port when several viewers start together.
        let nice = agent.property::<glib::Object>("agent");
        if nice.find_property("upnp").is_some() {
            nice.set_property("upnp", false);
        }
        pipeline.add(&webrtc).unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        let frames = Arc::new(AtomicU64::new(0));
        let first_at = Arc::new(OnceLock::new());
        let connected_at = Arc::new(OnceLock::new());
        let size = Arc::new(Mutex::new(None));
        let codec = Arc::new(Mutex::new(None));
        let audio = Arc::new(Heard::default());
        let brightness = Arc::new(Mutex::new(Vec::new()));

        let connected = connected_at.clone();
        webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
            let state =
                webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            if state == gst_webrtc::WebRTCPeerConnectionState::Connected {
                connected.get_or_init(Instant::now);
            }
        });

        let tx = events_tx.clone();
        webrtc.connect("on-ice-candidate", false, move |v| {
            let mline = v[1].get::<u32>().unwrap();
            let c = v[2].get::<String>().unwrap();
            let _ = tx.send(ViewerEvent::Candidate(mline, c));
            None
        });
        let (pl, fr, first, sz, cd, heard, bright) = (
            pipeline.downgrade(),
            frames.clone(),
            first_at.clone(),
            size.clone(),
            codec.clone(),
            audio.clone(),
            brightness.clone(),
        );
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pl.upgrade() else { return };
            let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
            let field = |name: &str| {
                caps.as_ref()
                    .and_then(|c| c.structure(0).and_then(|s| s.get::<String>(name).ok()))
            };
            if field("media").as_deref() == Some("audio") {
                let depay = listening_branch(&pipeline, heard.clone());
                pad.link(&depay.static_pad("sink").unwrap()).unwrap();
                return;
            }
            let name = field("encoding-name").unwrap_or_else(|| "H264".into());
            *cd.lock().unwrap() = Some(name.clone());
            let depay = match consume {
                Consume::Decode => decoding_branch(
                    &pipeline,
                    &name,
                    fr.clone(),
                    first.clone(),
                    sz.clone(),
                    bright.clone(),
                ),
                Consume::AccessUnits => counting_branch(&pipeline, fr.clone(), first.clone()),
            };
            pad.link(&depay.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Viewer {
            pipeline,
            webrtc,
            frames,
            first_at,
            connected_at,
            size,
            codec,
            brightness,
            audio,
            accept,
            offers_audio: false,
            events,
            events_tx,
        }
    }

    pub fn on_offer(&self, sdp: &str) {
        let sdp = match self.accept {
            Accept::Any => sdp.to_owned(),
            Accept::Vp8Only => only_vp8(sdp),
        };
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).unwrap();
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, msg);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
        let (webrtc, tx) = (self.webrtc.downgrade(), self.events_tx.clone());
        let promise = gst::Promise::with_change_func(move |reply| {
            let Some(webrtc) = webrtc.upgrade() else {
                return;
            };
            let answer = reply
                .unwrap()
                .unwrap()
                .get::<gst_webrtc::WebRTCSessionDescription>("answer")
                .unwrap();
            let _ = tx.send(ViewerEvent::Answer(answer.sdp().as_text().unwrap()));
            webrtc.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        });
        self.webrtc
            .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    }

    /// Offers to receive H.264 the way a browser does (constrained baseline, 42e01f), or VP8
    /// alone ([`Accept::Vp8Only`], as Firefox offline does).
    pub fn make_offer(&self) {
        let caps = match self.accept {
            Accept::Any => gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "H264")
                .field("payload", 102i32)
                .field("clock-rate", 90000i32)
                .field("packetization-mode", "1")
                .field("profile-level-id", "42e01f")
                .build(),
            Accept::Vp8Only => gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "VP8")
                .field("payload", 120i32)
                .field("clock-rate", 90000i32)
                .build(),
        };
        self.webrtc
            .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        if self.offers_audio {
            let opus = gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("payload", 109i32)
                .field("clock-rate", 48000i32)
                .field("encoding-params", "2")
                .build();
            self.webrtc
                .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &opus],
                );
        }
        let (webrtc, tx) = (self.webrtc.downgrade(), self.events_tx.clone());
        let promise = gst::Promise::with_change_func(move |reply| {
            let Some(webrtc) = webrtc.upgrade() else {
                return;
            };
            let offer = reply
                .unwrap()
                .unwrap()
                .get::<gst_webrtc::WebRTCSessionDescription>("offer")
                .unwrap();
            let _ = tx.send(ViewerEvent::Offer(offer.sdp().as_text().unwrap()));
            webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
        });
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    pub fn on_answer(&self, sdp: &str) {
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).unwrap();
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
    }

    pub fn add_candidate(&self, content: &str) {
        let v: Value = serde_json::from_str(content).unwrap();
        let c = v["candidate"].as_str().unwrap_or("");
        if !c.is_empty() {
            let mline = v["sdpMLineIndex"].as_u64().unwrap_or(0) as u32;
            self.webrtc
                .emit_by_name::<()>("add-ice-candidate", &[&mline, &c]);
        }
    }
}

impl Viewer {
    /// Stops receiving, as a page that crashed would: nothing more is sent to the camera
    /// (no RTCP), while the signaling connection (elsewhere) stays as it is.
    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// An offer with only its VP8 formats (and their retransmission formats) left in each video
/// section, as a browser that cannot decode anything else reads it.
pub fn only_vp8(sdp: &str) -> String {
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let attr_pt = |line: &str, attr: &str| -> Option<String> {
        let rest = line.strip_prefix(attr)?;
        Some(rest.split([' ', '\r', '\n']).next()?.to_owned())
    };
    let vp8: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" VP8/90000"))
        .filter_map(|l| attr_pt(l, "a=rtpmap:"))
        .collect();
    let rtx: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let pt = attr_pt(l, "a=fmtp:")?;
            let apt = l.trim_end().split("apt=").nth(1)?;
            vp8.iter().any(|v| v == apt).then_some(pt)
        })
        .collect();
    let keep = |pt: &str| vp8.iter().chain(&rtx).any(|k| k == pt);
    lines
        .iter()
        .filter_map(|line| {
            if line.starts_with("m=video") {
                let body = line.trim_end();
                let fields: Vec<&str> = body.split(' ').collect();
                let kept: Vec<&str> = fields[..3]
                    .iter()
                    .copied()
                    .chain(fields[3..].iter().copied().filter(|pt| keep(pt)))
                    .collect();
                return Some(format!("{}{}", kept.join(" "), &line[body.len()..]));
            }
            for attr in ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"] {
                if let Some(pt) = attr_pt(line, attr) {
                    if !keep(&pt) {
                        return None;
                    }
                }
            }
            Some((*line).to_owned())
        })
        .collect()
}

/// `rtph264depay ! decodebin ! videoconvert ! appsink` (`rtpvp8depay` for VP8), counting
/// decoded frames; returns the depayloader to link webrtcbin's pad to.
fn decoding_branch(
    pipeline: &gst::Pipeline,
    encoding: &str,
    frames: Arc<AtomicU64>,
    first_at: Arc<OnceLock<Instant>>,
    size: Arc<Mutex<Option<(i32, i32)>>>,
    brightness: Arc<Mutex<Vec<(gst::ClockTime, u8)>>>,
) -> gst::Element {
    // decodebin waits for the SPS before choosing a decoder (openh264dec insists on knowing
    // the profile).
    let depay = match encoding {
        "VP8" => "rtpvp8depay",
        _ => "rtph264depay",
    };
    let depay = gst::ElementFactory::make(depay).build().unwrap();
    let decode = gst::ElementFactory::make("decodebin").build().unwrap();
    let convert = gst::ElementFactory::make("videoconvert").build().unwrap();
    // Planar YUV, so that the first byte of the first plane is the corner's brightness.
    let sink = gstreamer_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .sync(false)
        .build();
    pipeline
        .add_many([&depay, &decode, &convert, sink.upcast_ref()])
        .unwrap();
    depay.link(&decode).unwrap();
    convert.link(&sink).unwrap();
    let convert_weak = convert.downgrade();
    decode.connect_pad_added(move |_, pad| {
        if let Some(convert) = convert_weak.upgrade() {
            let _ = pad.link(&convert.static_pad("sink").unwrap());
        }
    });
    sink.set_callbacks(
        gstreamer_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(st) = sample.caps().and_then(|c| c.structure(0)) {
                    let w = st.get::<i32>("width").unwrap_or(0);
                    let h = st.get::<i32>("height").unwrap_or(0);
                    *size.lock().unwrap() = Some((w, h));
                }
                if let Some(buffer) = sample.buffer() {
                    let mut seen = brightness.lock().unwrap();
                    if let (true, Some(pts), Ok(map)) = (
                        seen.len() < TIMELINE_LIMIT,
                        buffer.pts(),
                        buffer.map_readable(),
                    ) {
                        // The luma plane comes first; every 7th byte is enough for a mean.
                        let luma = &map[..map.len() * 2 / 3];
                        let picked = luma.iter().step_by(7);
                        let n = picked.len().max(1) as u64;
                        let mean = picked.map(|&y| u64::from(y)).sum::<u64>() / n;
                        seen.push((pts, mean as u8));
                    }
                }
                first_at.get_or_init(Instant::now);
                frames.fetch_add(1, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    for e in [&depay, &decode, &convert, sink.upcast_ref()] {
        e.sync_state_with_parent().unwrap();
    }
    depay
}

/// `rtpopusdepay ! opusdec ! audioconvert ! audio/x-raw,format=F32LE ! appsink`, counting
/// decoded samples and their peak into `heard`; returns the depayloader.
fn listening_branch(pipeline: &gst::Pipeline, heard: Arc<Heard>) -> gst::Element {
    let depay = gst::ElementFactory::make("rtpopusdepay").build().unwrap();
    let decode = gst::ElementFactory::make("opusdec").build().unwrap();
    let convert = gst::ElementFactory::make("audioconvert").build().unwrap();
    let sink = gstreamer_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .build(),
        )
        .sync(false)
        .build();
    pipeline
        .add_many([&depay, &decode, &convert, sink.upcast_ref()])
        .unwrap();
    gst::Element::link_many([&depay, &decode, &convert, sink.upcast_ref()]).unwrap();
    sink.set_callbacks(
        gstreamer_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let channels = sample
                    .caps()
                    .and_then(|c| c.structure(0).and_then(|s| s.get::<i32>("channels").ok()))
                    .unwrap_or(1)
                    .max(1) as usize;
                let buffer = sample.buffer();
                if let Some(map) = buffer.and_then(|b| b.map_readable().ok()) {
                    let values = map
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).abs());
                    let peak = values.clone().fold(0f32, f32::max);
                    let mut onsets = heard.onsets.lock().unwrap();
                    if let (true, Some(pts)) =
                        (onsets.len() < TIMELINE_LIMIT, buffer.and_then(|b| b.pts()))
                    {
                        let loud = values.clone().position(|v| v >= LOUD).map(|i| {
                            pts + gst::ClockTime::from_nseconds(
                                (i / channels) as u64 * 1_000_000_000 / 48_000,
                            )
                        });
                        onsets.push((pts, loud));
                    }
                    drop(onsets);
                    heard
                        .samples
                        .fetch_add((map.len() / 4 / channels) as u64, Ordering::Relaxed);
                    heard
                        .peak
                        .fetch_max((peak.min(1.0) * 1e6) as u64, Ordering::Relaxed);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    for e in [&depay, &decode, &convert, sink.upcast_ref()] {
        e.sync_state_with_parent().unwrap();
    }
    depay
}

/// `rtph264depay ! video/x-h264,alignment=au ! fakesink`, counting access units; returns the
/// depayloader.
fn counting_branch(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    first_at: Arc<OnceLock<Instant>>,
) -> gst::Element {
    // Nothing is decoded, so the count starts at a keyframe: the first access unit counted
    // is one a decoder could show.
    let depay = gst::ElementFactory::make("rtph264depay")
        .property("wait-for-keyframe", true)
        .build()
        .unwrap();
    // One buffer per access unit, so buffers are frames.
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("alignment", "au")
                .build(),
        )
        .build()
        .unwrap();
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .unwrap();
    pipeline.add_many([&depay, &filter, &sink]).unwrap();
    gst::Element::link_many([&depay, &filter, &sink]).unwrap();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            first_at.get_or_init(Instant::now);
            frames.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    for e in [&depay, &filter, &sink] {
        e.sync_state_with_parent().unwrap();
    }
    depay
}

/// A viewer's signaling connection plus its receiving pipeline.
pub struct Session {
    /// The signaling connection.
    pub ws: Client,
    /// The receiving pipeline.
    pub viewer: Viewer,
    /// The member that sent the offer (or asked for ours).
    pub camera: String,
    /// When the `join` (or `create`) was sent.
    pub started: Instant,
    /// From `started` to the first frame, once there is one.
    pub first_frame: Option<Duration>,
    /// Every message received, pings aside.
    pub received: Vec<Msg>,
    /// Set once the server closed the connection.
    closed: bool,
}

impl Session {
    /// Joins `conversation` as a decoding viewer, over the signaling endpoint `url` (with
    /// its `?token=` when the device needs one).
    pub async fn join(url: &str, conversation: &str) -> Session {
        Session::open(url, "join", conversation).await
    }

    /// Sends `signal` (`join` or `create`) for `conversation` as a decoding viewer.
    pub async fn open(url: &str, signal: &str, conversation: &str) -> Session {
        Session::open_with(url, signal, conversation, Consume::Decode).await
    }

    pub async fn open_with(
        url: &str,
        signal: &str,
        conversation: &str,
        consume: Consume,
    ) -> Session {
        Session::open_accepting(url, signal, conversation, consume, Accept::Any).await
    }

    /// Joins `conversation` as a decoding viewer that takes only VP8.
    pub async fn join_vp8_only(url: &str, conversation: &str) -> Session {
        Session::open_accepting(url, "join", conversation, Consume::Decode, Accept::Vp8Only).await
    }

    pub async fn open_accepting(
        url: &str,
        signal: &str,
        conversation: &str,
        consume: Consume,
        accept: Accept,
    ) -> Session {
        let request = url.into_client_request().expect("a valid ws:// URL");
        let mut ws = Client::connect(request, None, "viewer")
            .await
            .unwrap_or_else(|e| panic!("viewer: WebSocket handshake failed: {e}"));
        let viewer = Viewer::accepting(consume, accept);
        let started = Instant::now();
        ws.send(signal, "", conversation, &[]).await;
        Session {
            ws,
            viewer,
            camera: String::new(),
            started,
            first_frame: None,
            received: Vec::new(),
            closed: false,
        }
    }

    pub fn frames(&self) -> u64 {
        self.viewer.frames.load(Ordering::Relaxed)
    }

    /// Runs signaling for up to `limit`, or until `done` holds. A connection the server
    /// closes ends nothing here: `done` or `limit` does.
    pub async fn pump(&mut self, limit: Duration, done: impl Fn(&Session) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.first_frame.is_none() {
                if let Some(at) = self.viewer.first_at.get() {
                    self.first_frame = Some(at.saturating_duration_since(self.started));
                }
            }
            if done(self) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                Some(ev) = self.viewer.events.recv() => match ev {
                    ViewerEvent::Answer(sdp) => {
                        self.ws.send("answerResponse", &self.camera, &sdp, &[]).await
                    }
                    ViewerEvent::Offer(sdp) => {
                        self.ws.send("offerResponse", &self.camera, &sdp, &[]).await
                    }
                    ViewerEvent::Candidate(mline, c) => {
                        let content = json!({"candidate": c, "sdpMLineIndex": mline}).to_string();
                        self.ws.send("candidate", &self.camera, &content, &[]).await;
                    }
                },
                next = self.ws.next(), if !self.closed => match next {
                    Next::Closed(_) => self.closed = true,
                    Next::Msg(m) => {
                        match m.signal.as_str() {
                            "answerRequest" => {
                                self.camera = m.from.clone();
                                self.viewer.on_offer(&m.content);
                            }
                            "candidate" => self.viewer.add_candidate(&m.content),
                            "offerRequest" => {
                                self.camera = m.from.clone();
                                self.viewer.make_offer();
                            }
                            "finalize" => self.viewer.on_answer(&m.content),
                            _ => {}
                        }
                        self.received.push(m);
                    }
                }
            }
        }
    }

    /// Plays until `n` more frames arrive (or `limit` passes); returns how many did.
    pub async fn play(&mut self, n: u64, limit: Duration) -> u64 {
        let start = self.frames();
        self.pump(limit, |s| s.frames() >= start + n).await;
        self.frames() - start
    }

    pub fn signals(&self) -> Vec<&str> {
        self.received.iter().map(|m| m.signal.as_str()).collect()
    }

    /// Leaves the way a page does: `left`, then the WebSocket closes and the pipeline stops.
    pub async fn leave(mut self) {
        if !self.closed {
            self.ws.send("left", "", "", &[]).await;
        }
        self.ws.close().await;
    }
}
