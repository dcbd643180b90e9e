//! The device's camera peer against a receiving GStreamer `webrtcbin` that speaks the
//! protocol over a real WebSocket, decodes the video and counts frames.
//!
//! ```text
//!   device: videotestsrc ! x264enc ! tee ! … ! webrtcbin ──ICE/DTLS/SRTP on 127.0.0.1──▶
//!   viewer: webrtcbin ! rtph264depay ! decodebin ! videoconvert ! appsink
//! ```
//!
//! The device runs in the test process; its media workers are the built `peercam-media` program.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use peercam::camera::{self, CameraSettings};
use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use peercam_wire::IceSettings;
use support::device::{camera_stats, media_program, serve_camera, test_launch, wait_for, Server};
use support::gst_viewer::Session;
use support::ws::Next;

const WIDTH: i32 = 320;
const HEIGHT: i32 = 240;

async fn start_device(max_viewers: usize) -> Server {
    let launch = test_launch("ball", WIDTH as u32, HEIGHT as u32);
    serve_camera(launch, |c| c.camera.max_viewers = max_viewers).await
}

/// A device whose camera believes, before any stream ran, that the stream has
/// `stream_profile`.
async fn start_device_knowing(stream_profile: &str) -> Server {
    let _ = env_logger::builder().is_test(true).try_init();
    let config = Config::default();
    let mut device = Device::new(&config);
    let settings = CameraSettings {
        conversation: "camera".into(),
        max_viewers: 4,
        capture: Capture::Launch(test_launch("ball", WIDTH as u32, HEIGHT as u32)),
        ice: IceSettings {
            addresses: vec!["127.0.0.1".parse().unwrap()],
            stun: None,
        },
        negotiation_timeout: Duration::from_secs(20),
        log_level: "info".into(),
        program: media_program(),
        stream_profile: Some(stream_profile.into()),
        publish: None,
        audio: Default::default(),
        talkback: Default::default(),
    };
    device.camera = Some(camera::start(device.hub.clone(), settings).expect("camera starts"));
    Server::serve(device).await
}

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_the_cameras_video() {
    let running = start_device(4).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
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
        viewers.push(Session::join(&running.ws_url(), "camera").await);
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
    let mut back = Session::join(&running.ws_url(), "camera").await;
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
    let mut ws = running.connect("vanishing viewer").await;
    ws.send("join", "", "camera", &[]).await;
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no offer came");
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Next::Msg(m)) = tokio::time::timeout(left, ws.next()).await {
            if m.signal == "answerRequest" {
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
    let mut first = Session::join(&running.ws_url(), "camera").await;
    assert!(first.play(15, LIMIT).await >= 15);
    let mut second = Session::join(&running.ws_url(), "camera").await;
    second
        .pump(Duration::from_secs(5), |s| s.signals().contains(&"error"))
        .await;
    let err = second
        .received
        .iter()
        .find(|m| m.signal == "error")
        .expect("an error for the viewer over the limit");
    assert_eq!(err.content, "VIEWER_LIMIT");
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
    let mut member = Session::open(&running.ws_url(), "create", "kitchen").await;
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

/// Whether process `pid` is still running (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn worker_pids(device: &Device) -> (Option<u32>, Option<u32>) {
    device.camera.as_ref().unwrap().stats().worker_pids()
}

async fn wait_for_workers(
    device: &Device,
    what: &str,
    f: impl Fn((Option<u32>, Option<u32>)) -> bool,
) -> (Option<u32>, Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = worker_pids(device);
        if f(pids) {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_worker_exits_with_its_last_viewer_and_a_fresh_one_waits() {
    let running = start_device(4).await;
    let (active, spare) = worker_pids(&running.device);
    let first = spare.expect("a spare worker waits from the start");
    assert_eq!(active, None, "nobody watches yet");

    let mut a = Session::join(&running.ws_url(), "camera").await;
    assert!(a.play(15, LIMIT).await >= 15, "no video");
    assert_eq!(
        worker_pids(&running.device).0,
        Some(first),
        "the spare serves the first viewer"
    );
    // The next spare starts a little after the join, not during it.
    let (_, spare) = wait_for_workers(&running.device, "the next spare", |(_, spare)| {
        spare.is_some_and(|p| p != first)
    })
    .await;

    a.leave().await;
    wait_for_workers(&running.device, "the worker retired", |(active, s)| {
        active.is_none() && s == spare
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(first) {
        assert!(
            Instant::now() < deadline,
            "worker {first} still runs after its last viewer left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alive(spare.unwrap()));

    // The fresh spare serves the next viewer.
    let mut b = Session::join(&running.ws_url(), "camera").await;
    assert!(
        b.play(15, LIMIT).await >= 15,
        "no video from the new worker"
    );
    assert_eq!(worker_pids(&running.device).0, spare);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_worker_takes_glibs_small_objects_from_malloc() {
    let running = start_device(4).await;
    let spare = worker_pids(&running.device).1.expect("a spare worker");
    let environ =
        std::fs::read(format!("/proc/{spare}/environ")).expect("the worker's environment");
    let slice: Vec<&[u8]> = environ
        .split(|&b| b == 0)
        .filter(|v| v.starts_with(b"G_SLICE="))
        .collect();
    let expected = match std::env::var("G_SLICE") {
        // One the user chose (to debug GLib, say) is theirs.
        Ok(theirs) => format!("G_SLICE={theirs}"),
        Err(_) => "G_SLICE=always-malloc".to_owned(),
    };
    assert_eq!(slice, [expected.as_bytes()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_media_worker_costs_viewers_a_rejoin_not_the_device() {
    let running = start_device(4).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    assert!(a.play(15, LIMIT).await >= 15, "no video");
    let crashed = worker_pids(&running.device).0.expect("an active worker");

    // SAFETY: kill only sends a signal, to a process this test's device spawned.
    assert_eq!(unsafe { libc::kill(crashed as i32, libc::SIGKILL) }, 0);

    // The viewer is told the broadcast ended, so a page rejoins.
    a.pump(LIMIT, |s| s.signals().contains(&"end")).await;
    assert!(
        a.signals().contains(&"end"),
        "no end after the worker died: {:?}",
        a.signals()
    );
    wait_for(&running.device, "counts cleared", |s| {
        s.peers == 0 && !s.capturing
    })
    .await;
    wait_for_workers(&running.device, "a new spare", |(_, spare)| {
        spare.is_some_and(|p| p != crashed)
    })
    .await;

    // Signaling carried on, and a viewer joining again gets video from a new worker.
    let mut b = Session::join(&running.ws_url(), "camera").await;
    assert!(b.play(30, LIMIT).await >= 30, "no video after the crash");
    let s = camera_stats(&running.device);
    assert_eq!((s.peers, s.connected), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_coming_one_after_another_are_all_served_while_workers_change() {
    // Each viewer arrives just after the previous one left, over several seconds: across
    // the moment the next spare is ready and the idle worker is let go.
    let running = start_device(4).await;
    let started = Instant::now();
    let mut served = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        let mut v = Session::join(&running.ws_url(), "camera").await;
        let got = v.play(5, LIMIT).await;
        assert!(
            got >= 5,
            "viewer {} got no video; signals {:?}",
            served.len(),
            v.signals()
        );
        served.push(worker_pids(&running.device).0);
        v.leave().await;
    }
    assert!(served.len() >= 4, "only {} viewers in 6 s", served.len());
}

/// The `profile-level-id` an offer states for H.264.
fn stated_profile(offer: &str) -> Option<String> {
    offer
        .split(['\r', '\n', ';', ' '])
        .find_map(|p| p.strip_prefix("profile-level-id="))
        .map(str::to_owned)
}

fn offer_of(session: &Session) -> String {
    session
        .received
        .iter()
        .find(|m| m.signal == "answerRequest")
        .map(|m| m.content.clone())
        .expect("an offer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_state_the_streams_profile_as_last_seen_without_waiting_for_the_capture() {
    // A profile the test stream (constrained baseline) does not have: an offer stating it
    // can only have been made before the stream's own caps were known.
    let running = start_device_knowing("640028").await;
    let first = worker_pids(&running.device).1;

    let mut a = Session::join(&running.ws_url(), "camera").await;
    assert!(a.play(30, LIMIT).await >= 30, "{:?}", a.signals());
    let a_offer = offer_of(&a);
    assert_eq!(stated_profile(&a_offer).as_deref(), Some("640028"));
    // A stated profile the stream turns out not to have costs nothing: the viewer decodes
    // the real one, and the capture runs on.
    assert_eq!(*a.viewer.size.lock().unwrap(), Some((WIDTH, HEIGHT)));
    assert!(camera_stats(&running.device).capturing);

    // The viewer leaves; its worker exits, and a fresh one serves the next viewer with the
    // profile the last stream had.
    let (_, spare) = wait_for_workers(&running.device, "the next spare", |(_, s)| {
        s.is_some() && s != first
    })
    .await;
    a.leave().await;
    wait_for_workers(&running.device, "the worker retired", |(active, s)| {
        active.is_none() && s == spare
    })
    .await;
    let mut b = Session::join(&running.ws_url(), "camera").await;
    assert!(b.play(30, LIMIT).await >= 30, "{:?}", b.signals());
    assert_eq!(
        worker_pids(&running.device).0,
        spare,
        "a fresh worker serves"
    );
    let offer = offer_of(&b);
    let seen = stated_profile(&offer).expect("a profile");
    assert!(
        seen.starts_with("42"),
        "constrained baseline, not {seen}: {offer}"
    );
    // An offer made from the stream's own caps carries its parameter sets; this one was made
    // before they reached the viewer's branch.
    assert!(!offer.contains("sprop-parameter-sets"), "{offer}");
}

/// Kills the idle device's spare worker: the next one starts only after a back-off, and
/// until then no worker can serve anyone. Returns the killed worker's pid.
async fn kill_the_spare(device: &Device) -> u32 {
    let spare = worker_pids(device).1.expect("a spare");
    unsafe { libc::kill(spare as i32, libc::SIGKILL) };
    wait_for_workers(device, "the spare gone", |(a, s)| {
        a.is_none() && s.is_none()
    })
    .await;
    spare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_who_comes_while_no_worker_can_start_is_served_by_the_next() {
    let running = start_device(4).await;
    let spare = kill_the_spare(&running.device).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    assert!(a.play(15, LIMIT).await >= 15, "{:?}", a.signals());
    let (active, _) = worker_pids(&running.device);
    assert!(active.is_some_and(|p| p != spare), "{active:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_who_leaves_before_a_worker_can_start_leaves_nothing_waiting() {
    let running = start_device(4).await;
    kill_the_spare(&running.device).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    a.pump(Duration::from_millis(100), |s| {
        s.signals().contains(&"joined")
    })
    .await;
    a.leave().await;
    wait_for_workers(&running.device, "the next spare", |(_, s)| s.is_some()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        worker_pids(&running.device).0,
        None,
        "a worker serves nobody"
    );
    let s = camera_stats(&running.device);
    assert_eq!((s.peers, s.branches), (0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_goes_silent_is_let_go_and_told_why_while_another_watches() {
    let running = start_device(4).await;
    let mut watcher = Session::join(&running.ws_url(), "camera").await;
    assert!(
        watcher.play(30, LIMIT).await >= 30,
        "{:?}",
        watcher.signals()
    );
    let mut gone = Session::join(&running.ws_url(), "camera").await;
    assert!(gone.play(10, LIMIT).await >= 10, "{:?}", gone.signals());
    wait_for(&running.device, "both connected", |s| s.connected == 2).await;

    // Its page dies without a word: nothing more comes from it (no RTCP), while its signaling
    // connection stays open.
    gone.viewer.stop();
    let since = Instant::now();
    gone.pump(Duration::from_secs(30), |s| s.signals().contains(&"error"))
        .await;
    let took = since.elapsed();
    let error = gone
        .received
        .iter()
        .find(|m| m.signal == "error")
        .unwrap_or_else(|| panic!("never let go: {:?}", gone.signals()));
    assert_eq!(error.content, "NEGOTIATION_FAILED", "{error:?}");
    assert!(
        error.custom["message"].contains("heard nothing from you"),
        "{error:?}"
    );
    eprintln!("let go after {took:?}: {:?}", error.custom["message"]);
    // Not before its silence reached the limit (15 s since its last report, which a GStreamer
    // receiver sends every 2.5-7.5 s), and soon after.
    assert!(
        took >= Duration::from_secs(7) && took <= Duration::from_secs(20),
        "let go after {took:?}"
    );
    wait_for(&running.device, "only the watcher left", |s| {
        (s.peers, s.branches) == (1, 1)
    })
    .await;

    // The watcher, a GStreamer receiver reporting only every few seconds, was not taken
    // for silent, and still plays.
    assert!(
        !watcher.signals().contains(&"error"),
        "{:?}",
        watcher.signals()
    );
    assert!(
        watcher.play(30, LIMIT).await >= 30,
        "{:?}",
        watcher.signals()
    );
}
