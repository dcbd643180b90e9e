//! What a careless or malicious LAN client can send the camera at each step of negotiation,
//! while a GStreamer viewer watches: each hostile client is told `NEGOTIATION_FAILED` (or the
//! protocol's error) in words, the watching viewer keeps decoding without a gap over the
//! whole test, and the media worker is never restarted.
//!
//! ```text
//!   device (in this process, media worker = peercam-media)
//!     ├── watcher: GStreamer webrtcbin viewer, frames sampled every 100 ms
//!     └── hostile clients, one at a time, over real WebSockets
//! ```

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use support::device::{media_program, Server};
use support::fixtures::DEAD_ANSWER;
use support::gst_viewer::Session;
use support::watch::Watch;
use support::ws::{Client, Msg};

fn test_launch() -> String {
    "videotestsrc is-live=true pattern=smpte horizontal-speed=6 \
     ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert \
     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=800 \
     ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
        .into()
}

/// How long a hostile client waits for the camera's refusal.
const REFUSAL: Duration = Duration::from_secs(10);

/// A viewer's offer in a room, as a browser would send it (candidates left out). `{PT}` is
/// its H.264 payload type.
const ROOM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF {PT}\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:4ZcD\r\n\
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:{PT} H264/90000\r\n\
a=rtcp-fb:{PT} nack pli\r\n\
a=fmtp:{PT} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

fn room_offer(pt: &str) -> String {
    ROOM_OFFER.replace("{PT}", pt)
}

/// Creates a MESH room, invites the camera into it, and returns the client with the
/// camera's member id in that room (it asks the client for an offer).
async fn room_with_camera(server: &Server, room: &str) -> (Client, String) {
    let mut c = server.connect(room).await;
    c.send("create", "", room, &[("type", "MESH")]).await;
    c.recv_signal("created").await;
    c.send("invite", "", room, &[]).await;
    let joined = c.recv_signal("newJoined").await;
    let camera = joined.from.clone();
    c.recv_from("offerRequest", &camera).await;
    (c, camera)
}

/// The next message must be the camera member's `NEGOTIATION_FAILED` saying `why`.
async fn expect_refusal(c: &mut Client, camera: &str, why: &str) -> Msg {
    let m = c
        .recv_within(REFUSAL)
        .await
        .unwrap_or_else(|| panic!("{}: silence instead of a refusal ({why})", c.label()));
    assert_eq!(
        (m.signal.as_str(), m.content.as_str(), m.from.as_str()),
        ("error", "NEGOTIATION_FAILED", camera),
        "{m:?}"
    );
    let sentence = &m.custom["message"];
    assert!(sentence.contains(why), "{sentence:?} does not say {why:?}");
    m
}

/// Joins the camera's broadcast and returns the client once the camera's offer is in.
async fn viewer(server: &Server, label: &str) -> Client {
    let mut c = server.connect(label).await;
    c.send("join", "", "camera", &[]).await;
    c.recv_signal("joined").await;
    c.recv_from("answerRequest", "camera").await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_cost_only_themselves_while_a_viewer_watches() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = Config::default();
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    config.camera.max_viewers = 16;
    config.camera.negotiation_timeout_secs = 5;
    // A speaker, so that talkback is on: what it plays goes nowhere.
    let pipelines = std::env::temp_dir().join(format!("peercam-hostile-{}", std::process::id()));
    support::fixtures::add_silent_speaker(&pipelines);
    config.camera.pipelines_dir = Some(pipelines.clone());
    config.talkback.output = "sink".into();
    let mut device = Device::new(&config);
    device
        .start_camera(&config, Capture::Launch(test_launch()), &media_program())
        .expect("camera starts");
    let server = Server::serve(device).await;

    let mut watcher = Session::join(&server.ws_url(), "camera").await;
    let got = watcher.play(30, Duration::from_secs(20)).await;
    assert!(got >= 30, "the watcher decoded {got} frames");
    let stats = server.device.camera.as_ref().unwrap().stats().clone();
    let (worker, _) = stats.worker_pids();
    assert!(worker.is_some());
    let watch = Watch::start(watcher);

    // In a room, offers the camera cannot use.
    let cases: [(&str, String, &str); 6] = [
        ("pt200", room_offer("200"), "payload type \"200\""),
        ("garbage", "this is not SDP".into(), "not SDP"),
        (
            "vp9",
            room_offer("98").replace("H264", "VP9"),
            "offered no H.264 or VP8 video",
        ),
        (
            "no-ufrag",
            room_offer("102").replace("a=ice-ufrag:4ZcD\r\n", ""),
            "no ICE username",
        ),
        (
            "bad-fingerprint",
            room_offer("102").replace("sha-256 1F:2A:3B", "sha-256 ZZ:2A:3B"),
            "fingerprint",
        ),
        (
            "port",
            room_offer("102").replace("m=video 9 ", "m=video 70000 "),
            "0 to 65535",
        ),
    ];
    for (room, sdp, why) in cases {
        let (mut c, camera) = room_with_camera(&server, room).await;
        c.send("offerResponse", &camera, &sdp, &[]).await;
        expect_refusal(&mut c, &camera, why).await;
        c.close().await;
    }
    // The same offer, twice in a row from one client: refused each time, never a crash.
    let (mut c, camera) = room_with_camera(&server, "again").await;
    c.send("offerResponse", &camera, &room_offer("200"), &[])
        .await;
    expect_refusal(&mut c, &camera, "payload type").await;
    c.send("offerResponse", &camera, &room_offer("200"), &[])
        .await;
    assert_eq!(c.expect_error("INVALID_STATE").await.from, "");
    c.close().await;

    // Viewers of the broadcast, answering the camera's offer with what it cannot use.
    for (label, answer, why) in [
        ("bad-answer", "garbage".to_owned(), "not SDP"),
        (
            "rejects-video",
            DEAD_ANSWER.replace("m=video 9 ", "m=video 0 "),
            "declined the camera's video",
        ),
        (
            "wrong-pt",
            DEAD_ANSWER.replace("SAVPF 96", "SAVPF 101"),
            "did not offer",
        ),
    ] {
        let mut c = viewer(&server, label).await;
        c.send("answerResponse", "camera", &answer, &[]).await;
        expect_refusal(&mut c, "camera", why).await;
        c.close().await;
    }

    // Talkback asked for by who cannot have it: someone in no broadcast, a malformed ask,
    // and a viewer whose connection is not up, asking again and again. Each is answered;
    // none is played, and the connection stays.
    let mut c = server.connect("talk-alone").await;
    c.send("talk", "", "start", &[]).await;
    c.expect_error("INVALID_STATE").await;
    c.close().await;
    let mut c = viewer(&server, "talk-unconnected").await;
    c.send("talk", "", "louder", &[]).await;
    c.expect_error("BAD_MESSAGE").await;
    for _ in 0..50 {
        c.send("talk", "", "start", &[]).await;
    }
    for _ in 0..50 {
        let m = c.recv_from("talk", "camera").await;
        assert_eq!(m.content, "unavailable", "{m:?}");
        assert!(
            m.custom["message"].contains("no connection to you"),
            "{m:?}"
        );
    }
    c.send("talk", "", "stop", &[]).await;
    assert_eq!(c.recv_from("talk", "camera").await.content, "off");
    assert!(!stats.snapshot().talking);
    c.close().await;

    // An answer that passes every check but never connects, followed by garbage and
    // out-of-range candidates and a flood of .local names: released after the negotiation
    // time-out, and told why.
    let mut c = viewer(&server, "never-connects").await;
    c.send("answerResponse", "camera", DEAD_ANSWER, &[]).await;
    for candidate in [
        "not json".to_owned(),
        r#"{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 99999 typ host","sdpMLineIndex":0}"#.into(),
        r#"{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMLineIndex":4294967295}"#.into(),
        r#"{"candidate":"candidate:x","sdpMLineIndex":0}"#.into(),
        r#"{"candidate":"","sdpMLineIndex":0}"#.into(),
    ] {
        c.send("candidate", "camera", &candidate, &[]).await;
    }
    // Under the transport's burst (200), so the camera, not the rate limiter, is tested.
    for i in 0..100 {
        let candidate = format!(
            r#"{{"candidate":"candidate:{i} 1 udp 2122260223 {i:08x}-aaaa.local 5000 typ host","sdpMLineIndex":0}}"#
        );
        c.send("candidate", "camera", &candidate, &[]).await;
    }
    let refused = c.recv_within(Duration::from_secs(15)).await;
    let m = refused.expect("silence instead of a refusal for a connection that never came up");
    assert_eq!(m.content, "NEGOTIATION_FAILED", "{m:?}");
    assert!(m.custom["message"].contains("did not come up"), "{m:?}");
    c.close().await;

    // Vanishing mid-negotiation, at each step.
    let c = viewer(&server, "vanish-after-offer").await;
    drop(c);
    let mut c = viewer(&server, "vanish-after-answer").await;
    c.send("answerResponse", "camera", DEAD_ANSWER, &[]).await;
    drop(c);
    let (c, _) = room_with_camera(&server, "vanish-in-room").await;
    drop(c);

    tokio::time::sleep(Duration::from_secs(1)).await;
    // Read while the watcher is still there: once it leaves, the idle worker retires.
    let worker_at_end = stats.worker_pids().0;
    let (frames, over, stall) = watch.finish().await;
    let fps = frames as f64 / over.as_secs_f64();
    eprintln!("watcher: {frames} frames in {over:?} ({fps:.1} fps), longest stall {stall:?}");
    assert!(fps >= 25.0, "the watcher fell to {fps:.1} fps");
    assert!(
        stall < Duration::from_secs(1),
        "the watcher's picture stood still for {stall:?}"
    );
    assert_eq!(worker_at_end, worker, "the media worker was restarted");
    // Everything the hostile clients caused is released.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats.snapshot();
        if s.peers == 0 && s.branches == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&pipelines);
}
