//! `GET /snapshot.jpg` against the device with its real media workers: the JPEGs are decoded
//! with GStreamer's `jpegdec`, and their frame header read, to check what a client gets.
//!
//! ```text
//!   device: videotestsrc ! x264enc ─▶ tee name=raw ─▶ … ─▶ viewers (webrtcbin)
//!                                                └─▶ queue ! videoconvert ! videoscale ! jpegenc ! appsink
//!   test:   GET /snapshot.jpg ─▶ JPEG ─▶ jpegdec
//! ```
//!
//! The device runs in the test process; its media workers are the built `peercam-media`
//! program.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use peercam::config::Config;
use support::device::{camera_stats, wait_for, Server};
use support::gst_viewer::Session;
use support::http::{self, Response};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

/// The capture: a moving ball on black, so that two pictures taken at different times differ.
fn test_launch() -> String {
    launch_of("ball")
}

/// The capture with videotestsrc's `pattern`.
fn launch_of(pattern: &str) -> String {
    support::device::test_launch(pattern, WIDTH, HEIGHT)
}

/// A device whose camera runs the test capture, its configuration tweaked by `tweak`.
async fn start_device(tweak: impl FnOnce(&mut Config)) -> Server {
    start_device_with(test_launch(), tweak).await
}

/// A device whose camera runs `launch`, its configuration tweaked by `tweak`.
async fn start_device_with(launch: String, tweak: impl FnOnce(&mut Config)) -> Server {
    support::device::serve_camera(launch, tweak).await
}

/// `GET /snapshot.jpg` with the device's token.
async fn snapshot(server: &Server) -> Response {
    let bearer = format!("Bearer {}", server.token().expect("a token"));
    http::request(server.addr, "/snapshot.jpg", &[("Authorization", &bearer)]).await
}

/// The response is a JPEG, as a client must get it: its bytes, checked.
fn jpeg_of(response: &Response) -> &[u8] {
    assert_eq!(
        response.status, 200,
        "/snapshot.jpg answered {}: {}",
        response.status, response.body
    );
    assert_eq!(response.headers("content-type"), ["image/jpeg"]);
    assert_eq!(response.headers("cache-control"), ["no-store"]);
    let jpeg = &response.bytes;
    assert!(
        jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]),
        "not a whole JPEG ({} bytes)",
        jpeg.len()
    );
    jpeg
}

/// The width and height a JPEG's frame header (SOF0..SOF15) states.
fn frame_header_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 9 <= jpeg.len() {
        if jpeg[at] != 0xff {
            return None;
        }
        let marker = jpeg[at + 1];
        if marker == 0xff {
            at += 1;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        // SOFn, but not DHT (C4), JPG (C8) or DAC (CC), which share the range.
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let height = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
            let width = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
            return Some((u32::from(width), u32::from(height)));
        }
        at += 2 + length;
    }
    None
}

/// A decoded picture: width, height, and its pixels as RGB rows.
struct Decoded {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Decoded {
    /// The pixel at column `x`, row `y`.
    fn at(&self, x: u32, y: u32) -> [u8; 3] {
        // GStreamer pads RGB rows to a multiple of 4 bytes.
        let stride = (self.width as usize * 3).div_ceil(4) * 4;
        let i = y as usize * stride + x as usize * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Decodes a JPEG with GStreamer's `jpegdec`.
fn decode(jpeg: &[u8]) -> Decoded {
    gst::init().unwrap();
    let path = std::env::temp_dir().join(format!(
        "peercam-snapshot-{}-{}.jpg",
        std::process::id(),
        jpeg.len()
    ));
    std::fs::write(&path, jpeg).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB \
         ! appsink name=out sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(5));
    let _ = pipeline.set_state(gst::State::Null);
    let _ = std::fs::remove_file(&path);
    let sample = sample.expect("jpegdec decoded no picture");
    let caps = sample.caps().expect("decoded caps");
    let s = caps.structure(0).unwrap();
    let rgb = sample
        .buffer()
        .expect("a decoded buffer")
        .map_readable()
        .unwrap()
        .as_slice()
        .to_vec();
    Decoded {
        width: s.get::<i32>("width").unwrap() as u32,
        height: s.get::<i32>("height").unwrap() as u32,
        rgb,
    }
}

/// A valid JPEG of `width` x `height`, by its frame header and by decoding it.
fn assert_picture(jpeg: &[u8], size: (u32, u32)) {
    assert_eq!(frame_header_size(jpeg), Some(size), "frame header");
    let decoded = decode(jpeg);
    assert_eq!((decoded.width, decoded.height), size, "decoded");
}

/// The camera part of `/api/stats`, as JSON.
async fn camera_json(server: &Server) -> serde_json::Value {
    let (status, body) = server.get("/api/stats").await;
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["camera"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_nobody_watches_opens_the_camera_briefly_for_a_picture() {
    let running = start_device(|_| {}).await;
    let device = &running.device;
    let (active, spare) = device.camera.as_ref().unwrap().stats().worker_pids();
    assert_eq!(active, None, "nobody watches");
    assert!(spare.is_some(), "a warm spare");

    let t = Instant::now();
    let response = snapshot(&running).await;
    eprintln!("picture from an idle device in {:?}", t.elapsed());
    assert_picture(jpeg_of(&response), (WIDTH, HEIGHT));

    // The spare took it, and stopped capturing once it had.
    let (active, _) = device.camera.as_ref().unwrap().stats().worker_pids();
    assert_eq!(active, spare, "the warm spare took the picture");
    wait_for(device, "the capture stopped", |s| !s.capturing).await;
    assert_eq!(camera_stats(device).h264_encoders, 0);
    // Idle, it retires once the next spare is warm, as after a viewer.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (active, spare_now) = device.camera.as_ref().unwrap().stats().worker_pids();
        if active.is_none() && spare_now.is_some() && spare_now != spare {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker that took the picture did not retire: active {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the next picture comes from the new spare.
    assert_picture(jpeg_of(&snapshot(&running).await), (WIDTH, HEIGHT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_size_is_the_pictures_with_borders_for_another_shape() {
    // 16:9 from a white 4:3 stream: 120x90 of white between black borders 20 wide.
    let running = start_device_with(launch_of("white"), |c| {
        c.snapshot.width = Some(160);
        c.snapshot.height = Some(90);
        c.snapshot.quality = 90;
    })
    .await;
    let response = snapshot(&running).await;
    let jpeg = jpeg_of(&response);
    assert_picture(jpeg, (160, 90));
    let picture = decode(jpeg);
    let dark = |p: [u8; 3]| p.iter().all(|&c| c < 40);
    let light = |p: [u8; 3]| p.iter().all(|&c| c > 215);
    for y in [5, 45, 85] {
        for x in [2, 15, 145, 157] {
            assert!(
                dark(picture.at(x, y)),
                "border at {x},{y}: {:?}",
                picture.at(x, y)
            );
        }
        for x in [25, 80, 135] {
            assert!(
                light(picture.at(x, y)),
                "picture at {x},{y}: {:?}",
                picture.at(x, y)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_device_takes_the_picture_off_its_running_capture() {
    let running = start_device(|_| {}).await;
    let device = &running.device;
    let mut viewer = Session::join(&running.ws_url(), "camera").await;
    let got = viewer.play(30, Duration::from_secs(20)).await;
    assert!(
        got >= 30,
        "decoded {got} frames; signals {:?}",
        viewer.signals()
    );
    let (active, _) = device.camera.as_ref().unwrap().stats().worker_pids();
    assert!(active.is_some());
    assert_eq!(camera_json(&running).await["h264_encoders"], 1);

    for _ in 0..3 {
        // The viewer keeps decoding while the picture is taken.
        let before = viewer.frames();
        let (response, played) =
            tokio::join!(snapshot(&running), viewer.play(20, Duration::from_secs(10)));
        assert_picture(jpeg_of(&response), (WIDTH, HEIGHT));
        assert!(played >= 20, "the viewer decoded {played} frames meanwhile");
        assert!(viewer.frames() > before);
        // One capture, one H.264 encode, the same worker.
        let camera = camera_json(&running).await;
        assert_eq!(camera["h264_encoders"], 1, "{camera}");
        assert_eq!(camera["peers"], 1, "{camera}");
        assert_eq!(camera["capturing"], true, "{camera}");
        // (The next spare starts a few seconds after the viewer, picture or not.)
        assert_eq!(
            device.camera.as_ref().unwrap().stats().worker_pids().0,
            active,
            "the worker serving the viewer took it"
        );
    }
    assert!(viewer.play(15, Duration::from_secs(10)).await >= 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_once_share_one_picture() {
    let running = std::sync::Arc::new(start_device(|_| {}).await);
    let requests = (0..5).map(|_| {
        let running = running.clone();
        tokio::spawn(async move { snapshot(&running).await })
    });
    let responses: Vec<Response> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for response in &responses {
        assert_picture(jpeg_of(response), (WIDTH, HEIGHT));
    }
    // The ball moves: pictures taken apart would differ.
    for response in &responses[1..] {
        assert!(
            response.bytes == responses[0].bytes,
            "requests at once got different pictures"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picture_needs_the_access_token() {
    let running = start_device(|_| {}).await;
    let token = running.token().expect("a token");
    let (status, body) = http::get(running.addr, "/snapshot.jpg").await;
    assert_eq!(status, 401, "{body}");
    let wrong = http::request(
        running.addr,
        "/snapshot.jpg",
        &[("Authorization", "Bearer not-the-token")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_picture(jpeg_of(&snapshot(&running).await), (WIDTH, HEIGHT));
    // As Home Assistant's still_image_url carries it.
    let url = format!("/snapshot.jpg?token={token}");
    let by_query = http::request(running.addr, &url, &[]).await;
    assert_picture(jpeg_of(&by_query), (WIDTH, HEIGHT));
}

#[tokio::test]
async fn a_device_without_a_camera_says_so() {
    let config = Config::default();
    let running = Server::start(&config).await;
    let bearer = format!("Bearer {}", running.token().unwrap());
    let response =
        http::request(running.addr, "/snapshot.jpg", &[("Authorization", &bearer)]).await;
    assert_eq!(response.status, 503);
    assert!(!response.headers("retry-after").is_empty());
    assert!(
        response.body.contains("without a camera"),
        "{}",
        response.body
    );
}
