//! The device under test, two ways: in this process ([`Server`]: a [`Device`] served on
//! `127.0.0.1:0`, stopped through its handle) and as the built `peercam serve` program
//! ([`Serve`]: a child process whose stderr is kept for failure messages, killed on drop).
//!
//! Both reach the device as a person would: with its access token (read from the device for
//! the in-process one, from the link in its start-up log for the child), in the `?token=` of
//! the WebSocket URL and the `Authorization` header of HTTP requests, unless its
//! configuration says `auth.mode = "none"`.
//!
//! Neither decides what a test expects of the device: they start it, wait for it, reach it
//! and stop it, each wait bounded.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peercam::camera::CameraSnapshot;
use peercam::config::Config;
use peercam::service::Device;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

use super::ws::{Client, WsError};
use super::{http, WAIT};

/// The serving program, as cargo built it for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_peercam");

/// Start-up of a debug build on a loaded machine (GStreamer's registry, the encoder probe).
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// Resolves when the test stops the server (or drops it).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A configuration with the given tweaks; tests state only the limits they exercise.
pub fn config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    tweak(&mut config);
    config
}

/// A device serving HTTP and signaling on an ephemeral loopback port, in this process.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The device, for tests that look inside (hub, camera).
    pub device: Arc<Device>,
    /// Resolves the shutdown future; dropping it does as well.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task, until [`Server::stop`] joins it.
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Builds a device from `config` and serves it.
    pub async fn start(config: &Config) -> Server {
        Server::serve(Device::new(config)).await
    }

    /// Serves an already built device (e.g. one whose camera was started).
    pub async fn serve(device: Device) -> Server {
        Server::serve_with(device, |device, listener, shutdown| async move {
            device.serve(listener, shutdown).await
        })
        .await
    }

    /// Binds `127.0.0.1:0` and runs `serve` on it with the device and the shutdown future:
    /// for tests that serve the device's parts some other way than [`Device::serve`].
    pub async fn serve_with<F, S>(device: Device, serve: F) -> Server
    where
        F: FnOnce(Arc<Device>, TcpListener, Shutdown) -> S,
        S: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let device = Arc::new(device);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            // A dropped sender stops the server as well as an explicit stop.
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(device.clone(), listener, shutdown));
        Server {
            addr,
            device,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The device's access token (the one in use now), `None` when it needs none.
    pub fn token(&self) -> Option<String> {
        self.device.access.token().map(|t| t.reveal().to_owned())
    }

    /// The signaling endpoint's URL, with the access token as a nextRTC client carries it.
    pub fn ws_url(&self) -> String {
        with_token(&self.ws_url_bare(), self.token().as_deref())
    }

    /// The signaling endpoint's URL without any token.
    pub fn ws_url_bare(&self) -> String {
        format!("ws://{}/signaling", self.addr)
    }

    /// The signaling endpoint as a request, to add headers (Origin, Host) before connecting.
    pub fn ws_request(&self) -> Request {
        self.ws_url()
            .into_client_request()
            .expect("a valid ws:// URL")
    }

    /// Opens a WebSocket to the signaling endpoint; `label` names it in failure messages.
    pub async fn connect(&self, label: &str) -> Client {
        self.connect_with(self.ws_request(), label)
            .await
            .unwrap_or_else(|e| panic!("{label}: WebSocket handshake failed: {e}"))
    }

    /// Opens a WebSocket with `request` (see [`Server::ws_request`]); the handshake's error
    /// is the caller's to judge.
    pub async fn connect_with(&self, request: Request, label: &str) -> Result<Client, WsError> {
        Client::connect(request, None, label).await
    }

    /// GETs `path` over plain HTTP/1.0 with the access token; returns the status code and
    /// the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http::get_authorized(self.addr, path, self.token().as_deref()).await
    }

    /// The counts `/api/stats` reports.
    pub async fn stats(&self) -> Stats {
        let (status, body) = self.get("/api/stats").await;
        assert_eq!(status, 200, "/api/stats answered {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/stats is not JSON: {e}: {body}"))
    }

    /// Polls `/api/stats` until `ok` holds; the server updates its counts asynchronously after
    /// a socket closes, so a single read could see the moment before.
    pub async fn wait_stats(&self, what: &str, ok: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if ok(&stats) {
                return stats;
            }
            if Instant::now() >= deadline {
                panic!("/api/stats never showed {what}; last: {stats:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until members, conversations and pairs are exactly these.
    pub async fn expect_counts(&self, members: usize, conversations: usize, pairs: usize) -> Stats {
        self.wait_stats(
            &format!("members={members} conversations={conversations} pairs={pairs}"),
            |s| s.members == members && s.conversations == conversations && s.pairs == pairs,
        )
        .await
    }

    /// Resolves the shutdown future and waits for serving to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self
            .task
            .take()
            .expect("the serving task is present until stop");
        match tokio::time::timeout(WAIT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => panic!("the serving task failed: {e}"),
            Err(_) => panic!("the server did not stop within {WAIT:?}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// `url` with `token=` added to its query, when there is a token.
pub fn with_token(url: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}token={token}")
        }
        None => url.to_owned(),
    }
}

/// The token in the link of a device's start-up log (`open http://...?token=T to watch`).
pub fn token_in_log(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains(" to watch") && l.contains("?token="))?;
    let after = &line[line.find("?token=")? + "?token=".len()..];
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(after.len());
    Some(after[..end].to_owned())
}

/// What `/api/stats` reports about signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Connected members.
    pub members: usize,
    /// Live conversations.
    pub conversations: usize,
    /// Pairs negotiating or connected.
    pub pairs: usize,
}

/// The media program, built beside `peercam` in the workspace's target directory (the
/// workspace's `cargo test` builds both).
pub fn media_program() -> PathBuf {
    Path::new(BIN).with_file_name("peercam-media")
}

/// A port nobody listens on right now (the command line needs a number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `peercam serve --listen 127.0.0.1:PORT args…` logging at info to a piped stderr, with
/// nothing of this environment's service manager (notify socket, journal, state directory)
/// passed on: a caller that wants those sets them on the command.
pub fn serve_command(port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    with_serve_args(&mut command, port, args);
    command
}

/// As [`serve_command`], run the way systemd runs a service's main process: `WATCHDOG_PID`
/// is its own pid (`exec` keeps the shell's pid, so `$$` is the service's).
pub fn serve_command_as_main_pid(port: u16, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", BIN]);
    with_serve_args(&mut command, port, args);
    command
}

fn with_serve_args(command: &mut Command, port: u16, args: &[&str]) {
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
}

/// `peercam serve` as a child process, its stderr lines collected (when piped). Killed on drop.
pub struct Serve {
    /// The process.
    child: Child,
    /// Its stderr lines so far.
    logs: Arc<Mutex<Vec<String>>>,
    /// Reads stderr until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Serve {
    /// Starts `peercam serve args…` on a free loopback port and waits for its ready line.
    pub fn start(args: &[&str]) -> Serve {
        let port = free_port();
        let mut serve = Serve::spawn(serve_command(port, args), port);
        serve.line(" ready: ", START_LIMIT);
        serve
    }

    /// Starts `command` (see [`serve_command`]), which listens on `port`, without waiting.
    pub fn spawn(mut command: Command, port: u16) -> Serve {
        let mut child = command.spawn().expect("spawn peercam");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|stderr| {
            let sink = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            })
        });
        Serve {
            child,
            logs,
            reader,
            port,
        }
    }

    /// Its stderr so far, one line a line.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits (up to `within`) for a stderr line containing `text` and returns it.
    pub fn line(&mut self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(text))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {text:?}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} within {within:?} in\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill");
    }

    /// Waits for the process to exit within `within` (killing it and failing otherwise); by
    /// then every stderr line it wrote has been collected.
    pub fn exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after {within:?}\n--- peercam log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader may still be forwarding the last lines; a worker that outlives the
        // process may hold the pipe open, so wait only a little for it.
        let forwarded = Instant::now() + Duration::from_secs(1);
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < forwarded {
            std::thread::sleep(Duration::from_millis(5));
        }
        status
    }

    /// SIGTERM, and a clean exit within [`START_LIMIT`].
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.exit_within(START_LIMIT);
        assert!(status.success(), "{status}\n{}", self.logs());
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The access token in the link its start-up log shows, `None` when it shows none (yet,
    /// or with `auth.mode = "none"`).
    pub fn token(&self) -> Option<String> {
        token_in_log(&self.logs())
    }

    /// The signaling endpoint's URL, with the access token from its log.
    pub fn ws_url(&self) -> String {
        with_token(
            &format!("ws://{}/signaling", self.addr()),
            self.token().as_deref(),
        )
    }

    /// GETs `path` over plain HTTP with the access token from its log.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http::get_authorized(self.addr(), path, self.token().as_deref()).await
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A capture for the camera tests: videotestsrc's `pattern` at `width`x`height`, 30 fps,
/// x264 at 500 kbit/s, constrained baseline as a browser takes it.
pub fn test_launch(pattern: &str, width: u32, height: u32) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate=30/1 \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=500 \
         ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
    )
}

/// A device in this process whose camera runs `launch`, with host candidates on the loopback
/// only and its configuration tweaked by `tweak`, served on the loopback.
pub async fn serve_camera(launch: String, tweak: impl FnOnce(&mut Config)) -> Server {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = Config::default();
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    tweak(&mut config);
    let mut device = Device::new(&config);
    device
        .start_camera(
            &config,
            peercam_wire::Capture::Launch(launch),
            &media_program(),
        )
        .expect("camera starts");
    Server::serve(device).await
}

/// The camera's counts of an in-process device (one whose camera was started).
pub fn camera_stats(device: &Device) -> CameraSnapshot {
    device.camera.as_ref().unwrap().stats().snapshot()
}

/// Waits up to 10 s for the camera's counts to satisfy `f`; fails saying `what` otherwise.
pub async fn wait_for(device: &Device, what: &str, f: impl Fn(&CameraSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = camera_stats(device);
        if f(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
