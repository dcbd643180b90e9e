//! A lossy two-host LAN for the root-only tests that watch the camera from a real browser.
//!
//! Two network namespaces, "camera" and "laptop", joined by a veth pair, with addresses the
//! caller makes up (10.213.x.y); they exist only inside the two namespaces, so nothing leaves
//! the machine. In the laptop namespace nftables drops a share of every UDP packet arriving
//! (media and ICE alike), and counts them. The camera namespace runs `peercam serve` with a
//! camera-like source (the SMPTE bars scrolling: several RTP packets a frame, so a lost packet
//! usually hits a frame that matters); the laptop runs tests/browser/lan-viewer.js, whose JSON
//! report the test judges.
//!
//! Everything is removed on drop (the namespaces take their interfaces and rules with them).
//! It only builds the link and runs the programs: what a test expects is the test's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::device::{with_token, Serve, BIN, START_LIMIT};
use super::scratch::Scratch;

/// The device's port inside the camera namespace (nothing else listens there).
pub const PORT: u16 = 8080;

/// The camera: SMPTE bars scrolling sideways, so every frame changes across the picture.
const SOURCE: &str = "description = \"SMPTE bars, scrolling\"\n\
    launch = \"videotestsrc is-live=true pattern=smpte horizontal-speed=6 \
    ! video/x-raw,width={width},height={height},framerate={fps}/1\"\n\
    [[elements]]\nfactory = \"videotestsrc\"\npackage = \"gstreamer1.0-plugins-base\"\n";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command to completion; its stdout, or why it failed.
pub fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn must(program: &str, args: &[&str]) -> String {
    output(program, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    /// Its name for `ip netns`.
    pub name: String,
}

impl Netns {
    pub fn create(name: String) -> Netns {
        // A namespace left by a killed run with the same pid would make `add` fail.
        let _ = output("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        Netns { name }
    }

    /// Runs `program args…` inside the namespace to completion; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        must("ip", &full)
    }

    /// `program args…` to run inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, program])
            .args(args);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = output("ip", &["netns", "del", &self.name]) {
            let _ = writeln!(std::io::stderr(), "cleanup: {e}");
        }
    }
}

/// Fails the test saying what this machine lacks to run `browser` (a path) through the
/// npm package `driver` in tests/browser; the viewer script's path.
pub fn check_prerequisites(browser: &str, driver: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "not running as root (this test needs network namespaces)"
    );
    output("ip", &["netns", "list"]).expect("`ip netns` unavailable");
    output("nft", &["--version"]).expect("nftables (`nft`) is needed for the packet loss");
    output("node", &["--version"]).expect("node is needed to drive the browser");
    assert!(Path::new(browser).exists(), "no browser at {browser}");
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules").join(driver).exists(),
        "tests/browser has no node_modules/{driver}: run `npm ci` there (scripts/setup.sh --test \
         and tests/browser/run.sh do)"
    );
    let media = Path::new(BIN).with_file_name("peercam-media");
    assert!(
        media.exists(),
        "{} is not built: run `cargo build --workspace` first",
        media.display()
    );
    dir.join("lan-viewer.js")
}

/// The two namespaces, their link and the laptop's loss rule.
pub struct LossyLan {
    /// Where the device runs.
    pub camera: Netns,
    /// Where the browser runs.
    pub laptop: Netns,
    /// The camera's address.
    pub camera_addr: String,
}

impl LossyLan {
    /// The camera at `camera_addr`, the laptop at `laptop_addr` (both /24), `percent` of the
    /// UDP packets reaching the laptop dropped.
    pub fn new(camera_addr: &str, laptop_addr: &str, percent: u32) -> LossyLan {
        // Unique per LAN, so that tests of one binary can build theirs at the same time.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id(), (b'a' + (n % 26) as u8) as char);
        let camera = Netns::create(format!("pc-cam-{tag}"));
        let laptop = Netns::create(format!("pc-lap-{tag}"));
        let (vcam, vlap) = (format!("vc{tag}"), format!("vl{tag}"));
        must(
            "ip",
            &["link", "add", &vcam, "type", "veth", "peer", "name", &vlap],
        );
        must("ip", &["link", "set", &vcam, "netns", &camera.name]);
        must("ip", &["link", "set", &vlap, "netns", &laptop.name]);
        for (ns, dev, addr) in [(&camera, &vcam, camera_addr), (&laptop, &vlap, laptop_addr)] {
            let cidr = format!("{addr}/24");
            must("ip", &["-n", &ns.name, "addr", "add", &cidr, "dev", dev]);
            must("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
            must("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
        }
        loss_chain(&laptop);
        let lan = LossyLan {
            camera,
            laptop,
            camera_addr: camera_addr.to_owned(),
        };
        lan.set_loss(percent);
        lan
    }

    /// From now on the laptop drops `percent` of arriving UDP (the rule's counter starts
    /// again).
    pub fn set_loss(&self, percent: u32) {
        self.laptop
            .run("nft", &["flush", "chain", "inet", "loss", "in"]);
        drop_rule(&self.laptop, "in", &[], percent);
    }

    /// Packets the laptop's loss rule has dropped.
    pub fn dropped(&self) -> u64 {
        counted(&self.laptop)
    }

    /// The camera drops `percent` of the UDP reaching it as well (what viewers send it: their
    /// reports, their voice), counted by [`LossyLan::dropped_at_camera`]. Once per LAN.
    pub fn lose_towards_camera(&self, percent: u32) {
        loss_chain(&self.camera);
        drop_rule(&self.camera, "in", &[], percent);
    }

    /// Packets the camera's loss rule has dropped.
    pub fn dropped_at_camera(&self) -> u64 {
        counted(&self.camera)
    }

    /// Starts `peercam serve` in the camera namespace: the scrolling bars at 640x480, 30 fps,
    /// x264 at `bitrate_kbps`, its files in `scratch`. Returns once it is ready.
    pub fn serve(&self, scratch: &Scratch, bitrate_kbps: u32) -> Serve {
        self.serve_with(scratch, bitrate_kbps, "")
    }

    /// As [`LossyLan::serve`], with `extra` added to its configuration right after its
    /// `[camera]` keys: more `[camera]` keys first, if any, then other sections.
    pub fn serve_with(&self, scratch: &Scratch, bitrate_kbps: u32, extra: &str) -> Serve {
        let pipelines = scratch.join("pipelines");
        std::fs::create_dir_all(pipelines.join("sources")).expect("sources dir");
        std::fs::create_dir_all(pipelines.join("encoders")).expect("encoders dir");
        std::fs::write(pipelines.join("sources/smpte.toml"), SOURCE).expect("source");
        std::fs::copy(
            repo().join("pipelines/encoders/x264.toml"),
            pipelines.join("encoders/x264.toml"),
        )
        .expect("encoder");
        let config = scratch.join("peercam.toml");
        std::fs::write(
            &config,
            format!(
                "[camera]\nsource = \"smpte\"\nencoder = \"x264\"\nwidth = 640\nheight = 480\n\
                 fps = 30\nbitrate_kbps = {bitrate_kbps}\npipelines_dir = \"{}\"\n{extra}",
                pipelines.display()
            ),
        )
        .expect("config");
        let listen = self.listen();
        let mut command = self.camera.command(
            BIN,
            &[
                "serve",
                "--config",
                config.to_str().expect("utf-8 path"),
                "--listen",
                &listen,
            ],
        );
        command
            .env("RUST_LOG", "info,peercam_media=debug")
            .env("STATE_DIRECTORY", scratch.path())
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut serve = Serve::spawn(command, PORT);
        serve.line(" ready: ", START_LIMIT);
        serve
    }

    /// The device's address and port.
    pub fn listen(&self) -> String {
        format!("{}:{PORT}", self.camera_addr)
    }

    /// Runs lan-viewer.js (`script`) in the laptop namespace: `browser` (`chromium` or
    /// `firefox`) watching `pages` pages of the device for `seconds`, opened by the link a
    /// person gets (with the device's access `token`), with its HOME in `scratch`. Its output,
    /// whatever its status.
    pub fn watch(
        &self,
        scratch: &Scratch,
        script: &Path,
        seconds: u32,
        browser: &str,
        pages: u32,
        token: Option<&str>,
    ) -> Output {
        let url = with_token(&format!("http://{}/", self.listen()), token);
        self.watch_url(scratch, script, &url, seconds, browser, pages)
    }

    /// Runs lan-viewer.js as [`LossyLan::watch`] does, on `url` (the page, or the WHEP door).
    pub fn watch_url(
        &self,
        scratch: &Scratch,
        script: &Path,
        url: &str,
        seconds: u32,
        browser: &str,
        pages: u32,
    ) -> Output {
        viewer_command(&self.laptop, scratch, script, url, seconds, browser, pages)
            .output()
            .expect("run node")
    }

    /// Runs lan-viewer.js as [`LossyLan::watch_url`] does, one page whose viewer holds "Hold
    /// to talk" over the window (`LAN_VIEWER_TALK`).
    pub fn talk_url(
        &self,
        scratch: &Scratch,
        script: &Path,
        url: &str,
        seconds: u32,
        browser: &str,
    ) -> Output {
        viewer_command(&self.laptop, scratch, script, url, seconds, browser, 1)
            .env("LAN_VIEWER_TALK", "1")
            .output()
            .expect("run node")
    }

    /// A second laptop behind the first, which routes for it: `far_addr` on a /24 of its own,
    /// the first laptop `near_addr` on that link. The first laptop drops `percent` of the UDP
    /// packets it forwards to it (its own rule drops what reaches the first laptop), so two
    /// sets of viewers watch over links of different loss at once.
    pub fn far_laptop(&self, near_addr: &str, far_addr: &str, percent: u32) -> Netns {
        let tag = self.laptop.name.trim_start_matches("pc-lap-").to_owned();
        let far = Netns::create(format!("pc-far-{tag}"));
        let (vnear, vfar) = (format!("vn{tag}"), format!("vf{tag}"));
        must(
            "ip",
            &["link", "add", &vnear, "type", "veth", "peer", "name", &vfar],
        );
        must("ip", &["link", "set", &vnear, "netns", &self.laptop.name]);
        must("ip", &["link", "set", &vfar, "netns", &far.name]);
        for (ns, dev, addr) in [(&self.laptop, &vnear, near_addr), (&far, &vfar, far_addr)] {
            let cidr = format!("{addr}/24");
            must("ip", &["-n", &ns.name, "addr", "add", &cidr, "dev", dev]);
            must("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
        }
        must("ip", &["-n", &far.name, "link", "set", "lo", "up"]);
        must(
            "ip",
            &["-n", &far.name, "route", "add", "default", "via", near_addr],
        );
        let far_net = format!(
            "{}.0/24",
            far_addr.rsplit_once('.').expect("an IPv4 address").0
        );
        let laptop_addr = self.laptop_addr();
        must(
            "ip",
            &[
                "-n",
                &self.camera.name,
                "route",
                "add",
                &far_net,
                "via",
                &laptop_addr,
            ],
        );
        self.laptop
            .run("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]);
        self.laptop.run(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                "loss",
                "onward",
                "{ type filter hook forward priority 0; }",
            ],
        );
        drop_rule(&self.laptop, "onward", &["ip", "daddr", &far_net], percent);
        far
    }

    /// Caps what the first laptop forwards to the far one (made by [`LossyLan::far_laptop`])
    /// at `kbit_per_s`, as a slow Wi-Fi link would: a token bucket whose queue holds 50 ms, so
    /// what does not fit is dropped.
    pub fn cap_far_link(&self, kbit_per_s: u32) {
        let tag = self.laptop.name.trim_start_matches("pc-lap-");
        let rate = format!("{kbit_per_s}kbit");
        self.laptop.run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                &format!("vn{tag}"),
                "root",
                "tbf",
                "rate",
                &rate,
                "burst",
                "32kbit",
                "latency",
                "50ms",
            ],
        );
    }

    /// The first laptop's address on the camera's link.
    fn laptop_addr(&self) -> String {
        let out = self.laptop.run("ip", &["-4", "-o", "addr", "show"]);
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .filter(|w| w.contains('/'))
            .map(|w| w.split('/').next().unwrap_or_default().to_owned())
            .find(|a| {
                a.rsplit_once('.').map(|(net, _)| net)
                    == self.camera_addr.rsplit_once('.').map(|(net, _)| net)
            })
            .expect("the laptop's address on the camera's link")
    }

    /// Starts lan-viewer.js in `ns` (a laptop) on the device's page, as [`LossyLan::watch`]
    /// runs it, without waiting: for viewers on different laptops at once.
    pub fn spawn_watch(
        &self,
        ns: &Netns,
        scratch: &Scratch,
        script: &Path,
        seconds: u32,
        pages: u32,
        token: Option<&str>,
    ) -> std::process::Child {
        self.spawn_watch_settled(ns, scratch, script, seconds, pages, token, 2)
    }

    /// As [`LossyLan::spawn_watch`], the window opening `settle` seconds after each page's
    /// first frame instead of 2: for a viewer whose picture is expected to settle later (one
    /// moved to another encode once its link is known).
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_watch_settled(
        &self,
        ns: &Netns,
        scratch: &Scratch,
        script: &Path,
        seconds: u32,
        pages: u32,
        token: Option<&str>,
        settle: u32,
    ) -> std::process::Child {
        let url = with_token(&format!("http://{}/", self.listen()), token);
        viewer_command(ns, scratch, script, &url, seconds, "chromium", pages)
            .env("LAN_VIEWER_SETTLE_MS", (settle * 1000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node")
    }
}

/// Makes `ns`'s `loss` table with its `in` chain, on the input hook. One nft command at a
/// time: a one-line ruleset with `;` inside the chain fails to parse.
fn loss_chain(ns: &Netns) {
    ns.run("nft", &["add", "table", "inet", "loss"]);
    ns.run(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "loss",
            "in",
            "{ type filter hook input priority 0; }",
        ],
    );
}

/// What the first counted rule of `ns`'s `loss` table has dropped.
fn counted(ns: &Netns) -> u64 {
    let rules = ns.run("nft", &["list", "table", "inet", "loss"]);
    rules
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in the loss rule:\n{rules}"))
}

/// Adds to `chain` of `ns`'s `loss` table a rule dropping `percent` of the UDP packets that
/// also match `matching` (nft words), counted.
fn drop_rule(ns: &Netns, chain: &str, matching: &[&str], percent: u32) {
    let percent = percent.to_string();
    let mut rule = vec!["add", "rule", "inet", "loss", chain];
    rule.extend_from_slice(matching);
    rule.extend_from_slice(&[
        "meta", "l4proto", "udp", "numgen", "random", "mod", "100", "<", &percent, "counter",
        "drop",
    ]);
    ns.run("nft", &rule);
}

/// The JSON report lan-viewer.js printed (`out`); when it failed, panics saying `what`
/// failed, with its stderr and the device's `logs`.
pub fn viewer_report(out: &Output, what: &str, logs: &str) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{text}\n--- peercam log:\n{logs}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).expect("the viewer's JSON report")
}

/// lan-viewer.js in `ns` on `url`, its HOME a directory of `scratch` named after `ns`.
fn viewer_command(
    ns: &Netns,
    scratch: &Scratch,
    script: &Path,
    url: &str,
    seconds: u32,
    browser: &str,
    pages: u32,
) -> Command {
    let home = scratch.join(format!("home-{}", ns.name));
    std::fs::create_dir_all(&home).expect("home");
    let mut command = ns.command(
        "node",
        &[
            script.to_str().expect("utf-8 path"),
            url,
            &seconds.to_string(),
            browser,
            &pages.to_string(),
        ],
    );
    command.env("HOME", &home).stdin(Stdio::null());
    command
}

/// Adds to `scratch`'s pipelines directory the test tone as the camera's sound and a speaker
/// `file` that writes what it plays, 48 kHz mono S16LE at a sound card's pace, to the file
/// returned. For a device served with `[audio] source = "test"` and `[talkback] output =
/// "file"` (see [`TALKBACK`]).
pub fn speaker_file(scratch: &Scratch) -> PathBuf {
    let pipelines = scratch.join("pipelines");
    let raw = scratch.join("speaker.raw");
    std::fs::create_dir_all(pipelines.join("audio")).unwrap();
    std::fs::create_dir_all(pipelines.join("speaker")).unwrap();
    std::fs::copy(
        repo().join("pipelines/audio/test.toml"),
        pipelines.join("audio/test.toml"),
    )
    .unwrap();
    std::fs::write(
        pipelines.join("speaker/file.toml"),
        format!(
            "description = \"a file\"\nlaunch = \"audioconvert ! \
             audio/x-raw,format=S16LE,rate=48000,channels=1 ! filesink location={} \
             append=true sync=true\"\n[[elements]]\nfactory = \"filesink\"\n\
             package = \"libgstreamer1.0-0\"\n",
            raw.display()
        ),
    )
    .unwrap();
    raw
}

/// The configuration sections for [`speaker_file`]'s pipelines, for [`LossyLan::serve_with`].
pub const TALKBACK: &str = "[audio]\nsource = \"test\"\n[talkback]\noutput = \"file\"\n";

/// Loudness (rms) and frequency (by zero crossings) of raw 48 kHz mono S16LE sound.
pub fn tone_of(raw: &[u8]) -> (f64, f64) {
    let samples: Vec<i16> = raw
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let seconds = samples.len() as f64 / 48_000.0;
    (
        (sum / samples.len() as f64).sqrt(),
        crossings as f64 / 2.0 / seconds,
    )
}
