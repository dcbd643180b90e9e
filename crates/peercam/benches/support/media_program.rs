//! The media program, for benchmarks that run the device: `cargo bench` builds only this
//! package's programs, and the device looks for `peercam-media` beside `peercam`. Building
//! it here (a no-op when it is current) keeps `cargo bench --bench NAME` a whole command.

use std::path::PathBuf;
use std::process::Command;

/// Builds `peercam-media` in the release profile, as `cargo bench` built `peercam`, and
/// returns its path.
pub fn ensure_built() -> PathBuf {
    let media = PathBuf::from(env!("CARGO_BIN_EXE_peercam")).with_file_name("peercam-media");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "-p", "peercam-media"])
        .status()
        .expect("running cargo to build the media program");
    assert!(status.success(), "building peercam-media failed: {status}");
    assert!(media.is_file(), "no media program at {}", media.display());
    media
}
