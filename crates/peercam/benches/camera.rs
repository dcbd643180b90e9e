//! Camera benchmark (issue 3). Runs the release `peercam serve --source test` binary as a child
//! process at 1280x720@30 and drives it with GStreamer `webrtcbin` viewers from this process,
//! over loopback, printing:
//!
//! - the device's CPU (% of one core) over a steady window with 0 (idle, capture stopped), 1, 4
//!   and 8 viewers, and the ratios CPU(4)/CPU(1) and CPU(8)/CPU(1), next to the frames per
//!   second each viewer received in the same window;
//! - the device's RSS idle, with 1, 4 and 8 viewers, and after every viewer has left;
//! - join → first frame for sequential viewers that each join, get their first decoded frame
//!   and leave: the first join of the process (cold), later joins that each start capture
//!   again, and joins while another viewer keeps capture running.
//!
//! ```text
//! GStreamer viewers (this process) ──ws://127.0.0.1:PORT/signaling──▶ peercam serve (child)
//!                                  ◀──ICE/DTLS/SRTP on 127.0.0.1──────
//! ```
//!
//! The device is a separate process so that its CPU time and RSS are its own. Its figures are
//! for its process tree: the serving process and its media worker processes (`peercam-media
//! worker`, which come and go with the viewers), as alive at each reading. CPU is the
//! tree's, with the ticks of workers that exited and were reaped during a window kept (in the
//! serving process's cutime/cstime). RSS is summed over the tree, so library pages shared by
//! the processes count once per process and the sum is conservative; PSS (each shared page
//! split between the processes that map it) is shown beside it. To leave the device the CPU
//! it measures, the viewers in the CPU windows count H.264 access units after `rtph264depay`
//! instead of decoding (`--decode` makes them decode); the join phases decode.
//!
//! `cargo bench --bench camera` runs everything. Options: `--window SECS` (steady window,
//! default 10), `--settle SECS` (wait after the last viewer of a step starts playing, default
//! 3), `--joins N` (sequential joins per join phase, default 12), `--decode`, `--quick`
//! (window 3 s, 4 joins), `--device PATH` (measure that peercam binary instead of this
//! build's, e.g. a variant to compare side by side), `--smaps DIR` (save `/proc/PID/smaps` of
//! every process of the device's tree idle and after leave, as `DIR/smaps-LABEL-PID`, to see
//! which mappings hold the memory), `--audio` (the camera sends its test tone as well, one
//! shared Opus encode; without it the device runs with `[audio] source = "none"`).

// The viewers of the camera tests; the benchmark uses only them and the client under them.
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "support/media_program.rs"]
mod media_program;

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde_json::Value;
use support::gst_viewer::{Consume, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const BITRATE_KBPS: u32 = 2000;
const MAX_VIEWERS: usize = 8;
/// Viewer counts of the CPU windows, in order (viewers are added, never replaced).
const STEPS: [usize; 3] = [1, 4, 8];
/// Longest wait for any one thing (a viewer's first frame, a stats condition).
const LIMIT: Duration = Duration::from_secs(20);
/// Wait after the device reports capture stopped, before RSS is read.
const AFTER_LEAVE: Duration = Duration::from_secs(5);

// Targets (issue 3).
const MAX_RATIO_4: f64 = 1.2;
const MAX_RATIO_8: f64 = 1.5;
const MAX_IDLE_RSS_MB: f64 = 25.0;
const MAX_MB_PER_VIEWER: f64 = 4.0;
const MAX_AFTER_LEAVE_GROWTH: f64 = 0.10;
/// A viewer "keeps receiving" when it gets at least this share of the capture rate.
const MIN_FPS_SHARE: f64 = 0.9;

#[derive(Debug, Clone)]
struct Opts {
    window: f64,
    settle: f64,
    joins: usize,
    decode: bool,
    /// The peercam binary to measure.
    device: PathBuf,
    /// Where to save /proc/PID/smaps of the device's processes at idle and after leave.
    smaps: Option<PathBuf>,
    /// The camera sends sound (the test tone) too.
    audio: bool,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            window: if quick { 3.0 } else { 10.0 },
            settle: 3.0,
            joins: if quick { 4 } else { 12 },
            decode: false,
            device: PathBuf::from(env!("CARGO_BIN_EXE_peercam")),
            smaps: None,
            audio: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| anyhow!("{a} needs a value"))
                    .cloned()
            };
            match a.as_str() {
                "--window" => o.window = value()?.parse()?,
                "--settle" => o.settle = value()?.parse()?,
                "--joins" => o.joins = value()?.parse()?,
                "--decode" => o.decode = true,
                "--audio" => o.audio = true,
                "--device" => o.device = PathBuf::from(value()?),
                "--smaps" => o.smaps = Some(PathBuf::from(value()?)),
                // `cargo bench` passes --bench; --quick is read above.
                "--quick" | "--bench" => {}
                other => bail!("unknown option {other}"),
            }
        }
        if !((1.0..=120.0).contains(&o.window) && (0.0..=60.0).contains(&o.settle)) {
            bail!("--window must be 1..120 s and --settle 0..60 s");
        }
        if !(2..=100).contains(&o.joins) {
            bail!("--joins must be 2..100");
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU time of a process or thread, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    /// utime + stime: its own (for a process, all its threads', including exited ones).
    own: u64,
    /// cutime + cstime: its children's that it has waited for (process-wide, also in a
    /// thread's stat).
    reaped: u64,
}

/// The command name and CPU ticks from a `/proc/…/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn stat_ticks(stat: &str) -> Option<(String, Ticks)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some((
        name,
        Ticks {
            own: field(14)? + field(15)?,
            reaped: field(16)? + field(17)?,
        },
    ))
}

/// CPU ticks of one process (`self` or a pid).
fn process_ticks(pid: &str) -> Result<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    stat_ticks(&stat)
        .map(|(_, t)| t)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))
}

/// A process and all its descendants alive now, the process first and every parent before
/// its children. Children are read from `/proc/PID/task/TID/children` of every thread (a child
/// is listed under the thread that started it). A descendant that exits while being read is
/// skipped; the process itself must be readable.
fn process_tree(pid: u32) -> Result<Vec<u32>> {
    // The main thread lives as long as the process; without CONFIG_PROC_CHILDREN the file is
    // missing, and the tree would silently be the process alone.
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

/// `read` for every process of a `process_tree`: an error for its first process (the root)
/// is returned, a descendant that could not be read (it exited meanwhile) is skipped.
fn each_process<T>(tree: &[u32], mut read: impl FnMut(u32) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(tree.len());
    for (i, &pid) in tree.iter().enumerate() {
        match read(pid) {
            Ok(v) => out.push(v),
            Err(e) if i == 0 => return Err(e),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// CPU ticks of a process tree so far: the root's own and reaped children's, plus the same of
/// every live descendant. A descendant that exits and is waited for moves its ticks (with its
/// own reaped children's) into its parent's cutime/cstime, so the sum stays continuous as
/// processes come and go. The descendants are read between two readings of the root, and
/// again if the root reaped a child in between, so that no exit is counted twice or lost.
fn tree_ticks(pid: u32) -> Result<u64> {
    let mut total = 0;
    for _ in 0..5 {
        let root = process_ticks(&pid.to_string())?;
        let tree = process_tree(pid)?;
        let rest: u64 = tree[1..]
            .iter()
            .filter_map(|p| process_ticks(&p.to_string()).ok())
            .map(|t| t.own + t.reaped)
            .sum();
        total = root.own + root.reaped + rest;
        if process_ticks(&pid.to_string())?.reaped == root.reaped {
            break;
        }
    }
    Ok(total)
}

/// Per-thread CPU ticks of every process of a tree: tid → (thread name, own ticks).
fn thread_ticks(tree: &[u32]) -> HashMap<String, (String, u64)> {
    let mut out = HashMap::new();
    for pid in tree {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for entry in dir.flatten() {
            let tid = entry.file_name().to_string_lossy().into_owned();
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
                if let Some((name, t)) = stat_ticks(&stat) {
                    out.insert(tid, (name, t.own));
                }
            }
        }
    }
    out
}

/// Busy and total ticks of the whole machine (all cores), from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// A `kB` field (`Field:   123 kB`) of a `/proc/<pid>/status` or `smaps_rollup` text.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory of a process tree, KiB: total, its heap/anonymous and file-backed (code)
/// parts, summed over the processes (a page shared by two processes counts twice), and the
/// proportional set size (a shared page split between the processes that map it).
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
    pss: u64,
    processes: usize,
}

impl Rss {
    /// One process, from `/proc/<pid>/status` and `/proc/<pid>/smaps_rollup`.
    fn of(pid: u32) -> Result<Rss> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let status_kib =
            |field: &str| kib_field(&status, field).ok_or_else(|| anyhow!("no {field} in {path}"));
        let rollup = format!("/proc/{pid}/smaps_rollup");
        let pss = kib_field(
            &std::fs::read_to_string(&rollup).with_context(|| format!("reading {rollup}"))?,
            "Pss",
        )
        .ok_or_else(|| anyhow!("no Pss in {rollup}"))?;
        Ok(Rss {
            total: status_kib("VmRSS")?,
            anon: status_kib("RssAnon")?,
            file: status_kib("RssFile")?,
            pss,
            processes: 1,
        })
    }

    /// The sum over the process tree of `pid`.
    fn of_tree(pid: u32) -> Result<Rss> {
        let tree = process_tree(pid)?;
        let each = each_process(&tree, Rss::of)?;
        Ok(each.iter().fold(Rss::default(), |a, b| Rss {
            total: a.total + b.total,
            anon: a.anon + b.anon,
            file: a.file + b.file,
            pss: a.pss + b.pss,
            processes: a.processes + b.processes,
        }))
    }

    fn parts(&self) -> String {
        format!(
            "anon {:.1} + file {:.1} ({} process{}, PSS {:.1})",
            mb(self.anon),
            mb(self.file),
            self.processes,
            if self.processes == 1 { "" } else { "es" },
            mb(self.pss)
        )
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The device under test.

/// The `peercam serve` child process; killed when dropped.
struct Device {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    /// The access token file in its state directory (what `peercam token` reads).
    token_file: PathBuf,
}

/// The camera part of `/api/stats`.
#[derive(Debug, Clone, Copy, Default)]
struct CameraStats {
    peers: u64,
    branches: u64,
    connected: u64,
    frames: u64,
    capturing: bool,
}

impl Device {
    async fn start(binary: &Path, audio: bool) -> Result<Device> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("peercam-camera-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("camera.toml");
        std::fs::write(
            &config,
            format!(
                "[camera]\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n\
                 bitrate_kbps = {BITRATE_KBPS}\nmax_viewers = {MAX_VIEWERS}\n\
                 [audio]\nsource = \"{}\"\n",
                if audio { "test" } else { "none" }
            ),
        )?;
        let log = dir.join("peercam.log");
        let out = File::create(&log)?;
        let child = Command::new(binary)
            // Its TLS certificate goes in the scratch directory, not the user's state.
            .env("STATE_DIRECTORY", &dir)
            .arg("serve")
            .arg("--source")
            .arg("test")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--ice-address")
            .arg("127.0.0.1")
            .arg("--config")
            .arg(&config)
            // Keeps every packet on loopback; the start-up benchmark covers discovery.
            .arg("--no-discovery")
            // info: the chosen capture pipeline is logged once at start.
            .env("RUST_LOG", "info")
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

    /// The device's processes alive now: the serving process first, then its media workers
    /// (and anything else it started).
    fn tree(&self) -> Result<Vec<u32>> {
        process_tree(self.pid())
    }

    /// CPU ticks of the device's process tree so far.
    fn cpu_ticks(&self) -> Result<u64> {
        tree_ticks(self.pid())
    }

    /// Per-thread CPU ticks of every process of the device's tree.
    fn thread_ticks(&self) -> Result<HashMap<String, (String, u64)>> {
        Ok(thread_ticks(&self.tree()?))
    }

    /// Copies the memory map with per-mapping sizes of every process of the device's tree to
    /// `DIR/smaps-LABEL-PID`.
    fn save_smaps(&self, dir: Option<&Path>, label: &str) -> Result<()> {
        let Some(dir) = dir else { return Ok(()) };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        each_process(&self.tree()?, |pid| {
            let to = dir.join(format!("smaps-{label}-{pid}"));
            std::fs::copy(format!("/proc/{pid}/smaps"), &to).map_err(|e| {
                // A worker that exited while being copied leaves no partial file.
                let _ = std::fs::remove_file(&to);
                anyhow!(e).context(format!("saving {}", to.display()))
            })
        })?;
        Ok(())
    }

    /// Resident memory of the device's process tree.
    fn rss(&self) -> Result<Rss> {
        Rss::of_tree(self.pid())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("{} (log {})", tail, self.log.display())
    }

    /// The capture pipeline the device chose, from its start-up log.
    fn pipeline(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.split_once("camera: ").map(|(_, p)| p.to_owned()))
            .unwrap_or_else(|| "?".into())
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
            connected: n("connected"),
            frames: n("frames"),
            capturing: c["capturing"].as_bool().unwrap_or(false),
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
            sleep(Duration::from_millis(50)).await;
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
// Viewers.

/// A viewer whose signaling runs in its own task (it must keep reading to answer the
/// server's keep-alives) until it is told to leave.
struct Watching {
    frames: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Session>,
}

impl Watching {
    async fn start(url: &str, consume: Consume) -> Result<Watching> {
        let mut session = Session::open_with(url, "join", "camera", consume).await;
        session.pump(LIMIT, |s| s.first_frame.is_some()).await;
        if session.first_frame.is_none() {
            bail!("a viewer got no video: signals {:?}", session.signals());
        }
        let frames = session.viewer.frames.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let task = tokio::spawn(async move {
            // Bounded by the stop flag, and by an hour in case it is never set.
            session
                .pump(Duration::from_secs(3600), move |_| {
                    done.load(Ordering::Relaxed)
                })
                .await;
            session
        });
        Ok(Watching { frames, stop, task })
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    async fn leave(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let session = timeout(Duration::from_secs(5), self.task)
            .await
            .map_err(|_| anyhow!("a viewer's signaling did not stop"))??;
        session.leave().await;
        Ok(())
    }
}

/// One sequential join, times from the `join` message.
#[derive(Debug, Clone, Copy)]
struct Join {
    /// The camera's offer (answerRequest) received.
    offer: Duration,
    /// The viewer's peer connection connected (ICE and DTLS done).
    connected: Duration,
    /// The first decoded frame.
    first_frame: Duration,
}

/// Joins as a decoding viewer, waits for the first frame, leaves, and waits until the device
/// is back to `already` peers. `jitter_ms` sets the viewer's jitterbuffer latency (webrtcbin's
/// default is 200 ms).
async fn join_once(
    device: &Device,
    jitter_ms: Option<u32>,
    already: u64,
) -> Result<(Join, String)> {
    let mut s = Session::open_with(&device.ws_url()?, "join", "camera", Consume::Decode).await;
    if let Some(ms) = jitter_ms {
        // The jitterbuffer is made when the stream arrives, well after this.
        s.viewer.webrtc.set_property("latency", ms);
    }
    s.pump(LIMIT, |s| {
        s.received.iter().any(|m| m.signal == "answerRequest")
    })
    .await;
    let offer = s.started.elapsed();
    s.pump(LIMIT, |s| s.first_frame.is_some()).await;
    let Some(first_frame) = s.first_frame else {
        bail!("no frame within {LIMIT:?}; signals {:?}", s.signals());
    };
    let connected = s
        .viewer
        .connected_at
        .get()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(s.started));
    let size = match *s.viewer.size.lock().unwrap() {
        Some((w, h)) => format!("{w}x{h}"),
        None => "-".into(),
    };
    s.leave().await;
    device
        .wait_stats("the viewer to be released", |c| {
            c.peers == already && c.branches == already && c.capturing == (already > 0)
        })
        .await?;
    Ok((
        Join {
            offer,
            connected,
            first_frame,
        },
        size,
    ))
}

/// Loads, in this process, what the first viewer would otherwise load during its join: the
/// plugins, and webrtcbin's DTLS certificate (a few hundred ms to generate), so that the cold
/// join measures the device, not the viewer.
fn warm_up_viewer_side() -> Result<String> {
    gst::init()?;
    for f in [
        "webrtcbin",
        "rtph264depay",
        "decodebin",
        "videoconvert",
        "fakesink",
    ] {
        gst::ElementFactory::make(f)
            .build()
            .with_context(|| format!("GStreamer element {f} is missing"))?;
    }
    if let Ok(dec) = gst::ElementFactory::make("dtlsdec").build() {
        let _ = dec.property::<Option<String>>("pem");
    }
    // The decoder decodebin will pick: the highest-ranked one for H.264.
    let h264 = gst::Caps::builder("video/x-h264").build();
    let decoders = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::MARGINAL,
    );
    let best = decoders
        .iter()
        .filter(|f| f.can_sink_any_caps(&h264))
        .max_by_key(|f| f.rank())
        .ok_or_else(|| anyhow!("no H.264 decoder"))?;
    best.create().build()?;
    Ok(best.name().to_string())
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// One steady window.
struct Window {
    viewers: usize,
    device_cpu: f64,
    bench_cpu: f64,
    other_cpu: f64,
    rss: Rss,
    fps: Vec<f64>,
    encoded_fps: f64,
    top_threads: Vec<(String, usize, f64)>,
    threads: usize,
}

/// Thread names with their numbers replaced by `#`, so that one element per peer groups.
fn thread_group(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn measure(device: &Device, viewers: &[Watching], secs: f64) -> Result<Window> {
    let ticks = clock_ticks();
    let frames0: Vec<u64> = viewers.iter().map(Watching::frames).collect();
    let encoded0 = device.stats().await?.frames;
    let threads0 = device.thread_ticks()?;
    let (dev0, me0, (busy0, total0)) = (
        device.cpu_ticks()?,
        process_ticks("self")?.own,
        machine_ticks(),
    );
    let t0 = Instant::now();
    sleep(Duration::from_secs_f64(secs)).await;
    let (dev1, me1, (busy1, total1)) = (
        device.cpu_ticks()?,
        process_ticks("self")?.own,
        machine_ticks(),
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let frames1: Vec<u64> = viewers.iter().map(Watching::frames).collect();
    let threads1 = device.thread_ticks()?;
    let encoded1 = device.stats().await?.frames;
    let pct = |t: u64| t as f64 / ticks / elapsed * 100.0;
    // Saturating: ticks of a descendant that exits unwaited for (reparented) are gone.
    let device_cpu = pct(dev1.saturating_sub(dev0));
    let bench_cpu = pct(me1 - me0);
    // /proc/stat counts every core: its busy ticks over the window, in % of one core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine = if total1 > total0 {
        (busy1 - busy0) as f64 / (total1 - total0) as f64 * cores * 100.0
    } else {
        0.0
    };
    // Threads of every process of the device's tree at the end of the window (a worker that
    // exited during it is in device_cpu, not here).
    let mut groups: HashMap<String, (usize, u64)> = HashMap::new();
    for (tid, (name, t1)) in &threads1 {
        let t0 = threads0.get(tid).map_or(0, |(_, t)| *t);
        let g = groups.entry(thread_group(name)).or_default();
        g.0 += 1;
        g.1 += t1.saturating_sub(t0);
    }
    let mut top: Vec<(String, usize, f64)> = groups
        .into_iter()
        .map(|(name, (n, t))| (name, n, pct(t)))
        .filter(|(_, _, p)| *p >= 0.5)
        .collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    top.truncate(8);
    Ok(Window {
        viewers: viewers.len(),
        device_cpu,
        bench_cpu,
        other_cpu: (machine - device_cpu - bench_cpu).max(0.0),
        rss: device.rss()?,
        fps: frames0
            .iter()
            .zip(&frames1)
            .map(|(a, b)| (b - a) as f64 / elapsed)
            .collect(),
        encoded_fps: (encoded1 - encoded0) as f64 / elapsed,
        top_threads: top,
        threads: threads1.len(),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn summary(joins: &[Join]) -> String {
    if joins.is_empty() {
        return "-".into();
    }
    let sorted = |f: fn(&Join) -> Duration| {
        let mut v: Vec<Duration> = joins.iter().map(f).collect();
        v.sort();
        v
    };
    let first = sorted(|j| j.first_frame);
    let offer = sorted(|j| j.offer);
    let connected = sorted(|j| j.connected);
    format!(
        "n={:<2} median {:>6}  p90 {:>6}  (min {}, max {});  medians: offer {}, connected {}",
        joins.len(),
        ms(percentile(&first, 50.0)),
        ms(percentile(&first, 90.0)),
        ms(first[0]),
        ms(first[first.len() - 1]),
        ms(percentile(&offer, 50.0)),
        ms(percentile(&connected, 50.0)),
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

// ---------------------------------------------------------------------------------------------

async fn run(opts: &Opts) -> Result<()> {
    let window_consume = if opts.decode {
        Consume::Decode
    } else {
        Consume::AccessUnits
    };
    println!("peercam camera benchmark");
    println!(
        "machine: {} cores {} ({}), {}, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
        cpu_model(),
        gst::version_string(),
        loadavg()
    );
    let decoder = warm_up_viewer_side()?;
    let device = Device::start(&opts.device, opts.audio).await?;
    println!(
        "device: {} serve --source test --no-discovery ({WIDTH}x{HEIGHT}@{FPS}, \
         {BITRATE_KBPS} kbit/s), sound: {}, pid {}",
        opts.device.display(),
        if opts.audio {
            "test tone, Opus 32 kbit/s"
        } else {
            "none"
        },
        device.pid()
    );
    println!("device pipeline: {}", device.pipeline());
    println!(
        "viewers: GStreamer webrtcbin in this process, all on 127.0.0.1. CPU windows: {}. \
         Joins: decode ({decoder}).",
        match window_consume {
            Consume::Decode => "every viewer decodes",
            Consume::AccessUnits =>
                "viewers count H.264 access units after rtph264depay and do not decode",
        }
    );
    println!(
        "window {:.0} s per step, starting {:.0} s after the last viewer of the step plays\n",
        opts.window, opts.settle
    );

    // Idle: capture stopped.
    sleep(Duration::from_secs(2)).await;
    let idle = measure(&device, &[], opts.window).await?;
    let idle_rss = device.rss()?;
    device.save_smaps(opts.smaps.as_deref(), "idle")?;

    // Sequential joins, nobody else watching: every join starts capture.
    let mut sizes = Vec::new();
    let mut alone = Vec::new();
    for _ in 0..opts.joins {
        let (j, size) = join_once(&device, None, 0).await?;
        alone.push(j);
        sizes.push(size);
    }

    // CPU and RSS with 1, 4 and 8 viewers.
    let mut viewers: Vec<Watching> = Vec::new();
    let mut windows = Vec::new();
    for &n in &STEPS {
        while viewers.len() < n {
            viewers.push(Watching::start(&device.ws_url()?, window_consume).await?);
        }
        device
            .wait_stats(&format!("{n} connected viewers"), |c| {
                c.peers == n as u64 && c.connected == n as u64 && c.branches == n as u64
            })
            .await?;
        // Each join forces a keyframe for everyone; let that and the new peers' RTCP settle.
        sleep(Duration::from_secs_f64(opts.settle)).await;
        windows.push(measure(&device, &viewers, opts.window).await?);
    }

    // Everyone leaves.
    for v in viewers.drain(..) {
        v.leave().await?;
    }
    device
        .wait_stats("every viewer released and capture stopped", |c| {
            c.peers == 0 && c.branches == 0 && c.connected == 0 && !c.capturing
        })
        .await?;
    sleep(AFTER_LEAVE).await;
    let after_rss = device.rss()?;
    device.save_smaps(opts.smaps.as_deref(), "after-leave")?;
    // Sequential joins while one viewer keeps capture running: with webrtcbin's default
    // jitterbuffer, then with none, which leaves the device's and the connection's share.
    let holder = Watching::start(&device.ws_url()?, window_consume).await?;
    let mut watched = Vec::new();
    let mut watched_nojb = Vec::new();
    for _ in 0..opts.joins {
        let (j, size) = join_once(&device, None, 1).await?;
        watched.push(j);
        sizes.push(size);
    }
    for _ in 0..opts.joins {
        let (j, size) = join_once(&device, Some(0), 1).await?;
        watched_nojb.push(j);
        sizes.push(size);
    }
    holder.leave().await?;
    let end_load = loadavg();

    // ---- Report.
    let cpu1 = windows[0].device_cpu;
    let rss1 = windows[0].rss.total;
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>12}  {:>22} {:>7} {:>9} {:>9}",
        "viewers",
        "device CPU",
        "÷CPU(1)",
        "RSS",
        "ΔRSS/viewer",
        "viewer fps min/med/max",
        "enc fps",
        "bench CPU",
        "other CPU"
    );
    let row = |w: &Window, label: String| {
        let mut fps = w.fps.clone();
        fps.sort_by(f64::total_cmp);
        let fps_s = if fps.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{:.1}/{:.1}/{:.1}",
                fps[0],
                fps[fps.len() / 2],
                fps[fps.len() - 1]
            )
        };
        let (ratio, per) = match w.viewers {
            0 => ("-".to_owned(), "-".to_owned()),
            1 => ("1.00".to_owned(), "-".to_owned()),
            n => (
                format!("{:.2}", w.device_cpu / cpu1),
                format!("{:.2} MB", (mb(w.rss.total) - mb(rss1)) / (n - 1) as f64),
            ),
        };
        println!(
            "{:<12} {:>9.1}% {:>8} {:>5.1} MB {:>12}  {:>22} {:>7.1} {:>8.1}% {:>8.1}%",
            label,
            w.device_cpu,
            ratio,
            mb(w.rss.total),
            per,
            fps_s,
            w.encoded_fps,
            w.bench_cpu,
            w.other_cpu
        );
    };
    row(&idle, "0 (idle)".into());
    for w in &windows {
        row(w, w.viewers.to_string());
    }
    println!(
        "{:<12} {:>10} {:>8} {:>5.1} MB  (all left: peers=0, capture stopped, then {} s)",
        "after leave",
        "",
        "",
        mb(after_rss.total),
        AFTER_LEAVE.as_secs()
    );
    println!("\nRSS parts (MB): idle {}", idle_rss.parts());
    for w in &windows {
        println!("  {} viewers {}", w.viewers, w.rss.parts());
    }
    println!("  after leave {}", after_rss.parts());
    println!("\nwhere the device's CPU goes (threads grouped by name, % of one core):");
    for w in std::iter::once(&idle).chain(&windows) {
        let list: Vec<String> = w
            .top_threads
            .iter()
            .map(|(name, n, p)| format!("{name} ×{n} {p:.1}"))
            .collect();
        println!(
            "  {} viewers ({} threads): {}",
            w.viewers,
            w.threads,
            list.join(", ")
        );
    }
    println!("frames/s received by each viewer during its window:");
    for w in &windows {
        let list: Vec<String> = w.fps.iter().map(|f| format!("{f:.1}")).collect();
        println!("  {} viewers: {}", w.viewers, list.join(" "));
    }

    sizes.sort();
    sizes.dedup();
    println!(
        "\njoin → first decoded frame, GStreamer viewer (webrtcbin ! rtph264depay ! decodebin, \
         frames {}; plugins and DTLS certificate loaded beforehand), sequential joins, each \
         leaving after its first frame:",
        sizes.join(",")
    );
    println!(
        "  cold: first join of the process, capture starting        {} (offer {}, connected {})",
        ms(alone[0].first_frame),
        ms(alone[0].offer),
        ms(alone[0].connected)
    );
    println!(
        "  warm, alone: capture starts again for each join          {}",
        summary(&alone[1..])
    );
    println!(
        "  warm, capture running (another viewer watching)          {}",
        summary(&watched)
    );
    println!(
        "  warm, capture running, viewer jitterbuffer 0 (not 200 ms) {}",
        summary(&watched_nojb)
    );
    println!("load average at end: {end_load}");

    // ---- Targets.
    let ratio4 = windows[1].device_cpu / cpu1;
    let ratio8 = windows[2].device_cpu / cpu1;
    let per4 = (mb(windows[1].rss.total) - mb(rss1)) / 3.0;
    let per8 = (mb(windows[2].rss.total) - mb(rss1)) / 7.0;
    let growth = after_rss.total as f64 / idle_rss.total as f64 - 1.0;
    let min_fps = windows
        .iter()
        .flat_map(|w| w.fps.iter().copied())
        .fold(f64::INFINITY, f64::min);
    println!("\ntargets:");
    let line =
        |name: &str, got: String, ok: bool| println!("  {name:<44} {got:>22}  {}", verdict(ok));
    line(
        &format!("CPU(4)/CPU(1) ≤ {MAX_RATIO_4}"),
        format!("{ratio4:.2}"),
        ratio4 <= MAX_RATIO_4,
    );
    line(
        &format!("CPU(8)/CPU(1) ≤ {MAX_RATIO_8}"),
        format!("{ratio8:.2}"),
        ratio8 <= MAX_RATIO_8,
    );
    line(
        &format!("RSS idle ≤ {MAX_IDLE_RSS_MB} MB"),
        format!("{:.1} MB", mb(idle_rss.total)),
        mb(idle_rss.total) <= MAX_IDLE_RSS_MB,
    );
    line(
        &format!("RSS per extra viewer ≤ {MAX_MB_PER_VIEWER} MB (1→4, 1→8)"),
        format!("{per4:.2} / {per8:.2} MB"),
        per4 <= MAX_MB_PER_VIEWER && per8 <= MAX_MB_PER_VIEWER,
    );
    line(
        &format!(
            "RSS after leave within {:.0} % of idle",
            MAX_AFTER_LEAVE_GROWTH * 100.0
        ),
        format!("{:.1} MB ({:+.1} %)", mb(after_rss.total), growth * 100.0),
        growth <= MAX_AFTER_LEAVE_GROWTH,
    );
    line(
        &format!(
            "every viewer ≥ {:.0} fps in every window",
            FPS as f64 * MIN_FPS_SHARE
        ),
        format!("min {min_fps:.1} fps"),
        min_fps >= FPS as f64 * MIN_FPS_SHARE,
    );
    Ok(())
}

fn main() -> Result<()> {
    media_program::ensure_built();
    let opts = Opts::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Bounded as a whole as well as step by step.
    runtime.block_on(async {
        timeout(Duration::from_secs(900), run(&opts))
            .await
            .map_err(|_| anyhow!("the benchmark did not finish within 15 min"))?
    })
}
