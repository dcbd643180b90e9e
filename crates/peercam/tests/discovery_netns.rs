//! mDNS discovery across a real link: two network namespaces, "camera" (192.0.2.1) and
//! "laptop" (192.0.2.2), joined by a veth pair. Addresses are TEST-NET-1 documentation space
//! and exist only inside the two namespaces, so no packet reaches any other network.
//!
//! The camera namespace runs `examples/mdns_probe advertise`; the laptop namespace runs
//! `mdns_probe watch` (devices as they come and go) and one-shot `mdns_probe browse --json`.
//! The first test checks the advertisement (TXT, URL on 192.0.2.1), that an address added to
//! or removed from the camera's interface reaches the laptop, and that SIGTERM makes the
//! camera say goodbye: the laptop sees the removal within seconds, far below the records'
//! TTL. The second runs avahi-daemon in the camera namespace beside the advertiser (both on
//! port 5353, same host name) and checks that each side sees the other.
//!
//! The last puts two cameras and a laptop on one bridge: the laptop opens camera A's page in
//! Chromium (tests/browser/camera-list.js), finds camera B listed, follows B's entry to B's
//! page, and sees B leave the open page's list once B stops.
//!
//! [`Lab`], [`Netns`] and [`Proc`] know nothing about the probe, so an end-to-end test runs
//! `peercam serve` (through the shared [`Serve`]) and `peercam discover` in them the same way.
//!
//! All need root and `ip netns`, the second also avahi-daemon, avahi-utils and dbus-daemon
//! (`scripts/setup.sh --test` installs them). So they are ignored in a plain `cargo test`, and
//! `scripts/test.sh` runs them with `--ignored` when it runs as root; run without what they
//! need, they fail saying what is missing.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::device::{Serve, BIN};
use support::lan::{check_prerequisites, repo};
use support::scratch::Scratch;

/// Longest wait for a single expected event. The daemon looks at interface addresses every
/// 5 s and probing takes about a second, so this leaves room for a loaded machine.
const WAIT: Duration = Duration::from_secs(15);

const CAMERA_ADDR: &str = "192.0.2.1";
const LAPTOP_ADDR: &str = "192.0.2.2";
/// Added to and removed from the camera's interface while it advertises.
const EXTRA_ADDR: &str = "192.0.2.3";

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace, deleted (with its interfaces) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Result<Netns, String> {
        // A namespace left by a killed run with the same pid would make `add` fail.
        let _ = run(&["netns", "del", &name]);
        run(&["netns", "add", &name])?;
        Ok(Netns { name })
    }

    /// Runs `ip -n NAME args…`.
    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        if let Err(e) = run(&full) {
            panic!("{e}");
        }
    }

    /// Starts `program args…` inside the namespace.
    fn spawn(&self, program: &str, args: &[&str]) -> Proc {
        self.spawn_env(program, args, &[])
    }

    /// Starts `program args…` inside the namespace with extra environment variables.
    fn spawn_env(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = self.command(program, args);
        command.envs(env.iter().copied());
        Proc::spawn(command, &format!("{}: {program}", self.name))
    }

    /// `program args…` to run inside the namespace (`ip netns exec` execs it, so the child's
    /// pid is the program's).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, program])
            .args(args);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["netns", "del", &self.name]) {
            let _ = writeln!(std::io::stderr(), "cleanup: {e}");
        }
    }
}

/// The two namespaces and the link between them, up, with multicast on.
struct Lab {
    camera: Netns,
    laptop: Netns,
}

impl Lab {
    /// Sets the lab up, or fails the test saying why namespaces cannot be made here.
    /// `tag` keeps the namespaces of tests running side by side apart.
    fn new(tag: &str) -> Lab {
        Lab::try_new(tag)
            .unwrap_or_else(|reason| panic!("{reason} (these tests need root and `ip netns`)"))
    }

    fn try_new(tag: &str) -> Result<Lab, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        run(&["netns", "list"]).map_err(|e| format!("`ip netns` unavailable: {e}"))?;
        // `ip netns add` sets up the shared /run/netns mount on first use; two tests doing
        // that at once can trip over each other.
        static SETUP: Mutex<()> = Mutex::new(());
        let _one_at_a_time = SETUP
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pid = std::process::id();
        let camera = Netns::create(format!("pc-{tag}cam-{pid}"))?;
        let laptop = Netns::create(format!("pc-{tag}lap-{pid}"))?;
        // Created inside the camera namespace with its peer moved straight into the laptop
        // namespace, so no interface ever appears in the host's namespace.
        camera.ip(&[
            "link",
            "add",
            "vcam",
            "type",
            "veth",
            "peer",
            "name",
            "vlap",
            "netns",
            &laptop.name,
        ]);
        camera.ip(&["addr", "add", &format!("{CAMERA_ADDR}/24"), "dev", "vcam"]);
        laptop.ip(&["addr", "add", &format!("{LAPTOP_ADDR}/24"), "dev", "vlap"]);
        for (ns, dev) in [(&camera, "vcam"), (&laptop, "vlap")] {
            ns.ip(&["link", "set", "lo", "up"]);
            ns.ip(&["link", "set", dev, "multicast", "on", "up"]);
        }
        Ok(Lab { camera, laptop })
    }
}

/// A child process whose stdout lines arrive on a channel and whose stderr is kept for
/// failure messages. Killed on drop.
struct Proc {
    what: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(mut command: Command, what: &str) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout was piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr was piped");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            what: what.to_owned(),
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line that `accept` takes, within `within`; panics (with the process's
    /// stderr) otherwise.
    fn expect_line<T>(
        &self,
        within: Duration,
        waiting_for: &str,
        mut accept: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match accept(&line) {
                    Some(t) => return t,
                    None => seen.push(line),
                },
                Err(_) => panic!(
                    "{}: no {waiting_for} within {within:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Every stdout line not yet taken, up to the end of the output (the reader may still be
    /// forwarding lines after the process has exited).
    fn remaining_lines(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{}: output did not end within {within:?}", self.what)
                }
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
    }

    /// Waits until the process's stderr contains `text`.
    fn expect_stderr(&self, within: Duration, text: &str) {
        let deadline = Instant::now() + within;
        while !self.stderr().contains(text) {
            if Instant::now() >= deadline {
                panic!(
                    "{}: no {text:?} on stderr within {within:?}\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself within `within`.
    fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} still running after {within:?}\nstderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first, so that daemons clean up (avahi removes its pid file).
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The probe example, rebuilt first so that `cargo test --test discovery_netns` (which does
/// not build examples) never runs a stale one. Cargo releases its build lock before running
/// tests, so the nested build does not wait on the outer one.
fn probe_binary() -> PathBuf {
    // The test runs as <target dir>/<profile>/deps/discovery_netns-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in <target dir>/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let probe = profile_dir.join("examples").join("mdns_probe");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--example",
            "mdns_probe",
            "--profile",
            profile,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    match built {
        Ok(status) => assert!(
            status.success(),
            "cargo build --example mdns_probe: {status}"
        ),
        // Run outside cargo: use what is there.
        Err(e) => assert!(probe.exists(), "no {} and no cargo: {e}", probe.display()),
    }
    probe
}

/// A `watch` line about the camera: `Some(camera)` for "found", `None` for other lines.
fn found_porch_cam(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["event"] == "found" && v["camera"]["name"] == "Porch Cam").then(|| v["camera"].clone())
}

fn addresses(camera: &Value) -> Vec<IpAddr> {
    camera["addresses"]
        .as_array()
        .expect("addresses is an array")
        .iter()
        .map(|a| a.as_str().expect("address string").parse().expect("an IP"))
        .collect()
}

fn browse_json(ns: &Netns, probe: &str) -> Vec<Value> {
    browse_json_with(ns, probe, "browse")
}

#[test]
#[ignore = "needs root: network namespaces"]
fn camera_is_found_follows_address_changes_and_says_goodbye() {
    let lab = Lab::new("");
    let probe = probe_binary();
    let probe = probe.to_str().expect("UTF-8 path");

    let watch = lab.laptop.spawn(probe, &["watch", "--timeout", "90"]);
    let mut advertiser = lab.camera.spawn(
        probe,
        &[
            "advertise",
            "--name",
            "Porch Cam",
            "--port",
            "8443",
            "--conv",
            "porch",
            "--tls",
            "--auth",
            "--fp",
            "sha-256 AB:CD:EF",
        ],
    );
    advertiser.expect_line(WAIT, "`advertising` line", |l| {
        (l == "advertising porch-cam.local").then_some(())
    });

    // Seen by a browser that was already listening. The first resolution may carry only the
    // link-local IPv6 address; the announcement with the LAN address follows.
    let camera_addr: IpAddr = CAMERA_ADDR.parse().unwrap();
    let camera = watch.expect_line(WAIT, "camera with its LAN address", |l| {
        found_porch_cam(l).filter(|c| addresses(c).contains(&camera_addr))
    });
    let expected_txt = serde_json::json!({
        "path": "/signaling",
        "conv": "porch",
        "ver": env!("CARGO_PKG_VERSION"),
        "tls": "1",
        "auth": "1",
        "fp": "sha-256 AB:CD:EF",
    });
    assert_eq!(camera["txt"], expected_txt, "{camera}");
    assert_eq!(camera["url"], "https://192.0.2.1:8443/", "{camera}");
    assert_eq!(camera["host"], "porch-cam.local", "{camera}");
    assert_eq!(camera["port"], 8443, "{camera}");

    // Seen by a browse that starts afterwards: the shape `peercam discover --json` prints.
    let found = browse_json(&lab.laptop, probe);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], "Porch Cam");
    assert_eq!(found[0]["txt"], expected_txt);
    assert_eq!(found[0]["url"], "https://192.0.2.1:8443/");

    // An address that appears is announced; one that goes is withdrawn (re-announcement with
    // the cache-flush bit), both well before any TTL would expire.
    let extra: IpAddr = EXTRA_ADDR.parse().unwrap();
    let extra_cidr = format!("{EXTRA_ADDR}/24");
    lab.camera.ip(&["addr", "add", &extra_cidr, "dev", "vcam"]);
    watch.expect_line(WAIT, "camera with the added address", |l| {
        found_porch_cam(l).filter(|c| addresses(c).contains(&extra))
    });
    lab.camera.ip(&["addr", "del", &extra_cidr, "dev", "vcam"]);
    let camera = watch.expect_line(WAIT, "camera without the removed address", |l| {
        found_porch_cam(l).filter(|c| !addresses(c).contains(&extra))
    });
    assert_eq!(camera["url"], "https://192.0.2.1:8443/", "{camera}");

    // SIGTERM: goodbye, clean exit, and the laptop drops the camera at once.
    let stopped_at = Instant::now();
    advertiser.terminate();
    let status = advertiser.wait(Duration::from_secs(5));
    assert!(
        status.success(),
        "advertiser: {status}\n{}",
        advertiser.stderr()
    );
    advertiser.expect_line(Duration::from_secs(1), "`stopped` line", |l| {
        (l == "stopped").then_some(())
    });
    watch.expect_line(Duration::from_secs(5), "removal", |l| {
        let v: Value = serde_json::from_str(l).ok()?;
        (v["event"] == "removed" && v["name"] == "Porch Cam").then_some(())
    });
    let removal_took = stopped_at.elapsed();
    assert!(removal_took < Duration::from_secs(5), "{removal_took:?}");

    assert_eq!(browse_json(&lab.laptop, probe), Vec::<Value>::new());
}

/// Where `program` is on PATH, if it is.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
}

/// A private D-Bus bus (a Unix socket in a temporary directory, no network) for avahi-daemon
/// and avahi-browse to meet on, so the host's own bus, if any, is left alone.
const BUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@DIR@/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

/// avahi as a Pi would run it, but on the camera's veth only and with the camera's host name
/// the same as the advertiser's (`porch-cam`): the case where the two stacks publish the
/// same address records.
const AVAHI_CONF: &str = "[server]
host-name=porch-cam
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces=vcam
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
";

/// avahi-daemon and the advertiser on the same host (the camera namespace), sharing port
/// 5353: avahi's browser sees the camera, the camera's browse and the laptop's see a service
/// avahi publishes, neither side reports a name conflict, and avahi sees the goodbye.
#[test]
#[ignore = "needs root: network namespaces"]
fn coexists_with_avahi_on_the_same_host() {
    let tools = [
        "avahi-daemon",
        "avahi-browse",
        "avahi-publish",
        "dbus-daemon",
    ];
    if let Some(missing) = tools.iter().find(|t| which(t).is_none()) {
        panic!("{missing} not installed (apt-get install avahi-daemon avahi-utils dbus-daemon)");
    }
    let lab = Lab::new("av");
    let probe = probe_binary();
    let probe = probe.to_str().expect("UTF-8 path");

    let dir = Scratch::new("avahi");
    let dir_str = dir.path().to_str().expect("UTF-8 path");
    let bus_conf = dir.join("bus.conf");
    std::fs::write(&bus_conf, BUS_CONF.replace("@DIR@", dir_str)).expect("bus.conf");
    let avahi_conf = dir.join("avahi-daemon.conf");
    std::fs::write(&avahi_conf, AVAHI_CONF).expect("avahi-daemon.conf");
    let bus_address = format!("unix:path={dir_str}/bus");
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus_address.as_str())];

    let mut dbus = Command::new("dbus-daemon");
    dbus.args(["--nofork", "--nopidfile", "--config-file"])
        .arg(&bus_conf);
    let _dbus = Proc::spawn(dbus, "dbus-daemon");
    let deadline = Instant::now() + WAIT;
    while !dir.join("bus").exists() {
        assert!(Instant::now() < deadline, "dbus-daemon made no socket");
        thread::sleep(Duration::from_millis(50));
    }

    // avahi first, as at boot; it refuses to start while another avahi-daemon runs.
    let avahi_conf = avahi_conf.to_str().expect("UTF-8 path");
    let avahi = lab.camera.spawn_env(
        "avahi-daemon",
        &[
            "-f",
            avahi_conf,
            "--no-drop-root",
            "--no-chroot",
            "--no-rlimits",
        ],
        &env,
    );
    avahi.expect_stderr(
        WAIT,
        "Server startup complete. Host name is porch-cam.local",
    );

    let advertiser = lab.camera.spawn(
        probe,
        &[
            "advertise",
            "--name",
            "Porch Cam",
            "--port",
            "8080",
            "--conv",
            "porch",
        ],
    );
    advertiser.expect_line(WAIT, "`advertising` line", |l| {
        (l == "advertising porch-cam.local").then_some(())
    });

    // avahi, on the same host, resolves the camera.
    let resolved = "=;vcam;IPv4;Porch\\032Cam;_nextrtc._tcp;local;porch-cam.local;192.0.2.1;8080;";
    let deadline = Instant::now() + WAIT;
    loop {
        let browse = lab
            .camera
            .spawn_env("avahi-browse", &["-rpt", "_nextrtc._tcp"], &env);
        let lines = browse.remaining_lines(WAIT);
        if let Some(line) = lines.iter().find(|l| l.starts_with(resolved)) {
            assert!(line.contains("\"conv=porch\"") && line.contains("\"path=/signaling\""));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "avahi-browse never resolved the camera: {lines:?}\n{}",
            browse.stderr()
        );
        thread::sleep(Duration::from_millis(500));
    }

    // Packets from avahi reach the advertiser's host and the laptop.
    let publish = lab.camera.spawn_env(
        "avahi-publish",
        &["-s", "Avahi Cam", "_nextrtc._tcp", "9000", "conv=other"],
        &env,
    );
    publish.expect_stderr(WAIT, "Established under name 'Avahi Cam'");
    for ns in [&lab.camera, &lab.laptop] {
        let found = browse_json(ns, probe);
        let names: Vec<&str> = found.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["Avahi Cam", "Porch Cam"], "in {}", ns.name);
        assert_eq!(found[1]["url"], "http://192.0.2.1:8080/");
    }

    // Same host name, same addresses: neither stack saw a conflict.
    let avahi_log = avahi.stderr().to_lowercase();
    assert!(!avahi_log.contains("conflict"), "{avahi_log}");
    assert!(
        !advertiser.stderr().contains("conflict"),
        "{}",
        advertiser.stderr()
    );

    // The goodbye reaches avahi's cache.
    advertiser.terminate();
    advertiser.expect_line(WAIT, "`stopped` line", |l| (l == "stopped").then_some(()));
    thread::sleep(Duration::from_secs(2));
    let browse = lab
        .camera
        .spawn_env("avahi-browse", &["-pt", "_nextrtc._tcp"], &env);
    let lines = browse.remaining_lines(WAIT);
    assert!(lines.iter().all(|l| !l.contains("Porch")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("Avahi")), "{lines:?}");
}

/// `peercam discover --json` in a namespace, as parsed JSON.
fn discover_json(ns: &Netns) -> Vec<Value> {
    browse_json_with(ns, BIN, "discover")
}

fn browse_json_with(ns: &Netns, program: &str, command: &str) -> Vec<Value> {
    let mut browse = ns.spawn(program, &[command, "--timeout", "3", "--json"]);
    let status = browse.wait(WAIT);
    assert!(status.success(), "{command}: {status}\n{}", browse.stderr());
    let json = browse.remaining_lines(WAIT).join("\n");
    match serde_json::from_str(&json) {
        Ok(Value::Array(found)) => found,
        other => panic!("{command} --json printed {json:?}: {other:?}"),
    }
}

/// The real thing: `peercam serve` on the "camera", `peercam discover` on the "laptop", and
/// the URL it prints serves the page; after SIGTERM the camera is no longer found.
#[test]
#[ignore = "needs root: network namespaces"]
fn peercam_discover_finds_peercam_serve_and_its_url_serves_the_page() {
    let lab = Lab::new("e2e");
    let scratch = Scratch::new("netns");
    let (mut serve, state) = serve_in(&lab.camera, "Porch Cam", &scratch);
    serve.line("certificate SHA-256 ", WAIT);
    let fingerprint = support::tls::device_fingerprint(&state.join("cert.pem"));
    assert!(serve.logs().contains(&fingerprint), "{}", serve.logs());

    // A browse started the instant the device is ready (on interfaces made a moment ago) can
    // miss it; a person running `discover` a second later would not.
    let mut found = Vec::new();
    for _ in 0..3 {
        found = discover_json(&lab.laptop);
        if found.iter().any(|c| c["name"] == "Porch Cam") {
            break;
        }
    }
    let camera = found
        .iter()
        .find(|c| c["name"] == "Porch Cam")
        .unwrap_or_else(|| panic!("not found: {found:?}\n{}", serve.logs()));
    assert_eq!(camera["txt"]["path"], "/signaling", "{camera}");
    assert_eq!(camera["txt"]["conv"], "camera", "{camera}");
    assert_eq!(camera["port"], 8080, "{camera}");
    let url = camera["url"].as_str().expect("a URL");
    assert_eq!(url, "https://192.0.2.1:8080/", "{camera}");
    assert_eq!(camera["http_url"], "http://192.0.2.1:8080/", "{camera}");
    assert_eq!(camera["txt"]["tls"], "1", "{camera}");
    assert_eq!(camera["fingerprint"], fingerprint.as_str(), "{camera}");
    // Private by default: the TXT says a token is needed, and the log gives the owner the
    // link by the device's .local name, never by the address it listens on.
    assert_eq!(camera["txt"]["auth"], "1", "{camera}");
    let token = serve
        .token()
        .unwrap_or_else(|| panic!("no link in\n{}", serve.logs()));
    let link = serve.line(" to watch", WAIT);
    assert!(
        link.contains(&format!(
            "open https://porch-cam.local:8080/?token={token} to watch"
        )),
        "{link}"
    );
    assert!(!serve.logs().contains("://0.0.0.0"), "{}", serve.logs());

    // What a browser on the laptop is shown for that URL is the advertised certificate.
    {
        assert!(
            which("openssl").is_some(),
            "openssl (scripts/setup.sh --test installs it)"
        );
        let mut shown = lab.laptop.spawn(
            "sh",
            &[
                "-c",
                "openssl s_client -connect 192.0.2.1:8080 -servername porch-cam.local </dev/null \
                 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            ],
        );
        assert!(shown.wait(WAIT).success(), "openssl: {}", shown.stderr());
        let line = shown.remaining_lines(WAIT).join("");
        assert_eq!(
            line.split_once('=').map(|(_, fp)| fp),
            Some(fingerprint.as_str())
        );
    }

    // Fetch the page from the laptop, with bash's /dev/tcp (no HTTP client needed there):
    // refused without the token, served with it.
    let fetch = |path: &str| {
        let script = format!(
            "exec 3<>/dev/tcp/192.0.2.1/8080 && printf 'GET {path} HTTP/1.0\\r\\nHost: 192.0.2.1:8080\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let mut get = lab.laptop.spawn("bash", &["-c", &script]);
        assert!(get.wait(WAIT).success(), "GET: {}", get.stderr());
        get.remaining_lines(WAIT).join("\n")
    };
    let refused = fetch("/");
    assert!(
        refused.starts_with("HTTP/1.0 401") || refused.starts_with("HTTP/1.1 401"),
        "{refused:.300}"
    );
    let page = fetch(&format!("/?token={token}"));
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page:.300}"
    );
    assert!(
        page.contains("Porch Cam"),
        "the page names the device: {page:.600}"
    );

    serve.signal(libc::SIGTERM);
    let status = serve.exit_within(Duration::from_secs(5));
    assert!(status.success(), "serve: {status}\n{}", serve.logs());
    let after = discover_json(&lab.laptop);
    assert!(
        after.iter().all(|c| c["name"] != "Porch Cam"),
        "still advertised after SIGTERM: {after:?}"
    );
}

/// `peercam serve` named `name` in `ns`, no camera, on port 8080 of every address, once
/// ready; and its state directory (where it keeps its TLS certificate, as systemd's
/// `StateDirectory=`).
fn serve_in(ns: &Netns, name: &str, scratch: &Scratch) -> (Serve, PathBuf) {
    let dir = scratch.join(name.replace(' ', "-").to_lowercase());
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("peercam.toml");
    std::fs::write(&config, "").unwrap();
    let mut command = ns.command(
        BIN,
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "0.0.0.0:8080",
            "--name",
            name,
            "--no-camera",
        ],
    );
    let state = dir.join("state");
    command
        .env("RUST_LOG", "info")
        .env("STATE_DIRECTORY", &state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut serve = Serve::spawn(command, 8080);
    serve.line("ready", WAIT);
    (serve, state)
}

/// `GET path` on `addr:8080` from `ns`, over bash's /dev/tcp; the whole response.
fn http_get(ns: &Netns, addr: &str, path: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{addr}/8080 && printf 'GET {path} HTTP/1.0\\r\\nHost: {addr}:8080\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let mut get = ns.spawn("bash", &["-c", &script]);
    assert!(get.wait(WAIT).success(), "GET {path}: {}", get.stderr());
    get.remaining_lines(WAIT).join("\n")
}

/// The names, URLs and whether each needs its own link (`auth=1`), as the camera at `addr`
/// (whose access token is `token`) lists them on `/api/cameras`.
fn listed(ns: &Netns, addr: &str, token: &str) -> Vec<(String, String, bool)> {
    let response = http_get(ns, addr, &format!("/api/cameras?token={token}"));
    let body = response.split_once("\n\n").map_or("", |(_, b)| b);
    let json: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("/api/cameras: {e}: {response}"));
    assert_eq!(json["browsing"], true, "{json}");
    json["cameras"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["http_url"].as_str().unwrap_or_default().to_owned(),
                c["txt"]["auth"] == "1",
            )
        })
        .collect()
}

/// Polls `check` every 250 ms until it holds or `within` passes; how long it took.
fn within(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(250));
    }
    None
}

#[test]
#[ignore = "needs root: network namespaces"]
fn each_camera_lists_the_others_on_the_lan_and_drops_one_that_stops() {
    // Two cameras and a laptop on one bridge (in the laptop's namespace), as on a home LAN.
    let pid = std::process::id();
    let a = Netns::create(format!("pc-nbA-{pid}")).unwrap_or_else(|e| panic!("{e}"));
    let b = Netns::create(format!("pc-nbB-{pid}")).unwrap_or_else(|e| panic!("{e}"));
    let laptop = Netns::create(format!("pc-nbL-{pid}")).unwrap_or_else(|e| panic!("{e}"));
    laptop.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    laptop.ip(&["addr", "add", "192.0.2.2/24", "dev", "br0"]);
    laptop.ip(&["link", "set", "lo", "up"]);
    laptop.ip(&["link", "set", "br0", "multicast", "on", "up"]);
    for (ns, addr, port) in [(&a, "192.0.2.11", "pa"), (&b, "192.0.2.12", "pb")] {
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            &laptop.name,
        ]);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "set", "eth0", "multicast", "on", "up"]);
        laptop.ip(&[
            "link",
            "set",
            port,
            "master",
            "br0",
            "multicast",
            "on",
            "up",
        ]);
    }
    let scratch = Scratch::new("neighbours");
    let (porch, _) = serve_in(&a, "Porch Cam", &scratch);
    let (mut garden, _) = serve_in(&b, "Garden Cam", &scratch);
    let porch_token = porch.token().expect("Porch Cam's link");
    let garden_token = garden.token().expect("Garden Cam's link");
    let porch_list = || listed(&laptop, "192.0.2.11", &porch_token);

    // The laptop opens camera A by its address: A lists B (not itself), with B's address.
    let found = within(WAIT, || {
        porch_list().iter().any(|(name, ..)| name == "Garden Cam")
    });
    let seen = porch_list();
    assert!(found.is_some(), "Porch Cam lists {seen:?}");
    eprintln!("Porch Cam listed Garden Cam after {found:?}: {seen:?}");
    // By its address, and marked as asking for its own link (each camera has its token).
    assert_eq!(
        seen,
        [(
            "Garden Cam".to_owned(),
            "http://192.0.2.12:8080/".to_owned(),
            true
        )]
    );
    // And B lists A.
    let garden_list = || listed(&laptop, "192.0.2.12", &garden_token);
    assert!(
        within(WAIT, || garden_list()
            .iter()
            .any(|(name, ..)| name == "Porch Cam"))
        .is_some(),
        "Garden Cam lists {:?}",
        garden_list()
    );
    // The listed address serves B's page to the laptop (with B's own token).
    let page = http_get(&laptop, "192.0.2.12", &format!("/?token={garden_token}"));
    assert!(
        page.contains(" 200 ") && page.contains("Garden Cam"),
        "{page:.400}"
    );
    // A's page carries the list's place.
    let page = http_get(&laptop, "192.0.2.11", &format!("/?token={porch_token}"));
    assert!(page.contains("id=\"cameras\""), "{page:.400}");
    // The list is behind A's access check like the rest of its API.
    let refused = http_get(&laptop, "192.0.2.11", "/api/cameras");
    assert!(refused.contains(" 401 "), "{refused:.300}");

    // In Chromium on the laptop: A's page lists B, and B's entry, with B's own token, opens
    // B's page.
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    check_prerequisites(&chromium, "playwright-core");
    let script = repo().join("tests/browser/camera-list.js");
    let page = laptop.spawn(
        "node",
        &[
            script.to_str().unwrap(),
            &format!("http://192.0.2.11:8080/?token={porch_token}"),
            "Garden Cam",
            &garden_token,
        ],
    );
    let shown: Value = page.expect_line(Duration::from_secs(60), "the page's list", |l| {
        serde_json::from_str(l).ok()
    });
    eprintln!("Porch Cam's page in Chromium: {shown}");
    let entry = &shown["listed"][0];
    assert_eq!(
        (
            entry["name"].as_str(),
            entry["href"].as_str(),
            entry["http"].as_str(),
            entry["visible"].as_bool()
        ),
        (
            Some("Garden Cam"),
            Some("https://192.0.2.12:8080/"),
            Some("http://192.0.2.12:8080/"),
            Some(true)
        ),
        "{shown}"
    );
    assert!(
        entry["note"]
            .as_str()
            .unwrap_or_default()
            .contains("own link"),
        "{shown}"
    );
    assert_eq!(shown["followed"]["status"], 200, "{shown}");
    assert!(
        shown["followed"]["title"]
            .as_str()
            .unwrap_or_default()
            .contains("Garden Cam"),
        "{shown}"
    );

    // B stops: its goodbye takes it off A's list within seconds.
    garden.signal(libc::SIGTERM);
    assert!(garden.exit_within(Duration::from_secs(5)).success());
    let gone = within(Duration::from_secs(5), || porch_list().is_empty());
    eprintln!("Garden Cam left Porch Cam's list after {gone:?}");
    assert!(
        gone.is_some(),
        "still listed 5 s after stopping: {:?}",
        porch_list()
    );
    // And the open page drops it by itself (it asks again every 5 s).
    page.signal(libc::SIGUSR1);
    let left: Value = page.expect_line(Duration::from_secs(30), "the page's update", |l| {
        serde_json::from_str(l).ok()
    });
    eprintln!("Garden Cam left Porch Cam's open page: {left}");
    let after = left["leftAfterMs"].as_f64();
    assert!(
        after.is_some_and(|ms| ms < 8000.0),
        "the page still lists the stopped camera: {left}"
    );
}
