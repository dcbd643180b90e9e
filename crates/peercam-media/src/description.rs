//! What a source or encoder description is, once read: its kind, the elements it names, the
//! hardware it needs, its launch fragment; the rules a description must meet, and turning a
//! fragment into gst-launch text for given video parameters (placeholders, device quoting).
//!
//! Pure: no files (`pipeline` reads them) and no GStreamer (`launch` builds whole pipelines
//! from fragments, `probe` and `select` ask the machine).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::CameraConfig;

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

/// Size, rate and bitrate the capture pipeline is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoParams {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
}

impl VideoParams {
    /// Frames between keyframes: two seconds, so a new viewer waits at most that long when
    /// its keyframe request is not honoured.
    pub fn keyint(&self) -> u64 {
        2 * u64::from(self.fps)
    }

    /// Bitrate in bit/s, for encoders that count that way.
    pub fn bitrate_bps(&self) -> u64 {
        1000 * u64::from(self.bitrate_kbps)
    }
}

impl From<&CameraConfig> for VideoParams {
    fn from(c: &CameraConfig) -> Self {
        VideoParams {
            width: c.width,
            height: c.height,
            fps: c.fps,
            bitrate_kbps: c.bitrate_kbps,
        }
    }
}

impl Fragment {
    /// The fragment with placeholders filled in. `device` is used by sources that take one;
    /// without it they fall back to their `default_device`.
    pub fn expand(
        &self,
        params: &VideoParams,
        device: Option<&str>,
    ) -> Result<String, PipelineError> {
        let p = params;
        if p.width == 0 || p.height == 0 || p.fps == 0 || p.bitrate_kbps == 0 {
            return Err(PipelineError::BadParams(*p));
        }
        let device = match self.device {
            None => None,
            Some(api) => {
                let device = device.or(self.default_device.as_deref()).ok_or_else(|| {
                    PipelineError::NoDevice {
                        path: self.path.clone(),
                        api,
                    }
                })?;
                Some(
                    quote_device(device).ok_or_else(|| PipelineError::BadDevice {
                        path: self.path.clone(),
                        device: device.to_owned(),
                    })?,
                )
            }
        };
        substitute(self.launch.trim(), |name| match name {
            "width" => Some(p.width.to_string()),
            "height" => Some(p.height.to_string()),
            "fps" => Some(p.fps.to_string()),
            "bitrate_kbps" => Some(p.bitrate_kbps.to_string()),
            "bitrate_bps" => Some(p.bitrate_bps().to_string()),
            "keyint" => Some(p.keyint().to_string()),
            "device" => device.clone(),
            _ => None,
        })
        // Validation accepted every placeholder, so this only fails for a Fragment built by
        // hand; report it against the file rather than panic.
        .map_err(|message| PipelineError::Invalid {
            path: self.path.clone(),
            message,
        })
    }
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
    pub(crate) fn validate(&self) -> Result<(), String> {
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

/// Replaces `{name}` with `value(name)`; `{{` and `}}` stand for literal braces. Fails on an
/// unknown name or an unbalanced brace.
fn substitute(
    template: &str,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let brace = &rest[i..i + 1];
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix(brace) {
            out.push_str(brace);
            rest = tail;
            continue;
        }
        if brace == "}" {
            return Err("a lone '}' (write '}}' for a literal brace)".into());
        }
        let end = after
            .find('}')
            .ok_or("an unclosed '{' (write '{{' for a literal brace)")?;
        let name = &after[..end];
        let v = value(name).ok_or_else(|| format!("unknown placeholder {{{name}}}"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `device` as a quoted gst-launch value, or `None` when it cannot be one. Camera ids can
/// hold spaces and other characters the parser would split on; quotes and backslashes are
/// escaped so no id can add elements or properties.
fn quote_device(device: &str) -> Option<String> {
    if device.is_empty() || device.chars().any(char::is_control) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        device.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_braces_and_unbalanced_ones() {
        assert_eq!(
            substitute("a {{x}} {w}", |_| Some("1".into())).unwrap(),
            "a {x} 1"
        );
        assert!(substitute("a {w", |_| Some("1".into())).is_err());
        assert!(substitute("a } b", |_| Some("1".into())).is_err());
        assert!(substitute("a {w} b", |_| None).unwrap_err().contains("{w}"));
    }

    #[test]
    fn params_derive_keyint_and_bits() {
        const PARAMS_720: VideoParams = VideoParams {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2000,
        };
        assert_eq!(PARAMS_720.keyint(), 60);
        assert_eq!(PARAMS_720.bitrate_bps(), 2_000_000);
        let p = VideoParams::from(&CameraConfig::default());
        assert_eq!(
            (p.width, p.height, p.fps, p.bitrate_kbps),
            (1280, 720, 30, 2000)
        );
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
