//! aiortc (PyPI's Python WebRTC stack, whose DTLS offers only ECDHE-ECDSA cipher suites) as
//! a viewer of the camera across a real link: two network namespaces joined by a veth pair.
//!
//! ```text
//!   "camera" namespace (10.213.9.1)                     "laptop" namespace (10.213.9.2)
//!     this test's threads: the device (in process,        tests/aiortc/viewer.py
//!     media worker = peercam-media) and a GStreamer  ◀──▶ (ip netns exec, the venv's python)
//!     viewer watching over the namespace's loopback
//! ```
//!
//! 1. aiortc joins the camera's broadcast, answers its offer and decodes frames: the camera's
//!    DTLS certificate is one aiortc can use (ECDSA P-256), and the offer's fingerprint is
//!    that certificate's.
//! 2. While the GStreamer viewer watches, an aiortc client that changes the fingerprint of the
//!    camera's offer before applying it (so its own check of the camera's certificate fails,
//!    and it gives up on the connection) costs only itself: the watcher keeps decoding
//!    without a stall, the media worker is not restarted, and the failing peer is released.
//!
//! It needs root (namespaces) and the aiortc virtualenv that `scripts/setup.sh --test` makes,
//! so it is ignored in a plain `cargo test`; `scripts/test.sh` runs it with `--ignored` as
//! root. Run without what it needs, it fails saying what is missing.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use serde_json::Value;
use support::device::{media_program, with_token, Server};
use support::gst_viewer::Session;
use support::watch::Watch;

const CAMERA_ADDR: &str = "10.213.9.1";
const LAPTOP_ADDR: &str = "10.213.9.2";

fn test_launch() -> String {
    "videotestsrc is-live=true pattern=smpte horizontal-speed=6 \
     ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert \
     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=800 \
     ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
        .into()
}

/// The virtualenv's python and the viewer script, as `scripts/setup.sh --test` installs them.
fn aiortc() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/aiortc");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --test (it installs aiortc there)",
        python.display()
    );
    (python, dir.join("viewer.py"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace, deleted (with its interfaces) on drop.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Result<Netns, String> {
        // A namespace left by a killed run with the same pid would make `add` fail.
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        Ok(Netns(name))
    }

    /// `ip -n NAME args…`.
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["-n", &self.0];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Moves the calling thread into the namespace: sockets it (and the threads and
    /// processes it starts from now on) opens are the namespace's.
    fn enter(&self) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0))
            .unwrap_or_else(|e| panic!("opening namespace {}: {e}", self.0));
        // SAFETY: setns with a namespace file descriptor we hold open and CLONE_NEWNET only
        // changes this thread's network namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.0]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The camera's and the laptop's namespaces and the veth pair between them, up.
struct Lab {
    camera: Netns,
    laptop: Netns,
}

impl Lab {
    fn new() -> Lab {
        Lab::try_new()
            .unwrap_or_else(|reason| panic!("{reason} (this test needs root and `ip netns`)"))
    }

    fn try_new() -> Result<Lab, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        let pid = std::process::id();
        let camera = Netns::create(format!("pc-rtccam-{pid}"))?;
        let laptop = Netns::create(format!("pc-rtclap-{pid}"))?;
        // Made inside the camera namespace with its peer moved straight into the laptop's, so
        // no interface ever appears in the host's namespace.
        camera.ip(&[
            "link", "add", "vcam", "type", "veth", "peer", "name", "vlap", "netns", &laptop.0,
        ])?;
        camera.ip(&["addr", "add", &format!("{CAMERA_ADDR}/24"), "dev", "vcam"])?;
        laptop.ip(&["addr", "add", &format!("{LAPTOP_ADDR}/24"), "dev", "vlap"])?;
        for (ns, dev) in [(&camera, "vcam"), (&laptop, "vlap")] {
            ns.ip(&["link", "set", "lo", "up"])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok(Lab { camera, laptop })
    }
}

/// Runs `viewer.py url args…` in the laptop namespace; returns its exit code and the JSON
/// line it printed.
async fn run_viewer(lab: &Lab, url: &str, args: &[&str], limit: Duration) -> (i32, Value) {
    let (python, script) = aiortc();
    let mut command = tokio::process::Command::new("ip");
    command
        .args(["netns", "exec", &lab.laptop.0])
        .arg(&python)
        .arg(&script)
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("starting viewer.py");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("viewer.py {args:?} did not finish within {limit:?}"))
        .expect("viewer.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or_default();
    let result = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("viewer.py printed no JSON line ({e}):\n{stdout}\n--- stderr:\n{stderr}")
    });
    (out.status.code().unwrap_or(-1), result)
}

/// Serves `device` on every address of the camera namespace (its loopback for the watcher,
/// the veth for aiortc); returns the server and the port.
async fn serve_everywhere(device: Device) -> (Server, u16) {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind 0.0.0.0:0");
    let port = listener.local_addr().expect("listener address").port();
    let server = Server::serve_with(device, move |device, _loopback, shutdown| async move {
        device.serve(listener, shutdown).await
    })
    .await;
    (server, port)
}

#[test]
#[ignore = "needs root: network namespaces"]
fn aiortc_views_the_camera_and_one_rejecting_its_certificate_costs_only_itself() {
    let _ = env_logger::builder().is_test(true).try_init();
    aiortc();
    let lab = Lab::new();
    // This thread, and the runtime's threads, the camera's worker and GStreamer's threads it
    // starts, live in the camera namespace; nothing else in this test binary runs.
    lab.camera.enter();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(scenario(&lab));
}

async fn scenario(lab: &Lab) {
    let mut config = Config::default();
    config.camera.ice_addresses = vec![CAMERA_ADDR.parse().unwrap(), "127.0.0.1".parse().unwrap()];
    config.camera.negotiation_timeout_secs = 5;
    let mut device = Device::new(&config);
    device
        .start_camera(&config, Capture::Launch(test_launch()), &media_program())
        .expect("camera starts");
    let (server, port) = serve_everywhere(device).await;
    let url = with_token(
        &format!("ws://{CAMERA_ADDR}:{port}/signaling"),
        server.token().as_deref(),
    );
    let stats = server.device.camera.as_ref().unwrap().stats().clone();

    // 1. aiortc watches across the link.
    let (code, seen) = run_viewer(lab, &url, &["--frames", "60"], Duration::from_secs(60)).await;
    eprintln!("aiortc viewer: {seen}");
    assert_eq!(code, 0, "aiortc did not decode 60 frames: {seen}");
    let frames = seen["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "aiortc decoded {frames} frames: {seen}");
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(320), Some(240)),
        "{seen}"
    );

    // 2. A client that rejects the camera's certificate, while a viewer watches.
    let loopback = with_token(
        &format!("ws://127.0.0.1:{port}/signaling"),
        server.token().as_deref(),
    );
    let mut watcher = Session::join(&loopback, "camera").await;
    let got = watcher.play(30, Duration::from_secs(20)).await;
    assert!(got >= 30, "the watcher decoded {got} frames");
    let (worker, _) = stats.worker_pids();
    assert!(worker.is_some());
    let watch = Watch::start(watcher);

    // It stays in the conversation past the negotiation time-out, listening.
    let (code, seen) = run_viewer(
        lab,
        &url,
        &["--mangle-fingerprint", "--wait", "8"],
        Duration::from_secs(30),
    )
    .await;
    eprintln!("aiortc with a mangled fingerprint: {seen}");
    assert_eq!(code, 0, "its DTLS did not fail as it must: {seen}");
    let states: Vec<&str> = seen["states"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        states.contains(&"failed") && !states.contains(&"connected"),
        "{seen}"
    );

    // The failing peer is released (by the time it left, at the latest): only the watcher's
    // is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats.snapshot();
        if s.peers == 1 && s.branches == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Read while the watcher is still served: once it leaves, its worker retires.
    assert_eq!(
        stats.worker_pids().0,
        worker,
        "the media worker was restarted"
    );
    let (frames, over, stall) = watch.finish().await;
    let fps = frames as f64 / over.as_secs_f64();
    eprintln!("watcher: {frames} frames in {over:?} ({fps:.1} fps), longest stall {stall:?}");
    assert!(fps >= 25.0, "the watcher fell to {fps:.1} fps");
    assert!(
        stall < Duration::from_secs(1),
        "the watcher's picture stood still for {stall:?}"
    );
    drop(server);
}

/// The tone aiortc talks with, Hz.
const TALK_TONE_HZ: f64 = 700.0;

/// Loss on the link, each way, percent.
const TALK_LOSS_PERCENT: u32 = 5;

/// aiortc, a client that sends sound by API and not from a page, takes the floor across a lossy
/// LAN: the camera says `on`, its speaker plays aiortc's tone, and aiortc keeps decoding the
/// camera's video while it talks.
#[test]
#[ignore = "needs root: network namespaces"]
fn aiortc_talks_through_the_camera_across_a_lossy_lan() {
    let (python, script) = aiortc();
    let lan = support::lan::LossyLan::new("10.213.19.1", "10.213.19.2", TALK_LOSS_PERCENT);
    let scratch = support::scratch::Scratch::new("aiortc-talk");
    let raw = support::lan::speaker_file(&scratch);
    let serve = lan.serve_with(&scratch, 1500, support::lan::TALKBACK);
    let url = with_token(
        &format!("ws://{}/signaling", lan.listen()),
        serve.token().as_deref(),
    );
    lan.lose_towards_camera(TALK_LOSS_PERCENT);
    let tone = TALK_TONE_HZ.to_string();
    let args = [
        script.to_str().expect("utf-8 path"),
        &url,
        "--talk",
        "8",
        "--tone",
        &tone,
        "--frames",
        "200",
        "--timeout",
        "40",
    ];
    let out = lan
        .laptop
        .command(python.to_str().expect("utf-8 path"), &args)
        .stdin(Stdio::null())
        .output()
        .expect("viewer.py");
    let logs = serve.logs();
    let dropped = (lan.dropped(), lan.dropped_at_camera());
    serve.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "viewer.py printed no JSON line ({e}):\n{stdout}\n--- stderr:\n{}\n--- device:\n{logs}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let sound = std::fs::read(&raw).unwrap_or_default();
    // The middle of the turn: its last 2 s may have been spoken after the stop.
    let middle = &sound[(sound.len() / 4) & !1..(sound.len() * 3 / 4) & !1];
    let (rms, hz) = support::lan::tone_of(middle);
    eprintln!(
        "aiortc talking across {TALK_LOSS_PERCENT} % loss each way: {seen}; the speaker played \
         {:.1} s, its middle at {hz:.0} Hz, rms {rms:.0}; dropped by nft (towards the laptop, \
         towards the camera): {dropped:?}",
        sound.len() as f64 / 96_000.0
    );
    assert_eq!(out.status.code(), Some(0), "{seen}\n{logs}");
    let states: Vec<&str> = seen["talk"]
        .as_array()
        .map(|t| t.iter().filter_map(|s| s["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, ["on", "off"], "{seen}");
    assert!(
        sound.len() >= 6 * 96_000,
        "the speaker played {} bytes",
        sound.len()
    );
    assert!(rms > 300.0, "the speaker played near silence: rms {rms:.0}");
    assert!(
        (hz - TALK_TONE_HZ).abs() < 40.0,
        "the speaker played {hz:.0} Hz, not aiortc's {TALK_TONE_HZ} Hz tone"
    );
    assert!(
        dropped.0 > 0 && dropped.1 > 0,
        "no loss happened: {dropped:?}"
    );
}
