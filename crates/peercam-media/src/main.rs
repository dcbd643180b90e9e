//! `peercam-media`: the camera's media process. GStreamer lives in this program only, so the
//! serving program (`peercam`) neither links nor maps it.
//!
//! - `peercam-media worker`: a media worker, run by `peercam serve` with a socket as stdin
//!   (see `peercam_media::worker`).
//! - `peercam-media check`: the report of `peercam check` for the configuration read as JSON
//!   from stdin.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;

fn main() -> ExitCode {
    peercam_wire::memory::tune_allocator();
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        Some("worker") => peercam_media::worker::main(),
        Some("check") => check(),
        _ => {
            eprintln!(
                "peercam-media: the camera's media process, run by peercam \
                 (commands: worker, check)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peercam-media: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the `peercam check` report for the configuration on stdin.
fn check() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the configuration")?;
    let config: peercam_wire::config::Config =
        serde_json::from_str(&text).context("the configuration from peercam")?;
    peercam_wire::logging::init(&config.log.level);
    print!("{}", peercam_media::check::report(&config));
    Ok(())
}
