//! Start-up time as systemd sees it: from spawning `peercam serve --source test` to its
//! `READY=1` on the notify socket (port bound, camera started, mDNS registered), and from
//! SIGTERM to exit. Runs the optimised binary several times and prints min/median/max.
//!
//! `cargo bench --bench startup`. As root with `unshare`, it re-runs itself in a private
//! network namespace (loopback only) so that the mDNS advertiser runs as on a device without
//! sending anything onto the LAN; elsewhere the service runs with `--no-discovery`.

#[path = "support/media_program.rs"]
mod media_program;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_peercam");
const NETNS_MARK: &str = "PEERCAM_BENCH_IN_NETNS";
/// Runs after the first: the first may pay for GStreamer's registry check.
const RUNS: usize = 10;
/// The target from the issue.
const TARGET: Duration = Duration::from_millis(500);

fn main() {
    if std::env::var_os(NETNS_MARK).is_none() {
        media_program::ensure_built();
    }
    if let Some(status) = rerun_in_netns() {
        std::process::exit(status);
    }
    let in_netns = std::env::var_os(NETNS_MARK).is_some();
    let dir = std::env::temp_dir().join(format!("peercam-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    // The defaults, whatever /etc/peercam holds on this machine. Bound to loopback, the
    // service advertises only addresses it is given.
    let config = dir.join("peercam.toml");
    let text = if in_netns {
        "[discovery]\naddresses = [\"127.0.0.1\"]\n"
    } else {
        ""
    };
    std::fs::write(&config, text).expect("config file");

    let mut ready = Vec::new();
    let mut stop = Vec::new();
    for run in 0..=RUNS {
        let (r, s) = once(&dir, &config, run, in_netns);
        if run == 0 {
            println!("first run (may check the plugin registry): ready {r:?}, stop {s:?}");
        } else {
            ready.push(r);
            stop.push(s);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "peercam serve --source test, {RUNS} runs, mDNS {}",
        if in_netns {
            "on (private network namespace)"
        } else {
            "off (--no-discovery)"
        }
    );
    report("start → READY=1", &mut ready);
    report("SIGTERM → exit ", &mut stop);
    let median = ready[ready.len() / 2];
    println!(
        "target start → READY ≤ {} ms: {}",
        TARGET.as_millis(),
        if median <= TARGET { "met" } else { "MISSED" }
    );
}

/// One start and stop; returns (spawn → READY, SIGTERM → exit).
fn once(
    dir: &std::path::Path,
    config: &std::path::Path,
    run: usize,
    in_netns: bool,
) -> (Duration, Duration) {
    let notify = dir.join(format!("notify-{run}.sock"));
    let socket = UnixDatagram::bind(&notify).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve",
        "--source",
        "test",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--listen",
        &listen,
    ];
    if !in_netns {
        args.push("--no-discovery");
    }
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(&args)
        .env("NOTIFY_SOCKET", &notify)
        // The TLS certificate: made by the warm-up start, loaded by the measured ones, as on a
        // device after its first boot.
        .env("STATE_DIRECTORY", dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn peercam");
    let mut buf = [0u8; 4096];
    let ready = loop {
        let n = socket.recv(&mut buf).expect("READY=1 within 60 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break started.elapsed();
        }
    };
    // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let signalled = Instant::now();
    let status = child.wait().expect("wait");
    let stop = signalled.elapsed();
    assert!(status.success(), "peercam exited with {status}");
    let _ = std::fs::remove_file(&notify);
    (ready, stop)
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
}

/// As root with `unshare`, re-runs this benchmark in a private network namespace and returns
/// its exit status; `None` to run here.
fn rerun_in_netns() -> Option<i32> {
    if std::env::var_os(NETNS_MARK).is_some() {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let usable = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", "ip link set lo up && exec \"$0\""])
        .arg(exe)
        .env(NETNS_MARK, "1")
        .status()
        .ok()?;
    Some(status.code().unwrap_or(1))
}
