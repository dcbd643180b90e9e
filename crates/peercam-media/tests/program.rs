//! The media program as a program: it links GStreamer, and refuses what it cannot use.

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
fn the_media_program_links_gstreamer() {
    let libs = needed(env!("CARGO_BIN_EXE_peercam-media"));
    assert!(
        libs.iter().any(|l| l.starts_with("libgstreamer-1.0")),
        "{libs:?}"
    );
}

#[test]
fn the_media_program_refuses_unknown_commands_and_bad_input() {
    let media = env!("CARGO_BIN_EXE_peercam-media");
    let out = Command::new(media).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker, check"));

    let mut child = Command::new(media)
        .arg("check")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"server\": 3}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the configuration from peercam"),
        "{out:?}"
    );
}
