//! The device's camera peer against a receiving GStreamer `webrtcbin` that speaks the
//! protocol over a real WebSocket, decodes the video and counts frames.
//!
//! ```text
//!   device: videotestsrc ! x264enc ! tee ! … ! webrtcbin ──ICE/DTLS/SRTP on 127.0.0.1──▶
//!   viewer: webrtcbin ! rtph264depay ! decodebin ! videoconvert ! appsink
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use peercam::config::Config;
use peercam::media::camera::CameraSnapshot;
use peercam::service::Device;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const WIDTH: i32 = 320;
const HEIGHT: i32 = 240;

fn test_launch() -> String {
    format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=30/1 \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=500 \
         ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
    )
}

struct Running {
    addr: SocketAddr,
    device: Arc<Device>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_device(max_viewers: usize) -> Running {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = Config::default();
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    config.camera.max_viewers = max_viewers;
    let mut device = Device::new(&config);
    device
        .start_camera(&config, test_launch())
        .expect("camera starts");
    let device = Arc::new(device);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let d = device.clone();
    tokio::spawn(async move {
        let _ = d
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        addr,
        device,
        _stop: stop,
    }
}

/// What the viewer's GStreamer side tells its signaling loop.
enum ViewerEvent {
    Answer(String),
    Offer(String),
    Candidate(u32, String),
}

/// A receiving peer: joins the camera's conversation and decodes what it gets.
struct Viewer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    frames: Arc<AtomicU64>,
    size: Arc<Mutex<Option<(i32, i32)>>>,
    events: mpsc::UnboundedReceiver<ViewerEvent>,
    events_tx: mpsc::UnboundedSender<ViewerEvent>,
}

impl Viewer {
    fn new() -> Viewer {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .unwrap();
        let agent = webrtc.property::<glib::Object>("ice-agent");
        agent.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]);
        pipeline.add(&webrtc).unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        let frames = Arc::new(AtomicU64::new(0));
        let size = Arc::new(Mutex::new(None));

        let tx = events_tx.clone();
        webrtc.connect("on-ice-candidate", false, move |v| {
            let mline = v[1].get::<u32>().unwrap();
            let c = v[2].get::<String>().unwrap();
            let _ = tx.send(ViewerEvent::Candidate(mline, c));
            None
        });
        let (pl, fr, sz) = (pipeline.downgrade(), frames.clone(), size.clone());
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pl.upgrade() else { return };
            // decodebin waits for the SPS before choosing a decoder (openh264dec insists on
            // knowing the profile).
            let depay = gst::ElementFactory::make("rtph264depay").build().unwrap();
            let decode = gst::ElementFactory::make("decodebin").build().unwrap();
            let convert = gst::ElementFactory::make("videoconvert").build().unwrap();
            let sink = gstreamer_app::AppSink::builder().sync(false).build();
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
            let (fr, sz) = (fr.clone(), sz.clone());
            sink.set_callbacks(
                gstreamer_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(st) = sample.caps().and_then(|c| c.structure(0)) {
                            let w = st.get::<i32>("width").unwrap_or(0);
                            let h = st.get::<i32>("height").unwrap_or(0);
                            *sz.lock().unwrap() = Some((w, h));
                        }
                        fr.fetch_add(1, Ordering::Relaxed);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            for e in [&depay, &decode, &convert, sink.upcast_ref()] {
                e.sync_state_with_parent().unwrap();
            }
            pad.link(&depay.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Viewer {
            pipeline,
            webrtc,
            frames,
            size,
            events,
            events_tx,
        }
    }

    fn on_offer(&self, sdp: &str) {
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

    /// Offers to receive H.264 the way a browser does (constrained baseline, 42e01f).
    fn make_offer(&self) {
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", 102i32)
            .field("clock-rate", 90000i32)
            .field("packetization-mode", "1")
            .field("profile-level-id", "42e01f")
            .build();
        self.webrtc
            .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
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

    fn on_answer(&self, sdp: &str) {
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).unwrap();
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
    }

    fn add_candidate(&self, content: &str) {
        let v: Value = serde_json::from_str(content).unwrap();
        let c = v["candidate"].as_str().unwrap_or("");
        if !c.is_empty() {
            let mline = v["sdpMLineIndex"].as_u64().unwrap_or(0) as u32;
            self.webrtc
                .emit_by_name::<()>("add-ice-candidate", &[&mline, &c]);
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn envelope(signal: &str, to: &str, content: &str) -> Message {
    Message::text(json!({"signal": signal, "to": to, "content": content}).to_string())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A viewer's signaling connection plus its receiving pipeline.
struct Session {
    ws: Ws,
    viewer: Viewer,
    camera: String,
    started: Instant,
    first_frame: Option<Duration>,
    received: Vec<Value>,
}

impl Session {
    async fn join(addr: SocketAddr, conversation: &str) -> Session {
        Session::open(addr, "join", conversation).await
    }

    async fn open(addr: SocketAddr, signal: &str, conversation: &str) -> Session {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/signaling"))
            .await
            .unwrap();
        let viewer = Viewer::new();
        let started = Instant::now();
        ws.send(envelope(signal, "", conversation)).await.unwrap();
        Session {
            ws,
            viewer,
            camera: String::new(),
            started,
            first_frame: None,
            received: Vec::new(),
        }
    }

    fn frames(&self) -> u64 {
        self.viewer.frames.load(Ordering::Relaxed)
    }

    /// Runs signaling for up to `limit`, or until `done` holds.
    async fn pump(&mut self, limit: Duration, done: impl Fn(&Session) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.frames() > 0 && self.first_frame.is_none() {
                self.first_frame = Some(self.started.elapsed());
            }
            if done(self) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                Some(ev) = self.viewer.events.recv() => match ev {
                    ViewerEvent::Answer(sdp) => {
                        self.ws.send(envelope("answerResponse", &self.camera, &sdp)).await.unwrap()
                    }
                    ViewerEvent::Offer(sdp) => {
                        self.ws.send(envelope("offerResponse", &self.camera, &sdp)).await.unwrap()
                    }
                    ViewerEvent::Candidate(mline, c) => {
                        let content = json!({"candidate": c, "sdpMLineIndex": mline}).to_string();
                        self.ws.send(envelope("candidate", &self.camera, &content)).await.unwrap();
                    }
                },
                Some(Ok(Message::Text(t))) = self.ws.next() => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    self.received.push(v.clone());
                    match v["signal"].as_str().unwrap() {
                        "answerRequest" => {
                            self.camera = v["from"].as_str().unwrap().to_owned();
                            self.viewer.on_offer(v["content"].as_str().unwrap());
                        }
                        "candidate" => self.viewer.add_candidate(v["content"].as_str().unwrap()),
                        "offerRequest" => {
                            self.camera = v["from"].as_str().unwrap().to_owned();
                            self.viewer.make_offer();
                        }
                        "finalize" => self.viewer.on_answer(v["content"].as_str().unwrap()),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Plays until `n` more frames are decoded (or `limit` passes); returns how many were.
    async fn play(&mut self, n: u64, limit: Duration) -> u64 {
        let start = self.frames();
        self.pump(limit, |s| s.frames() >= start + n).await;
        self.frames() - start
    }

    fn signals(&self) -> Vec<&str> {
        self.received
            .iter()
            .filter_map(|v| v["signal"].as_str())
            .filter(|s| *s != "ping")
            .collect()
    }
}

fn camera_stats(device: &Device) -> CameraSnapshot {
    device.camera.as_ref().unwrap().stats().snapshot()
}

async fn wait_for(device: &Device, what: &str, f: impl Fn(&CameraSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = camera_stats(device);
        if f(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_the_cameras_video() {
    let running = start_device(4).await;
    let mut a = Session::join(running.addr, "camera").await;
    let got = a.play(45, LIMIT).await;
    assert!(
        got >= 45,
        "decoded {got} frames; signals: {:?}",
        a.signals()
    );
    assert_eq!(*a.viewer.size.lock().unwrap(), Some((WIDTH, HEIGHT)));
    assert_eq!(
        a.signals()[..2],
        ["joined", "answerRequest"],
        "the camera offers to a joining viewer"
    );
    eprintln!("join → first decoded frame: {:?}", a.first_frame);
    let s = camera_stats(&running.device);
    assert_eq!((s.peers, s.branches, s.connected), (1, 1, 1), "{s:?}");
    assert!(s.capturing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_share_one_encode_and_leaving_releases_everything() {
    let running = start_device(8).await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(Session::join(running.addr, "camera").await);
    }
    for _ in 0..2 {
        for v in viewers.iter_mut() {
            v.play(15, LIMIT).await;
        }
    }
    for v in &viewers {
        assert!(v.frames() >= 30, "a viewer decoded only {}", v.frames());
    }
    let s = camera_stats(&running.device);
    assert_eq!((s.peers, s.branches, s.connected), (3, 3, 3), "{s:?}");
    // One encoder: the count of encoded frames grows at the capture rate, not 3× it.
    let before = camera_stats(&running.device).frames;
    let t = Instant::now();
    for v in viewers.iter_mut() {
        v.play(10, LIMIT).await;
    }
    let rate = (camera_stats(&running.device).frames - before) as f64 / t.elapsed().as_secs_f64();
    assert!(
        (15.0..45.0).contains(&rate),
        "encoded {rate:.1} frames/s for 3 viewers at 30 fps"
    );

    // One leaves; the others keep playing.
    drop(viewers.remove(0));
    wait_for(&running.device, "2 peers", |s| {
        s.peers == 2 && s.branches == 2
    })
    .await;
    for v in viewers.iter_mut() {
        assert!(v.play(15, LIMIT).await >= 15, "a remaining viewer stalled");
    }
    // It rejoins and plays again.
    let mut back = Session::join(running.addr, "camera").await;
    assert!(
        back.play(15, LIMIT).await >= 15,
        "rejoined viewer got no video"
    );
    viewers.push(back);
    drop(viewers);
    wait_for(&running.device, "all released", |s| {
        s.peers == 0 && s.branches == 0 && s.connected == 0 && !s.capturing
    })
    .await;
    assert_eq!(running.device.hub.stats().pairs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_vanishing_mid_negotiation_leaves_nothing_behind() {
    let running = start_device(4).await;
    // Joins, gets the offer, and disconnects without answering.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/signaling", running.addr))
        .await
        .unwrap();
    ws.send(envelope("join", "", "camera")).await.unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no offer came");
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            if t.contains("answerRequest") {
                break;
            }
        }
    }
    assert_eq!(camera_stats(&running.device).peers, 1);
    drop(ws);
    wait_for(&running.device, "the abandoned peer released", |s| {
        s.peers == 0 && s.branches == 0 && !s.capturing
    })
    .await;
    let hub = running.device.hub.stats();
    assert_eq!((hub.members, hub.pairs), (1, 0), "{hub:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_limit_refuses_the_next_viewer_without_a_hiccup() {
    let running = start_device(1).await;
    let mut first = Session::join(running.addr, "camera").await;
    assert!(first.play(15, LIMIT).await >= 15);
    let mut second = Session::join(running.addr, "camera").await;
    second
        .pump(Duration::from_secs(5), |s| s.signals().contains(&"error"))
        .await;
    let err = second
        .received
        .iter()
        .find(|v| v["signal"] == "error")
        .expect("an error for the viewer over the limit");
    assert_eq!(err["content"], "VIEWER_LIMIT");
    // The first viewer carries on (the wait above did not pump it, so catch up first).
    first.play(5, LIMIT).await;
    let t = Instant::now();
    let got = first.play(20, LIMIT).await;
    assert!(
        got >= 20 && t.elapsed() < Duration::from_secs(2),
        "first viewer stalled: {got} frames in {:?}",
        t.elapsed()
    );
    assert_eq!(camera_stats(&running.device).peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_camera_answers_a_mesh_members_offer() {
    let running = start_device(4).await;
    let mut member = Session::open(running.addr, "create", "kitchen").await;
    member
        .pump(Duration::from_secs(5), |s| s.signals().contains(&"created"))
        .await;
    member
        .ws
        .send(envelope("invite", "", "kitchen"))
        .await
        .unwrap();
    let got = member.play(30, LIMIT).await;
    assert!(
        got >= 30,
        "decoded {got} frames from the invited camera; signals: {:?}",
        member.signals()
    );
    let order: Vec<&str> = member
        .signals()
        .into_iter()
        .filter(|s| ["newJoined", "offerRequest", "finalize"].contains(s))
        .collect();
    assert_eq!(order, ["newJoined", "offerRequest", "finalize"]);
    // The camera joined as its own member, not as `camera` (which stays the broadcaster).
    assert_ne!(member.camera, "camera");
    assert_eq!(camera_stats(&running.device).peers, 1);
    // When the last member leaves the room, the camera's member leaves too.
    drop(member);
    wait_for(&running.device, "released", |s| {
        s.peers == 0 && !s.capturing
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.device.hub.stats().members != 1 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            running.device.hub.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
