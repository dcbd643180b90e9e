//! Signaling benchmark. Runs the release `peercam serve` binary as a child process and drives
//! it over loopback WebSockets, printing:
//!
//! - memory per idle member (server RSS before/after, divided by members) at 1,000 and at the
//!   full count (20,000 by default), and the server's RSS 2 s and 6 s after they all left,
//!   against its idle baseline;
//! - relay latency (p50/p99/max) of `text` messages paced at 10,000 msg/s across 1,000
//!   members, and the rate achieved;
//! - unpaced relay throughput (msg/s);
//! - the gap between two back-to-back messages (a Nagle stall would show as ~40 ms), next to
//!   the same pattern over a plain socket without TCP_NODELAY as a control;
//! - what happens when the server runs out of file descriptors.
//!
//! ```text
//! client tasks (this process) ─────┐
//!                                   ├─ws://127.0.0.1:PORT/signaling─▶ peercam serve (child)
//! idle members (worker children) ───┘
//! ```
//!
//! The server is a separate process so that its RSS is its own; idle members live in worker
//! processes (this binary run with `--idle-worker PORT COUNT`) so that no client process needs
//! more descriptors than the per-process limit. Every loop is bounded by a
//! count and a deadline; all traffic stays on 127.0.0.1.
//!
//! `cargo bench --bench signaling` runs everything; `-- --quick` is a short run. Options:
//! `--idle N`, `--pairs N`, `--rate MSG_PER_S`, `--relay-secs S`, `--throughput-secs S`,
//! `--nagle-rounds N`, `--fd-limit N`, `--only idle,relay,throughput,nagle,fd`, and
//! `--realtime`, which runs the benchmark and the servers it starts under SCHED_RR so that
//! other work on a shared machine stays out of the latency figures (the kernel's real-time
//! throttling still leaves that work 5% of each second).

#[path = "support/media_program.rs"]
mod media_program;

use std::fs::File;
use std::io;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

type Ws = WebSocketStream<TcpStream>;

/// Descriptors the server needs besides its members: runtime, listener, spare, logging.
const SERVER_FD_MARGIN: u64 = 1024;

/// What to run and how big.
#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    idle: usize,
    pairs: usize,
    rate: f64,
    relay_secs: f64,
    throughput_secs: f64,
    nagle_rounds: usize,
    fd_limit: u64,
    realtime: bool,
    phases: Vec<String>,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let mut args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            quick,
            idle: if quick { 2_000 } else { 20_000 },
            pairs: 500,
            rate: 10_000.0,
            relay_secs: if quick { 1.0 } else { 10.0 },
            throughput_secs: if quick { 1.0 } else { 5.0 },
            nagle_rounds: if quick { 50 } else { 200 },
            fd_limit: 256,
            realtime: false,
            phases: ["idle", "relay", "throughput", "nagle", "fd"]
                .map(String::from)
                .to_vec(),
        };
        args.reverse();
        while let Some(arg) = args.pop() {
            let mut value = |name: &str| args.pop().ok_or_else(|| anyhow!("{name} needs a value"));
            match arg.as_str() {
                // `cargo bench` passes `--bench` to every bench binary.
                "--quick" | "--bench" => {}
                "--idle" => o.idle = value("--idle")?.parse()?,
                "--pairs" => o.pairs = value("--pairs")?.parse()?,
                "--rate" => o.rate = value("--rate")?.parse()?,
                "--relay-secs" => o.relay_secs = value("--relay-secs")?.parse()?,
                "--throughput-secs" => o.throughput_secs = value("--throughput-secs")?.parse()?,
                "--nagle-rounds" => o.nagle_rounds = value("--nagle-rounds")?.parse()?,
                "--fd-limit" => o.fd_limit = value("--fd-limit")?.parse()?,
                "--realtime" => o.realtime = true,
                "--only" => {
                    o.phases = value("--only")?
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .collect()
                }
                other => bail!("unknown option {other:?}"),
            }
        }
        if o.pairs == 0 || o.rate <= 0.0 || o.relay_secs <= 0.0 || o.throughput_secs <= 0.0 {
            bail!("--pairs, --rate, --relay-secs and --throughput-secs must be positive");
        }
        Ok(o)
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test.

/// The configuration every server runs with.
const SERVER_CONFIG: &str = "\
# Connections well above the idle count, and a rate limit no phase reaches, so that the
# per-connection limiter never interferes with what is measured.
[limits]
max_connections = 25000
rate_per_sec = 1000000.0
rate_burst = 1000000

# The signaling server alone: the camera peer's encoder would share the CPUs being measured,
# and mDNS would send beyond loopback.
[camera]
enabled = false

[discovery]
enabled = false

# The access token clients carry (`?token=` on the WebSocket URL), set here as an owner may
# set one of their own.
[auth]
token = \"signaling-bench-token-0123456789abcdef\"
";

/// `auth.token` of [`SERVER_CONFIG`].
const TOKEN: &str = "signaling-bench-token-0123456789abcdef";

/// The `peercam serve` child process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Why the descriptor limit is lower than asked, if it is.
    capped: Option<String>,
}

fn bench_dir() -> PathBuf {
    std::env::temp_dir().join(format!("peercam-bench-{}", std::process::id()))
}

fn getrlimit_nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (r.rlim_cur, r.rlim_max)
}

fn setrlimit_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `r` is a valid rlimit; setrlimit is async-signal-safe, so this may also run
    // between fork and exec.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises this process's descriptor limit to `want` if it can; returns the soft limit in force.
fn raise_own_nofile(want: u64) -> u64 {
    let (soft, hard) = getrlimit_nofile();
    if soft >= want {
        return soft;
    }
    if setrlimit_nofile(want, hard.max(want)).is_ok() {
        return want;
    }
    if setrlimit_nofile(hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// The descriptor limit a child can be given when `want` is asked for: raises this process's
/// hard limit first if it is lower (which needs CAP_SYS_RESOURCE), else caps `want` at it.
fn allowable_nofile(want: u64) -> (u64, Option<String>) {
    let (soft, hard) = getrlimit_nofile();
    if want <= hard {
        return (want, None);
    }
    match setrlimit_nofile(soft, want) {
        Ok(()) => (want, None),
        Err(e) => (
            hard,
            Some(format!(
                "asked for {want}, capped at the hard limit {hard}: raising it failed ({e})"
            )),
        ),
    }
}

impl Server {
    /// Starts the server with RLIMIT_NOFILE set to `nofile` (soft and hard) and waits until it
    /// accepts connections.
    async fn start(name: &str, nofile: u64) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = bench_dir();
        std::fs::create_dir_all(&dir)?;
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, SERVER_CONFIG)?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let (nofile, capped) = allowable_nofile(nofile);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peercam"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || setrlimit_nofile(nofile, nofile));
        }
        let child = cmd.spawn().context("starting peercam serve")?;
        let mut server = Server {
            child,
            port,
            log,
            capped,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("server exited at start ({status}): {}", server.log_tail());
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("server did not listen within 15 s: {}", server.log_tail());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn proc_file(&self, name: &str) -> Result<String> {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.pid()))
            .with_context(|| format!("reading /proc/{}/{name}", self.pid()))
    }

    /// Resident set size, KiB.
    fn rss_kib(&self) -> Result<u64> {
        let status = self.proc_file("status")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// The descriptor limit the server actually runs with, as the kernel reports it.
    fn nofile_limit(&self) -> String {
        let limit = self
            .proc_file("limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .map(|l| {
                        l.split_whitespace()
                            .skip(3)
                            .take(2)
                            .collect::<Vec<_>>()
                            .join("/")
                    })
            })
            .unwrap_or_else(|| "?".into());
        match &self.capped {
            Some(why) => format!("{limit} ({why})"),
            None => limit,
        }
    }

    /// CPU time (user + system) the server has used, seconds.
    fn cpu_secs(&self) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.proc_file("stat")
            .ok()
            .and_then(|stat| {
                // Fields after the parenthesised command name start at field 3 (state);
                // utime and stime are fields 14 and 15.
                let rest = stat.rsplit(')').next()?.to_owned();
                let f: Vec<f64> = rest
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                (f.len() == 2).then(|| (f[0] + f[1]) / tick)
            })
            .unwrap_or(0.0)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("{} (log {})", tail, self.log.display())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// The fields of a server message the benchmark looks at.
#[derive(Debug, Deserialize)]
struct Env {
    #[serde(default)]
    signal: String,
    #[serde(default)]
    content: String,
}

fn parse(msg: &Message) -> Option<Env> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        _ => None,
    }
}

/// A WebSocket member. Small client buffers keep 20,000 of them affordable in this process.
async fn connect(port: u16) -> Result<Ws> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    // The client must not add a Nagle delay of its own to what is measured.
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://127.0.0.1:{port}/signaling?token={TOKEN}");
    let (ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

fn envelope(signal: &str, content: &str) -> Message {
    Message::Text(
        serde_json::json!({"signal": signal, "content": content})
            .to_string()
            .into(),
    )
}

/// Reads until a message with `signal` arrives, skipping others, within `limit`.
async fn expect(ws: &mut Ws, signal: &str, limit: Duration) -> Result<Env> {
    timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(m)) => {
                    if let Some(env) = parse(&m) {
                        if env.signal == signal {
                            return Ok(env);
                        }
                        if env.signal == "error" {
                            bail!("server error while waiting for {signal}: {}", env.content);
                        }
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed while waiting for {signal}"),
            }
        }
    })
    .await
    .with_context(|| format!("no {signal} within {limit:?}"))?
}

/// Connects `pairs` pairs, each alone in its own MESH conversation.
async fn pair_up(port: u16, pairs: usize, tag: &str) -> Result<Vec<(Ws, Ws)>> {
    let sem = Arc::new(Semaphore::new(64));
    let tasks: Vec<JoinHandle<Result<(Ws, Ws)>>> = (0..pairs)
        .map(|i| {
            let sem = sem.clone();
            let conv = format!("{tag}-{i}");
            tokio::spawn(async move {
                // The semaphore is never closed.
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                let limit = Duration::from_secs(20);
                let mut a = connect(port).await?;
                let mut b = connect(port).await?;
                a.send(envelope("create", &conv)).await?;
                expect(&mut a, "created", limit).await?;
                b.send(envelope("join", &conv)).await?;
                expect(&mut b, "joined", limit).await?;
                expect(&mut a, "newJoined", limit).await?;
                Ok((a, b))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(pairs);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Nanoseconds since the benchmark's clock started; shared by senders and receivers, which
/// live in the same process.
fn now_ns(clock: Instant) -> u64 {
    clock.elapsed().as_nanos() as u64
}

/// p50/p99/max of a set of durations.
struct Dist {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Dist {
    fn of(mut ns: Vec<u64>) -> Option<Dist> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |p: f64| ns[((p / 100.0) * (ns.len() - 1) as f64).round() as usize] as f64 / 1e6;
        Some(Dist {
            n: ns.len(),
            p50: at(50.0),
            p99: at(99.0),
            max: *ns.last().expect("not empty") as f64 / 1e6,
        })
    }

    fn show(&self) -> String {
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (n = {})",
            self.p50, self.p99, self.max, self.n
        )
    }
}

/// The 1, 5 and 15 minute load averages: how much else wanted the CPUs meanwhile.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// How far `kib` is above `base`, percent.
fn above(kib: u64, base: u64) -> f64 {
    (kib as f64 - base as f64) * 100.0 / base.max(1) as f64
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Idle members.

/// Idle members live in child processes of this benchmark, at most this many each, so that no
/// client process needs more descriptors than the per-process limit allows.
const IDLE_PER_WORKER: usize = 5_000;

/// When the server's RSS is read again after every member has left, seconds.
const AFTER_LEAVE_SECS: [u64; 2] = [2, 6];

struct IdlePoint {
    members: usize,
    rss_kib: u64,
    per_member: f64,
}

struct IdleReport {
    nofile: String,
    base_kib: u64,
    points: Vec<IdlePoint>,
    counts: Counts,
    workers: usize,
    server_fds: usize,
    connect_secs: f64,
    /// Server RSS (KiB) this many seconds after the last member left.
    after_leave: Vec<(u64, u64)>,
    after_close_fds: usize,
}

/// What an idle worker reports: members registered (first `ping` seen), attempts that failed,
/// and registered members whose connection later ended.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    registered: usize,
    failed: usize,
    dropped: usize,
}

impl Counts {
    fn held(&self) -> usize {
        self.registered - self.dropped
    }
}

/// An idle-member worker process (this benchmark re-run with `--idle-worker PORT COUNT`).
/// Closing its stdin tells it to close its members and exit; it is killed when dropped.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    counts: Arc<Mutex<Counts>>,
}

impl Worker {
    fn spawn(port: u16, count: usize) -> Result<Worker> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--idle-worker")
            .arg(port.to_string())
            .arg(count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting an idle worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = counts.clone();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Vec<usize> = line
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                if let [registered, failed, dropped] = v[..] {
                    *lock(&shared) = Counts {
                        registered,
                        failed,
                        dropped,
                    };
                }
            }
        });
        Ok(Worker {
            stdin: child.stdin.take(),
            child,
            counts,
        })
    }

    fn counts(&self) -> Counts {
        *lock(&self.counts)
    }

    /// Waits up to `limit` for the worker to exit after its stdin was closed.
    async fn wait(&mut self, limit: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + limit;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The counts stay meaningful even if a reader thread panicked mid-update.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn total(workers: &[Worker]) -> Counts {
    workers
        .iter()
        .map(Worker::counts)
        .fold(Counts::default(), |a, c| Counts {
            registered: a.registered + c.registered,
            failed: a.failed + c.failed,
            dropped: a.dropped + c.dropped,
        })
}

/// Holds one idle member: connects, waits for its first `ping`, then keeps reading (which
/// also answers the server's WebSocket keep-alive pings) until told to stop.
async fn idle_member(
    port: u16,
    sem: Arc<Semaphore>,
    counts: Arc<Mutex<Counts>>,
    mut stop: watch::Receiver<bool>,
) {
    let ws = {
        // The semaphore is never closed.
        let _permit = sem.acquire_owned().await.expect("semaphore open");
        timeout(Duration::from_secs(20), connect(port)).await
    };
    let mut ws = match ws {
        Ok(Ok(ws)) => ws,
        _ => {
            lock(&counts).failed += 1;
            return;
        }
    };
    if expect(&mut ws, "ping", Duration::from_secs(20))
        .await
        .is_err()
    {
        lock(&counts).failed += 1;
        return;
    }
    lock(&counts).registered += 1;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            m = ws.next() => {
                if !matches!(m, Some(Ok(_))) {
                    lock(&counts).dropped += 1;
                    return;
                }
            }
        }
    }
}

/// The worker process: holds `count` idle members, prints its counts every 200 ms, and
/// closes them when stdin closes (or after 30 minutes, should the parent never say).
fn idle_worker(port: u16, count: usize) -> Result<()> {
    raise_own_nofile(count as u64 + 256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let counts = Arc::new(Mutex::new(Counts::default()));
        // Bounds handshakes in flight, well under the server's listen backlog.
        let sem = Arc::new(Semaphore::new(64));
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                tokio::spawn(idle_member(
                    port,
                    sem.clone(),
                    counts.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let (eof_tx, mut eof_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            let _ = eof_tx.send(());
        });
        let life = Instant::now() + Duration::from_secs(1800);
        let mut report = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = &mut eof_rx => break,
                _ = tokio::time::sleep_until(life) => break,
                _ = report.tick() => {
                    let c = *lock(&counts);
                    let mut out = io::stdout().lock();
                    let line = writeln!(out, "{} {} {}", c.registered, c.failed, c.dropped);
                    if line.and_then(|_| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = timeout(Duration::from_secs(10), t).await;
        }
    });
    Ok(())
}

async fn idle_phase(count: usize) -> Result<IdleReport> {
    let server = Server::start("idle", count as u64 + SERVER_FD_MARGIN).await?;
    let nofile = server.nofile_limit();
    // Warm up the runtime's threads and the allocator before the baseline.
    {
        let mut warm = Vec::new();
        for _ in 0..16 {
            let mut ws = connect(server.port).await?;
            expect(&mut ws, "ping", Duration::from_secs(5)).await?;
            warm.push(ws);
        }
    }
    sleep(Duration::from_secs(1)).await;
    let base_kib = server.rss_kib()?;
    let mut workers: Vec<Worker> = Vec::new();
    let mut points = Vec::new();
    let started = Instant::now();
    let steps: Vec<usize> = if count > 1000 {
        vec![1000, count]
    } else {
        vec![count]
    };
    let mut spawned = 0;
    let mut connect_secs = 0.0;
    for target in steps {
        while spawned < target {
            let n = (target - spawned).min(IDLE_PER_WORKER);
            workers.push(Worker::spawn(server.port, n)?);
            spawned += n;
        }
        let deadline = Instant::now() + Duration::from_secs(60 + target as u64 / 100);
        loop {
            let c = total(&workers);
            if c.registered + c.failed >= target {
                break;
            }
            if Instant::now() > deadline {
                println!(
                    "  (only {} of {target} registered before the deadline)",
                    c.registered
                );
                break;
            }
            sleep(Duration::from_millis(200)).await;
        }
        connect_secs = started.elapsed().as_secs_f64();
        // Let every member see at least one more periodic ping, so the figure is the
        // steady state rather than the moment of connecting.
        sleep(Duration::from_secs(4)).await;
        let members = total(&workers).held();
        let rss_kib = server.rss_kib()?;
        points.push(IdlePoint {
            members,
            rss_kib,
            per_member: (rss_kib.saturating_sub(base_kib) * 1024) as f64 / members.max(1) as f64,
        });
    }
    let server_fds = server.open_fds();
    let counts = total(&workers);
    for w in &mut workers {
        w.stdin = None;
    }
    for w in &mut workers {
        w.wait(Duration::from_secs(30)).await;
    }
    let mut after_leave = Vec::new();
    let mut waited = 0;
    for at in AFTER_LEAVE_SECS {
        sleep(Duration::from_secs(at - waited)).await;
        waited = at;
        after_leave.push((at, server.rss_kib()?));
    }
    let after_close_fds = server.open_fds();
    Ok(IdleReport {
        after_close_fds,
        nofile,
        base_kib,
        points,
        counts,
        workers: workers.len(),
        server_fds,
        connect_secs,
        after_leave,
    })
}

// ---------------------------------------------------------------------------------------------
// Paced relay.

#[derive(Default)]
struct MemberStats {
    sent: usize,
    received: usize,
    /// Send→receive latencies (ns) of messages sent inside the measured window.
    latencies: Vec<u64>,
}

/// Times of the paced run, all on the benchmark clock.
#[derive(Clone, Copy)]
struct Window {
    clock: Instant,
    /// Messages sent from here on are measured (earlier ones warm up).
    measure_from: u64,
    /// Sending stops here.
    end: Instant,
}

/// Sends a timestamped `text` every `period` from `first` until the window ends, and records
/// the latency of every `text` it receives, until told to stop.
async fn paced_member(
    mut ws: Ws,
    period: Duration,
    first: Instant,
    w: Window,
    mut stop: watch::Receiver<bool>,
) -> Result<MemberStats> {
    let mut stats = MemberStats::default();
    let mut tick = tokio::time::interval_at(first, period);
    // Catch up after a late tick so the offered load stays at the target rate; lateness
    // then shows in the measured latency rather than as a lower rate.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sending = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(stats),
            _ = tick.tick(), if sending => {
                if Instant::now() >= w.end {
                    sending = false;
                    continue;
                }
                let t = now_ns(w.clock);
                ws.send(envelope("text", &t.to_string())).await?;
                stats.sent += 1;
            }
            m = ws.next() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("server closed a relay member"),
                };
                let now = now_ns(w.clock);
                if let Some(env) = parse(&m) {
                    if env.signal == "text" {
                        let t: u64 = env.content.parse().context("timestamp")?;
                        if t >= w.measure_from {
                            stats.received += 1;
                            stats.latencies.push(now.saturating_sub(t));
                        }
                    }
                }
            }
        }
    }
}

struct RelayReport {
    members: usize,
    target_rate: f64,
    achieved_rate: f64,
    sent: usize,
    received: usize,
    latency: Option<Dist>,
    base_kib: u64,
    joined_kib: u64,
    /// Server CPU while sending, in cores.
    cpu: f64,
}

async fn relay_phase(pairs: usize, rate: f64, secs: f64) -> Result<RelayReport> {
    let mut server = Server::start("relay", 2 * pairs as u64 + SERVER_FD_MARGIN).await?;
    sleep(Duration::from_millis(500)).await;
    let base_kib = server.rss_kib()?;
    let members: Vec<Ws> = pair_up(server.port, pairs, "relay")
        .await?
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .collect();
    let n = members.len();
    sleep(Duration::from_secs(2)).await;
    let joined_kib = server.rss_kib()?;
    // Each member sends every `period`; starts are spread evenly over one period so the
    // total is `rate` msg/s at an even pace.
    let period = Duration::from_secs_f64(n as f64 / rate);
    let warmup = Duration::from_secs_f64((secs * 0.2).min(1.0));
    let clock = Instant::now();
    let start = clock + Duration::from_millis(100);
    let w = Window {
        clock,
        measure_from: (start + warmup - clock).as_nanos() as u64,
        end: start + warmup + Duration::from_secs_f64(secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let cpu_from = (server.cpu_secs(), Instant::now());
    let tasks: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let first = start + period.mul_f64(i as f64 / n as f64);
            tokio::spawn(paced_member(ws, period, first, w, stop_rx.clone()))
        })
        .collect();
    tokio::time::sleep_until(w.end).await;
    let cpu = (server.cpu_secs() - cpu_from.0) / cpu_from.1.elapsed().as_secs_f64();
    sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let mut all = Vec::new();
    let (mut sent, mut received) = (0, 0);
    for t in tasks {
        let s = timeout(Duration::from_secs(10), t).await???;
        sent += s.sent;
        received += s.received;
        all.extend(s.latencies);
    }
    if !server.alive() {
        bail!("server died during relay: {}", server.log_tail());
    }
    Ok(RelayReport {
        members: n,
        target_rate: rate,
        achieved_rate: received as f64 / secs,
        sent,
        received,
        latency: Dist::of(all),
        base_kib,
        joined_kib,
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Unpaced throughput.

/// Keeps `window` texts in flight to its partner (`driver`) or echoes every text back
/// (`!driver`); counts the texts it receives before `end`.
async fn throughput_member(
    mut ws: Ws,
    driver: bool,
    window: usize,
    end: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<usize> {
    let mut received = 0;
    if driver {
        for _ in 0..window {
            ws.send(envelope("text", "x")).await?;
        }
    }
    loop {
        let m = tokio::select! {
            _ = stop.changed() => return Ok(received),
            m = ws.next() => m,
        };
        let m = match m {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("server closed a throughput member"),
        };
        if parse(&m).is_some_and(|e| e.signal == "text") && Instant::now() < end {
            received += 1;
            ws.send(envelope("text", "x")).await?;
        }
    }
}

async fn throughput_phase(pairs: usize, secs: f64) -> Result<(usize, f64, f64)> {
    let server = Server::start("throughput", 2 * pairs as u64 + SERVER_FD_MARGIN).await?;
    let members = pair_up(server.port, pairs, "tp").await?;
    // A few messages in flight per pair keeps both cores busy while every send queue stays
    // far below its bound (a member over it would be dropped as too slow).
    let window = 4;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (stop_tx, stop_rx) = watch::channel(false);
    let cpu_from = (server.cpu_secs(), Instant::now());
    let mut tasks = Vec::new();
    for (a, b) in members {
        tasks.push(tokio::spawn(throughput_member(
            a,
            true,
            window,
            end,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(throughput_member(
            b,
            false,
            window,
            end,
            stop_rx.clone(),
        )));
    }
    tokio::time::sleep_until(end).await;
    let cpu = (server.cpu_secs() - cpu_from.0) / cpu_from.1.elapsed().as_secs_f64();
    sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let mut received = 0;
    for t in tasks {
        received += timeout(Duration::from_secs(10), t).await???;
    }
    Ok((2 * pairs, received as f64 / secs, cpu))
}

// ---------------------------------------------------------------------------------------------
// Back-to-back messages (Nagle).

struct NagleReport {
    gap: Option<Dist>,
    second_latency: Option<Dist>,
    round_trip: Option<Dist>,
    control_gap: Option<Dist>,
}

/// Each round: A sends two texts back to back; B notes when each arrives and replies; A waits
/// for the reply. With Nagle on the server's socket to B the second text would wait for B's
/// delayed ACK of the first.
async fn nagle_phase(rounds: usize) -> Result<NagleReport> {
    let server = Server::start("nagle", SERVER_FD_MARGIN).await?;
    let mut pairs = pair_up(server.port, 1, "nagle").await?;
    // pair_up returned exactly one pair.
    let (mut a, mut b) = pairs.pop().expect("one pair");
    let clock = Instant::now();
    let limit = Duration::from_secs(2);
    let (mut gaps, mut seconds, mut rtts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t0 = now_ns(clock);
        a.send(envelope("text", "1")).await?;
        let t_send2 = now_ns(clock);
        a.send(envelope("text", "2")).await?;
        expect(&mut b, "text", limit).await?;
        let t1 = now_ns(clock);
        expect(&mut b, "text", limit).await?;
        let t2 = now_ns(clock);
        b.send(envelope("text", "r")).await?;
        expect(&mut a, "text", limit).await?;
        let t3 = now_ns(clock);
        gaps.push(t2 - t1);
        seconds.push(t2 - t_send2);
        rtts.push(t3 - t0);
        sleep(Duration::from_millis(2)).await;
    }
    Ok(NagleReport {
        gap: Dist::of(gaps),
        second_latency: Dist::of(seconds),
        round_trip: Dist::of(rtts),
        control_gap: nagle_control(rounds).await?,
    })
}

/// The same write-write-read pattern over a plain loopback socket left with Nagle on, to show
/// that the measurement above would see a stall if there were one.
async fn nagle_control(rounds: usize) -> Result<Option<Dist>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut receiver = TcpStream::connect(listener.local_addr()?).await?;
    let (mut sender, _) = listener.accept().await?;
    sender.set_nodelay(false)?;
    let clock = Instant::now();
    let msg = [b'x'; 80];
    let mut buf = [0u8; 80];
    let mut reply = [0u8; 1];
    let mut gaps = Vec::new();
    for _ in 0..rounds {
        timeout(Duration::from_secs(2), async {
            sender.write_all(&msg).await?;
            sender.write_all(&msg).await?;
            receiver.read_exact(&mut buf).await?;
            let t1 = now_ns(clock);
            receiver.read_exact(&mut buf).await?;
            let t2 = now_ns(clock);
            receiver.write_all(b"r").await?;
            sender.read_exact(&mut reply).await?;
            gaps.push(t2 - t1);
            io::Result::Ok(())
        })
        .await??;
        sleep(Duration::from_millis(2)).await;
    }
    Ok(Dist::of(gaps))
}

// ---------------------------------------------------------------------------------------------
// Out of descriptors.

struct FdReport {
    nofile: String,
    held: usize,
    refused: usize,
    attempts: usize,
    server_fds: usize,
    survived: bool,
    relay_works: bool,
    recovered: usize,
}

/// One attempt to become a member: held if the first `ping` arrives.
async fn try_member(port: u16) -> Option<Ws> {
    let mut ws = timeout(Duration::from_secs(5), connect(port))
        .await
        .ok()?
        .ok()?;
    expect(&mut ws, "ping", Duration::from_secs(5)).await.ok()?;
    Some(ws)
}

async fn fd_phase(limit: u64) -> Result<FdReport> {
    let mut server = Server::start("fd", limit).await?;
    let nofile = server.nofile_limit();
    let mut pair = pair_up(server.port, 1, "fd").await?;
    // pair_up returned exactly one pair.
    let (mut a, mut b) = pair.pop().expect("one pair");
    let mut held: Vec<Ws> = Vec::new();
    let (mut refused, mut attempts) = (0, 0);
    let max_attempts = 2 * limit as usize + 200;
    // Open connections in batches until a whole batch is refused.
    while attempts < max_attempts {
        let batch: Vec<_> = (0..32)
            .map(|_| tokio::spawn(try_member(server.port)))
            .collect();
        let mut got = 0;
        for t in batch {
            attempts += 1;
            match t.await? {
                Some(ws) => {
                    held.push(ws);
                    got += 1;
                }
                None => refused += 1,
            }
        }
        if got == 0 {
            break;
        }
    }
    let held_at_limit = held.len();
    let server_fds = server.open_fds();
    let survived = server.alive();
    let relay_works = if survived {
        a.send(envelope("text", "still here")).await.is_ok()
            && expect(&mut b, "text", Duration::from_secs(3))
                .await
                .is_ok_and(|e| e.content == "still here")
    } else {
        false
    };
    // Closing a few members frees descriptors; new members must be admitted again.
    held.truncate(held.len().saturating_sub(8));
    sleep(Duration::from_millis(500)).await;
    let mut recovered = 0;
    for _ in 0..4 {
        if let Some(ws) = try_member(server.port).await {
            held.push(ws);
            recovered += 1;
        }
    }
    let survived = survived && server.alive();
    Ok(FdReport {
        nofile,
        held: held_at_limit,
        refused,
        attempts,
        server_fds,
        survived,
        relay_works,
        recovered,
    })
}

// ---------------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

fn main() -> Result<()> {
    media_program::ensure_built();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, port, count] = &args[..] {
        if flag == "--idle-worker" {
            return idle_worker(port.parse()?, count.parse()?);
        }
    }
    let opts = Opts::parse()?;
    if opts.realtime {
        // Set before any thread or child exists, so every runtime thread, idle worker and
        // server inherits it. Round-robin rather than FIFO so that busy threads of the same
        // priority (client and server under full load) still take turns.
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: `param` is a valid sched_param for the calling thread.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } != 0 {
            bail!("--realtime: {}", io::Error::last_os_error());
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(run(opts));
    let _ = std::fs::remove_dir_all(bench_dir());
    result
}

async fn run(o: Opts) -> Result<()> {
    println!(
        "peercam signaling benchmark{} — server: {} (a child process per phase), clients: \
         this process and, for idle members, worker processes; loopback only; {} CPUs; scheduling {}",
        if o.quick { " (quick)" } else { "" },
        env!("CARGO_BIN_EXE_peercam"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if o.realtime {
            "SCHED_RR 10 (--realtime)"
        } else {
            "normal"
        },
    );
    println!("client RLIMIT_NOFILE soft/hard: {:?}", getrlimit_nofile());
    let mut summary = Vec::new();

    if o.runs("idle") {
        println!("\n== Idle members ({}) ==", o.idle);
        println!("load average (1/5/15 min): {}", loadavg());
        let r = idle_phase(o.idle).await?;
        println!("server RLIMIT_NOFILE (soft/hard): {}", r.nofile);
        println!("server RSS baseline: {} KiB", r.base_kib);
        for p in &r.points {
            println!(
                "{:>6} members: server RSS {} KiB -> {} per member",
                p.members,
                p.rss_kib,
                kib(p.per_member)
            );
        }
        println!(
            "{} attempted from {} client processes: held {}, refused {}, dropped while idle {}; \
             server fds open {}; {:.1} s to connect",
            o.idle,
            r.workers,
            r.counts.held(),
            r.counts.failed,
            r.counts.dropped,
            r.server_fds,
            r.connect_secs
        );
        for (at, rss) in &r.after_leave {
            println!(
                "{at} s after all closed: server RSS {rss} KiB ({:+.0}% of the baseline)",
                above(*rss, r.base_kib)
            );
        }
        println!("fds open after all closed: {}", r.after_close_fds);
        if let Some(p) = r.points.last() {
            summary.push(format!(
                "idle members: {} of {} held at {} each (target <= 16 KiB; gst-webrtc-signalling-server ~131 KB): {}{}",
                p.members,
                o.idle,
                kib(p.per_member),
                verdict(p.per_member <= 16.0 * 1024.0),
                if p.members < o.idle {
                    "; the rest were refused at the server's descriptor limit, which also \
                     counts its own descriptors"
                } else {
                    ""
                }
            ));
        }
        if r.points.len() > 1 {
            let p = &r.points[0];
            summary.push(format!(
                "memory at {} members: {} each",
                p.members,
                kib(p.per_member)
            ));
        }
        if let Some((at, rss)) = r.after_leave.last() {
            let over = above(*rss, r.base_kib);
            summary.push(format!(
                "RSS {at} s after all members left: {rss} KiB, {over:+.0}% of idle \
                 (target <= +20%): {}",
                verdict(over <= 20.0)
            ));
        }
    }

    if o.runs("relay") {
        println!(
            "\n== Paced relay: {} pairs, {} msg/s for {} s ==",
            o.pairs, o.rate, o.relay_secs
        );
        println!("load average (1/5/15 min): {}", loadavg());
        let r = relay_phase(o.pairs, o.rate, o.relay_secs).await?;
        let joined = (r.joined_kib.saturating_sub(r.base_kib) * 1024) as f64 / r.members as f64;
        println!(
            "{} members joined in {} conversations: server RSS {} -> {} KiB, {} per member",
            r.members,
            r.members / 2,
            r.base_kib,
            r.joined_kib,
            kib(joined)
        );
        println!(
            "target {:.0} msg/s, achieved {:.0} msg/s (measured: sent {}, received {})",
            r.target_rate, r.achieved_rate, r.sent, r.received
        );
        println!(
            "server CPU while relaying: {:.0}% of one core",
            r.cpu * 100.0
        );
        match &r.latency {
            Some(d) => println!("send -> receive latency: {}", d.show()),
            None => println!("send -> receive latency: no messages received"),
        }
        let p99 = r.latency.as_ref().map_or(f64::INFINITY, |d| d.p99);
        summary.push(format!(
            "relay p99 at {:.0} msg/s over {} members: {:.3} ms, achieved {:.0} msg/s (target <= 2 ms; gst 2.9-4.4 ms): {}",
            r.target_rate,
            r.members,
            p99,
            r.achieved_rate,
            verdict(p99 <= 2.0 && r.achieved_rate >= 0.95 * r.target_rate)
        ));
        summary.push(format!(
            "memory at {} joined members: {} each",
            r.members,
            kib(joined)
        ));
    }

    if o.runs("throughput") {
        println!(
            "\n== Unpaced relay throughput: {} pairs, {} s ==",
            o.pairs, o.throughput_secs
        );
        println!("load average (1/5/15 min): {}", loadavg());
        let (members, rate, cpu) = throughput_phase(o.pairs, o.throughput_secs).await?;
        println!(
            "{members} members, 4 in flight per pair: {rate:.0} msg/s relayed; server CPU {:.0}% of one core",
            cpu * 100.0
        );
        summary.push(format!(
            "throughput: {rate:.0} msg/s relayed over {members} members"
        ));
    }

    if o.runs("nagle") {
        println!("\n== Back-to-back messages, {} rounds ==", o.nagle_rounds);
        println!("load average (1/5/15 min): {}", loadavg());
        let r = nagle_phase(o.nagle_rounds).await?;
        let show = |d: &Option<Dist>| d.as_ref().map_or("none".into(), Dist::show);
        println!("gap between the two at the receiver: {}", show(&r.gap));
        println!(
            "second message send -> receive:     {}",
            show(&r.second_latency)
        );
        println!("round trip (2 out, 1 reply):       {}", show(&r.round_trip));
        println!(
            "control, plain TCP without TCP_NODELAY, same pattern: gap {}",
            show(&r.control_gap)
        );
        // A Nagle stall holds the second message until the receiver's delayed ACK of the
        // first, at least 40 ms on Linux: it shows as the gap between the two arrivals.
        let gap = r.gap.as_ref().map_or(f64::INFINITY, |g| g.max);
        let second = r.second_latency.as_ref().map_or(f64::INFINITY, |s| s.p99);
        summary.push(format!(
            "back-to-back: largest gap between the two messages {gap:.3} ms, second message \
             p99 {second:.3} ms (gst ~40 ms stall; control without TCP_NODELAY {}): {}",
            r.control_gap
                .as_ref()
                .map_or("none".into(), |c| format!("p50 gap {:.1} ms", c.p50)),
            verdict(gap < 10.0)
        ));
    }

    if o.runs("fd") {
        println!(
            "\n== Out of descriptors: server RLIMIT_NOFILE {} ==",
            o.fd_limit
        );
        println!("load average (1/5/15 min): {}", loadavg());
        let r = fd_phase(o.fd_limit).await?;
        println!("server RLIMIT_NOFILE (soft/hard): {}", r.nofile);
        println!(
            "members held {} (plus the 2 of the check pair), refused {} of {} attempts, server fds open {}",
            r.held, r.refused, r.attempts, r.server_fds
        );
        println!(
            "server still running: {}; existing members still relay: {}; after closing 8, {} of 4 new members admitted",
            yes(r.survived),
            yes(r.relay_works),
            r.recovered
        );
        summary.push(format!(
            "out of descriptors: held {}, refused {}, server survived {}, relay works {}: {}",
            r.held,
            r.refused,
            yes(r.survived),
            yes(r.relay_works),
            verdict(r.survived && r.relay_works && r.refused > 0)
        ));
    }

    println!("\n== Summary ==");
    for line in summary {
        println!("- {line}");
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
