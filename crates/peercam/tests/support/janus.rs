//! Janus (Debian's `janus`) as a media server the device publishes to, in a network namespace,
//! with Debian's simple-whip-server as its WHIP front, and viewers of Janus.
//!
//! ```text
//!  device ──POST /whip/endpoint/ID──▶ simple-whip-server :7080 ──WebSocket :8188──▶ Janus
//!         ═════ ICE/DTLS/SRTP, H.264 ═══════════════════════════════════════════▶ VideoRoom
//!  viewers (tests/aiortc/janus_viewer.py) ──HTTP API :8088──▶ Janus ═══ H.264 ═══▶ aiortc
//! ```
//!
//! simple-whip-server's package depends on Debian's nodejs, which a Node.js from elsewhere
//! conflicts with, so `scripts/setup.sh --test` unpacks it under tests/whip/server and installs
//! its npm dependencies in tests/whip/node_modules. Janus runs with a configuration written
//! here (only the VideoRoom plugin, the WebSocket and HTTP transports; room [`ROOM`] takes
//! H.264). Either program can be killed and started again, as a server that dies and comes
//! back; their output goes to files in the scratch directory.
//!
//! It starts, stops and reaches the programs; what a test expects is the test's.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lan::{output, repo, Netns};

/// The VideoRoom room the device publishes into.
pub const ROOM: u64 = 1234;
/// simple-whip-server's port.
pub const WHIP_PORT: u16 = 7080;
/// Janus's HTTP API port (the viewers').
pub const JANUS_HTTP: u16 = 8088;
/// Janus's WebSocket API port (simple-whip-server's).
const JANUS_WS: u16 = 8188;
/// The longest either program may take to start.
const START: Duration = Duration::from_secs(20);

/// Where simple-whip-server's sources were unpacked.
fn whip_sources() -> PathBuf {
    repo().join("tests/whip/server/usr/share/simple-whip-server/src")
}

/// The aiortc virtualenv's Python.
fn python() -> PathBuf {
    repo().join("tests/aiortc/.venv/bin/python")
}

/// Fails the test saying what this machine lacks to run Janus, simple-whip-server and the
/// viewers.
pub fn check_prerequisites() {
    output("sh", &["-c", "command -v janus"])
        .expect("janus is missing: run scripts/setup.sh --test");
    output("node", &["--version"]).expect("node is needed for simple-whip-server");
    output("curl", &["--version"]).expect("curl is needed to reach the servers");
    assert!(
        whip_sources().join("server.js").exists(),
        "simple-whip-server is not unpacked under tests/whip/server: run scripts/setup.sh --test"
    );
    assert!(
        repo().join("tests/whip/node_modules/express").exists(),
        "tests/whip has no node_modules: run scripts/setup.sh --test (npm ci in tests/whip)"
    );
    assert!(
        python().exists(),
        "{} is missing: run scripts/setup.sh --test",
        python().display()
    );
}

/// Janus and simple-whip-server in `ns`.
pub struct MediaServer<'a> {
    /// Where they run.
    ns: &'a Netns,
    /// Their files (configuration, logs).
    dir: PathBuf,
    /// The namespace's address.
    addr: String,
    /// Janus, while it runs.
    janus: Option<Child>,
    /// simple-whip-server, while it runs.
    whip: Option<Child>,
}

impl<'a> MediaServer<'a> {
    /// Writes the configurations into `dir` and starts both programs in `ns` (reachable at
    /// `addr`); returns once simple-whip-server is connected to Janus and answers.
    pub fn start(ns: &'a Netns, dir: &Path, addr: &str) -> MediaServer<'a> {
        let janus_dir = dir.join("janus");
        std::fs::create_dir_all(&janus_dir).expect("janus dir");
        write_janus_config(&janus_dir);
        let whip_dir = dir.join("whip/src");
        std::fs::create_dir_all(&whip_dir).expect("whip dir");
        for file in ["server.js", "whip-janus.js"] {
            std::fs::copy(whip_sources().join(file), whip_dir.join(file)).expect("copy sources");
        }
        std::fs::write(
            whip_dir.join("config.js"),
            format!(
                "module.exports = {{\n  janus: {{ address: 'ws://127.0.0.1:{JANUS_WS}' }},\n  \
                 port: {WHIP_PORT},\n  rest: '/whip',\n  allowTrickle: true,\n  \
                 strictETags: false,\n  iceServers: []\n}};\n"
            ),
        )
        .expect("config.js");
        let mut server = MediaServer {
            ns,
            dir: dir.to_owned(),
            addr: addr.to_owned(),
            janus: None,
            whip: None,
        };
        server.start_janus();
        server.start_whip();
        server
    }

    /// The WHIP endpoint `id`'s URL, as the device reaches it.
    pub fn endpoint_url(&self, id: &str) -> String {
        format!("http://{}:{WHIP_PORT}/whip/endpoint/{id}", self.addr)
    }

    /// Creates WHIP endpoint `id` publishing into [`ROOM`], wanting `token`
    /// (simple-whip-server keeps endpoints in memory: again after each of its starts).
    pub fn create_endpoint(&self, id: &str, token: &str) {
        let body = serde_json::json!({"id": id, "room": ROOM, "token": token}).to_string();
        let url = format!("http://127.0.0.1:{WHIP_PORT}/whip/create");
        let said = self.ns.run(
            "curl",
            &[
                "-sS",
                "-w",
                " %{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
                &url,
            ],
        );
        assert!(said.ends_with(" 200"), "creating the endpoint: {said}");
    }

    /// Starts Janus and waits until its HTTP API answers.
    pub fn start_janus(&mut self) {
        assert!(self.janus.is_none(), "Janus runs already");
        let dir = self.dir.join("janus");
        let log = append(&self.dir.join("janus.log"));
        let child = self
            .ns
            .command(
                "janus",
                &[
                    "-F",
                    dir.to_str().expect("utf-8 path"),
                    "-C",
                    dir.join("janus.jcfg").to_str().expect("utf-8 path"),
                    "-o",
                ],
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start janus");
        self.janus = Some(child);
        self.wait_http(JANUS_HTTP, "/janus/info", "Janus");
    }

    /// Kills Janus outright, as a crash would.
    pub fn kill_janus(&mut self) {
        if let Some(mut child) = self.janus.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts simple-whip-server and waits until it is connected to Janus and answers.
    pub fn start_whip(&mut self) {
        assert!(self.whip.is_none(), "simple-whip-server runs already");
        let log = append(&self.dir.join("whip.log"));
        let mut command = self.ns.command("node", &["src/server.js"]);
        command
            .current_dir(self.dir.join("whip"))
            .env("NODE_PATH", repo().join("tests/whip/node_modules"))
            .env(
                "DEBUG",
                "whip:*,-whip:debug,janus:*,-janus:debug,-janus:vdebug",
            )
            .env("DEBUG_COLORS", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.whip = Some(command.spawn().expect("start simple-whip-server"));
        self.wait_http(WHIP_PORT, "/whip/healthcheck", "simple-whip-server");
    }

    /// Kills simple-whip-server outright.
    pub fn kill_whip(&mut self) {
        if let Some(mut child) = self.whip.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// simple-whip-server's output so far.
    pub fn whip_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("whip.log")).unwrap_or_default()
    }

    /// Janus's output so far.
    pub fn janus_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default()
    }

    /// Runs `viewers` viewers of [`ROOM`] until each decoded `frames` frames and watched
    /// `seconds`; janus_viewer.py's JSON report, and whether it succeeded.
    pub fn watch(&self, viewers: u32, frames: u32, seconds: u32, timeout: u32) -> (bool, Value) {
        let out = self
            .watch_command(viewers, frames, seconds, timeout)
            .output()
            .expect("run janus_viewer.py");
        let text = String::from_utf8_lossy(&out.stdout);
        let report = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "janus_viewer.py printed no JSON ({e}):\n{text}\n--- stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), report)
    }

    /// The command [`MediaServer::watch`] runs, to run it in the background.
    pub fn watch_command(&self, viewers: u32, frames: u32, seconds: u32, timeout: u32) -> Command {
        let script = repo().join("tests/aiortc/janus_viewer.py");
        let mut command = self.ns.command(
            python().to_str().expect("utf-8 path"),
            &[
                script.to_str().expect("utf-8 path"),
                &format!("http://127.0.0.1:{JANUS_HTTP}/janus"),
                "--room",
                &ROOM.to_string(),
                "--viewers",
                &viewers.to_string(),
                "--frames",
                &frames.to_string(),
                "--seconds",
                &seconds.to_string(),
                "--timeout",
                &timeout.to_string(),
            ],
        );
        command.stdin(Stdio::null());
        command
    }

    /// Janus's process id, while it runs.
    pub fn janus_pid(&self) -> Option<u32> {
        self.janus.as_ref().map(Child::id)
    }

    /// Waits until `path` on `port` answers 200 inside the namespace.
    fn wait_http(&self, port: u16, path: &str, what: &str) {
        let url = format!("http://127.0.0.1:{port}{path}");
        let deadline = Instant::now() + START;
        loop {
            let status = output(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.ns.name,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &url,
                ],
            )
            .unwrap_or_default();
            if status == "200" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not answer {url} within {START:?}:\n--- janus:\n{}\n--- whip:\n{}",
                self.janus_log(),
                self.whip_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MediaServer<'_> {
    fn drop(&mut self) {
        self.kill_whip();
        self.kill_janus();
    }
}

/// A log file opened for appending (a program started again writes after its first run).
fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// Janus's configuration in `dir`: the VideoRoom with room [`ROOM`] taking H.264, the
/// WebSocket API on loopback (for simple-whip-server) and the HTTP API (for the viewers).
fn write_janus_config(dir: &Path) {
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let lib = if Path::new(lib).exists() {
        lib.to_owned()
    } else {
        // Another architecture's multiarch directory.
        std::fs::read_dir("/usr/lib")
            .ok()
            .and_then(|d| {
                d.flatten()
                    .map(|e| e.path().join("janus"))
                    .find(|p| p.join("plugins").exists())
            })
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| lib.to_owned())
    };
    let files = [
        (
            "janus.jcfg",
            format!(
                "general: {{\n  configs_folder = \"{dir}\"\n  plugins_folder = \"{lib}/plugins\"\n  \
                 transports_folder = \"{lib}/transports\"\n  events_folder = \"{lib}/events\"\n  \
                 loggers_folder = \"{lib}/loggers\"\n  debug_level = 4\n}}\n\
                 media: {{\n}}\nnat: {{\n  ice_ignore_list = \"vmnet\"\n}}\n\
                 plugins: {{\n  disable = \"libjanus_audiobridge.so,libjanus_duktape.so,\
                 libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,\
                 libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,\
                 libjanus_voicemail.so\"\n}}\n\
                 transports: {{\n  disable = \"libjanus_mqtt.so,libjanus_nanomsg.so,\
                 libjanus_pfunix.so,libjanus_rabbitmq.so\"\n}}\n\
                 events: {{\n  broadcast = false\n}}\nloggers: {{\n  disable = \"libjanus_jsonlog.so\"\n}}\n",
                dir = dir.display()
            ),
        ),
        (
            "janus.plugin.videoroom.jcfg",
            format!(
                "room-{ROOM}: {{\n  description = \"peercam\"\n  publishers = 1\n  \
                 videocodec = \"h264\"\n  audiocodec = \"opus\"\n}}\n"
            ),
        ),
        (
            "janus.transport.websockets.jcfg",
            format!("general: {{\n  ws = true\n  ws_port = {JANUS_WS}\n  ws_ip = \"127.0.0.1\"\n}}\n"),
        ),
        (
            "janus.transport.http.jcfg",
            format!(
                "general: {{\n  base_path = \"/janus\"\n  http = true\n  port = {JANUS_HTTP}\n  \
                 ip = \"127.0.0.1\"\n}}\n"
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("janus config");
    }
}
