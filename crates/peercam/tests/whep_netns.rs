//! Players that are not the device's page watch through its WHEP door across a lossy LAN:
//! Chromium as a minimal player on another origin (fetching the answer through CORS with the
//! token as a Bearer header), then aiortc (a Python WebRTC stack) posting its offer over plain
//! HTTP and ending its session with `DELETE`.
//!
//! Two network namespaces, "camera" (10.213.9.1) and "laptop" (10.213.9.2), joined by a veth
//! pair ([`support::lan`]); the addresses exist only inside the two namespaces. The camera
//! namespace runs `peercam serve` with a camera-like source (the SMPTE bars scrolling,
//! 640x480 at 30 fps, x264 at 1500 kbit/s); in the laptop namespace nftables drops
//! [`LOSS_PERCENT`] % of every UDP packet arriving. Chromium's player must decode at
//! [`MIN_FPS`] or more over [`WINDOW_SECS`] s with no freeze of a second or more; aiortc must
//! decode [`AIORTC_FRAMES`] frames and have its `DELETE` answered `200`.
//!
//! Needs root, `ip netns`, nftables, node with tests/browser's npm dependencies, Chromium and
//! tests/aiortc's virtualenv, so it is ignored in a plain `cargo test`; `scripts/test.sh` runs
//! it with `--ignored` when it runs as root. Without what it needs it fails saying what is
//! missing.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::process::Stdio;

use serde_json::Value;
use support::device::with_token;
use support::lan::{check_prerequisites, repo, viewer_report, LossyLan};
use support::scratch::Scratch;

const CAMERA_ADDR: &str = "10.213.9.1";
const LAPTOP_ADDR: &str = "10.213.9.2";
/// Percent of UDP packets the laptop drops.
const LOSS_PERCENT: u32 = 5;
/// Chromium's measured window, seconds.
const WINDOW_SECS: u32 = 15;
/// The least frame rate Chromium's player must decode over the window (the source sends 30).
const MIN_FPS: f64 = 24.0;
/// Frames aiortc must decode.
const AIORTC_FRAMES: u32 = 90;

#[test]
#[ignore = "needs root: network namespaces"]
fn chromium_and_aiortc_watch_through_the_whep_door_across_a_lossy_lan() {
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let viewer_script = check_prerequisites(&chromium, "playwright-core");
    let python = repo().join("tests/aiortc/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --test",
        python.display()
    );
    let lan = LossyLan::new(CAMERA_ADDR, LAPTOP_ADDR, LOSS_PERCENT);
    let scratch = Scratch::new("whep");
    let serve = lan.serve(&scratch, 1500);
    let token = serve.token();
    let door = format!("http://{}/whep", lan.listen());

    // Chromium: a minimal player page of its own, the door on another origin.
    let before = lan.dropped();
    let viewer = lan.watch_url(
        &scratch,
        &viewer_script,
        &with_token(&door, token.as_deref()),
        WINDOW_SECS,
        "chromium",
        1,
    );
    let lost = lan.dropped() - before;
    let report = viewer_report(&viewer, "the WHEP player", &serve.logs());
    eprintln!("{LOSS_PERCENT} % UDP loss, Chromium WHEP player: {report}\ndropped by nft: {lost}");
    let fps = report["fps"].as_f64().unwrap_or(0.0);
    let gap = report["longestGapMs"].as_f64().unwrap_or(f64::MAX);
    let received = report["window"]["packetsReceived"].as_f64().unwrap_or(0.0);
    assert!(
        lost as f64 > received * 0.02,
        "the loss did not happen: {lost} dropped, {received} received in the window"
    );
    assert!(
        report["stats"]["session"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("/whep/")),
        "the page read no Location through CORS: {report}"
    );
    assert!(
        fps >= MIN_FPS,
        "{fps:.1} fps under {LOSS_PERCENT} % loss: {report}"
    );
    assert!(
        gap < 1000.0,
        "the picture froze for {gap} ms under {LOSS_PERCENT} % loss: {report}"
    );

    // aiortc: an offer over plain HTTP, a DELETE at the end.
    let mut command = lan.laptop.command(
        python.to_str().expect("utf-8 path"),
        &[
            repo()
                .join("tests/aiortc/whep.py")
                .to_str()
                .expect("utf-8 path"),
            &door,
            "--frames",
            &AIORTC_FRAMES.to_string(),
        ],
    );
    if let Some(t) = &token {
        command.args(["--token", t]);
    }
    let out = command.stdin(Stdio::null()).output().expect("run whep.py");
    let line = String::from_utf8_lossy(&out.stdout);
    let logs = serve.logs();
    serve.stop();
    let result: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "whep.py printed no JSON ({e}):\n{line}\n--- stderr:\n{}\n--- peercam log:\n{logs}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("{LOSS_PERCENT} % UDP loss, aiortc WHEP player: {result}");
    assert!(
        out.status.success(),
        "aiortc did not play: {result}\n{logs}"
    );
    assert_eq!(result["post"]["status"], 201, "{result}");
    assert_eq!(
        result["post"]["content_type"], "application/sdp",
        "{result}"
    );
    assert_eq!(result["delete"], 200, "{result}");
    assert!(
        logs.contains("WHEP viewer ended its session"),
        "the device did not log the DELETE:\n{logs}"
    );
}
