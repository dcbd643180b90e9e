//! Turning descriptions into gst-launch text: the video parameters, placeholder
//! substitution, device quoting, and the two pipelines built from fragments (the capture
//! pipeline and the hardware encoder's trial).
//!
//! Pure text: nothing here reads files or runs GStreamer.

use super::pipeline::{Fragment, PipelineError};
use crate::config::CameraConfig;
use crate::source_switch::SWITCH;

/// Caps the capture pipeline ends in: what browsers decode, and what `rtph264pay` needs to
/// put `profile-level-id` in its caps (it only does for `stream-format=avc`).
pub const H264_CAPS: &str =
    "video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline";

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

/// The capture pipeline's gst-launch description:
/// `<source> ! input-selector name=source-switch ! <encoder> ! video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline`.
///
/// The `input-selector` ([`SWITCH`]) marks where the source ends: the worker feeds the
/// encoder a placeholder picture through it while the source has failed
/// ([`crate::source_switch`]). With only the source linked it passes the source through.
///
/// Contract for the caller: the description has no sink and ends in the caps [`H264_CAPS`].
/// gst-launch syntax accepts caps only between two links, so it does not parse on its own:
/// append an element, e.g. `format!("{desc} ! tee name=fanout")`. What reaches that element
/// is H.264 access units in `avc` form with `codec_data`, at `params` size and rate, ready for
/// `rtph264pay config-interval=-1`. The source is live: the pipeline runs at the capture rate
/// and never ends on its own.
pub fn describe(
    source: &Fragment,
    device: Option<&str>,
    encoder: &Fragment,
    params: &VideoParams,
) -> Result<String, PipelineError> {
    let source = source.expand(params, device)?;
    let encoder = encoder.expand(params, None)?;
    Ok(format!("{source} ! {SWITCH} ! {encoder} ! {H264_CAPS}"))
}

/// A short, finite pipeline that encodes two test frames with `encoder` into a fakesink: it
/// reaches end-of-stream only when the encoder really works.
pub fn trial_description(
    encoder: &Fragment,
    params: &VideoParams,
) -> Result<String, PipelineError> {
    let enc = encoder.expand(params, None)?;
    Ok(format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width={},height={},framerate={}/1 ! {enc} ! \
         {H264_CAPS} ! fakesink",
        params.width, params.height, params.fps
    ))
}

/// Replaces `{name}` with `value(name)`; `{{` and `}}` stand for literal braces. Fails on an
/// unknown name or an unbalanced brace.
pub(super) fn substitute(
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
pub(super) fn quote_device(device: &str) -> Option<String> {
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
    use crate::pipeline::{parse, Kind};
    use std::path::Path;

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
[[elements]]
factory = "h264parse"
package = "gstreamer1.0-plugins-bad"
"#;

    const PARAMS_720: VideoParams = VideoParams {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_kbps: 2000,
    };

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

    #[test]
    fn expands_placeholders_and_quotes_devices() {
        let s = source(SOURCE).unwrap();
        let e = encoder(ENCODER).unwrap();
        assert_eq!(
            describe(&s, Some("/dev/video2"), &e, &PARAMS_720).unwrap(),
            format!(
                "v4l2src device=\"/dev/video2\" ! video/x-raw,width=1280,height=720,\
                 framerate=30/1 ! input-selector name=source-switch ! videoconvert ! x264enc bitrate=2000 key-int-max=60 ! \
                 h264parse ! {H264_CAPS}"
            )
        );
        let d = describe(&s, None, &e, &PARAMS_720).unwrap();
        assert!(d.starts_with("v4l2src device=\"/dev/video0\" !"), "{d}");
        let d = s
            .expand(&PARAMS_720, Some(r#"a "b" \c ! fakesrc"#))
            .unwrap();
        assert!(
            d.starts_with(r#"v4l2src device="a \"b\" \\c ! fakesrc" !"#),
            "{d}"
        );
        assert!(matches!(
            s.expand(&PARAMS_720, Some("bad\nname")),
            Err(PipelineError::BadDevice { .. })
        ));
        let zero = VideoParams {
            fps: 0,
            ..PARAMS_720
        };
        assert!(matches!(
            e.expand(&zero, None),
            Err(PipelineError::BadParams(_))
        ));
    }

    #[test]
    fn trial_is_finite_and_uses_the_encoder() {
        let e = encoder(ENCODER).unwrap();
        let t = trial_description(&e, &PARAMS_720).unwrap();
        assert!(t.starts_with("videotestsrc num-buffers=2 ! "), "{t}");
        assert!(t.contains("x264enc bitrate=2000"), "{t}");
        assert!(t.ends_with(&format!("{H264_CAPS} ! fakesink")), "{t}");
    }

    #[test]
    fn a_source_without_device_or_default_needs_one() {
        let s = source(&SOURCE.replace("default_device = \"/dev/video0\"\n", "")).unwrap();
        let e = s.expand(&PARAMS_720, None).unwrap_err().to_string();
        assert!(
            e.contains("/p/sources/cam.toml") && e.contains("V4L2"),
            "{e}"
        );
    }

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
        assert_eq!(PARAMS_720.keyint(), 60);
        assert_eq!(PARAMS_720.bitrate_bps(), 2_000_000);
        let p = VideoParams::from(&CameraConfig::default());
        assert_eq!(
            (p.width, p.height, p.fps, p.bitrate_kbps),
            (1280, 720, 30, 2000)
        );
    }
}
