//! Loss benchmark: what a viewer across a lossy LAN sees, row by row of packet loss, with the
//! shared encoder's rate following the viewers' receiver reports.
//!
//! Two network namespaces joined by a veth pair (`tests/support/lan.rs`; made-up addresses
//! 10.213.11.x that exist only inside them); the camera namespace runs this build's
//! `peercam serve` with a camera-like source (the SMPTE bars scrolling, 640x480 at 30 fps,
//! x264 configured at 1500 kbit/s); in the laptop namespace nftables drops the row's share of
//! every UDP packet arriving, and headless Chromium (tests/browser/lan-viewer.js) watches the
//! device's page. Each row is a fresh device and browser. Printed per row: decoded fps, the
//! lowest second, the longest gap between shown frames, frozen time (Chromium's
//! `totalFreezesDuration`), NACKs, retransmissions, PLIs, and the encoder's rate at the end
//! of the window (`/api/stats`).
//!
//! `cargo bench --bench loss -- [--seconds 15] [--rows 0,1,5,10,20]`, as root (network
//! namespaces). Exits non-zero if a viewer fails to play at all.

#[path = "support/media_program.rs"]
mod media_program;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use support::lan::{check_prerequisites, LossyLan};
use support::scratch::Scratch;

const CAMERA_ADDR: &str = "10.213.11.1";
const LAPTOP_ADDR: &str = "10.213.11.2";
const BITRATE_KBPS: u32 = 1500;

fn main() -> Result<()> {
    let mut seconds = 15u32;
    let mut rows = vec![0u32, 1, 5, 10, 20];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--rows" => {
                rows = args
                    .next()
                    .context("--rows 0,1,5")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            // cargo bench passes --bench.
            "--bench" => {}
            other => bail!("unknown argument {other:?}"),
        }
    }
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (network namespaces)");
    }
    media_program::ensure_built();
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let script = check_prerequisites(&chromium, "playwright-core");
    println!(
        "one Chromium viewer, 640x480 at 30 fps, x264 configured at {BITRATE_KBPS} kbit/s, \
         {seconds} s per row"
    );
    println!(
        "| UDP loss | fps | lowest second | longest gap ms | frozen s (count) | NACKs | \
         retransmitted | PLIs | encoder kbit/s at the end | dropped by nft |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for percent in rows {
        let lan = LossyLan::new(CAMERA_ADDR, LAPTOP_ADDR, percent);
        let scratch = Scratch::new("loss-bench");
        let serve = lan.serve(&scratch, BITRATE_KBPS);
        let before = lan.dropped();
        let out = lan.watch(
            &scratch,
            &script,
            seconds,
            "chromium",
            1,
            serve.token().as_deref(),
        );
        let dropped = lan.dropped() - before;
        serve.stop();
        let text = String::from_utf8_lossy(&out.stdout);
        let Ok(report) = serde_json::from_str::<Value>(text.trim()) else {
            println!(
                "| {percent} % | did not play: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            failed = true;
            continue;
        };
        let w = &report["window"];
        let n = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        println!(
            "| {percent} % | {:.1} | {} | {} | {:.2} ({}) | {} | {} | {} | {} | {dropped} |",
            n(&report["fps"]),
            report["minFramesInASecond"],
            report["longestGapMs"],
            n(&w["totalFreezesDuration"]),
            w["freezeCount"],
            w["nackCount"],
            w["retransmittedPacketsReceived"],
            w["pliCount"],
            report["stats"]["camera"]["bitrate_kbps"],
        );
    }
    if failed {
        bail!("a viewer did not play");
    }
    Ok(())
}
