//! Snapshot benchmark: the time from `GET /snapshot.jpg` to the whole JPEG, against the
//! release `peercam serve --source test` at 1280x720@30 (a child process, over loopback),
//! printing the median and the longest of:
//!
//! - idle: nobody watches, and before each request the device is back at rest (no active
//!   worker, capture stopped, and, after start, the first worker's DTLS certificate made), as
//!   a device that a home automation polls every ten seconds or so: the warm spare is
//!   promoted, opens the camera, encodes one frame and stops;
//! - streaming: a GStreamer viewer watches (and decodes) while the requests come half a second
//!   apart: the picture is taken off the running capture; the viewer's frame rate over the
//!   phase is printed beside it, and the device's H.264 encodes (one);
//! - at once: five requests together on a device at rest (the time to the last answer), which
//!   share one picture.
//!
//! ```text
//! this process: GET /snapshot.jpg ──http://127.0.0.1:PORT──▶ peercam serve (child)
//!               GStreamer viewer  ◀──ICE/DTLS/SRTP────────── (streaming phase)
//! ```
//!
//! `cargo bench --bench snapshot` runs everything. Options: `--requests N` (per phase,
//! default 10), `--size WxH` (the `[snapshot]` size; default the stream's), `--quality Q`.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "support/media_program.rs"]
mod media_program;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use support::device::{serve_command, Serve, START_LIMIT};
use support::gst_viewer::Session;
use support::http;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
/// Longest wait for the device to be back at rest, or for a viewer's first frame.
const LIMIT: Duration = Duration::from_secs(30);
/// Between two requests while a viewer watches.
const STREAMING_GAP: Duration = Duration::from_millis(500);
/// Requests sent together in the last phase.
const AT_ONCE: usize = 5;
/// Wait after the device is ready, before the first request.
const AFTER_START: Duration = Duration::from_secs(2);

struct Opts {
    requests: usize,
    size: Option<(u32, u32)>,
    quality: u32,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let mut o = Opts {
            requests: 10,
            size: None,
            quality: 85,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
            match a.as_str() {
                "--requests" => o.requests = value()?.parse()?,
                "--quality" => o.quality = value()?.parse()?,
                "--size" => {
                    let v = value()?;
                    let (w, h) = v.split_once('x').ok_or_else(|| anyhow!("--size WxH"))?;
                    o.size = Some((w.parse()?, h.parse()?));
                }
                // cargo bench passes --bench.
                "--bench" => {}
                other => bail!("unknown option {other}"),
            }
        }
        Ok(o)
    }
}

/// The device: `peercam serve --source test` with its state in a scratch directory.
fn start(opts: &Opts) -> Result<Serve> {
    let dir = std::env::temp_dir().join(format!("peercam-snapshot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("peercam.toml");
    let mut text = format!(
        "[camera]\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n\n[snapshot]\nquality = {}\n",
        opts.quality
    );
    if let Some((w, h)) = opts.size {
        text.push_str(&format!("width = {w}\nheight = {h}\n"));
    }
    std::fs::write(&config, text)?;
    let port = support::device::free_port();
    let config = config.display().to_string();
    let args = [
        "--source",
        "test",
        "--ice-address",
        "127.0.0.1",
        "--no-discovery",
        "--config",
        &config,
    ];
    let mut command = serve_command(port, &args);
    command.env("STATE_DIRECTORY", &dir);
    let mut serve = Serve::spawn(command, port);
    serve.line(" ready: ", START_LIMIT);
    Ok(serve)
}

/// `/api/stats` as JSON.
async fn stats(serve: &Serve) -> Result<Value> {
    let (status, body) = serve.get("/api/stats").await;
    if status != 200 {
        bail!("/api/stats answered {status}: {body}");
    }
    serde_json::from_str(&body).context("/api/stats JSON")
}

/// Waits until nobody watches, no worker is active and the capture is stopped: the device at
/// rest with a warm spare.
async fn at_rest(serve: &Serve) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = stats(serve).await?;
        let resting = s["workers"]["active"].is_null()
            && !s["workers"]["spare"].is_null()
            && s["camera"]["capturing"] == false;
        if resting {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the device did not come to rest: {s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `GET /snapshot.jpg`: the time to the whole answer, and the JPEG's size.
async fn take(serve: &Serve) -> Result<(Duration, usize)> {
    let bearer = format!("Bearer {}", serve.token().context("no token in the log")?);
    let t = Instant::now();
    let r = http::request(serve.addr(), "/snapshot.jpg", &[("Authorization", &bearer)]).await;
    let took = t.elapsed();
    if r.status != 200 || !r.bytes.starts_with(&[0xff, 0xd8]) {
        bail!("/snapshot.jpg answered {}: {}", r.status, r.body);
    }
    Ok((took, r.bytes.len()))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `median … max …` of `times`, then each in the order taken.
fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let each: Vec<String> = times
        .iter()
        .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
        .collect();
    format!(
        "median {}, max {} ({} requests; each, ms: {})",
        ms(median),
        ms(max),
        times.len(),
        each.join(" ")
    )
}

async fn run(opts: &Opts) -> Result<()> {
    let serve = start(opts)?;
    let size = match opts.size {
        Some((w, h)) => format!("{w}x{h}"),
        None => "at the stream's size".to_owned(),
    };
    println!(
        "device: peercam serve --source test, {WIDTH}x{HEIGHT}@{FPS}; snapshot {size} at \
         quality {}",
        opts.quality
    );

    // Idle. Right after start the first worker is still making its DTLS certificate, which
    // it does before it reads any request (a few hundred ms): let it finish, as it has on a
    // device that has been up for a while.
    tokio::time::sleep(AFTER_START).await;
    let mut idle = Vec::new();
    let mut bytes = 0;
    for _ in 0..opts.requests {
        at_rest(&serve).await?;
        let (took, size) = take(&serve).await?;
        idle.push(took);
        bytes = size;
    }
    println!("idle (nobody watches, device at rest): {}", summary(&idle));
    println!("  JPEG {} KiB", bytes / 1024);

    // Streaming.
    let mut session = Session::join(&serve.ws_url(), "camera").await;
    session.pump(LIMIT, |s| s.first_frame.is_some()).await;
    if session.first_frame.is_none() {
        bail!("the viewer got no video: {:?}", session.signals());
    }
    let frames = session.viewer.frames.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let viewer = tokio::spawn(async move {
        session
            .pump(Duration::from_secs(600), move |_| {
                stopping.load(Ordering::Relaxed)
            })
            .await;
        session
    });
    // Past the join's first seconds (and the next spare's start).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (f0, t0) = (frames.load(Ordering::Relaxed), Instant::now());
    let mut streaming = Vec::new();
    for _ in 0..opts.requests {
        tokio::time::sleep(STREAMING_GAP).await;
        streaming.push(take(&serve).await?.0);
    }
    let fps = (frames.load(Ordering::Relaxed) - f0) as f64 / t0.elapsed().as_secs_f64();
    let s = stats(&serve).await?;
    println!("streaming (one viewer decoding): {}", summary(&streaming));
    println!(
        "  the viewer decoded {fps:.1} frames/s meanwhile; H.264 encodes: {}",
        s["camera"]["h264_encoders"]
    );
    stop.store(true, Ordering::Relaxed);
    let session = viewer.await?;
    session.leave().await;

    // At once.
    at_rest(&serve).await?;
    let t = Instant::now();
    let all = futures_util::future::join_all((0..AT_ONCE).map(|_| take(&serve))).await;
    let last = t.elapsed();
    for r in all {
        r?;
    }
    println!(
        "{AT_ONCE} requests at once, device at rest: all answered in {}",
        ms(last)
    );
    serve.stop();
    Ok(())
}

fn main() -> Result<()> {
    let opts = Opts::parse()?;
    media_program::ensure_built();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&opts))
}
