//! Loss benchmark: what a viewer across a lossy LAN sees, row by row of packet loss, with the
//! shared encoder's rate following the viewers' receiver reports; and how fast the picture
//! and the rate come back after a burst of loss.
//!
//! Two network namespaces joined by a veth pair (`tests/support/lan.rs`; made-up addresses
//! 10.213.11.x that exist only inside them); the camera namespace runs this build's
//! `peercam serve` with a camera-like source (the SMPTE bars scrolling, 640x480 at 30 fps,
//! x264 configured at 1500 kbit/s); in the laptop namespace nftables drops the row's share of
//! every UDP packet arriving, and a headless browser (tests/browser/lan-viewer.js) watches the
//! device's page. Each row is a fresh device and browser. Printed per row: time from opening
//! the page to its first decoded frame, decoded fps, the lowest second, the longest gap
//! between shown frames, frozen time (`totalFreezesDuration`), NACKs, retransmissions, PLIs,
//! and the encoder's rate at the end of the window (`/api/stats`).
//!
//! The burst (`--burst`): one viewer watches for 30 s on a clean link that loses 30 % of its
//! UDP for 5 s, from about 10 s into the window; printed: frames decoded each second, and each
//! change of the encoder's rate with its time from the burst's start.
//!
//! The mixed group (`--mixed`): four Chromium viewers, first all on the clean laptop, then
//! three there and one on a laptop behind it whose link loses 5 % and is capped at 1 Mbit/s
//! (less than the stream): each viewer's figures (the far one's over 20 s once it has moved
//! to the small encode, the near ones' over 40 s around it), the encoders' counts and the
//! main one's rate, and the device's CPU (its process tree, % of one core) over the far
//! viewer's window.
//!
//! `cargo bench --bench loss -- [--seconds 15] [--rows 0,1,5,10,20] [--browser firefox]
//! [--burst | --mixed]`, as root (network namespaces). Exits non-zero if a viewer fails to
//! play.

#[path = "support/media_program.rs"]
mod media_program;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use support::lan::{check_prerequisites, LossyLan};
use support::scratch::Scratch;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CAMERA_ADDR: &str = "10.213.11.1";
const LAPTOP_ADDR: &str = "10.213.11.2";
const BITRATE_KBPS: u32 = 1500;
/// The burst: its loss, when it starts after the viewer connected, and how long it lasts.
const BURST_PERCENT: u32 = 30;
const BURST_AFTER: Duration = Duration::from_secs(12);
const BURST_FOR: Duration = Duration::from_secs(5);

struct Opts {
    seconds: u32,
    rows: Vec<u32>,
    browser: String,
    burst: bool,
    mixed: bool,
}

fn opts() -> Result<Opts> {
    let mut o = Opts {
        seconds: 15,
        rows: vec![0, 1, 5, 10, 20],
        browser: "chromium".into(),
        burst: false,
        mixed: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => o.seconds = args.next().context("--seconds N")?.parse()?,
            "--rows" => {
                o.rows = args
                    .next()
                    .context("--rows 0,1,5")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--browser" => o.browser = args.next().context("--browser chromium|firefox")?,
            "--burst" => o.burst = true,
            "--mixed" => o.mixed = true,
            // cargo bench passes --bench.
            "--bench" => {}
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = opts()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (network namespaces)");
    }
    media_program::ensure_built();
    let (var, default, driver) = match o.browser.as_str() {
        "chromium" => ("CHROMIUM_BIN", "/usr/bin/chromium", "playwright-core"),
        "firefox" => ("FIREFOX_BIN", "/usr/bin/firefox-esr", "puppeteer-core"),
        other => bail!("unknown browser {other:?}"),
    };
    let path = std::env::var(var).unwrap_or_else(|_| default.into());
    let script = check_prerequisites(&path, driver);
    if o.burst {
        return burst(&script);
    }
    if o.mixed {
        return mixed(&script);
    }
    println!(
        "one {} viewer, 640x480 at 30 fps, x264 configured at {BITRATE_KBPS} kbit/s, {} s per row",
        o.browser, o.seconds
    );
    println!(
        "| UDP loss | first frame ms | fps | lowest second | longest gap ms | frozen s (count) | \
         NACKs | retransmitted | PLIs | codec | encoder kbit/s at the end | dropped by nft |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for percent in o.rows {
        let lan = LossyLan::new(CAMERA_ADDR, LAPTOP_ADDR, percent);
        let scratch = Scratch::new("loss-bench");
        let serve = lan.serve(&scratch, BITRATE_KBPS);
        let before = lan.dropped();
        let out = lan.watch(
            &scratch,
            &script,
            o.seconds,
            &o.browser,
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
            "| {percent} % | {} | {:.1} | {} | {} | {:.2} ({}) | {} | {} | {} | {} | {} | {dropped} |",
            report["firstFrameMs"][0],
            n(&report["fps"]),
            report["minFramesInASecond"],
            report["longestGapMs"],
            n(&w["totalFreezesDuration"]),
            w["freezeCount"],
            w["nackCount"],
            w["retransmittedPacketsReceived"],
            w["pliCount"],
            report["codecs"].as_str().unwrap_or("?"),
            report["stats"]["camera"]["bitrate_kbps"],
        );
    }
    if failed {
        bail!("a viewer did not play");
    }
    Ok(())
}

/// A clean link with a burst of loss in the middle of a 30 s window.
fn burst(script: &std::path::Path) -> Result<()> {
    let lan = LossyLan::new(CAMERA_ADDR, LAPTOP_ADDR, 0);
    let scratch = Scratch::new("loss-burst");
    let mut serve = lan.serve(&scratch, BITRATE_KBPS);
    let viewer = lan.spawn_watch(
        &lan.laptop,
        &scratch,
        script,
        30,
        1,
        serve.token().as_deref(),
    );
    serve.line("viewer connected", Duration::from_secs(60));
    std::thread::sleep(BURST_AFTER);
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    lan.set_loss(BURST_PERCENT);
    std::thread::sleep(BURST_FOR);
    lan.set_loss(0);
    let ended = started.elapsed();
    let out = viewer.wait_with_output()?;
    let logs = serve.logs();
    serve.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(text.trim())
        .with_context(|| format!("the viewer: {}", String::from_utf8_lossy(&out.stderr)))?;
    println!(
        "a clean link losing {BURST_PERCENT} % of UDP for {:.1} s, from ~{} s after the viewer \
         connected (~{} s into its 30 s window)",
        ended.as_secs_f64(),
        BURST_AFTER.as_secs(),
        BURST_AFTER.as_secs().saturating_sub(2),
    );
    println!(
        "frames decoded each second of the window: {}",
        report["perSecond"]
    );
    println!(
        "longest gap {} ms, frozen {} s ({}), NACKs {}, PLIs {}",
        report["longestGapMs"],
        report["window"]["totalFreezesDuration"],
        report["window"]["freezeCount"],
        report["window"]["nackCount"],
        report["window"]["pliCount"]
    );
    println!("the encoder's rate, seconds from the burst's start (the device's log):");
    for line in logs.lines().filter(|l| l.contains("encoder rate")) {
        let at = line
            .strip_prefix('[')
            .and_then(|l| l.split_whitespace().next())
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let kbps = line
            .split("encoder rate ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?");
        if let Some(at) = at {
            println!(
                "  {:+.1} s: {kbps} kbit/s",
                (at - started_at).as_seconds_f64()
            );
        }
    }
    Ok(())
}

/// The capped viewer's link, kbit/s.
const CAP_KBPS: u32 = 1000;
/// The capped viewer's link's loss, percent.
const CAP_LOSS_PERCENT: u32 = 5;
/// The far viewer's window, s, and how long after its first frame it opens (its link is
/// known and it has moved by then).
const FAR_SECONDS: u32 = 20;
const FAR_SETTLE_SECS: u32 = 10;

/// Four viewers, all on a clean link, then one of them behind a capped, lossy one.
fn mixed(script: &std::path::Path) -> Result<()> {
    println!(
        "four Chromium viewers, 640x480 at 30 fps, x264 configured at {BITRATE_KBPS} kbit/s; \
         the far one joins 8 s after the near ones, its {FAR_SECONDS} s window opening \
         {FAR_SETTLE_SECS} s after its first frame (in the last group, at its first frame), \
         within theirs; device CPU is its process \
         tree over the far one's window, % of one core"
    );
    println!(
        "| group | viewer | fps | lowest second | longest gap ms | frozen s (count) | NACKs | PLIs \
         | width | main encoder kbit/s | small encodes (viewers) | device CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // The capped viewer twice: once settled (moved by then), once from its first frame (what
    // it sees while its link is being learned).
    for (capped, settle) in [(false, FAR_SETTLE_SECS), (true, FAR_SETTLE_SECS), (true, 0)] {
        let lan = LossyLan::new(CAMERA_ADDR, LAPTOP_ADDR, 0);
        let loss = if capped { CAP_LOSS_PERCENT } else { 0 };
        let far = lan.far_laptop("10.213.17.1", "10.213.17.2", loss);
        if capped {
            lan.cap_far_link(CAP_KBPS);
        }
        let scratch = Scratch::new("loss-mixed");
        let serve = lan.serve(&scratch, BITRATE_KBPS);
        let token = serve.token();
        // The near viewers first and longest, so that their window holds the far one's whole
        // (as in the loss_netns test).
        let near = lan.spawn_watch(&lan.laptop, &scratch, script, 40, 3, token.as_deref());
        std::thread::sleep(Duration::from_secs(8));
        let far_viewer = lan.spawn_watch_settled(
            &far,
            &scratch,
            script,
            FAR_SECONDS,
            1,
            token.as_deref(),
            settle,
        );
        // Its window opens ~1 s from now (its first frame) and the settling later.
        std::thread::sleep(Duration::from_secs(1 + u64::from(settle)));
        let cpu_start = (tree_cpu_ticks(serve.pid()), Instant::now());
        std::thread::sleep(Duration::from_secs(u64::from(FAR_SECONDS) - 1));
        let ticks = tree_cpu_ticks(serve.pid()) - cpu_start.0;
        let cpu = ticks as f64 / ticks_per_second() / cpu_start.1.elapsed().as_secs_f64() * 100.0;
        let (near, far_out) = (near.wait_with_output(), far_viewer.wait_with_output());
        let (near, far_out) = (near?, far_out?);
        let logs = serve.logs();
        serve.stop();
        let moves = logs
            .lines()
            .filter(|l| l.contains("this viewer moves"))
            .map(|l| l.split("] ").nth(1).unwrap_or(l).to_owned())
            .collect::<Vec<_>>();
        let group = match (capped, settle) {
            (false, _) => "4 clean".to_owned(),
            (true, 0) => format!(
                "3 clean + 1 at {CAP_KBPS} kbit/s, {CAP_LOSS_PERCENT} % loss, from its first frame"
            ),
            (true, _) => format!("3 clean + 1 at {CAP_KBPS} kbit/s, {CAP_LOSS_PERCENT} % loss"),
        };
        let near: Value = serde_json::from_str(String::from_utf8_lossy(&near.stdout).trim())
            .context("the near viewers' report")?;
        let far_report: Value = serde_json::from_str(
            String::from_utf8_lossy(&far_out.stdout).trim(),
        )
        .unwrap_or_else(|_| {
            let why = String::from_utf8_lossy(&far_out.stderr);
            let line = why
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("no report");
            serde_json::json!({ "fps": 0.0, "failed": line })
        });
        if let Some(why) = far_report.get("failed") {
            println!("| {group} | far | did not play: {why} |");
        }
        let far_name = if capped { "far (capped)" } else { "far" };
        let mut rows: Vec<(String, &Value, &Value)> = near["pages"]
            .as_array()
            .map(|p| {
                p.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("near {}", i + 1), v, &near["stats"]["camera"]))
                    .collect()
            })
            .unwrap_or_default();
        rows.push((
            far_name.to_owned(),
            &far_report,
            &far_report["stats"]["camera"],
        ));
        for (name, r, camera) in rows {
            let w = &r["window"];
            println!(
                "| {group} | {name} | {:.1} | {} | {} | {:.2} ({}) | {} | {} | {} | {} | {} ({}) \
                 | {cpu:.1} % |",
                r["fps"].as_f64().unwrap_or(f64::NAN),
                r["minFramesInASecond"],
                r["longestGapMs"],
                w["totalFreezesDuration"].as_f64().unwrap_or(f64::NAN),
                w["freezeCount"],
                w["nackCount"],
                w["pliCount"],
                r["frameWidth"],
                camera["bitrate_kbps"],
                camera["small_encoders"],
                camera["small_branches"],
            );
        }
        if settle == 0 {
            println!(
                "  {group}: far, frames each second: {}",
                far_report["perSecond"]
            );
        }
        for line in moves {
            println!("  {group}: {line}");
        }
    }
    Ok(())
}

/// User and system CPU ticks of process `root` and every process below it.
fn tree_cpu_ticks(root: u32) -> u64 {
    let mut stats: Vec<(u32, u32, u64)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, ... utime (14th), stime (15th).
        let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        stats.push((pid, num(1) as u32, num(11) + num(12)));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.1 == parent).map(|s| s.0));
        i += 1;
    }
    stats
        .iter()
        .filter(|s| tree.contains(&s.0))
        .map(|s| s.2)
        .sum()
}

/// Clock ticks per second, as /proc counts CPU time.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
