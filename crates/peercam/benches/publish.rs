//! Publishing benchmark: the device publishes once over WHIP to Janus, and 1, 5, 10 viewers
//! watch through Janus; then the same numbers of viewers watch the device directly. For each
//! step it prints the device's CPU (its process tree: the serving process and its media
//! workers, % of one core) and its upstream (bytes leaving its namespace, kbit/s) over a
//! steady window, Janus's CPU, and the least frame rate any viewer of Janus decoded; then the
//! ratios of the most viewers to the fewest on each path.
//!
//! ```text
//!  namespace "camera" (10.213.13.1)          namespace "server" (10.213.13.2)
//!  peercam serve ──WHIP, one H.264 stream──▶ simple-whip-server + Janus ══▶ N aiortc viewers
//!                ══════════ N streams (directly, nextRTC) ══════════════════▶ N aiortc viewers
//! ```
//!
//! The device runs the release build (the SMPTE bars scrolling, 640x480 at 30 fps, x264 at
//! 1500 kbit/s, [`support::lan`]); Janus and its WHIP front as in the tests
//! ([`support::janus`]). Viewers are aiortc (tests/aiortc/janus_viewer.py through Janus,
//! tests/aiortc/viewer.py directly), which decode what they get: the same work on both paths.
//!
//! Each step's window starts 2 s after every viewer of Janus has decoded a first frame, or
//! after the device counts every direct viewer connected; the direct viewers are stopped after
//! it, and the next step waits until the device has let them all go.
//!
//! `cargo bench --bench publish` (as root: network namespaces; `scripts/setup.sh --test`
//! installs what it needs). Options: `--window SECS` (default 10), `--settle SECS` (wait after
//! the device goes live, before the window without viewers; default 8), `--steps 1,5,10`.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "support/media_program.rs"]
mod media_program;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use support::janus::{check_prerequisites, MediaServer};
use support::lan::{output, repo, LossyLan, PORT};
use support::scratch::Scratch;

const CAMERA_ADDR: &str = "10.213.13.1";
const SERVER_ADDR: &str = "10.213.13.2";
const TOKEN: &str = "bench-stream-key";

/// What one window measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The device's CPU, % of one core.
    cpu: f64,
    /// The device's upstream, kbit/s.
    kbps: f64,
    /// Janus's CPU, % of one core (through Janus only).
    janus: Option<f64>,
}

/// The command line's options.
struct Options {
    /// Seconds each window measures.
    window: u64,
    /// Seconds after the device goes live before the window without viewers.
    settle: u64,
    /// The numbers of viewers, in turn.
    steps: Vec<u32>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        window: 10,
        settle: 8,
        steps: vec![1, 5, 10],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .ok_or_else(|| anyhow!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--window" => o.window = value()?.parse()?,
            "--settle" => o.settle = value()?.parse()?,
            "--steps" => {
                o.steps = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            // What cargo bench passes to every bench.
            "--bench" => {
                i += 1;
                continue;
            }
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = options()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("this benchmark needs root (network namespaces)");
    }
    check_prerequisites();
    media_program::ensure_built();
    let lan = LossyLan::new(CAMERA_ADDR, SERVER_ADDR, 0);
    let scratch = Scratch::new("bench-publish");
    let server = MediaServer::start(&lan.laptop, &scratch.join("server"), SERVER_ADDR);
    server.create_endpoint("porch", TOKEN);

    // Through Janus: the device publishes once.
    let extra = format!(
        "[publish]\nenabled = true\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
        server.endpoint_url("porch")
    );
    let device = lan.serve_with(&scratch, 1500, &extra);
    wait_live(&device)?;
    std::thread::sleep(Duration::from_secs(o.settle));
    let idle = measure(&lan, device.pid(), server.janus_pid(), o.window)?;
    println!(
        "through Janus, 0 viewers (publishing): device {:.1} % CPU, {:.0} kbit/s up; Janus {:.1} % CPU",
        idle.cpu,
        idle.kbps,
        idle.janus.unwrap_or(0.0)
    );
    let mut janus = Vec::new();
    for &n in &o.steps {
        let mut viewers = server
            .watch_command(n, 30, (o.window + 4) as u32, 60)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the viewers of Janus")?;
        let stderr = viewers.stderr.take().context("the viewers' stderr")?;
        first_frames(stderr, n, Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_secs(2));
        let sample = measure(&lan, device.pid(), server.janus_pid(), o.window)?;
        let fps = least_fps(viewers)?;
        println!(
            "through Janus, {n} viewers: device {:.1} % CPU, {:.0} kbit/s up; Janus {:.1} % CPU; \
             least viewer fps {fps:.1}",
            sample.cpu,
            sample.kbps,
            sample.janus.unwrap_or(0.0)
        );
        janus.push((n, sample));
    }
    device.stop();
    drop(server);

    // Directly: the same viewers, each a peer of the device (whose viewer limit is raised).
    let direct_scratch = Scratch::new("bench-direct");
    let device = lan.serve_with(&direct_scratch, 1500, "max_viewers = 32\n");
    let token = device.token();
    let url = format!(
        "ws://{CAMERA_ADDR}:{PORT}/signaling{}",
        token
            .as_deref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default()
    );
    let mut direct = Vec::new();
    for &n in &o.steps {
        let mut viewers: Vec<Child> = (0..n)
            .map(|_| {
                lan.laptop
                    .command(
                        python().as_str(),
                        &[
                            &repo().join("tests/aiortc/viewer.py").display().to_string(),
                            &url,
                            "--frames",
                            "1000000",
                            "--timeout",
                            "600",
                        ],
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting a direct viewer")
            })
            .collect::<Result<_>>()?;
        wait_connected(&lan, token.as_deref(), n as u64, Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_secs(2));
        let sample = measure(&lan, device.pid(), None, o.window)?;
        let connected = camera_stats(&lan, token.as_deref())?["connected"].as_u64();
        for viewer in &mut viewers {
            let _ = viewer.kill();
            let _ = viewer.wait();
        }
        println!(
            "directly, {n} viewers: device {:.1} % CPU, {:.0} kbit/s up; connected at the end \
             of the window: {}",
            sample.cpu,
            sample.kbps,
            connected.unwrap_or(0)
        );
        direct.push((n, sample));
        wait_connected(&lan, token.as_deref(), 0, Duration::from_secs(30))?;
    }
    device.stop();

    println!("\n| viewers | through Janus: device CPU | upstream | Janus CPU | directly: device CPU | upstream |");
    println!("|---|---|---|---|---|---|");
    for ((n, j), (_, d)) in janus.iter().zip(&direct) {
        println!(
            "| {n} | {:.1} % | {:.0} kbit/s | {:.1} % | {:.1} % | {:.0} kbit/s |",
            j.cpu,
            j.kbps,
            j.janus.unwrap_or(0.0),
            d.cpu,
            d.kbps
        );
    }
    if let (Some(first), Some(last)) = (janus.first(), janus.last()) {
        let (df, dl) = (direct.first().map(|d| d.1), direct.last().map(|d| d.1));
        println!(
            "\n{} viewers / {}: through Janus CPU {:.2}, upstream {:.2}; directly CPU {:.2}, upstream {:.2}",
            last.0,
            first.0,
            last.1.cpu / first.1.cpu,
            last.1.kbps / first.1.kbps,
            dl.zip(df).map_or(0.0, |(l, f)| l.cpu / f.cpu),
            dl.zip(df).map_or(0.0, |(l, f)| l.kbps / f.kbps),
        );
    }
    Ok(())
}

fn python() -> String {
    repo()
        .join("tests/aiortc/.venv/bin/python")
        .display()
        .to_string()
}

/// Waits until the device says it is live.
fn wait_live(device: &support::device::Serve) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !device.logs().lines().any(|l| l.ends_with(": live")) {
        if Instant::now() > deadline {
            bail!("the device did not go live:\n{}", device.logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until janus_viewer.py has announced `n` first frames on `stderr` (which is drained
/// on afterwards).
fn first_frames(stderr: ChildStderr, n: u32, limit: Duration) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = 0;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("first frame") {
                seen += 1;
                let _ = tx.send(seen);
            }
        }
    });
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(seen) if seen >= n => return Ok(()),
            Ok(_) => {}
            Err(_) => bail!("fewer than {n} viewers of Janus saw a first frame within {limit:?}"),
        }
    }
}

/// The camera part of `/api/stats`, read inside the camera namespace.
fn camera_stats(lan: &LossyLan, token: Option<&str>) -> Result<Value> {
    let url = format!("http://{CAMERA_ADDR}:{PORT}/api/stats");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["netns", "exec", &lan.camera.name, "curl", "-sS", &url];
    if let Some(auth) = &auth {
        args.extend(["-H", auth]);
    }
    let body = output("ip", &args).map_err(|e| anyhow!(e))?;
    let stats: Value = serde_json::from_str(&body).context("/api/stats")?;
    Ok(stats["camera"].clone())
}

/// Waits until `n` viewers are connected to the device.
fn wait_connected(lan: &LossyLan, token: Option<&str>, n: u64, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let connected = camera_stats(lan, token)?["connected"].as_u64().unwrap_or(0);
        if connected == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{connected} viewers connected to the device after {limit:?}, not {n}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The least frame rate any of janus_viewer.py's viewers decoded (they must all have).
fn least_fps(viewers: Child) -> Result<f64> {
    let out = viewers.wait_with_output()?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow!(
            "janus_viewer.py printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let list = report["viewers"].as_array().cloned().unwrap_or_default();
    let mut least = f64::MAX;
    for v in &list {
        let fps = v["fps"].as_f64().unwrap_or(0.0);
        if fps == 0.0 {
            bail!("a viewer of Janus saw nothing: {report}");
        }
        least = least.min(fps);
    }
    Ok(least)
}

/// The device's CPU and upstream, and Janus's CPU, over `secs`.
fn measure(lan: &LossyLan, device: u32, janus: Option<u32>, secs: u64) -> Result<Sample> {
    let tick = clock_ticks();
    let (d0, j0, b0, t0) = (
        tree_ticks(device)?,
        janus.map(tree_ticks).transpose()?,
        tx_bytes(lan)?,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (d1, j1, b1) = (
        tree_ticks(device)?,
        janus.map(tree_ticks).transpose()?,
        tx_bytes(lan)?,
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let percent = |a: u64, b: u64| (b - a) as f64 / tick / elapsed * 100.0;
    Ok(Sample {
        cpu: percent(d0, d1),
        kbps: (b1 - b0) as f64 * 8.0 / 1000.0 / elapsed,
        janus: j0.zip(j1).map(|(a, b)| percent(a, b)),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Bytes sent by the camera namespace's interfaces other than loopback.
fn tx_bytes(lan: &LossyLan) -> Result<u64> {
    let dev = output(
        "ip",
        &["netns", "exec", &lan.camera.name, "cat", "/proc/net/dev"],
    )
    .map_err(|e| anyhow!(e))?;
    Ok(dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .filter_map(|(_, fields)| fields.split_whitespace().nth(8)?.parse::<u64>().ok())
        .sum())
}

/// CPU ticks of a process and its live descendants (utime, stime, and the reaped children's).
fn tree_ticks(pid: u32) -> Result<u64> {
    let mut total = 0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let stat = match std::fs::read_to_string(format!("/proc/{p}/stat")) {
            Ok(s) => s,
            Err(e) if p == pid => return Err(e).context(format!("/proc/{p}/stat")),
            Err(_) => continue,
        };
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // utime, stime, cutime, cstime: fields 14 to 17 of stat(5), 11 to 14 after the name.
        total += fields.iter().skip(11).take(4).sum::<u64>();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                    todo.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
    }
    Ok(total)
}
