//! The split between the two programs: the serving program (`peercam`) must not link
//! GStreamer or GLib, whose pages would then count in its memory although it never calls
//! them (its crate does not depend on them; this checks the binary as well); the media
//! program (`peercam-media`) is what `peercam check` runs.

use std::process::Command;

/// The shared libraries a program needs, as `ldd` lists them.
fn needed(program: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(program).output().expect("ldd runs");
    assert!(out.status.success(), "ldd {program}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_serving_program_does_not_link_gstreamer_or_glib() {
    let libs = needed(env!("CARGO_BIN_EXE_peercam"));
    let media: Vec<_> = libs
        .iter()
        .filter(|l| {
            l.starts_with("libgst") || l.starts_with("libglib") || l.starts_with("libgobject")
        })
        .collect();
    assert!(media.is_empty(), "peercam links {media:?}; all: {libs:?}");
}

#[test]
fn check_runs_in_the_media_program() {
    let out = Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["check", "--source", "test", "--encoder", "x264"])
        .output()
        .expect("peercam check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // Only the media program can say this: it comes from GStreamer itself.
    assert!(text.starts_with("GStreamer 1."), "{text}");
    assert!(text.contains("would use:"), "{text}");
}
