//! The `peercam` binary as systemd runs it: a fake service manager (a Unix datagram socket
//! passed as `NOTIFY_SOCKET`, with `WATCHDOG_USEC` and `WATCHDOG_PID`) watches readiness,
//! watchdog pings and stopping; signals are real; viewers are real WebSocket clients.
//!
//! When the tests run as root with `unshare` available, each one re-runs itself inside a
//! private network namespace with only loopback up, and there the service advertises itself
//! over mDNS as it would on a device (READY then also waits for the advertiser). Elsewhere
//! the service runs with `--no-discovery`, so no test ever sends multicast on a real LAN.
//! The two tests that need those namespaces (browsing, a journal of their own) are ignored in
//! a plain `cargo test`; `scripts/test.sh` runs them with `--ignored` when it runs as root.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::device::{free_port, serve_command_as_main_pid, Serve, BIN, START_LIMIT};
use support::scratch::Scratch;
use support::ws::{Client, Msg};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Set in the environment of a test re-run inside its own network namespace.
const NETNS_MARK: &str = "PEERCAM_TEST_IN_NETNS";

/// What the service promises between SIGTERM and its exit.
const STOP_LIMIT: Duration = Duration::from_secs(2);

/// Re-runs test `name` inside a private network namespace when possible and says whether it
/// passed; `None` means "run the body here" (already inside, or no namespace to be had). The
/// re-run includes ignored tests, so a root-only test runs there when it was asked for.
fn isolated(name: &str) -> Option<bool> {
    isolated_in(name, &["-n"])
}

/// As [`isolated`], with a private mount namespace as well, for tests that mount.
fn isolated_with_mounts(name: &str) -> Option<bool> {
    isolated_in(name, &["-n", "-m", "--propagation", "private"])
}

fn isolated_in(name: &str, namespaces: &[&str]) -> Option<bool> {
    if inside_netns() {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let probe = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let exe = std::env::current_exe().expect("test executable path");
    let out = Command::new("unshare")
        .args(namespaces)
        .args(["--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([name, "--exact", "--include-ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env(NETNS_MARK, "1")
        .output()
        .expect("running the test in a network namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Some(out.status.success() && stdout.contains("1 passed"))
}

fn inside_netns() -> bool {
    std::env::var_os(NETNS_MARK).is_some()
}

/// A small picture keeps the software encoder cheap on a shared machine.
const SMALL: &str = "[camera]\nwidth = 320\nheight = 240\nfps = 15\nbitrate_kbps = 300\n";

/// The service under a fake manager: `peercam serve` as systemd's main process, with a
/// notify socket of this test's.
struct Service {
    /// The process.
    serve: Serve,
    /// The fake manager's end of `NOTIFY_SOCKET`.
    socket: UnixDatagram,
    /// Lines received but not yet taken, with when they arrived.
    pending: std::collections::VecDeque<(Instant, String)>,
    /// Holds the config, the notify socket and the state directory; removed on drop.
    dir: Scratch,
}

impl Service {
    /// Starts `peercam serve` on a free loopback port with `config` as its file.
    fn start(config: &str, extra: &[&str]) -> Service {
        Service::start_with(config, extra, |_| {})
    }

    /// As [`Service::start`], with `tweak` applied to the command last.
    fn start_with(config: &str, extra: &[&str], tweak: impl FnOnce(&mut Command)) -> Service {
        let dir = Scratch::new("svc");
        let file = dir.join("peercam.toml");
        let config = if inside_netns() {
            // Loopback is all there is here; a service bound to it advertises only when told to.
            format!("{config}\n[discovery]\naddresses = [\"127.0.0.1\"]\n")
        } else {
            config.to_owned()
        };
        std::fs::write(&file, config).expect("config file");
        let notify = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&notify).expect("bind notify socket");
        let port = free_port();
        let mut args = vec![
            "--config",
            file.to_str().expect("utf-8 path"),
            "--ice-address",
            "127.0.0.1",
        ];
        if !inside_netns() {
            args.push("--no-discovery");
        }
        args.extend_from_slice(extra);
        let mut command = serve_command_as_main_pid(port, &args);
        command
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "1000000")
            // As systemd sets it for StateDirectory=: the generated TLS certificate goes here.
            .env("STATE_DIRECTORY", dir.join("state"));
        tweak(&mut command);
        Service {
            serve: Serve::spawn(command, port),
            socket,
            pending: Default::default(),
            dir,
        }
    }

    /// The signaling endpoint's URL with the access token, read where `peercam token` reads
    /// it (the state directory's file, made before `READY=1`): the log may be in a journal.
    fn ws_url(&self) -> String {
        let path = self.dir.join("state/token");
        let token = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.logs()));
        format!("ws://{}/signaling?token={}", self.addr(), token.trim())
    }

    /// The next notification line, waiting until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Option<(Instant, String)> {
        while self.pending.is_empty() {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buf = [0u8; 4096];
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let now = Instant::now();
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                self.pending.push_back((now, line.to_owned()));
            }
        }
        self.pending.pop_front()
    }

    /// Lines up to and including `wanted`, which must come within `within`.
    fn until(&mut self, wanted: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self.next_line(deadline) {
                Some((_, line)) => {
                    let done = line == wanted;
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                None => panic!(
                    "no {wanted} within {within:?}; got {seen:?}\n--- peercam log:\n{}",
                    self.logs()
                ),
            }
        }
    }
}

/// The process's own calls (signals, exit, logs, address) go to [`Serve`].
impl Deref for Service {
    type Target = Serve;

    fn deref(&self) -> &Serve {
        &self.serve
    }
}

impl DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Serve {
        &mut self.serve
    }
}

/// Opens a WebSocket to the service's signaling endpoint.
async fn connect(url: &str, label: &str) -> Client {
    let request = url.into_client_request().expect("a valid ws:// URL");
    Client::connect(request, None, label)
        .await
        .expect("WebSocket connects")
}

/// Joins the camera's conversation and returns once `joined` arrived.
async fn join_camera(url: &str) -> Client {
    let mut ws = connect(url, "viewer").await;
    ws.send("join", "", "camera", &[]).await;
    loop {
        let m = ws
            .recv_within(Duration::from_secs(10))
            .await
            .expect("joined within 10 s");
        assert_ne!(m.signal, "error", "{m:?}");
        if m.signal == "joined" {
            assert_eq!(m.content, "camera");
            return ws;
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn systemd_sees_ready_then_watchdog_pings_then_stopping() {
    if let Some(passed) = isolated("systemd_sees_ready_then_watchdog_pings_then_stopping") {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    let mut svc = Service::start(SMALL, &["--source", "test"]);
    let before = svc.until("READY=1", START_LIMIT);
    assert!(
        !before.iter().any(|l| l == "WATCHDOG=1"),
        "pinged before ready: {before:?}"
    );
    // Half of WATCHDOG_USEC apart, so two come within about a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pings = Vec::new();
    while pings.len() < 3 {
        let (at, line) = svc.next_line(deadline).expect("watchdog pings");
        assert_ne!(line, "STOPPING=1");
        if line == "WATCHDOG=1" {
            pings.push(at);
        }
    }
    let gap = pings[2] - pings[1];
    assert!(
        gap >= Duration::from_millis(300) && gap <= Duration::from_millis(900),
        "pings {gap:?} apart for WATCHDOG_USEC=1s"
    );

    svc.signal(libc::SIGTERM);
    let signalled = Instant::now();
    svc.until("STOPPING=1", STOP_LIMIT);
    let status = svc.exit_within(STOP_LIMIT);
    assert!(signalled.elapsed() < STOP_LIMIT);
    assert!(status.success(), "{status:?}\n{}", svc.logs());
    // Nothing may ping after STOPPING=1.
    while let Some((_, line)) = svc.next_line(Instant::now() + Duration::from_millis(50)) {
        assert_ne!(line, "WATCHDOG=1", "pinged after STOPPING=1");
    }
    let logs = svc.logs();
    // Key-values reach the stderr lines.
    assert!(logs.contains("conversation=camera"), "{logs}");
    if inside_netns() {
        assert!(logs.contains("goodbye sent"), "{logs}");
    }
}

#[test]
fn a_viewer_hears_left_and_end_when_the_service_stops() {
    if let Some(passed) = isolated("a_viewer_hears_left_and_end_when_the_service_stops") {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    let mut svc = Service::start(SMALL, &["--source", "test"]);
    svc.until("READY=1", START_LIMIT);
    let url = svc.ws_url();
    let rt = runtime();
    let mut viewer = rt.block_on(join_camera(&url));
    // A second member, alone in a mesh room, must be closed as well.
    let mut other = rt.block_on(async {
        let mut ws = connect(&url, "other").await;
        ws.send("join", "", "kitchen", &[]).await;
        let m = ws.recv_within(Duration::from_secs(5)).await.unwrap();
        // Joining a room that does not exist yet creates it, as in nextRTC.
        assert!(m.signal == "joined" || m.signal == "created", "{m:?}");
        ws
    });

    svc.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let (signals, code) = rt.block_on(viewer.until_closed(STOP_LIMIT));
    // Negotiation messages may still be on their way; the ending is what counts.
    let seen: Vec<&str> = signals
        .iter()
        .filter(|m| m.signal == "left" || m.signal == "end")
        .inspect(|m| assert_eq!(m.from, "camera", "{m:?}"))
        .map(|m: &Msg| m.signal.as_str())
        .collect();
    assert_eq!(seen, ["left", "end"], "{}", svc.logs());
    // Closed properly: 1001, going away.
    assert_eq!(code, Some(1001), "{}", svc.logs());
    // The other member's socket is closed too.
    let (_, code) = rt.block_on(other.until_closed(STOP_LIMIT));
    assert_eq!(code, Some(1001), "{}", svc.logs());
    let status = svc.exit_within(STOP_LIMIT.saturating_sub(signalled.elapsed()));
    assert!(status.success(), "{status:?}\n{}", svc.logs());
}

#[test]
fn a_second_signal_exits_at_once() {
    if let Some(passed) = isolated("a_second_signal_exits_at_once") {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    let mut svc = Service::start(SMALL, &["--source", "test"]);
    svc.until("READY=1", START_LIMIT);
    // Both arrive before the handler runs; it takes one as the first and exits on the other.
    svc.signal(libc::SIGTERM);
    svc.signal(libc::SIGINT);
    let status = svc.exit_within(Duration::from_secs(1));
    assert!(
        matches!(status.code(), Some(130 | 143)),
        "{status:?}\n{}",
        svc.logs()
    );
}

/// Descriptions for a camera that delivers a few frames and then nothing more, as a wedged
/// capture would, and the stock x264 encoder.
fn stalling_pipelines(dir: &Path) {
    let sources = dir.join("sources");
    let encoders = dir.join("encoders");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::create_dir_all(&encoders).unwrap();
    std::fs::write(
        sources.join("stall.toml"),
        "description = \"ten frames, then nothing\"\n\
         launch = \"videotestsrc is-live=true num-buffers=10 ! video/x-raw,width={width},height={height},framerate={fps}/1\"\n\
         [[elements]]\nfactory = \"videotestsrc\"\npackage = \"gstreamer1.0-plugins-base\"\n",
    )
    .unwrap();
    std::fs::write(
        sources.join("live.toml"),
        "description = \"a live test pattern\"\n\
         launch = \"videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate={fps}/1\"\n\
         [[elements]]\nfactory = \"videotestsrc\"\npackage = \"gstreamer1.0-plugins-base\"\n",
    )
    .unwrap();
    let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/encoders/x264.toml");
    let x264 = std::fs::read_to_string(&stock).unwrap();
    std::fs::write(encoders.join("x264.toml"), &x264).unwrap();
    // An encoder that takes frames and gives nothing: a wedged one.
    let launch = x264
        .lines()
        .find(|l| l.starts_with("launch = "))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    std::fs::write(
        encoders.join("wedge.toml"),
        x264.replace(
            &format!("{launch}\""),
            &format!("{launch} ! identity drop-probability=1.0\""),
        ) + "\n[[elements]]\nfactory = \"identity\"\npackage = \"libgstreamer1.0-0\"\n",
    )
    .unwrap();
}

/// Reads the service's notifications for 6.5 s from `from`: the longest time without a
/// watchdog ping, and whether a status starting with `unhealthy` was sent.
fn watchdog_over(svc: &mut Service, from: Instant, unhealthy_status: &str) -> (Duration, bool) {
    let mut last_ping = from;
    let mut longest = Duration::ZERO;
    let mut unhealthy = false;
    let deadline = from + Duration::from_millis(6500);
    while let Some((at, line)) = svc.next_line(deadline) {
        if line == "WATCHDOG=1" {
            longest = longest.max(at - last_ping);
            last_ping = at;
        }
        unhealthy |= line.starts_with(unhealthy_status);
    }
    (longest.max(deadline - last_ping), unhealthy)
}

#[test]
fn a_camera_that_stops_keeps_the_watchdog_pinging_on_the_placeholder() {
    if let Some(passed) =
        isolated("a_camera_that_stops_keeps_the_watchdog_pinging_on_the_placeholder")
    {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    let pipelines = Scratch::new("pipelines");
    stalling_pipelines(pipelines.path());
    // The source's own stall time (1 s) and the switch fit well inside the watchdog's 3 s.
    let config = format!("{SMALL}stall_timeout_secs = 3\nnegotiation_timeout_secs = 8\n");
    let mut svc = Service::start(
        &config,
        &[
            "--source",
            "stall",
            "--encoder",
            "x264",
            "--pipelines-dir",
            pipelines.path().to_str().unwrap(),
        ],
    );
    svc.until("READY=1", START_LIMIT);
    svc.until("WATCHDOG=1", Duration::from_secs(3));
    // A viewer that never answers keeps its branch attached for 8 s, while the source stops
    // after ten frames: the placeholder keeps the encoder going, and the pings with it.
    let rt = runtime();
    let viewer = rt.block_on(join_camera(&svc.ws_url()));
    let joined = Instant::now();
    let (longest, unhealthy) = watchdog_over(&mut svc, joined, "STATUS=unhealthy");
    assert!(
        !unhealthy,
        "a stopped camera was taken for a wedged device\n{}",
        svc.logs()
    );
    assert!(
        longest < Duration::from_millis(1500),
        "pings stopped for {longest:?}\n{}",
        svc.logs()
    );
    assert!(
        svc.logs().contains("placeholder"),
        "the source's failure was not handled\n{}",
        svc.logs()
    );
    drop(viewer);
    svc.signal(libc::SIGTERM);
    assert!(svc.exit_within(STOP_LIMIT).success());
}

#[test]
fn a_wedged_encoder_stops_the_watchdog_pings() {
    if let Some(passed) = isolated("a_wedged_encoder_stops_the_watchdog_pings") {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    let pipelines = Scratch::new("pipelines");
    stalling_pipelines(pipelines.path());
    let config = format!("{SMALL}stall_timeout_secs = 1\nnegotiation_timeout_secs = 8\n");
    let mut svc = Service::start(
        &config,
        &[
            "--source",
            "live",
            "--encoder",
            "wedge",
            "--pipelines-dir",
            pipelines.path().to_str().unwrap(),
        ],
    );
    svc.until("READY=1", START_LIMIT);
    svc.until("WATCHDOG=1", Duration::from_secs(3));
    // A viewer that never answers keeps its branch attached until negotiation times out
    // (8 s), while the encoder gives nothing.
    let rt = runtime();
    let viewer = rt.block_on(join_camera(&svc.ws_url()));
    let joined = Instant::now();

    // Pings stop: the longest gap while the branch is attached is well over the 1 s
    // WATCHDOG_USEC after which systemd would restart the service.
    let (longest, unhealthy) = watchdog_over(&mut svc, joined, "STATUS=unhealthy: camera wedged");
    assert!(unhealthy, "no unhealthy status\n{}", svc.logs());
    assert!(
        longest >= Duration::from_millis(2500),
        "pings kept coming (longest gap {longest:?})\n{}",
        svc.logs()
    );
    // Once the stuck viewer is released nobody watches: healthy again.
    svc.until("WATCHDOG=1", Duration::from_secs(6));
    drop(viewer);
    svc.signal(libc::SIGTERM);
    assert!(svc.exit_within(STOP_LIMIT).success());
}

#[test]
#[ignore = "needs root: a private network namespace (unshare) to browse in"]
fn discover_lists_a_serving_camera() {
    if let Some(passed) = isolated("discover_lists_a_serving_camera") {
        assert!(passed, "failed inside its network namespace");
        return;
    }
    assert!(
        inside_netns(),
        "browsing needs a private network namespace: run as root with unshare"
    );
    let mut svc = Service::start("[server]\nname = \"Porch Cam\"\n", &["--no-camera"]);
    svc.until("READY=1", START_LIMIT);
    let out = Command::new(BIN)
        .args(["discover", "--timeout", "2", "--json"])
        .output()
        .expect("peercam discover");
    assert!(out.status.success(), "{out:?}");
    let found: Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    let cam = found
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "Porch Cam"))
        .unwrap_or_else(|| panic!("not found in {found}"));
    assert_eq!(cam["port"], svc.port);
    assert_eq!(cam["addresses"][0], "127.0.0.1");
    assert_eq!(cam["txt"]["conv"], "camera");
    assert_eq!(cam["txt"]["path"], "/signaling");
    assert_eq!(cam["url"], format!("https://127.0.0.1:{}/", svc.port));
    assert_eq!(cam["http_url"], format!("http://127.0.0.1:{}/", svc.port));
    assert_eq!(cam["txt"]["tls"], "1");
    assert_eq!(cam["txt"]["auth"], "1", "private by default");
    // The fingerprint of the certificate the service made in its state directory.
    let fingerprint = support::tls::device_fingerprint(&svc.dir.join("state/cert.pem"));
    assert_eq!(cam["fingerprint"], fingerprint);

    let table = Command::new(BIN)
        .args(["discover", "--timeout", "1.5"])
        .output()
        .expect("peercam discover");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("Porch Cam") && text.contains("porch-cam.local"),
        "{text}"
    );
    assert!(text.contains("certificate SHA-256 "), "{text}");
    // The table says the camera needs its token.
    let header = text.lines().next().unwrap_or_default();
    let column = header.find("TOKEN").unwrap_or_else(|| panic!("{text}"));
    let row = text.lines().find(|l| l.starts_with("Porch Cam")).unwrap();
    assert_eq!(
        row[column..].split_whitespace().next(),
        Some("yes"),
        "{text}"
    );

    svc.signal(libc::SIGTERM);
    assert!(svc.exit_within(STOP_LIMIT).success());
}

/// Splits one native-protocol journal datagram into its fields.
/// One journal record: its fields, in order.
type JournalRecord = Vec<(String, String)>;

fn journal_fields(datagram: &[u8]) -> JournalRecord {
    let mut fields = Vec::new();
    let mut rest = datagram;
    while let Some(eol) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..eol];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            fields.push((key, String::from_utf8_lossy(&line[eq + 1..]).into_owned()));
            rest = &rest[eol + 1..];
        } else {
            // KEY\n, then a little-endian u64 length, the value and \n.
            let key = String::from_utf8_lossy(line).into_owned();
            let after = &rest[eol + 1..];
            let Some(len) = after.get(..8).map(|b| {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                u64::from_le_bytes(n) as usize
            }) else {
                break;
            };
            let Some(value) = after.get(8..8 + len) else {
                break;
            };
            fields.push((key, String::from_utf8_lossy(value).into_owned()));
            rest = after.get(8 + len + 1..).unwrap_or_default();
        }
    }
    fields
}

#[test]
#[ignore = "needs root: a private mount namespace for a journal of its own"]
fn under_systemd_logs_reach_the_journal_with_their_fields() {
    if let Some(passed) =
        isolated_with_mounts("under_systemd_logs_reach_the_journal_with_their_fields")
    {
        assert!(passed, "failed inside its namespaces");
        return;
    }
    assert!(
        inside_netns(),
        "a journal of its own needs a private mount namespace: run as root with unshare"
    );
    // A journal socket of our own, on a tmpfs that only this namespace sees.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", "/run/systemd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a tmpfs on /run/systemd");
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    let journal = UnixDatagram::bind("/run/systemd/journal/socket").expect("journal socket");
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // systemd connects stderr to the journal and names it in JOURNAL_STREAM (device:inode).
    let dir = Scratch::new("journal");
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());

    let mut svc = Service::start_with(SMALL, &["--source", "test"], move |c| {
        c.stderr(stderr)
            .env("JOURNAL_STREAM", stream)
            .env("RUST_LOG", "info,peercam::signaling=debug");
    });
    // Read from the start, as journald does: a socket nobody reads fills up (a namespace's
    // queue holds 10 datagrams), and then the service's logging blocks.
    let collected: Arc<Mutex<Vec<JournalRecord>>> = Arc::default();
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let (collected, reading) = (collected.clone(), reading.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while reading.load(Ordering::Relaxed) {
                if let Ok(n) = journal.recv(&mut buf) {
                    collected.lock().unwrap().push(journal_fields(&buf[..n]));
                }
            }
        })
    };
    svc.until("READY=1", START_LIMIT);
    let rt = runtime();
    let viewer = rt.block_on(join_camera(&svc.ws_url()));

    let has = |records: &[Vec<(String, String)>], key: &str, value: Option<&str>| {
        records.iter().any(|r| {
            r.iter()
                .any(|(k, v)| k == key && value.is_none_or(|want| v == want))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !has(&collected.lock().unwrap(), "MEMBER", None) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(viewer);
    svc.signal(libc::SIGTERM);
    let status = svc.exit_within(STOP_LIMIT);
    reading.store(false, Ordering::Relaxed);
    reader.join().unwrap();
    let records = collected.lock().unwrap().clone();
    assert!(
        status.success(),
        "{status:?}; stderr: {}; journal: {:?}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        records
    );

    let ready = records
        .iter()
        .find(|r| r.iter().any(|(k, v)| k == "MESSAGE" && v.contains("ready")))
        .unwrap_or_else(|| panic!("no ready record in {records:?}"));
    let field = |k: &str| {
        ready
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("CONVERSATION"), Some("camera"), "{ready:?}");
    assert_eq!(field("SYSLOG_IDENTIFIER"), Some("peercam"), "{ready:?}");
    assert_eq!(field("PRIORITY"), Some("5"), "info is notice: {ready:?}");
    assert!(
        field("LISTEN").is_some_and(|l| l.starts_with("127.0.0.1:")),
        "{ready:?}"
    );
    assert!(has(&records, "ENCODER", Some("x264")), "{records:?}");
    assert!(has(&records, "SOURCE", Some("test")), "{records:?}");
    assert!(has(&records, "MEMBER", None), "{records:?}");
    // Nothing went to stderr as text: the journal has it all.
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(!text.contains("ready"), "{text}");
}

#[test]
fn the_unit_file_is_a_hardened_notify_service() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd/peercam.service");
    let text = std::fs::read_to_string(&unit).expect("systemd/peercam.service");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for wanted in [
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "ExecStart=/usr/bin/peercam serve --config /etc/peercam/peercam.toml",
        "StateDirectory=peercam",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-alsa rw",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ] {
        assert!(lines.contains(&wanted), "{wanted} missing from the unit");
    }
    assert!(lines.iter().any(|l| l.starts_with("WatchdogSec=")));
    // It would hide the cameras.
    assert!(!lines.contains(&"PrivateDevices=yes"));

    let analyzed = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output();
    let Ok(out) = analyzed else {
        eprintln!("skipped the exposure check: systemd-analyze is not installed");
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("peercam.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");
}

/// Runs `peercam serve` expecting it to refuse to start; returns its stderr.
fn refused(args: &[&str]) -> String {
    let dir = Scratch::new("refused");
    let out = Command::new(BIN)
        .arg("serve")
        .args(["--no-discovery", "--no-tls"])
        .args(args)
        .env("STATE_DIRECTORY", dir.join("state"))
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run peercam");
    drop(dir);
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_refused_start_says_why_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = taken.local_addr().unwrap().to_string();
    let err = refused(&["--no-camera", "--listen", &addr]);
    assert!(err.contains(&format!("binding {addr}")), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "{err}");

    let err = refused(&["--source", "nosuch", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("starting the camera"), "{err}");
    assert_eq!(
        err.matches("no source named \"nosuch\"").count(),
        1,
        "{err}"
    );
}
