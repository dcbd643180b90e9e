//! The device publishes over WHIP to Janus, a real media server, and viewers of Janus see its
//! video; when the server dies and comes back, the device publishes again by itself.
//!
//! Two network namespaces joined by a veth pair ([`support::lan`]): "camera" (10.213.11.1)
//! runs `peercam serve` (the SMPTE bars scrolling, 640x480 at 30 fps, x264 at 1500 kbit/s)
//! publishing to the other, "server" (10.213.11.2), which runs Debian's Janus with Debian's
//! simple-whip-server as its WHIP front ([`support::janus`]); viewers there subscribe to the
//! VideoRoom over Janus's HTTP API with aiortc (tests/aiortc/janus_viewer.py). In turn:
//!
//! 1. `peercam check` says where it publishes and that the endpoint answers; the device goes
//!    live; a viewer of Janus decodes its video at [`MIN_FPS`] or more.
//! 2. Janus is killed and started again: the device gives up on its silent session, ends it,
//!    and publishes again by itself; a viewer sees video again. The times are printed.
//! 3. Janus and simple-whip-server are both down for [`DOWN`]: the device's attempts are
//!    refused (it backs off, saying why in its log); once they are back and the endpoint
//!    exists again, it publishes by itself.
//! 4. Stopping the device ends its session at the server (`DELETE`).
//!
//! Its token never appears in its log, `/api/stats` or `peercam check`.
//!
//! Needs root, `ip netns`, nftables, curl, Janus, the unpacked simple-whip-server with its npm
//! dependencies and tests/aiortc's virtualenv (`scripts/setup.sh --test` installs them), so it
//! is ignored in a plain `cargo test`; `scripts/test.sh` runs it with `--ignored` as root.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::janus::{check_prerequisites, MediaServer};
use support::lan::{output, LossyLan, PORT};
use support::scratch::Scratch;

const CAMERA_ADDR: &str = "10.213.11.1";
const SERVER_ADDR: &str = "10.213.11.2";
/// The endpoint's Bearer token.
const TOKEN: &str = "porch-stream-key-5b1e0c";
/// The least frame rate a viewer of Janus must decode (the source sends 30).
const MIN_FPS: f64 = 24.0;
/// How long the whole server stays down in step 3.
const DOWN: Duration = Duration::from_secs(20);

/// How many times the device's log says it went live.
fn lives(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("publishing to ") && l.ends_with(": live"))
        .count()
}

/// Waits (up to `limit`) until the device has gone live `n` times; when it did.
fn wait_live(serve: &support::device::Serve, n: usize, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if lives(&serve.logs()) >= n {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the device did not go live (time {n}) within {limit:?}:\n{}",
            serve.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that one viewer of Janus decoded video at `MIN_FPS` or more; its report.
fn assert_watched(ok: bool, report: &Value, server: &MediaServer, serve_log: &str) -> Value {
    let viewer = report["viewers"][0].clone();
    assert!(
        ok,
        "the viewer of Janus did not see the device:\n{report}\n--- peercam:\n{serve_log}\n\
         --- simple-whip-server:\n{}",
        server.whip_log()
    );
    assert_eq!(viewer["codec"], "H264/90000", "{report}");
    assert_eq!(
        (viewer["width"].as_u64(), viewer["height"].as_u64()),
        (Some(640), Some(480))
    );
    let fps = viewer["fps"].as_f64().unwrap_or(0.0);
    assert!(fps >= MIN_FPS, "{fps} fps through Janus: {report}");
    viewer
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_device_publishes_to_janus_and_publishes_again_after_the_server_dies() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "not running as root (this test needs network namespaces)"
    );
    output("ip", &["netns", "list"]).expect("`ip netns` unavailable");
    output("nft", &["--version"]).expect("nftables (`nft`) is needed for the link");
    check_prerequisites();
    // No loss: this test is about the server, not the link.
    let lan = LossyLan::new(CAMERA_ADDR, SERVER_ADDR, 0);
    let scratch = Scratch::new("whip");
    let mut server = MediaServer::start(&lan.laptop, &scratch.join("server"), SERVER_ADDR);
    server.create_endpoint("porch", TOKEN);
    let url = server.endpoint_url("porch");
    let extra = format!("[publish]\nenabled = true\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n");

    // 1. What `peercam check` says, then the device publishes and Janus's viewers see it.
    let config = scratch.join("peercam.toml");
    let mut serve = lan.serve_with(&scratch, 1500, &extra);
    let check = lan.camera.run(
        support::device::BIN,
        &["check", "--config", config.to_str().expect("utf-8 path")],
    );
    let said = check
        .lines()
        .find(|l| l.starts_with("Publishing (WHIP)"))
        .unwrap_or_else(|| panic!("peercam check said nothing of publishing:\n{check}"));
    eprintln!("peercam check: {said}");
    assert!(
        said.contains(&url) && said.contains("with a Bearer token") && said.contains("answers"),
        "{said}"
    );
    assert!(
        !check.contains(TOKEN),
        "peercam check shows the token:\n{check}"
    );
    wait_live(&serve, 1, Duration::from_secs(30));
    let (ok, report) = server.watch(1, 90, 10, 30);
    let viewer = assert_watched(ok, &report, &server, &serve.logs());
    eprintln!("viewer of Janus: {viewer}");
    let stats = device_stats(&lan, &serve);
    assert_eq!(stats["publish"]["state"], "live", "{stats}");
    assert_eq!(stats["publish"]["url"], url.as_str(), "{stats}");
    // The publisher is a peer of the camera, not a viewer of its broadcast.
    assert_eq!(stats["camera"]["peers"], 1, "{stats}");
    assert_eq!(stats["pairs"], 0, "{stats}");

    // 2. Janus dies and comes back: the device publishes again by itself.
    let killed = Instant::now();
    server.kill_janus();
    std::thread::sleep(Duration::from_secs(1));
    server.start_janus();
    let live = wait_live(&serve, 2, Duration::from_secs(45));
    let republished = live - killed;
    let watching = Instant::now();
    let (ok, report) = server.watch(1, 60, 3, 30);
    let viewer = assert_watched(ok, &report, &server, &serve.logs());
    let seen = watching - killed
        + Duration::from_secs_f64(viewer["first_frame_s"].as_f64().unwrap_or(0.0));
    eprintln!(
        "Janus killed and started again 1 s later: published again after {republished:.1?}, \
         a new viewer saw video {seen:.1?} after the kill"
    );
    let log = serve.logs();
    assert!(
        log.contains("backing off") && log.contains("heard nothing"),
        "the device did not say why it gave up:\n{log}"
    );

    // 3. The whole server is down for a while: attempts are refused, then it comes back.
    let killed = Instant::now();
    server.kill_whip();
    server.kill_janus();
    std::thread::sleep(DOWN);
    server.start_janus();
    server.start_whip();
    server.create_endpoint("porch", TOKEN);
    let back = killed.elapsed();
    let live = wait_live(&serve, 3, Duration::from_secs(60));
    let republished = live - killed;
    let (ok, report) = server.watch(1, 60, 3, 30);
    assert_watched(ok, &report, &server, &serve.logs());
    let log = serve.logs();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("backing off") && l.contains("cannot connect"))
        .collect();
    eprintln!(
        "Janus and simple-whip-server down for {DOWN:?} (back after {back:.1?}): published \
         again after {republished:.1?}; refused attempts:\n{}",
        refusals.join("\n")
    );
    assert!(
        !refusals.is_empty(),
        "no attempt was refused while the server was down:\n{log}"
    );
    let stats = device_stats(&lan, &serve);
    assert_eq!(stats["publish"]["state"], "live", "{stats}");
    assert!(stats["publish"]["attempts"].as_u64() >= Some(4), "{stats}");

    // 4. Stopping the device ends its session at the server.
    let ended = server
        .whip_log()
        .matches("Terminating WHIP session")
        .count();
    serve.signal(libc::SIGTERM);
    let status = serve.exit_within(Duration::from_secs(10));
    let log = serve.logs();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("session ended at the server"),
        "the device did not end its session:\n{log}"
    );
    let whip_log = server.whip_log();
    assert!(
        whip_log.matches("Terminating WHIP session").count() > ended,
        "the device's DELETE did not reach the server:\n{whip_log}"
    );
    assert!(
        !log.contains(TOKEN),
        "the device logged its publish token:\n{log}"
    );
    assert!(!stats.to_string().contains(TOKEN), "{stats}");
}

/// `/api/stats`, fetched inside the camera namespace with the device's token.
fn device_stats(lan: &LossyLan, serve: &support::device::Serve) -> Value {
    let url = format!("http://{CAMERA_ADDR}:{PORT}/api/stats");
    let mut args = vec!["-sS".to_owned(), url];
    if let Some(token) = serve.token() {
        args.push("-H".into());
        args.push(format!("Authorization: Bearer {token}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let body = lan.camera.run("curl", &args);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/stats: {e}: {body}"))
}
