//! Churn benchmark: viewers join and leave the camera at every step of negotiation, thousands
//! of times, while one viewer watches throughout; nothing they cost may stay behind. Runs the
//! release `peercam serve --source test` binary as a child process and drives it from this
//! process over loopback:
//!
//! ```text
//! watcher: GStreamer webrtcbin viewer (decoding) ──ws + ICE/DTLS/SRTP──▶ peercam serve (child)
//! churn:   one short-lived client per cycle      ──ws (+ ICE/DTLS)─────▶   └─ peercam-media
//! ```
//!
//! Each cycle is one client over a real WebSocket that abandons the negotiation at a point
//! drawn in rotation from [`Kind`]: right after `joined` (before the camera's offer), after
//! the offer (never answers), after an answer that passes the camera's checks but whose ICE
//! can never complete, after a real GStreamer viewer's ICE/DTLS connected, and while such a
//! viewer plays. Of every 50 cycles, 16 are each of the first three (signaling only, cheap)
//! and 1 each of the last two (a GStreamer viewer). Leaving alternates between `left` then a
//! close, and a close alone. At most [`BACKLOG`] departed peers are awaited at a time.
//!
//! Before the first cycle (baseline, the watcher alone), after the `--report-at`th cycle and
//! after the last, once `/api/stats` shows only the watcher's peer and branch, the benchmark
//! reads for each process of the device (the serving process and every media worker, found as
//! its children) its open file descriptors (and what they are, against baseline), threads,
//! RSS and PSS. Targets: only the watcher's peer and branch left, the same processes as at
//! baseline (no worker restarted), descriptors and threads back to baseline, the tree's RSS
//! at the end within 5 % of that at `--report-at`, the watcher at ≥ 29 decoded frames/s over
//! the run, every cycle run and none failed. It prints the watcher's longest stall. Churn
//! stops early when the device looks wedged ([`STOP_AFTER`] failed cycles in a row, or
//! departed peers not released within [`LIMIT`]); the reports are taken all the same. Exits
//! non-zero if a target is missed.
//!
//! `cargo bench --bench churn -- --cycles N` (default 10000). Options: `--report-at N`
//! (default 100), `--device PATH` (measure that peercam binary instead of this build's),
//! `--only KIND` (every cycle of one kind, e.g. `answered`, to find which one leaves
//! something behind).

// The viewers and the client of the camera tests; the benchmark uses only those.
#[path = "support/media_program.rs"]
mod media_program;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use support::fixtures::DEAD_ANSWER;
use support::gst_viewer::{Consume, Session};
use support::watch::Watch;
use support::ws::{Client, Msg, Next};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const FPS: u32 = 30;
const BITRATE_KBPS: u32 = 1000;
const MAX_VIEWERS: usize = 16;
/// Departed peers the device may still be releasing when the next cycle starts.
const BACKLOG: u64 = 3;
/// Longest wait for any one thing (a message, a first frame, a stats condition).
const LIMIT: Duration = Duration::from_secs(20);
/// Failed cycles in a row after which the device is taken for wedged and churn stops.
const STOP_AFTER: usize = 3;
/// Longest wait, at a report, for descriptors and threads to come back to baseline.
const SETTLE: Duration = Duration::from_secs(10);

// Targets.
const MAX_RSS_GROWTH: f64 = 0.05;
const MIN_WATCHER_FPS: f64 = 29.0;

#[derive(Debug, Clone)]
struct Opts {
    /// Cycles to run.
    cycles: usize,
    /// The cycle after which the first full report is taken.
    report_at: usize,
    /// The peercam binary to measure.
    device: PathBuf,
    /// Every cycle of this kind instead of the rotation (to find which one leaves something).
    only: Option<Kind>,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let mut o = Opts {
            cycles: 10_000,
            report_at: 100,
            device: PathBuf::from(env!("CARGO_BIN_EXE_peercam")),
            only: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| anyhow!("{a} needs a value"))
                    .cloned()
            };
            match a.as_str() {
                "--cycles" => o.cycles = value()?.parse()?,
                "--report-at" => o.report_at = value()?.parse()?,
                "--device" => o.device = PathBuf::from(value()?),
                "--only" => {
                    let v = value()?;
                    let k = KINDS
                        .iter()
                        .find(|k| format!("{k:?}").eq_ignore_ascii_case(&v));
                    o.only = Some(*k.ok_or_else(|| anyhow!("--only: no kind {v}"))?);
                }
                // `cargo bench` passes --bench.
                "--bench" => {}
                other => bail!("unknown option {other}"),
            }
        }
        if o.report_at == 0 || o.report_at >= o.cycles {
            bail!("--report-at must be at least 1 and below --cycles");
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// Cycles.

/// Where a churn client abandons the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Right after `joined`, before the camera's offer arrives.
    Joined,
    /// After the camera's offer (`answerRequest`), never answering.
    Offered,
    /// After an answer that passes the camera's checks but whose ICE never completes.
    Answered,
    /// A GStreamer viewer, once its ICE and DTLS are connected.
    Connected,
    /// A GStreamer viewer, after it decoded a few frames.
    Playing,
}

const KINDS: [Kind; 5] = [
    Kind::Joined,
    Kind::Offered,
    Kind::Answered,
    Kind::Connected,
    Kind::Playing,
];

/// Cycles per round of the rotation.
const ROUND: usize = 50;

/// The kind of cycle `i`: of every [`ROUND`], one `Connected` (at 24), one `Playing` (at 49),
/// and the three signaling-only kinds in turn.
fn kind(i: usize) -> Kind {
    match i % ROUND {
        24 => Kind::Connected,
        49 => Kind::Playing,
        s => KINDS[s % 3],
    }
}

/// Whether cycle `i` sends `left` before closing; alternates, and the round flips it so that
/// the once-a-round kinds leave both ways.
fn sends_left(i: usize) -> bool {
    i.is_multiple_of(2) == (i / ROUND).is_multiple_of(2)
}

/// What one cycle took, by kind.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Cycles run.
    n: usize,
    /// Their total time.
    time: Duration,
    /// Cycles that did not reach their abandon point.
    failed: usize,
}

/// The next message with `signal` within [`LIMIT`], skipping others; an `error` fails.
async fn wait_for(c: &mut Client, signal: &str) -> Result<Msg> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, c.next()).await {
            Err(_) => bail!("no {signal} within {LIMIT:?}"),
            Ok(Next::Closed(code)) => bail!("closed ({code:?}) while waiting for {signal}"),
            Ok(Next::Msg(m)) if m.signal == signal => return Ok(m),
            Ok(Next::Msg(m)) if m.signal == "error" => bail!("refused: {m:?}"),
            Ok(Next::Msg(_)) => {}
        }
    }
}

/// A signaling-only churn client.
async fn cheap(url: &str, kind: Kind, left: bool) -> Result<()> {
    let request = url.into_client_request()?;
    let mut c = Client::connect(request, None, "churn").await?;
    c.send("join", "", "camera", &[]).await;
    wait_for(&mut c, "joined").await?;
    if kind != Kind::Joined {
        wait_for(&mut c, "answerRequest").await?;
    }
    if kind == Kind::Answered {
        c.send("answerResponse", "camera", DEAD_ANSWER, &[]).await;
    }
    if left {
        c.send("left", "", "", &[]).await;
    }
    c.close().await;
    Ok(())
}

/// A GStreamer churn viewer.
async fn viewer(url: &str, kind: Kind, left: bool) -> Result<()> {
    let mut s = Session::open_with(url, "join", "camera", Consume::Decode).await;
    if kind == Kind::Connected {
        s.pump(LIMIT, |s| s.viewer.connected_at.get().is_some())
            .await;
        if s.viewer.connected_at.get().is_none() {
            bail!("not connected within {LIMIT:?}: {:?}", s.signals());
        }
    } else {
        let got = s.play(5, LIMIT).await;
        if got < 5 {
            bail!("{got} frames within {LIMIT:?}: {:?}", s.signals());
        }
    }
    if left {
        s.leave().await;
    } else {
        // A page closed without a word: the socket closes and the pipeline stops.
        let (ws, viewer) = (s.ws, s.viewer);
        ws.close().await;
        drop(viewer);
    }
    Ok(())
}

async fn cycle(url: &str, kind: Kind, i: usize) -> Result<()> {
    let left = sends_left(i);
    match kind {
        Kind::Joined | Kind::Offered | Kind::Answered => cheap(url, kind, left).await,
        Kind::Connected | Kind::Playing => viewer(url, kind, left).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The watcher.

/// The watcher: joined, playing, then sampled by the tests' [`Watch`].
async fn start_watch(url: &str) -> Result<Watch> {
    let mut session = Session::open_with(url, "join", "camera", Consume::Decode).await;
    if session.play(30, LIMIT).await < 30 {
        bail!("the watcher got no video: {:?}", session.signals());
    }
    Ok(Watch::start(session))
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

/// A process and all its descendants alive now, the process first (see the camera
/// benchmark: children are listed per thread in `/proc/PID/task/TID/children`).
fn process_tree(pid: u32) -> Result<Vec<u32>> {
    let main = format!("/proc/{pid}/task/{pid}/children");
    std::fs::metadata(&main).with_context(|| format!("reading {main}"))?;
    let mut tree = vec![pid];
    let mut next = 0;
    while let Some(&p) = tree.get(next) {
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !tree.contains(&child) {
                    tree.push(child);
                }
            }
        }
    }
    Ok(tree)
}

/// A field (`Field:   123 kB` or `Field:\t12`) of a `/proc/<pid>/status` or `smaps_rollup`.
fn number_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One process of the device at a report.
#[derive(Debug, Clone)]
struct Proc {
    /// Its process id.
    pid: u32,
    /// `/proc/PID/comm`.
    name: String,
    /// Entries of `/proc/PID/fd`.
    fds: usize,
    /// `Threads` of `/proc/PID/status`.
    threads: u64,
    /// `VmRSS`, KiB.
    rss: u64,
    /// `RssAnon` (heap and stacks, not the pages of files such as libraries), KiB.
    anon: u64,
    /// `Pss` of `smaps_rollup`, KiB.
    pss: u64,
    /// What each descriptor is, numbers dropped (`socket`, `anon_inode:[eventfd]`, a path).
    fd_kinds: BTreeMap<String, usize>,
    /// Resident anonymous memory by where it is ([`anon_kind`]), KiB.
    anon_kinds: BTreeMap<&'static str, u64>,
}

/// glibc's arenas other than the main one are heaps aligned to this (64-bit builds).
const ARENA_ALIGN: u64 = 64 << 20;

/// Where an anonymous mapping of `/proc/PID/smaps` is, by its name, start and size: the main
/// heap, the main thread's stack, the allocator's other arenas (the heaps of the other
/// threads, at [`ARENA_ALIGN`]), 8 MiB maps (other threads' stacks), and other maps (blocks
/// of 128 KiB or more mapped on their own: frames, buffers; stacks of other sizes).
fn anon_kind(path: &str, start: u64, size_kib: u64) -> Option<&'static str> {
    match path {
        "[heap]" => Some("heap"),
        "[stack]" => Some("main stack"),
        "" if start.is_multiple_of(ARENA_ALIGN) => Some("arenas"),
        "" if size_kib == 8192 => Some("thread stacks"),
        "" => Some("other maps"),
        _ => None,
    }
}

/// Resident KiB of `/proc/PID/smaps`'s anonymous mappings, by [`anon_kind`].
fn anon_by_kind(smaps: &str) -> BTreeMap<&'static str, u64> {
    let mut kinds = BTreeMap::new();
    let mut current: Option<&'static str> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            else {
                current = None;
                continue;
            };
            let path = words.nth(4).unwrap_or("");
            current = anon_kind(path, start, (end - start) / 1024);
        } else if first == "Rss:" {
            if let (Some(kind), Some(kib)) =
                (current, words.next().and_then(|n| n.parse::<u64>().ok()))
            {
                *kinds.entry(kind).or_default() += kib;
            }
        }
    }
    kinds
}

impl Proc {
    fn read(pid: u32) -> Result<Proc> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
        let field = |text: &str, f: &str| {
            number_field(text, f).ok_or_else(|| anyhow!("no {f} for process {pid}"))
        };
        let mut fd_kinds = BTreeMap::new();
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            // socket:[123], pipe:[456]: the kind, not the inode.
            let kind = match target.split_once(":[") {
                Some((k, rest)) if rest.trim_end_matches(']').parse::<u64>().is_ok() => k,
                _ => &target,
            };
            *fd_kinds.entry(kind.to_owned()).or_default() += 1;
        }
        Ok(Proc {
            pid,
            name: std::fs::read_to_string(format!("/proc/{pid}/comm"))?
                .trim()
                .to_owned(),
            fds: fd_kinds.values().sum(),
            fd_kinds,
            threads: field(&status, "Threads")?,
            rss: field(&status, "VmRSS")?,
            anon: field(&status, "RssAnon")?,
            pss: field(&rollup, "Pss")?,
            anon_kinds: anon_by_kind(
                &std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default(),
            ),
        })
    }
}

/// Every process of the device's tree; a descendant that exits while read is skipped.
fn read_tree(root: u32) -> Result<Vec<Proc>> {
    let mut out = Vec::new();
    for (i, pid) in process_tree(root)?.into_iter().enumerate() {
        match Proc::read(pid) {
            Ok(p) => out.push(p),
            Err(e) if i == 0 => return Err(e),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// One full report.
#[derive(Clone)]
struct Report {
    /// Which report (`baseline`, `after N`).
    label: String,
    /// The device's processes, the serving process first.
    procs: Vec<Proc>,
    /// The camera's peers, from `/api/stats`.
    peers: u64,
    /// The camera's branches, from `/api/stats`.
    branches: u64,
}

impl Report {
    fn rss(&self) -> u64 {
        self.procs.iter().map(|p| p.rss).sum()
    }

    fn anon(&self) -> u64 {
        self.procs.iter().map(|p| p.anon).sum()
    }

    fn pss(&self) -> u64 {
        self.procs.iter().map(|p| p.pss).sum()
    }

    /// Whether every process of `base` is here, none more, with no more descriptors or
    /// threads than it had.
    fn back_to(&self, base: &Report) -> bool {
        self.procs.len() == base.procs.len()
            && base.procs.iter().all(|b| {
                self.procs
                    .iter()
                    .any(|p| p.pid == b.pid && p.fds <= b.fds && p.threads <= b.threads)
            })
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------------
// The device under test.

/// The `peercam serve` child process; killed when dropped.
struct Device {
    /// The serving process.
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// Its standard output and error.
    log: PathBuf,
    /// The access token file in its state directory (what `peercam token` reads).
    token_file: PathBuf,
}

/// The camera part of `/api/stats`.
#[derive(Debug, Clone, Copy, Default)]
struct CameraStats {
    /// Peers the camera holds.
    peers: u64,
    /// Branches of its fan-out.
    branches: u64,
}

impl Device {
    async fn start(binary: &Path) -> Result<Device> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("peercam-churn-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("camera.toml");
        std::fs::write(
            &config,
            format!(
                "[camera]\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n\
                 bitrate_kbps = {BITRATE_KBPS}\nmax_viewers = {MAX_VIEWERS}\n"
            ),
        )?;
        let log = dir.join("peercam.log");
        let out = File::create(&log)?;
        let child = Command::new(binary)
            // Its TLS certificate goes in the scratch directory, not the user's state.
            .env("STATE_DIRECTORY", &dir)
            .args(["serve", "--source", "test", "--listen"])
            .arg(addr.to_string())
            .args(["--ice-address", "127.0.0.1", "--config"])
            .arg(&config)
            .arg("--no-discovery")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting peercam serve")?;
        let token_file = dir.join("token");
        let mut device = Device {
            child,
            addr,
            log,
            token_file,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = device.child.try_wait()? {
                bail!("peercam exited at start ({status}): {}", device.log_tail());
            }
            if device.stats().await.is_ok() {
                return Ok(device);
            }
            if Instant::now() > deadline {
                bail!("peercam did not serve within 15 s: {}", device.log_tail());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("{} (log {})", tail, self.log.display())
    }

    /// The device's access token, from its state directory.
    fn token(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("reading {}", self.token_file.display()))?;
        Ok(text.trim().to_owned())
    }

    /// The signaling endpoint's URL with the access token, as a nextRTC client uses it.
    fn ws_url(&self) -> Result<String> {
        Ok(format!(
            "ws://{}/signaling?token={}",
            self.addr,
            self.token()?
        ))
    }

    /// `GET /api/stats`, camera part.
    async fn stats(&self) -> Result<CameraStats> {
        let token = self.token()?;
        let get = async {
            let mut s = TcpStream::connect(self.addr).await?;
            let request = format!(
                "GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n"
            );
            s.write_all(request.as_bytes()).await?;
            let mut body = Vec::new();
            s.read_to_end(&mut body).await?;
            anyhow::Ok(body)
        };
        let raw = timeout(Duration::from_secs(3), get)
            .await
            .map_err(|_| anyhow!("/api/stats timed out"))??;
        let text = String::from_utf8_lossy(&raw);
        let json = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .ok_or_else(|| anyhow!("no HTTP body"))?;
        let v: Value = serde_json::from_str(json.trim()).context("/api/stats JSON")?;
        let c = &v["camera"];
        if !c.is_object() {
            bail!("/api/stats has no camera: {v}");
        }
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        Ok(CameraStats {
            peers: n("peers"),
            branches: n("branches"),
        })
    }

    async fn wait_stats(
        &self,
        what: &str,
        f: impl Fn(&CameraStats) -> bool,
    ) -> Result<CameraStats> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = self.stats().await?;
            if f(&s) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}: {s:?}");
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until only the watcher's peer and branch are left, then (up to [`SETTLE`]) for
    /// descriptors and threads to come back to `base`, and reads every process.
    async fn report(&self, label: &str, base: Option<&Report>) -> Result<Report> {
        // Read anyway if they never are (a worker that crashed took the watcher with it):
        // the table then shows what is left, and the targets say what was missed.
        let only_watcher = |c: &CameraStats| c.peers == 1 && c.branches == 1;
        let s = match self.wait_stats("only the watcher", only_watcher).await {
            Ok(s) => s,
            Err(e) => {
                println!("{label}: {e:#}");
                self.stats().await?
            }
        };
        // The worker gives back the memory departed peers left once none has gone for a
        // while: read what the system sees after that, as on a device whose viewers have left.
        sleep(peercam_wire::memory::TRIM_WHEN_QUIET + Duration::from_secs(1)).await;
        let deadline = Instant::now() + SETTLE;
        loop {
            let r = Report {
                label: label.to_owned(),
                procs: read_tree(self.pid())?,
                peers: s.peers,
                branches: s.branches,
            };
            if base.is_none_or(|b| r.back_to(b)) || Instant::now() > deadline {
                return Ok(r);
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------

fn print_reports(reports: &[&Report]) {
    println!(
        "{:<16} {:>8} {:<14} {:>5} {:>8} {:>9} {:>9} {:>9}   {:>5} {:>8}",
        "report", "pid", "process", "fds", "threads", "RSS", "anon", "PSS", "peers", "branches"
    );
    for r in reports {
        for (i, p) in r.procs.iter().enumerate() {
            let (peers, branches) = if i == 0 {
                (r.peers.to_string(), r.branches.to_string())
            } else {
                (String::new(), String::new())
            };
            println!(
                "{:<16} {:>8} {:<14} {:>5} {:>8} {:>6.1} MB {:>6.1} MB {:>6.1} MB   {:>5} {:>8}",
                if i == 0 { r.label.as_str() } else { "" },
                p.pid,
                p.name,
                p.fds,
                p.threads,
                mb(p.rss),
                mb(p.anon),
                mb(p.pss),
                peers,
                branches
            );
        }
        for p in &r.procs {
            let kinds: Vec<String> = p
                .anon_kinds
                .iter()
                .map(|(k, kib)| format!("{k} {:.1}", mb(*kib)))
                .collect();
            println!("{:<16} {:>8} anon MB: {}", "", p.pid, kinds.join(", "));
        }
        println!(
            "{:<16} {:>8} {:<14} {:>5} {:>8} {:>6.1} MB {:>6.1} MB {:>6.1} MB",
            "",
            "",
            "(tree)",
            r.procs.iter().map(|p| p.fds).sum::<usize>(),
            r.procs.iter().map(|p| p.threads).sum::<u64>(),
            mb(r.rss()),
            mb(r.anon()),
            mb(r.pss())
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// Runs the benchmark; whether every target was met.
async fn run(opts: &Opts) -> Result<bool> {
    println!("peercam churn benchmark");
    println!(
        "machine: {} cores {}, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
        loadavg()
    );
    gstreamer::init()?;
    let device = Device::start(&opts.device).await?;
    println!(
        "device: {} serve --source test --no-discovery ({WIDTH}x{HEIGHT}@{FPS}, \
         {BITRATE_KBPS} kbit/s, max_viewers {MAX_VIEWERS}), pid {}",
        opts.device.display(),
        device.pid()
    );
    match opts.only {
        None => println!(
            "cycles: {} (of every {ROUND}: 16 joined, 16 offered, 16 answered (dead ICE), \
             1 connected, 1 playing; leaving alternates `left`+close / close)",
            opts.cycles
        ),
        Some(k) => println!("cycles: {} {k:?} only", opts.cycles),
    }
    let url = device.ws_url()?;
    let watch = start_watch(&url).await?;
    sleep(Duration::from_secs(3)).await;
    let base = device.report("baseline", None).await?;
    let started = Instant::now();
    let mut tallies = [Tally::default(); 5];
    let mut failures: Vec<String> = Vec::new();
    let mut at_report = None;
    let mut ran = 0;
    // Failed cycles in a row; at STOP_AFTER the device is taken for wedged and churn ends.
    let mut failing = 0;
    for i in 0..opts.cycles {
        let released = device.wait_stats("departed peers released", |c| c.peers <= 1 + BACKLOG);
        if let Err(e) = released.await {
            println!("churn stopped before cycle {i}: {e:#}");
            break;
        }
        if failing >= STOP_AFTER {
            println!("churn stopped before cycle {i}: {failing} cycles failed in a row");
            break;
        }
        let t0 = Instant::now();
        let k = opts.only.unwrap_or_else(|| kind(i));
        let result = cycle(&url, k, i).await;
        // Invariant: KINDS lists every Kind.
        let slot = KINDS.iter().position(|&x| x == k).unwrap();
        let tally = &mut tallies[slot];
        tally.n += 1;
        tally.time += t0.elapsed();
        ran = i + 1;
        failing = if result.is_ok() { 0 } else { failing + 1 };
        if let Err(e) = result {
            tally.failed += 1;
            if failures.len() < 10 {
                failures.push(format!("cycle {i} ({k:?}): {e:#}"));
            }
        }
        let done = i + 1;
        if done == opts.report_at {
            let r = device.report(&format!("after {done}"), Some(&base)).await?;
            println!(
                "{done} cycles in {:.0} s; report taken",
                started.elapsed().as_secs_f64()
            );
            at_report = Some(r);
        } else if done.is_multiple_of(500) {
            let procs = read_tree(device.pid())?;
            println!(
                "{done} cycles in {:.0} s: {} processes, fds {}, threads {}, RSS {:.1} MB, \
                 load {}",
                started.elapsed().as_secs_f64(),
                procs.len(),
                procs.iter().map(|p| p.fds).sum::<usize>(),
                procs.iter().map(|p| p.threads).sum::<u64>(),
                mb(procs.iter().map(|p| p.rss).sum()),
                loadavg()
            );
        }
    }
    let churn_time = started.elapsed();
    let last = device.report(&format!("after {ran}"), Some(&base)).await?;
    let (frames, over, stall) = watch.so_far(started);
    watch.finish().await;
    // Churn that stopped early compares its end with itself.
    let mid = at_report.unwrap_or_else(|| last.clone());

    println!();
    print_reports(&[&base, &mid, &last]);
    for r in [&mid, &last] {
        for p in &r.procs {
            let Some(b) = base.procs.iter().find(|b| b.pid == p.pid) else {
                continue;
            };
            let diff: Vec<String> = p
                .fd_kinds
                .iter()
                .map(|(k, n)| (k, *n as i64 - *b.fd_kinds.get(k).unwrap_or(&0) as i64))
                .chain(
                    b.fd_kinds
                        .iter()
                        .filter(|(k, _)| !p.fd_kinds.contains_key(*k))
                        .map(|(k, n)| (k, -(*n as i64))),
                )
                .filter(|(_, d)| *d != 0)
                .map(|(k, d)| format!("{k} {d:+}"))
                .collect();
            if !diff.is_empty() {
                println!(
                    "descriptors of {} {} {}, against baseline: {}",
                    p.name,
                    p.pid,
                    r.label,
                    diff.join(", ")
                );
            }
        }
    }
    println!("\ncycles by kind (mean time, failed):");
    for (k, t) in KINDS.iter().zip(&tallies) {
        let mean = if t.n > 0 {
            t.time.as_secs_f64() * 1000.0 / t.n as f64
        } else {
            0.0
        };
        println!(
            "  {:<10} {:>6} cycles, mean {mean:>6.0} ms, {} failed",
            format!("{k:?}"),
            t.n,
            t.failed
        );
    }
    for f in &failures {
        println!("  {f}");
    }
    let fps = frames as f64 / over.as_secs_f64().max(1e-9);
    println!(
        "{ran} cycles in {:.0} s ({:.1} cycles/s); watcher: {frames} frames in {:.0} s \
         ({fps:.1} fps), longest stall {} ms; load average at end {}",
        churn_time.as_secs_f64(),
        ran as f64 / churn_time.as_secs_f64(),
        over.as_secs_f64(),
        stall.as_millis(),
        loadavg()
    );

    let growth = last.rss() as f64 / mid.rss() as f64 - 1.0;
    let failed: usize = tallies.iter().map(|t| t.failed).sum();
    let pids = |r: &Report| r.procs.iter().map(|p| p.pid).collect::<Vec<u32>>();
    let released = |r: &Report| r.peers == 1 && r.branches == 1;
    let checks = [
        (
            "only the watcher's peer and branch left".to_owned(),
            format!(
                "peers {}/{}, branches {}/{}",
                mid.peers, last.peers, mid.branches, last.branches
            ),
            released(&mid) && released(&last),
        ),
        (
            "the same processes as at baseline (no restart)".to_owned(),
            format!("{:?} → {:?}", pids(&base), pids(&last)),
            pids(&base) == pids(&mid) && pids(&base) == pids(&last),
        ),
        (
            "descriptors and threads back to baseline".to_owned(),
            format!(
                "fds {} → {}, threads {} → {}",
                base.procs.iter().map(|p| p.fds).sum::<usize>(),
                last.procs.iter().map(|p| p.fds).sum::<usize>(),
                base.procs.iter().map(|p| p.threads).sum::<u64>(),
                last.procs.iter().map(|p| p.threads).sum::<u64>()
            ),
            last.back_to(&base) && mid.back_to(&base),
        ),
        (
            format!(
                "RSS after {ran} within {:.0} % of after {}",
                MAX_RSS_GROWTH * 100.0,
                opts.report_at.min(ran)
            ),
            format!(
                "{:.1} → {:.1} MB ({:+.1} %; anon {:.1} → {:.1} MB, {:+.1} %)",
                mb(mid.rss()),
                mb(last.rss()),
                growth * 100.0,
                mb(mid.anon()),
                mb(last.anon()),
                (last.anon() as f64 / mid.anon() as f64 - 1.0) * 100.0
            ),
            // A worker that restarted took its memory with it: not a comparison.
            growth <= MAX_RSS_GROWTH && pids(&mid) == pids(&last),
        ),
        (
            format!("watcher ≥ {MIN_WATCHER_FPS} fps over the run"),
            format!("{fps:.1} fps"),
            fps >= MIN_WATCHER_FPS,
        ),
        (
            format!("every cycle run ({})", opts.cycles),
            format!("{ran} run"),
            ran == opts.cycles,
        ),
        (
            "every cycle reached its abandon point".to_owned(),
            format!("{failed} failed"),
            failed == 0,
        ),
    ];
    println!("\ntargets:");
    for (name, got, ok) in &checks {
        println!("  {name:<44} {got:>36}  {}", verdict(*ok));
    }
    Ok(checks.iter().all(|(_, _, ok)| *ok))
}

fn main() -> Result<()> {
    media_program::ensure_built();
    let opts = Opts::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if runtime.block_on(run(&opts))? {
        Ok(())
    } else {
        // The device is dropped (killed) inside run, before this.
        std::process::exit(1)
    }
}
