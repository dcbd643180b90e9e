//! Publishing over WHIP, to an endpoint on real HTTP whose sessions are receiving GStreamer
//! peers ([`support::whip_endpoint`]): the device posts its offer with the Bearer token, backs
//! off after a refusal and after an answer it cannot use (ending that session with `DELETE`),
//! goes live and the endpoint decodes its video, while a viewer of its own still fits under a
//! viewer limit of one; a session that falls silent is given up after the silence watch and
//! published again; stopping the device ends the session at the endpoint within 2 s.
//! (The same against Janus, a real media server, with viewers of Janus: `whip_netns.rs`.)

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use serde_json::Value;
use support::device::{media_program, test_launch, Server};
use support::gst_viewer::Session;
use support::whip_endpoint::{Endpoint, Reply};

/// The endpoint's token: a stream key with characters a header carries as they are.
const TOKEN: &str = "stream-key.4f9/Zq+=";

async fn start_device(endpoint: &Endpoint) -> Server {
    start_device_with(endpoint, |_| {}).await
}

async fn start_device_with(endpoint: &Endpoint, tweak: impl FnOnce(&mut Config)) -> Server {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = Config::default();
    tweak(&mut config);
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    // The publisher must not take the only place.
    config.camera.max_viewers = 1;
    config.publish.enabled = true;
    config.publish.url = Some(endpoint.url());
    config.publish.token = Some(TOKEN.into());
    let mut device = Device::new(&config);
    device
        .start_camera(
            &config,
            Capture::Launch(test_launch("ball", 320, 240)),
            &media_program(),
        )
        .expect("camera starts");
    Server::serve(device).await
}

/// `publish` as `/api/stats` reports it.
async fn publish_stats(server: &Server) -> Value {
    let (status, body) = server.get("/api/stats").await;
    assert_eq!(status, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    stats["publish"].clone()
}

/// Waits until the endpoint's newest session has decoded `frames` frames; its number.
async fn decoded(endpoint: &Endpoint, frames: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some((n, viewer)) = endpoint.session() {
            if viewer.frames.load(std::sync::atomic::Ordering::Relaxed) >= frames {
                return n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint decoded fewer than {frames} frames in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_publishes_retries_republishes_and_ends_its_session() {
    let endpoint = Endpoint::start(vec![
        Reply::Refuse(503, "busy: no media node free"),
        Reply::Unusable,
        Reply::Redirect,
    ])
    .await;
    let server = start_device(&endpoint).await;

    // 1. Refused with 503, then an answer the camera cannot use (ended with DELETE), then
    // redirected and served: the device waits 1 s, then 2 s, between the attempts.
    let n = decoded(&endpoint, 60, Duration::from_secs(30)).await;
    let seen = endpoint.seen();
    let posts: Vec<_> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 4, "{seen:#?}");
    assert_eq!(posts[3].path, "/whip/other");
    assert!(posts[3].at - posts[2].at < Duration::from_millis(500));
    for post in &posts {
        assert_eq!(
            post.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(post.content_type.as_deref(), Some("application/sdp"));
        assert!(post.body.starts_with("v=0") && post.body.contains("a=candidate:"));
        assert!(post.body.contains("H264/90000"), "{}", post.body);
    }
    let first_wait = posts[1].at - posts[0].at;
    let second_wait = posts[2].at - posts[1].at;
    assert!(
        first_wait >= Duration::from_millis(900) && first_wait < Duration::from_secs(3),
        "{first_wait:?}"
    );
    assert!(
        second_wait >= Duration::from_millis(1900),
        "{second_wait:?}"
    );
    // The unusable answer's session was ended at the endpoint (its relative Location read
    // against the endpoint's URL).
    let deletes: Vec<_> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{seen:#?}");
    assert_eq!(deletes[0].path, "/whip/session/1");
    assert!(deletes[0].at > posts[1].at && deletes[0].at < posts[2].at);
    assert_eq!(
        deletes[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(n, 2);

    let stats = publish_stats(&server).await;
    assert_eq!(stats["state"], "live", "{stats}");
    assert_eq!(stats["attempts"], 3, "{stats}");
    assert_eq!(stats["url"], endpoint.url(), "{stats}");
    let last = stats["last_error"].as_str().unwrap_or_default();
    assert!(
        last.contains("declined") || last.contains("video"),
        "{stats}"
    );
    assert!(!stats.to_string().contains(TOKEN), "{stats}");

    // 2. The publisher does not count against the viewer limit of one: a viewer watches.
    let mut viewer = Session::join(&server.ws_url(), "camera").await;
    let got = viewer.play(30, Duration::from_secs(15)).await;
    assert!(got >= 30, "a viewer beside the publisher got {got} frames");
    viewer.leave().await;

    // 3. The endpoint's peer falls silent (a media server that died): the device gives up
    // after its silence watch, ends the session, and publishes again by itself.
    let (_, session) = endpoint.session().expect("a live session");
    let silent_at = Instant::now();
    session.stop();
    let seen = endpoint
        .wait(
            Duration::from_secs(30),
            "a new POST after the silence",
            |seen| seen.iter().filter(|s| s.method == "POST").count() == 5,
        )
        .await;
    let post = seen.iter().rfind(|s| s.method == "POST").unwrap();
    let republished = post.at - silent_at;
    assert!(
        seen.iter()
            .any(|s| s.method == "DELETE" && s.path == "/whip/session/2" && s.at <= post.at),
        "the silent session was not ended: {seen:#?}"
    );
    let n = decoded(&endpoint, 30, Duration::from_secs(15)).await;
    assert_eq!(n, 3);
    let back = silent_at.elapsed();
    eprintln!(
        "republished {republished:?} after the session fell silent; video again after {back:?}"
    );
    assert!(
        republished >= Duration::from_secs(10) && republished < Duration::from_secs(25),
        "{republished:?}"
    );
    let stats = publish_stats(&server).await;
    assert_eq!(
        (stats["state"].as_str(), stats["attempts"].as_u64()),
        (Some("live"), Some(4))
    );
    assert!(
        stats["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("heard nothing")),
        "{stats}"
    );

    // 4. Stopping the device ends the session at the endpoint, within its 2 s bound.
    let stopping = Instant::now();
    server.stop().await.expect("the server stops");
    let seen = endpoint
        .wait(Duration::from_secs(3), "the DELETE on stop", |seen| {
            seen.iter()
                .any(|s| s.method == "DELETE" && s.path == "/whip/session/3")
        })
        .await;
    let delete = seen.iter().rfind(|s| s.method == "DELETE").unwrap();
    eprintln!("DELETE {:?} after the stop began", delete.at - stopping);
    assert!(delete.at - stopping < Duration::from_secs(2));
}

/// A media server whose media never connects (its ports closed), while nobody else watches:
/// the camera keeps encoding, gives up on the session after its negotiation time-out, ends it
/// with `DELETE`, and publishes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_connects_is_given_up_and_the_camera_keeps_running() {
    let endpoint = Endpoint::start(vec![Reply::Unreachable]).await;
    let server = start_device_with(&endpoint, |c| c.camera.negotiation_timeout_secs = 5).await;
    let seen = endpoint
        .wait(Duration::from_secs(15), "the first POST", |seen| {
            seen.iter().any(|s| s.method == "POST")
        })
        .await;
    let posted = seen[0].at;
    // The only peer cannot connect: the capture runs all the same.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames = support::device::camera_stats(&server.device).frames;
    assert!(
        frames >= 45,
        "{frames} frames in the 3 s after the offer went out"
    );
    let seen = endpoint
        .wait(Duration::from_secs(20), "the second POST", |seen| {
            seen.iter().filter(|s| s.method == "POST").count() == 2
        })
        .await;
    let delete = seen
        .iter()
        .find(|s| s.method == "DELETE")
        .expect("the session that never connected was ended");
    assert_eq!(delete.path, "/whip/session/1");
    let given_up = delete.at - posted;
    assert!(
        given_up >= Duration::from_secs(4) && given_up < Duration::from_secs(9),
        "{given_up:?}"
    );
    decoded(&endpoint, 30, Duration::from_secs(15)).await;
    let stats = publish_stats(&server).await;
    assert!(
        stats["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not come up")),
        "{stats}"
    );
    server.stop().await.expect("the server stops");
}

/// The media worker serving the publisher dies: the device ends that session at the endpoint
/// and publishes again through the next worker, by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_comes_back_through_the_next_worker_when_its_worker_dies() {
    let endpoint = Endpoint::start(vec![]).await;
    let server = start_device(&endpoint).await;
    decoded(&endpoint, 30, Duration::from_secs(20)).await;
    let stats = server.device.camera.as_ref().unwrap().stats().clone();
    let worker = stats
        .worker_pids()
        .0
        .expect("an active worker while publishing");
    let killed = Instant::now();
    // SAFETY: kill takes plain integers; the pid is the device's own child.
    assert_eq!(
        unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) },
        0
    );
    let seen = endpoint
        .wait(
            Duration::from_secs(20),
            "a POST after the worker died",
            |seen| seen.iter().filter(|s| s.method == "POST").count() == 2,
        )
        .await;
    let post = seen.iter().rfind(|s| s.method == "POST").unwrap();
    eprintln!(
        "posted again {:?} after the worker was killed",
        post.at - killed
    );
    assert!(
        seen.iter()
            .any(|s| s.method == "DELETE" && s.path == "/whip/session/1"),
        "the dead worker's session was not ended: {seen:#?}"
    );
    let n = decoded(&endpoint, 30, Duration::from_secs(20)).await;
    assert_eq!(n, 2);
    assert_ne!(stats.worker_pids().0, Some(worker));
    let publish = publish_stats(&server).await;
    assert_eq!(publish["state"], "live", "{publish}");
    assert!(
        publish["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("media worker ended")),
        "{publish}"
    );
    server.stop().await.expect("the server stops");
}
