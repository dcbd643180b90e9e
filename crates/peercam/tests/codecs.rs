//! The camera's two encodes, watched by receiving GStreamer `webrtcbin`s over real
//! WebSockets: a viewer that takes only VP8 (as Firefox without its H.264 plugin does) is fed
//! from one shared VP8 encode, started with the first such viewer and stopped after the last,
//! while H.264 viewers keep their own shared encode and their frame rate.
//!
//! ```text
//!   device: videotestsrc ! … ! tee(raw) ! x264enc ! tee ─▶ H.264 viewers
//!                                    └─▶ vp8enc ! tee ─▶ VP8 viewers
//! ```

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use support::device::{camera_stats, serve_camera, test_launch, wait_for, Server};
use support::gst_viewer::{Accept, Consume, Session};

const WIDTH: i32 = 320;
const HEIGHT: i32 = 240;
const LIMIT: Duration = Duration::from_secs(20);

async fn start_device() -> Server {
    let launch = test_launch("ball", WIDTH as u32, HEIGHT as u32);
    serve_camera(launch, |c| c.camera.max_viewers = 8).await
}

fn codec(session: &Session) -> Option<String> {
    session.viewer.codec.lock().unwrap().clone()
}

fn offer_of(session: &Session) -> String {
    session
        .received
        .iter()
        .find(|m| m.signal == "answerRequest")
        .map(|m| m.content.clone())
        .expect("an offer")
}

/// Frames per second `session` decoded since `(at, frames)`.
fn rate_since(session: &Session, (at, frames): (Instant, u64)) -> f64 {
    (session.frames() - frames) as f64 / at.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_viewers_share_one_vp8_encode_and_h264_viewers_keep_their_rate() {
    let running = start_device().await;
    let mut h264 = Session::join(&running.ws_url(), "camera").await;
    let got = h264.play(30, LIMIT).await;
    assert!(got >= 30, "decoded {got}; signals: {:?}", h264.signals());
    assert_eq!(codec(&h264).as_deref(), Some("H264"));
    // The offer: H.264 first, VP8 second, each with its retransmission format.
    let offer = offer_of(&h264);
    let m = offer
        .lines()
        .find(|l| l.starts_with("m=video"))
        .expect("a video section");
    assert!(m.contains(" 96 97 "), "{m}");
    for line in [
        "a=rtpmap:96 H264/90000",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack pli",
        "a=rtcp-fb:97 ccm fir",
        "a=fmtp:99 apt=97",
    ] {
        assert!(offer.contains(line), "{line} missing: {offer}");
    }
    wait_for(&running.device, "the H.264 encode alone", |s| {
        (s.h264_encoders, s.vp8_encoders, s.connected) == (1, 0, 1)
    })
    .await;

    let before = (Instant::now(), h264.frames());
    let mut vp8 = Vec::new();
    for _ in 0..2 {
        let mut v = Session::join_vp8_only(&running.ws_url(), "camera").await;
        let got = v.play(30, LIMIT).await;
        assert!(got >= 30, "a VP8 viewer decoded {got}; {:?}", v.signals());
        assert_eq!(codec(&v).as_deref(), Some("VP8"));
        assert_eq!(*v.viewer.size.lock().unwrap(), Some((WIDTH, HEIGHT)));
        vp8.push(v);
    }
    wait_for(&running.device, "one VP8 encode for two viewers", |s| {
        (s.h264_encoders, s.vp8_encoders, s.vp8_branches, s.connected) == (1, 1, 2, 3)
    })
    .await;
    for v in vp8.iter_mut() {
        let got = v.play(30, LIMIT).await;
        assert!(got >= 30, "a VP8 viewer stalled at {got}");
    }
    let rate = rate_since(&h264, before);
    eprintln!("H.264 viewer while VP8 viewers joined and watched: {rate:.1} fps");
    assert!(rate >= 24.0, "the H.264 viewer fell to {rate:.1} fps");

    // The last VP8 viewer gone, the VP8 encode stops; the H.264 viewer plays on.
    for v in vp8 {
        v.leave().await;
    }
    wait_for(&running.device, "the VP8 encode released", |s| {
        (s.peers, s.vp8_encoders, s.vp8_branches, s.h264_encoders) == (1, 0, 0, 1)
    })
    .await;
    let after = (Instant::now(), h264.frames());
    let got = h264.play(60, LIMIT).await;
    assert!(got >= 60, "the H.264 viewer stalled at {got}");
    let rate = rate_since(&h264, after);
    assert!(rate >= 24.0, "the H.264 viewer fell to {rate:.1} fps");

    // A VP8 viewer later starts the encode again.
    let mut again = Session::join_vp8_only(&running.ws_url(), "camera").await;
    let got = again.play(15, LIMIT).await;
    assert!(got >= 15, "decoded {got}; {:?}", again.signals());
    assert_eq!(camera_stats(&running.device).vp8_encoders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_only_viewer_alone_gets_vp8_and_leaves_nothing_running() {
    let running = start_device().await;
    let mut v = Session::join_vp8_only(&running.ws_url(), "camera").await;
    let got = v.play(45, LIMIT).await;
    assert!(got >= 45, "decoded {got}; signals: {:?}", v.signals());
    assert_eq!(codec(&v).as_deref(), Some("VP8"));
    let s = camera_stats(&running.device);
    // The H.264 encode runs with the capture (it feeds the raw frames' tee); VP8 is there.
    assert_eq!(
        (s.vp8_encoders, s.vp8_branches, s.connected),
        (1, 1, 1),
        "{s:?}"
    );
    v.leave().await;
    wait_for(&running.device, "everything released", |s| {
        s.peers == 0 && !s.capturing && s.vp8_encoders == 0 && s.h264_encoders == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_camera_answers_a_vp8_only_offer_with_vp8() {
    let running = start_device().await;
    let mut member = Session::open_accepting(
        &running.ws_url(),
        "create",
        "kitchen",
        Consume::Decode,
        Accept::Vp8Only,
    )
    .await;
    member
        .pump(Duration::from_secs(5), |s| s.signals().contains(&"created"))
        .await;
    member.ws.send("invite", "", "kitchen", &[]).await;
    let got = member.play(30, LIMIT).await;
    assert!(
        got >= 30,
        "decoded {got} frames from the invited camera; signals: {:?}",
        member.signals()
    );
    assert_eq!(codec(&member).as_deref(), Some("VP8"));
    let s = camera_stats(&running.device);
    assert_eq!((s.vp8_encoders, s.vp8_branches), (1, 1), "{s:?}");
    drop(member);
    wait_for(&running.device, "released", |s| {
        s.peers == 0 && !s.capturing && s.vp8_encoders == 0
    })
    .await;
}
