//! The two pipelines built from description fragments: the capture pipeline and the hardware
//! encoder's trial (a fragment's own text comes from `description`).
//!
//! Pure text: nothing here reads files or runs GStreamer.

pub use super::description::VideoParams;
use super::description::{Fragment, PipelineError};
use crate::source_switch::SWITCH;

/// Caps the capture pipeline ends in: what browsers decode, and what `rtph264pay` needs to
/// put `profile-level-id` in its caps (it only does for `stream-format=avc`).
pub const H264_CAPS: &str =
    "video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline";

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
}
