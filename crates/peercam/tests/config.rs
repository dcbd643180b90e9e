//! The configuration as a person meets it through the binary: the printed default file, the
//! messages for bad files, and flags overriding the file. The parsing rules themselves are
//! unit-tested in `src/config.rs`.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use peercam::config::Config;
use support::device::BIN;
use support::scratch::Scratch;

fn peercam(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run peercam")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_printed_default_file_parses_to_the_defaults() {
    let out = peercam(&["config", "--default"]);
    assert!(out.status.success(), "{out:?}");
    let printed = text(&out.stdout);
    let parsed = Config::parse(&printed, Path::new("printed")).expect("the printed file parses");
    assert_eq!(parsed, Config::default());
    for section in [
        "[server]",
        "[tls]",
        "[limits]",
        "[camera]",
        "[discovery]",
        "[log]",
    ] {
        assert!(printed.contains(section), "{section} missing");
    }
    // Every key line is preceded by its explanation.
    let lines: Vec<&str> = printed.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') {
            assert!(
                lines[i - 1].starts_with('#'),
                "{line:?} has no comment above it"
            );
        }
    }
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let missing = std::env::temp_dir()
        .join(format!("peercam-cfg-{}-absent", std::process::id()))
        .join("nope.toml");
    let missing = missing.to_str().unwrap();
    for command in ["serve", "check", "config"] {
        let out = peercam(&[command, "--config", missing]);
        assert!(!out.status.success(), "{command}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(missing), "{command}: {err}");
        assert_eq!(err.matches("No such file").count(), 1, "{command}: {err}");
    }
}

#[test]
fn a_bad_file_is_refused_with_file_line_and_key() {
    let dir = Scratch::new("bad");
    let file = dir.join("peercam.toml");
    std::fs::write(&file, "[camera]\nfps = 30\nframerate = 25\n").unwrap();
    let out = peercam(&["serve", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("line 3") && err.contains("framerate"), "{err}");

    std::fs::write(&file, "[camera]\nfps = 500\n").unwrap();
    let err = text(&peercam(&["serve", "--config", file.to_str().unwrap()]).stderr);
    assert!(err.contains("camera.fps"), "{err}");
}

#[test]
fn flags_override_the_file() {
    let dir = Scratch::new("flags");
    let file = dir.join("peercam.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:9000\"\nname = \"from file\"\n\
         [camera]\nsource = \"libcamera\"\nencoder = \"v4l2h264\"\nfps = 12\n\
         [discovery]\nenabled = true\n",
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let effective = |extra: &[&str]| {
        let mut args = vec!["config", "--config", file_arg];
        args.extend_from_slice(extra);
        let out = peercam(&args);
        assert!(out.status.success(), "{out:?}");
        Config::parse(&text(&out.stdout), Path::new("effective")).expect("parses")
    };
    let plain = effective(&[]);
    assert_eq!(plain.server.listen.port(), 9000);
    assert_eq!(plain.server.name, "from file");
    assert_eq!(plain.camera.source, "libcamera");
    assert!(plain.discovery.enabled);
    assert!(plain.tls.enabled);

    let flagged = effective(&[
        "--listen",
        "127.0.0.1:9100",
        "--name",
        "from flag",
        "--source",
        "test",
        "--encoder",
        "x264",
        "--conversation",
        "porch",
        "--ice-address",
        "127.0.0.1",
        "--no-discovery",
        "--no-tls",
    ]);
    assert_eq!(flagged.server.listen.port(), 9100);
    assert_eq!(flagged.server.name, "from flag");
    assert_eq!(flagged.camera.source, "test");
    assert_eq!(flagged.camera.encoder, "x264");
    assert_eq!(flagged.camera.conversation, "porch");
    assert_eq!(
        flagged.camera.ice_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(!flagged.discovery.enabled);
    assert!(!flagged.tls.enabled);
    // Untouched by any flag: the file's value.
    assert_eq!(flagged.camera.fps, 12);

    // The same configuration as JSON, as `peercam check` hands it to the media program.
    let out = peercam(&["config", "--config", file_arg, "--source", "test", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: Config = serde_json::from_slice(&out.stdout).expect("JSON config");
    assert_eq!(json.camera.source, "test");
    assert_eq!(json.camera.fps, 12);
    assert_eq!(json.server.name, "from file");
    assert!(!peercam(&["config", "--default", "--json"]).status.success());
}

#[test]
fn help_explains_every_command_and_option() {
    let out = peercam(&["--help"]);
    let help = text(&out.stdout);
    for word in [
        "serve",
        "check",
        "discover",
        "config",
        "--config",
        "--listen",
        "--no-discovery",
        "--no-tls",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let help = text(&peercam(&["discover", "--help"]).stdout);
    assert!(
        help.contains("--timeout") && help.contains("--json"),
        "{help}"
    );
    let help = text(&peercam(&["config", "--help"]).stdout);
    assert!(help.contains("--default"), "{help}");
    let out = peercam(&["discover", "--timeout", "0"]);
    assert!(!out.status.success());
}

/// The .deb ships this file as /etc/peercam/peercam.toml; it must be what the binary prints.
#[test]
fn the_packaged_default_file_is_current() {
    assert_eq!(
        peercam::config::Config::default_file(),
        include_str!("../../../packaging/peercam.toml"),
        "regenerate with: target/release/peercam config --default > packaging/peercam.toml"
    );
}
