//! A small driver for `peercam::discovery`, used by `tests/discovery_netns.rs` inside network
//! namespaces and handy by hand on a LAN:
//!
//! ```text
//! mdns_probe advertise --name "Porch Cam" --port 8080 --conv porch [--tls] [--auth]
//!                      [--fp SHA256] [--address IP]...
//!     prints `advertising <host>` once registered; on SIGTERM or SIGINT sends the goodbye,
//!     prints `stopped` and exits 0
//! mdns_probe browse [--timeout SECS] [--json]
//!     one-shot browse, printed as `peercam discover` would (table, or JSON with --json)
//! mdns_probe watch [--timeout SECS]
//!     follows devices, one JSON object per line:
//!     {"event":"found","camera":{..}} or {"event":"removed","name":".."}
//! ```
//!
//! Once `peercam serve` advertises and `peercam discover` browses, the end-to-end test can run
//! those instead; `watch` stays useful for seeing goodbyes as they happen.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use peercam::discovery::{self, Advertisement, Advertiser, BrowseEvent, Browser};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Advertise until SIGTERM or SIGINT.
    Advertise {
        #[arg(long, default_value = "peercam")]
        name: String,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[arg(long, default_value = "camera")]
        conv: String,
        #[arg(long)]
        tls: bool,
        #[arg(long)]
        auth: bool,
        #[arg(long)]
        fp: Option<String>,
        #[arg(long = "address")]
        addresses: Vec<IpAddr>,
    },
    /// Browse once and print what answered.
    Browse {
        #[arg(long, default_value_t = 3.0)]
        timeout: f64,
        #[arg(long)]
        json: bool,
    },
    /// Print devices as they come and go.
    Watch {
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().mode {
        Mode::Advertise {
            name,
            port,
            conv,
            tls,
            auth,
            fp,
            addresses,
        } => {
            // Blocked before any thread starts, so every thread inherits the mask and the
            // signals stay pending until `sigwait` below takes them.
            let signals = block_termination_signals()?;
            let advertiser = Advertiser::start(Advertisement {
                name,
                port,
                conversation: conv,
                tls,
                auth,
                fingerprint: fp,
                addresses,
            })?;
            println!("advertising {}", advertiser.host());
            std::io::stdout().flush()?;
            let mut signal = 0;
            // SAFETY: `signals` is an initialised set and `signal` a valid out-pointer.
            let rc = unsafe { libc::sigwait(&signals, &mut signal) };
            if rc != 0 {
                anyhow::bail!("sigwait failed: {}", std::io::Error::from_raw_os_error(rc));
            }
            advertiser.shutdown(Duration::from_secs(2));
            println!("stopped");
        }
        Mode::Browse { timeout, json } => {
            let found = discovery::browse(Duration::from_secs_f64(timeout))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", discovery::format_table(&found));
            }
        }
        Mode::Watch { timeout } => {
            let deadline = Instant::now() + Duration::from_secs_f64(timeout);
            let browser = Browser::start()?;
            let mut out = std::io::stdout().lock();
            while let Some(event) = browser.next(deadline) {
                let line = match event {
                    BrowseEvent::Found(camera) => {
                        serde_json::json!({"event": "found", "camera": camera})
                    }
                    BrowseEvent::Removed(name) => {
                        serde_json::json!({"event": "removed", "name": name})
                    }
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            browser.stop();
        }
    }
    Ok(())
}

fn block_termination_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: the set is initialised by sigemptyset before use; the calls only touch it and
    // this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}
