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

/// Joins `conversation` and plays until `frames` frames are decoded or `limit` passes.
/// Returns the viewer (still connected) and the time from join to the first frame.
async fn watch(
    addr: SocketAddr,
    conversation: &str,
    frames: u64,
    limit: Duration,
) -> (Viewer, Option<Duration>, Vec<Value>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/signaling"))
        .await
        .unwrap();
    let mut viewer = Viewer::new();
    let started = Instant::now();
    ws.send(envelope("join", "", conversation)).await.unwrap();
    let mut camera = String::new();
    let mut first_frame = None;
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let got = viewer.frames.load(Ordering::Relaxed);
        if got > 0 && first_frame.is_none() {
            first_frame = Some(started.elapsed());
        }
        if got >= frames {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            Some(ev) = viewer.events.recv() => match ev {
                ViewerEvent::Answer(sdp) => ws.send(envelope("answerResponse", &camera, &sdp)).await.unwrap(),
                ViewerEvent::Candidate(mline, c) => {
                    let content = json!({"candidate": c, "sdpMLineIndex": mline}).to_string();
                    ws.send(envelope("candidate", &camera, &content)).await.unwrap();
                }
            },
            Some(Ok(Message::Text(t))) = ws.next() => {
                let v: Value = serde_json::from_str(&t).unwrap();
                received.push(v.clone());
                match v["signal"].as_str().unwrap() {
                    "answerRequest" => {
                        camera = v["from"].as_str().unwrap().to_owned();
                        viewer.on_offer(v["content"].as_str().unwrap());
                    }
                    "candidate" => viewer.add_candidate(v["content"].as_str().unwrap()),
                    _ => {}
                }
            }
        }
    }
    // Keep the socket open by parking it with the viewer: dropping it would leave.
    std::mem::forget(ws);
    (viewer, first_frame, received)
}

async fn camera_stats(device: &Device) -> peercam::media::camera::CameraSnapshot {
    device.camera.as_ref().unwrap().stats().snapshot()
}

async fn wait_for(
    device: &Device,
    what: &str,
    f: impl Fn(&peercam::media::camera::CameraSnapshot) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = camera_stats(device).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_the_cameras_video() {
    let running = start_device(4).await;
    let (viewer, first, received) =
        watch(running.addr, "camera", 45, Duration::from_secs(20)).await;
    let frames = viewer.frames.load(Ordering::Relaxed);
    assert!(
        frames >= 45,
        "decoded {frames} frames; signals: {received:?}"
    );
    assert_eq!(*viewer.size.lock().unwrap(), Some((WIDTH, HEIGHT)));
    eprintln!("join → first decoded frame: {first:?}");
    let s = camera_stats(&running.device).await;
    assert_eq!((s.peers, s.branches, s.connected), (1, 1, 1), "{s:?}");
    assert!(s.capturing);
}
