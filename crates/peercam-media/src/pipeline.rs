//! Source and encoder descriptions read from files, and the capture pipeline built from them.
//!
//! ```text
//!   pipelines/sources/<name>.toml    → raw video at {width}x{height}, {fps} frames/s
//!   pipelines/encoders/<name>.toml   → raw video in, H.264 out
//!
//!   <source> ! <encoder> ! video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline
//! ```
//!
//! This module owns the file format (documented in `pipelines/README.md`), where the files
//! are looked for and how they are read; what a description is and the rules it must meet
//! are in `description`. It never opens a device or starts GStreamer: `launch` turns
//! descriptions into gst-launch text, `probe` asks the machine, `select` decides.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use super::description::{
    DeviceApi, Element, Fragment, HardwareCheck, Kind, PipelineError, VideoParams,
};

/// Environment variable naming the pipelines directory when the config does not.
pub const ENV_DIR: &str = "PEERCAM_PIPELINES";

/// Where packages install the descriptions.
pub const SYSTEM_DIR: &str = "/usr/share/peercam/pipelines";

/// Files larger than this are not descriptions; refusing them keeps a mistaken path (a video,
/// a device node) from being read into memory.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// `sources/<name>.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    description: String,
    #[serde(default)]
    device: Option<DeviceApi>,
    #[serde(default)]
    default_device: Option<String>,
    launch: String,
    elements: Vec<Element>,
}

/// `encoders/<name>.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncoderFile {
    description: String,
    launch: String,
    elements: Vec<Element>,
    #[serde(default)]
    probe: HardwareCheck,
}

/// Where the pipelines directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirOrigin {
    /// `camera.pipelines_dir` in the config.
    Config,
    /// The `PEERCAM_PIPELINES` environment variable.
    Env,
    /// `PREFIX/share/peercam/pipelines` for the executable's installation prefix.
    NextToExecutable,
    /// `/usr/share/peercam/pipelines`.
    System,
    /// The source tree the binary was built from (development builds).
    SourceTree,
}

impl fmt::Display for DirOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DirOrigin::Config => "camera.pipelines_dir in the config",
            DirOrigin::Env => "$PEERCAM_PIPELINES",
            DirOrigin::NextToExecutable => "installed next to the executable",
            DirOrigin::System => "installed system-wide",
            DirOrigin::SourceTree => "source tree of the build",
        })
    }
}

/// The directory holding `sources/` and `encoders/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelinesDir {
    /// The directory.
    pub path: PathBuf,
    /// Why this one.
    pub origin: DirOrigin,
}

/// Finds the pipelines directory: `configured` (the config's `camera.pipelines_dir`), else
/// `$PEERCAM_PIPELINES`, else `PREFIX/share/peercam/pipelines` (the executable's prefix, see
/// [`crate::install::prefix`]), else
/// `/usr/share/peercam/pipelines`, else the source tree's `pipelines/`. The first two are
/// taken even when missing, so the error names what was asked for; the others only when
/// they exist. The executable-relative directory comes before the system one so that a
/// `/usr/local` or `/opt` install uses its own descriptions, not an older package's.
pub fn pipelines_dir(configured: Option<&Path>) -> PipelinesDir {
    resolve_dir(
        configured,
        std::env::var_os(ENV_DIR),
        std::env::current_exe().ok(),
        |p| p.is_dir(),
    )
}

fn resolve_dir(
    configured: Option<&Path>,
    env: Option<OsString>,
    exe: Option<PathBuf>,
    is_dir: impl Fn(&Path) -> bool,
) -> PipelinesDir {
    let found = |path: PathBuf, origin| PipelinesDir { path, origin };
    if let Some(path) = configured {
        return found(path.to_owned(), DirOrigin::Config);
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return found(PathBuf::from(path), DirOrigin::Env);
    }
    let beside = exe
        .as_deref()
        .and_then(crate::install::prefix)
        .map(|prefix| prefix.join("share/peercam/pipelines"));
    if let Some(path) = beside.filter(|p| is_dir(p)) {
        return found(path, DirOrigin::NextToExecutable);
    }
    if is_dir(Path::new(SYSTEM_DIR)) {
        return found(PathBuf::from(SYSTEM_DIR), DirOrigin::System);
    }
    found(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines"),
        DirOrigin::SourceTree,
    )
}

/// Whether `name` can be a description's name: it becomes a file name, so no separators.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Names of the descriptions of `kind` in `dir`, sorted.
pub fn list(dir: &Path, kind: Kind) -> Result<Vec<String>, PipelineError> {
    let sub = dir.join(kind.dir());
    let entries = std::fs::read_dir(&sub).map_err(|error| PipelineError::Dir {
        path: sub.clone(),
        error,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            if path.extension()? != "toml" {
                return None;
            }
            let stem = path.file_stem()?.to_str()?;
            valid_name(stem).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads and validates `<dir>/<kind dir>/<name>.toml`.
pub fn load(dir: &Path, kind: Kind, name: &str) -> Result<Fragment, PipelineError> {
    if !valid_name(name) {
        return Err(PipelineError::BadName {
            kind,
            name: name.to_owned(),
        });
    }
    let path = dir.join(kind.dir()).join(format!("{name}.toml"));
    let text = read_small(&path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => PipelineError::Missing {
            kind,
            name: name.to_owned(),
            path: path.clone(),
        },
        _ => PipelineError::Read {
            path: path.clone(),
            error,
        },
    })?;
    parse(&text, &path, kind, name)
}

fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Parses and validates a description's text; `path` and `name` are used in messages and
/// kept in the result.
pub fn parse(text: &str, path: &Path, kind: Kind, name: &str) -> Result<Fragment, PipelineError> {
    let parse_error = |e: toml::de::Error| PipelineError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    };
    let fragment = match kind {
        Kind::Source => {
            let f: SourceFile = toml::from_str(text).map_err(parse_error)?;
            Fragment {
                kind,
                name: name.to_owned(),
                path: path.to_owned(),
                description: f.description,
                launch: f.launch,
                elements: f.elements,
                device: f.device,
                default_device: f.default_device,
                probe: HardwareCheck::default(),
            }
        }
        Kind::Encoder => {
            let f: EncoderFile = toml::from_str(text).map_err(parse_error)?;
            Fragment {
                kind,
                name: name.to_owned(),
                path: path.to_owned(),
                description: f.description,
                launch: f.launch,
                elements: f.elements,
                device: None,
                default_device: None,
                probe: f.probe,
            }
        }
    };
    fragment
        .validate()
        .map_err(|message| PipelineError::Invalid {
            path: path.to_owned(),
            message,
        })?;
    Ok(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
description = "a camera"
device = "v4l2"
default_device = "/dev/video0"
launch = "v4l2src device={device} ! video/x-raw,width={width},height={height},framerate={fps}/1"
[[elements]]
factory = "v4l2src"
package = "gstreamer1.0-plugins-good"
"#;

    const ENCODER: &str = r#"
description = "an encoder"
launch = "videoconvert ! x264enc bitrate={bitrate_kbps} key-int-max={keyint} ! h264parse"
[[elements]]
factory = "videoconvert"
package = "gstreamer1.0-plugins-base"
[[elements]]
factory = "x264enc"
package = "gstreamer1.0-plugins-ugly"
note = "only on Tuesdays"
[[elements]]
factory = "h264parse"
package = "gstreamer1.0-plugins-bad"
"#;

    fn source(text: &str) -> Result<Fragment, PipelineError> {
        parse(text, Path::new("/p/sources/cam.toml"), Kind::Source, "cam")
    }

    fn encoder(text: &str) -> Result<Fragment, PipelineError> {
        parse(
            text,
            Path::new("/p/encoders/enc.toml"),
            Kind::Encoder,
            "enc",
        )
    }

    fn invalid(result: Result<Fragment, PipelineError>) -> String {
        match result {
            Err(e @ PipelineError::Invalid { .. }) => e.to_string(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn bad_placeholders() {
        let e = invalid(encoder(&ENCODER.replace("{keyint}", "{gop}")));
        assert!(
            e.contains("/p/encoders/enc.toml") && e.contains("{gop}"),
            "{e}"
        );
        let e = invalid(encoder(&ENCODER.replace("{keyint}", "{device}")));
        assert!(e.contains("{device}"), "{e}");
    }

    #[test]
    fn inconsistent_files_are_refused_with_the_reason() {
        let cases = [
            (
                SOURCE.replace("device={device}", "device=/dev/video0"),
                "no {device}",
            ),
            (SOURCE.replace("device = \"v4l2\"\n", ""), "{device}"),
            (SOURCE.replace("\"a camera\"", "\"  \""), "description"),
            (
                SOURCE.replace("v4l2src device", "! v4l2src device"),
                "begin or end",
            ),
            (
                SOURCE.replace("factory = \"v4l2src\"", "factory = \"v4l2sr\""),
                "v4l2sr",
            ),
            (
                SOURCE.replace("package = \"gstreamer1.0-plugins-good\"", "package = \"\""),
                "package",
            ),
            (
                SOURCE.replace(
                    "v4l2src device",
                    "v4l2src device={device} ! jpegdec ! videoconvert device",
                ),
                "jpegdec",
            ),
            (
                SOURCE.replace("/dev/video0\"", "/dev/\tvideo0\""),
                "default_device",
            ),
        ];
        for (text, needle) in cases {
            let e = invalid(source(&text));
            assert!(
                e.contains("/p/sources/cam.toml") && e.contains(needle),
                "{needle}: {e}"
            );
        }
        let e = invalid(encoder(&format!(
            "{ENCODER}\n[probe]\nsysfs_contains = \"x\"\n"
        )));
        assert!(e.contains("sysfs_path"), "{e}");
        let no_elements = "description = \"x\"\nlaunch = \"fakesrc\"\nelements = []\n";
        assert!(invalid(encoder(no_elements)).contains("at least one"));
    }

    #[test]
    fn syntax_and_unknown_keys_name_file_and_line() {
        let e = source(&format!("{SOURCE}\nfps = 3\n")).unwrap_err();
        assert!(matches!(e, PipelineError::Parse { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("/p/sources/cam.toml") && e.contains("fps"),
            "{e}"
        );
        let e = encoder("description = \"x\"\nlaunch = [\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/p/encoders/enc.toml") && e.contains("line"),
            "{e}"
        );
        // A source-only key in an encoder is unknown there.
        let e = encoder(&format!("device = \"v4l2\"\n{ENCODER}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("device"), "{e}");
    }

    #[test]
    fn missing_elements_name_file_element_and_package() {
        let e = encoder(ENCODER).unwrap();
        assert!(e.require_elements(|_| true).is_ok());
        let missing: Vec<_> = e
            .missing_elements(|f| f == "videoconvert")
            .iter()
            .map(|e| e.factory.as_str())
            .collect();
        assert_eq!(missing, ["x264enc", "h264parse"]);
        let err = e
            .require_elements(|f| f != "x264enc")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/p/encoders/enc.toml: GStreamer element x264enc not found \
             (package gstreamer1.0-plugins-ugly; only on Tuesdays)"
        );
    }

    #[test]
    fn files_on_disk_missing_and_bad_names() {
        let dir = std::env::temp_dir().join(format!("peercam-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("encoders")).unwrap();
        std::fs::write(dir.join("encoders/enc.toml"), ENCODER).unwrap();
        std::fs::write(dir.join("encoders/notes.txt"), "not a description").unwrap();
        assert_eq!(list(&dir, Kind::Encoder).unwrap(), ["enc"]);
        assert!(matches!(
            list(&dir, Kind::Source),
            Err(PipelineError::Dir { .. })
        ));
        assert_eq!(load(&dir, Kind::Encoder, "enc").unwrap().name, "enc");
        let e = load(&dir, Kind::Encoder, "nope").unwrap_err();
        assert!(matches!(e, PipelineError::Missing { .. }), "{e:?}");
        assert!(e.to_string().contains("encoders/nope.toml"), "{e}");
        for bad in ["../enc", "", "a/b", "enc.toml"] {
            assert!(matches!(
                load(&dir, Kind::Encoder, bad),
                Err(PipelineError::BadName { .. })
            ));
        }
        std::fs::create_dir_all(dir.join("encoders/dir.toml")).unwrap();
        assert!(matches!(
            load(&dir, Kind::Encoder, "dir"),
            Err(PipelineError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directory_resolution_order() {
        let exe = Some(PathBuf::from("/opt/peercam/bin/peercam"));
        let beside = PathBuf::from("/opt/peercam/share/peercam/pipelines");
        let all = |_: &Path| true;
        let r = resolve_dir(
            Some(Path::new("/cfg")),
            Some("/env".into()),
            exe.clone(),
            all,
        );
        assert_eq!(
            (r.path, r.origin),
            (PathBuf::from("/cfg"), DirOrigin::Config)
        );
        let r = resolve_dir(None, Some("/env".into()), exe.clone(), all);
        assert_eq!((r.path, r.origin), (PathBuf::from("/env"), DirOrigin::Env));
        let media = Some(PathBuf::from("/opt/peercam/libexec/peercam/peercam-media"));
        let r = resolve_dir(None, None, media, all);
        assert_eq!(r.path, beside);
        let r = resolve_dir(None, Some("".into()), exe.clone(), all);
        assert_eq!(
            (r.path, r.origin),
            (beside.clone(), DirOrigin::NextToExecutable)
        );
        let r = resolve_dir(None, None, exe.clone(), |p| p == Path::new(SYSTEM_DIR));
        assert_eq!(r.origin, DirOrigin::System);
        let r = resolve_dir(None, None, exe, |_| false);
        assert_eq!(r.origin, DirOrigin::SourceTree);
        assert!(r.path.ends_with("pipelines"));
    }
}
