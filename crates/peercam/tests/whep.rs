//! The WHEP door, reached as a player would over real HTTP, watched by receiving GStreamer
//! `webrtcbin`s: a WHEP player and a nextRTC viewer watch at once from one encode; the player
//! trickles its candidates, leaves with `DELETE`, or falls silent and is let go; and each
//! mistake a player can make gets its status and a sentence, while the viewer limit counts
//! both kinds of viewer.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::device::{camera_stats, serve_camera, test_launch, wait_for, Server};
use support::gst_viewer::Session;
use support::http::{self, Response};
use support::whep::{self, Player};

const LIMIT: Duration = Duration::from_secs(20);

async fn start_device(max_viewers: usize) -> Server {
    let launch = test_launch("ball", 320, 240);
    serve_camera(launch, |c| c.camera.max_viewers = max_viewers).await
}

/// `whep_viewers` as `/api/stats` reports it.
async fn whep_viewers(server: &Server) -> u64 {
    let (status, body) = server.get("/api/stats").await;
    assert_eq!(status, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    stats["whep_viewers"]
        .as_u64()
        .expect("whep_viewers in /api/stats")
}

/// `method path` with the token, `content_type` and `headers`.
async fn send(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let bearer = format!("Bearer {}", server.token().unwrap());
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Content-Type", content_type),
    ];
    headers.extend_from_slice(extra);
    http::send(server.addr, method, path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_and_a_nextrtc_viewer_watch_one_encode() {
    let running = start_device(8).await;
    let mut viewer = Session::join(&running.ws_url(), "camera").await;
    assert!(viewer.play(30, LIMIT).await >= 30, "{:?}", viewer.signals());

    let mut player = Player::open(running.addr, running.token().as_deref()).await;
    let got = player.play(60, LIMIT).await;
    assert!(got >= 60, "the WHEP player decoded {got} frames");
    // webrtcbin gathers after its offer: its candidates went by PATCH, each taken.
    assert!(
        !player.patches.is_empty() && player.patches.iter().all(|&s| s == 204),
        "PATCH answers: {:?}",
        player.patches
    );
    let s = camera_stats(&running.device);
    assert_eq!((s.peers, s.connected, s.h264_encoders), (2, 2, 1), "{s:?}");
    assert_eq!(whep_viewers(&running).await, 1);
    // The nextRTC viewer decoded all along.
    let before = viewer.frames();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        viewer.frames() >= before + 20,
        "viewer stalled beside the player"
    );

    let r = player.delete().await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(&running.device, "the player's peer released", |s| {
        s.peers == 1
    })
    .await;
    assert_eq!(whep_viewers(&running).await, 0);
    assert_eq!(player.delete().await.status, 404, "a second DELETE");
    let t = Instant::now();
    let got = viewer.play(30, LIMIT).await;
    assert!(
        got >= 30 && t.elapsed() < Duration::from_secs(3),
        "viewer after the player left: {got} frames in {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_falls_silent_is_let_go() {
    let running = start_device(8).await;
    let mut player = Player::open(running.addr, running.token().as_deref()).await;
    assert!(player.play(30, LIMIT).await >= 30);
    // Gone without a DELETE, as a closed tab or a crashed player is.
    player.viewer.stop();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(25);
    while whep_viewers(&running).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the silent player was never let go"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_for(&running.device, "no peer left", |s| s.peers == 0).await;
    println!("silent player released after {:?}", t.elapsed());
    assert_eq!(player.delete().await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mistake_gets_its_status_and_a_sentence() {
    let running = start_device(1).await;
    let token = running.token();
    let (_, offer) = whep::offer().await;

    // Content type, body, SDP: refused before any peer is made.
    let r = send(&running, "POST", "/whep", "text/plain", &[], &offer).await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(r.headers("Accept-Post"), ["application/sdp"]);
    let r = send(&running, "POST", "/whep", "application/sdp", &[], "hello").await;
    assert_eq!(
        (r.status, r.body.contains("SDP")),
        (400, true),
        "{}",
        r.body
    );
    let audio_only = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n";
    let r = send(
        &running,
        "POST",
        "/whep",
        "application/sdp",
        &[],
        audio_only,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("video"), "{}", r.body);
    assert_eq!(camera_stats(&running.device).peers, 0);

    // The token: needed for the door, not for a browser's preflight.
    let r = whep::post(running.addr, None, &offer).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http::send(
        running.addr,
        "OPTIONS",
        "/whep",
        &[
            ("Origin", "http://player.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers("Access-Control-Allow-Origin"), ["*"]);
    assert!(r.headers("Access-Control-Allow-Headers")[0].contains("Authorization"));

    // Sessions that are not there.
    let r = send(&running, "DELETE", "/whep/whep-0", "text/plain", &[], "").await;
    assert_eq!(r.status, 404);
    let frag = "m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
    let r = send(
        &running,
        "PATCH",
        "/whep/whep-0",
        "application/trickle-ice-sdpfrag",
        &[],
        frag,
    )
    .await;
    assert_eq!(r.status, 404);

    // A session: what a PATCH may not do.
    let mut player = Player::open(running.addr, token.as_deref()).await;
    assert!(player.play(15, LIMIT).await >= 15);
    let path = player.location.clone();
    let sdpfrag = "application/trickle-ice-sdpfrag";
    let r = send(&running, "PATCH", &path, "application/sdp", &[], frag).await;
    assert_eq!(r.status, 415);
    let r = send(
        &running,
        "PATCH",
        &path,
        sdpfrag,
        &[("If-Match", "\"other\"")],
        frag,
    )
    .await;
    assert_eq!(r.status, 412);
    let restart = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n";
    let r = send(
        &running,
        "PATCH",
        &path,
        sdpfrag,
        &[("If-Match", "*")],
        restart,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("ICE restart"), "{}", r.body);
    let r = send(&running, "PATCH", &path, sdpfrag, &[], "{\"candidate\":1}").await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The limit (1) counts the player: the next player and the next nextRTC viewer wait.
    let r = whep::post(running.addr, token.as_deref(), &offer).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers("Retry-After").len(), 1);
    assert!(r.body.contains("limit of 1 viewer"), "{}", r.body);
    let mut viewer = Session::join(&running.ws_url(), "camera").await;
    viewer
        .pump(Duration::from_secs(5), |s| s.signals().contains(&"error"))
        .await;
    let error = viewer.received.iter().find(|m| m.signal == "error");
    assert_eq!(error.map(|m| m.content.as_str()), Some("VIEWER_LIMIT"));
    // The player played on through all of it.
    assert!(player.play(20, LIMIT).await >= 20);

    // Once it leaves, a viewer fits again.
    assert_eq!(player.delete().await.status, 200);
    wait_for(&running.device, "the player's peer released", |s| {
        s.peers == 0
    })
    .await;
    let mut viewer = Session::join(&running.ws_url(), "camera").await;
    assert!(viewer.play(15, LIMIT).await >= 15, "{:?}", viewer.signals());
}
