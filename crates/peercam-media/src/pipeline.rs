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
//! are looked for, and their validation. It never opens a device or starts GStreamer:
//! `launch` turns descriptions into gst-launch text, `probe` asks the machine, `select`
//! decides.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use super::launch::{describe, trial_description, VideoParams, H264_CAPS};
use super::launch::{quote_device, substitute};

/// Environment variable naming the pipelines directory when the config does not.
pub const ENV_DIR: &str = "PEERCAM_PIPELINES";

/// Where packages install the descriptions.
pub const SYSTEM_DIR: &str = "/usr/share/peercam/pipelines";

/// Files larger than this are not descriptions; refusing them keeps a mistaken path (a video,
/// a device node) from being read into memory.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Sources or encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sources/`: produce raw video.
    Source,
    /// `encoders/`: raw video in, H.264 out.
    Encoder,
}

impl Kind {
    /// The subdirectory holding this kind's files.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Encoder => "encoders",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Source => "source",
            Kind::Encoder => "encoder",
        })
    }
}

/// What `{device}` names in a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceApi {
    /// A libcamera camera id (`libcamerasrc camera-name=`).
    Libcamera,
    /// A V4L2 device node such as `/dev/video0` (`v4l2src device=`).
    V4l2,
}

impl fmt::Display for DeviceApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceApi::Libcamera => "libcamera",
            DeviceApi::V4l2 => "V4L2",
        })
    }
}

/// A GStreamer element a description needs, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Element {
    /// Element factory name, e.g. `x264enc`.
    pub factory: String,
    /// Debian package that provides it.
    pub package: String,
    /// What else it takes when the package alone is not enough (hardware, permissions).
    #[serde(default)]
    pub note: Option<String>,
}

/// Checks `auto` makes before choosing an encoder that may exist without working.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareCheck {
    /// A file (in sysfs) that names the hardware.
    #[serde(default)]
    pub sysfs_path: Option<PathBuf>,
    /// Text `sysfs_path` must contain.
    #[serde(default)]
    pub sysfs_contains: Option<String>,
    /// Encode two test frames before trusting it.
    #[serde(default)]
    pub trial: bool,
}

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

/// A loaded and validated source or encoder description.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// Source or encoder.
    pub kind: Kind,
    /// The file's stem: what the config and `auto` call it.
    pub name: String,
    /// The file it came from, for messages.
    pub path: PathBuf,
    /// One line for people.
    pub description: String,
    /// gst-launch fragment with `{placeholders}`.
    pub launch: String,
    /// Elements it needs, with their packages.
    pub elements: Vec<Element>,
    /// Sources only: what `{device}` is, if the source takes one.
    pub device: Option<DeviceApi>,
    /// Sources only: the device used when none was found or given.
    pub default_device: Option<String>,
    /// Encoders only: checks before `auto` picks it.
    pub probe: HardwareCheck,
}

/// A description that cannot be used. Every variant names the file (or the name asked for).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipelines directory or its `sources/`/`encoders/` is missing or unreadable.
    #[error("{path}: cannot list pipeline descriptions: {error}")]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// No file for that name.
    #[error("{path}: no {kind} named {name:?} (file not found)")]
    Missing {
        kind: Kind,
        name: String,
        path: PathBuf,
    },
    /// A name that cannot be a file stem (and must not become a path elsewhere).
    #[error("{kind} name {name:?} is not valid: use letters, digits, '-' and '_'")]
    BadName { kind: Kind, name: String },
    /// The file exists but could not be read.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not TOML, unknown keys or wrong types (the message has the line).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// Well-formed but wrong: bad placeholder, empty field, inconsistent settings.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A GStreamer element the description needs is not installed.
    #[error("{path}: GStreamer element {element} not found (package {package}{})", note_suffix(.note))]
    MissingElement {
        path: PathBuf,
        element: String,
        package: String,
        note: Option<String>,
    },
    /// A source needs a device and none was found or given.
    #[error("{path}: needs a {api} device; none was found and the file has no default_device")]
    NoDevice { path: PathBuf, api: DeviceApi },
    /// A device name that cannot be put in a pipeline description.
    #[error("{path}: device {device:?} cannot be used (empty or control characters)")]
    BadDevice { path: PathBuf, device: String },
    /// Size, rate or bitrate of zero.
    #[error("video parameters must not be zero: {0:?}")]
    BadParams(VideoParams),
}

fn note_suffix(note: &Option<String>) -> String {
    note.as_deref()
        .map(|n| format!("; {n}"))
        .unwrap_or_default()
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

/// Placeholders every description may use.
const PARAMS: [&str; 6] = [
    "width",
    "height",
    "fps",
    "bitrate_kbps",
    "bitrate_bps",
    "keyint",
];

impl Fragment {
    fn validate(&self) -> Result<(), String> {
        if self.description.trim().is_empty() {
            return Err("description must not be empty".into());
        }
        let launch = self.launch.trim();
        if launch.is_empty() {
            return Err("launch must not be empty".into());
        }
        if launch.starts_with('!') || launch.ends_with('!') {
            return Err(
                "launch must not begin or end with '!': fragments are joined with ' ! '".into(),
            );
        }
        let mut used = BTreeSet::new();
        substitute(launch, |name| {
            let known = PARAMS.contains(&name) || (name == "device" && self.device.is_some());
            known.then(|| {
                used.insert(name.to_owned());
                String::new()
            })
        })
        .map_err(|e| format!("launch: {e}"))?;
        if let Some(api) = self.device {
            if !used.contains("device") {
                return Err(format!(
                    "device = \"{}\" but launch has no {{device}}",
                    api.to_string().to_lowercase()
                ));
            }
        } else if self.default_device.is_some() {
            return Err("default_device is set but device is not".into());
        }
        if let Some(device) = &self.default_device {
            quote_device(device)
                .ok_or_else(|| format!("default_device {device:?} cannot be used"))?;
        }
        if self.elements.is_empty() {
            return Err("elements must list at least one element".into());
        }
        let in_launch = launch_elements(launch);
        for e in &self.elements {
            if e.factory.trim().is_empty() || e.package.trim().is_empty() {
                return Err("every element needs a factory and a package".into());
            }
            if !in_launch.contains(&e.factory.as_str()) {
                return Err(format!("element {} is listed but not in launch", e.factory));
            }
        }
        if let Some(unlisted) = in_launch
            .iter()
            .find(|f| !self.elements.iter().any(|e| e.factory == **f))
        {
            return Err(format!(
                "element {unlisted} is in launch but not listed in elements (its package is \
                 needed for the error when it is missing)"
            ));
        }
        let p = &self.probe;
        if p.sysfs_contains.is_some() != p.sysfs_path.is_some() {
            return Err("probe: sysfs_path and sysfs_contains go together".into());
        }
        Ok(())
    }

    /// Elements this description needs that `has_element` says are not installed.
    pub fn missing_elements(&self, has_element: impl Fn(&str) -> bool) -> Vec<&Element> {
        self.elements
            .iter()
            .filter(|e| !has_element(&e.factory))
            .collect()
    }

    /// An error naming the file, the first missing element and its package, if any is missing.
    pub fn require_elements(
        &self,
        has_element: impl Fn(&str) -> bool,
    ) -> Result<(), PipelineError> {
        match self.missing_elements(has_element).first() {
            None => Ok(()),
            Some(e) => Err(PipelineError::MissingElement {
                path: self.path.clone(),
                element: e.factory.clone(),
                package: e.package.clone(),
                note: e.note.clone(),
            }),
        }
    }
}

/// Element factory names in a launch fragment: the first word of each `!`-separated part,
/// skipping caps (they contain '/') and references to named elements (`name.`).
fn launch_elements(launch: &str) -> Vec<&str> {
    launch
        .split('!')
        .filter_map(|part| part.split_whitespace().next())
        .filter(|word| !word.contains(['/', '.', '(', '=', '"', '\'']))
        .collect()
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

    #[test]
    fn launch_element_names() {
        assert_eq!(
            launch_elements(
                "v4l2src device={device} ! image/jpeg,width=1 ! jpegdec ! t. ! \
                 v4l2h264enc extra-controls=\"controls,a=1\" ! video/x-h264,level=(string)4"
            ),
            ["v4l2src", "jpegdec", "v4l2h264enc"]
        );
    }
}
