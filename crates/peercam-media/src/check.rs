//! `peercam check`: the cameras and encoders the device finds, what it would use and why, as
//! text for people.
//!
//! It reads descriptions and asks the machine through [`Probe`]; the only pipeline it runs is
//! a hardware encoder's two-frame trial. It changes nothing.

use std::fmt::Write;

use super::pipeline::{self, pipelines_dir, Kind, PipelinesDir, VideoParams};
use super::probe::{Probe, SystemProbe};
use super::select::{self, Rejected, AUTO};
use crate::config::{CameraConfig, Config};

/// The report for `peercam check`, for the real machine.
pub fn report(config: &Config) -> String {
    let dir = pipelines_dir(config.camera.pipelines_dir.as_deref());
    match SystemProbe::new() {
        Ok(probe) => format!(
            "{}\n{}\n{}{}",
            gstreamer::version_string(),
            report_with(&config.camera, dir, &probe),
            sound(config),
            talkback(config)
        ),
        Err(e) => format!(
            "pipelines: {} ({})\nGStreamer cannot be initialised: {e}\n",
            dir.path.display(),
            dir.origin
        ),
    }
}

/// The sound's part of the report: what `[audio]` would use and why.
fn sound(config: &Config) -> String {
    let capture = peercam_wire::AudioCapture::Select {
        audio: config.audio.clone(),
        pipelines_dir: config.camera.pipelines_dir.clone(),
    };
    let choice = match crate::audio::choose_here(&capture) {
        Ok(choice) => choice.why,
        Err(e) => format!("cannot be used: {e}"),
    };
    let cards = match std::fs::read_to_string(crate::audio::PCM_LIST) {
        Ok(pcm) if !pcm.trim().is_empty() => pcm
            .lines()
            .map(|line| format!("  {}\n", line.trim()))
            .collect::<String>(),
        _ => format!(
            "  none ({} lists no sound device)\n",
            crate::audio::PCM_LIST
        ),
    };
    format!(
        "sound cards (capture and playback devices):\n{cards}sound (audio.source = {:?}):\n  \
         {choice}\n",
        config.audio.source
    )
}

/// Talkback's part of the report: the speaker `[talkback]` would play on and why.
fn talkback(config: &Config) -> String {
    let talkback = if config.talkback.enabled {
        peercam_wire::Talkback::Select {
            talkback: config.talkback.clone(),
            pipelines_dir: config.camera.pipelines_dir.clone(),
        }
    } else {
        peercam_wire::Talkback::None
    };
    let choice = match crate::speaker::choose_here(&talkback) {
        Ok(choice) if choice.launch.is_some() && choice.echo_cancel => format!(
            "{}; the microphone's echo of it is cancelled (webrtcdsp)",
            choice.why
        ),
        Ok(choice) => choice.why,
        Err(e) => format!("cannot be used: {e}"),
    };
    format!(
        "talkback (talkback.output = {:?}):\n  {choice}\n",
        config.talkback.output
    )
}

/// The report for `camera`, with descriptions from `dir` and the machine as `probe` sees it.
pub fn report_with(camera: &CameraConfig, dir: PipelinesDir, probe: &dyn Probe) -> String {
    let params = VideoParams::from(camera);
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(out, "pipelines: {} ({})", dir.path.display(), dir.origin);
    let _ = writeln!(
        out,
        "video: {}x{} at {} fps, {} kbit/s",
        params.width, params.height, params.fps, params.bitrate_kbps
    );

    let selection = select::select(camera, dir.clone(), probe);
    let cameras = match &selection {
        Ok(s) if s.cameras.is_some() => s.cameras.clone().unwrap_or_default(),
        _ => probe.cameras(),
    };
    let _ = writeln!(out, "\ncameras:");
    if cameras.found.is_empty() {
        let _ = writeln!(out, "  none found");
    }
    for c in &cameras.found {
        let _ = writeln!(out, "  {c} -> source {}", select::source_for(c));
    }
    for i in &cameras.ignored {
        let _ = writeln!(out, "  ignored {}: {}", i.name, i.reason);
    }

    let _ = writeln!(out, "\nsources (camera.source = {:?}):", camera.source);
    list_sources(&mut out, &dir, probe);

    let _ = writeln!(out, "\nencoders (camera.encoder = {:?}):", camera.encoder);
    let (chosen, tried) = match &selection {
        Ok(s) => (
            Some(s.encoder.fragment.name.as_str()),
            &s.rejected_encoders[..],
        ),
        Err(select::SelectError::NoEncoder { rejected }) => (None, &rejected[..]),
        Err(_) => (None, &[][..]),
    };
    list_encoders(&mut out, &dir, &params, probe, chosen, tried);

    let _ = writeln!(out, "\nwould use:");
    match &selection {
        Ok(s) => {
            for r in &s.rejected_sources {
                let _ = writeln!(out, "  passed over source {}: {}", r.name, r.reason);
            }
            let _ = writeln!(
                out,
                "  source:   {} ({})",
                s.source.fragment.name, s.source.why
            );
            let _ = writeln!(
                out,
                "  encoder:  {} ({})",
                s.encoder.fragment.name, s.encoder.why
            );
            let _ = writeln!(out, "  pipeline: {}", s.launch);
        }
        Err(e) => {
            let _ = writeln!(out, "  nothing: {e}");
        }
    }
    out
}

fn list_sources(out: &mut String, dir: &PipelinesDir, probe: &dyn Probe) {
    let names = match pipeline::list(&dir.path, Kind::Source) {
        Ok(names) => names,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
    for name in names {
        let line = match pipeline::load(&dir.path, Kind::Source, &name) {
            Err(e) => format!("broken: {e}"),
            Ok(f) => match f.require_elements(|e| probe.has_element(e)) {
                Err(e) => format!("not usable: {e}"),
                Ok(()) => match f.device {
                    Some(api) => format!("ok: {} (opens a {api} device)", f.description),
                    None => format!("ok: {}", f.description),
                },
            },
        };
        let _ = writeln!(out, "  {name}: {line}");
    }
}

fn list_encoders(
    out: &mut String,
    dir: &PipelinesDir,
    params: &VideoParams,
    probe: &dyn Probe,
    chosen: Option<&str>,
    tried: &[Rejected],
) {
    let names = match pipeline::list(&dir.path, Kind::Encoder) {
        Ok(names) => names,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
    for name in &names {
        let name = name.as_str();
        let auto = select::AUTO_ENCODERS.contains(&name);
        // Reuse what selection already found: a hardware trial is not run twice.
        let verdict = if let Some(r) = tried.iter().find(|r| r.name == name) {
            Err(r.reason.clone())
        } else if chosen == Some(name) {
            pipeline::load(&dir.path, Kind::Encoder, name)
                .map(|f| f.description)
                .map_err(|e| e.to_string())
        } else {
            select::check_encoder(&dir.path, name, params, probe).map(|f| f.description)
        };
        let line = match verdict {
            Ok(description) => format!("usable: {description}"),
            Err(reason) => format!("not usable: {reason}"),
        };
        let mark = if chosen == Some(name) {
            " [selected]"
        } else if !auto {
            " [only by name]"
        } else {
            ""
        };
        let _ = writeln!(out, "  {name}{mark}: {line}");
    }
    for missing in select::AUTO_ENCODERS
        .iter()
        .filter(|n| !names.iter().any(|name| name == *n))
    {
        let _ = writeln!(out, "  {missing}: no description file ({AUTO} skips it)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{DeviceApi, DirOrigin};
    use crate::probe::{Camera, Cameras, Ignored};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    struct Fake {
        webcam: bool,
        hardware: bool,
    }

    impl Probe for Fake {
        fn cameras(&self) -> Cameras {
            Cameras {
                found: self
                    .webcam
                    .then(|| Camera {
                        api: DeviceApi::V4l2,
                        device: "/dev/video0".into(),
                        name: "HD Webcam".into(),
                        mjpeg: true,
                        raw: true,
                    })
                    .into_iter()
                    .collect(),
                ignored: vec![Ignored {
                    name: "bcm2835-isp (/dev/video14)".into(),
                    reason: "bcm2835-isp is a Raspberry Pi media node, not a camera".into(),
                }],
            }
        }
        fn has_element(&self, factory: &str) -> bool {
            self.hardware || !matches!(factory, "v4l2h264enc" | "libcamerasrc")
        }
        fn read_sysfs(&self, _: &Path) -> Option<String> {
            self.hardware.then(|| "bcm2835-codec-encode\n".into())
        }
        fn trial(&self, _: &str, _: Duration) -> Result<(), String> {
            Ok(())
        }
    }

    fn shipped() -> PipelinesDir {
        PipelinesDir {
            path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pipelines"),
            origin: DirOrigin::SourceTree,
        }
    }

    #[test]
    fn says_what_it_found_and_why_it_chose() {
        let r = report_with(
            &CameraConfig::default(),
            shipped(),
            &Fake {
                webcam: true,
                hardware: false,
            },
        );
        for needle in [
            "(source tree of the build)",
            "video: 1280x720 at 30 fps, 2000 kbit/s",
            "V4L2 \"HD Webcam\" (/dev/video0; raw, MJPEG) -> source v4l2-mjpeg",
            "ignored bcm2835-isp (/dev/video14): bcm2835-isp is a Raspberry Pi media node",
            "libcamera: not usable: ",
            "gstreamer1.0-libcamera",
            "v4l2h264: not usable: ",
            "element v4l2h264enc not found (package gstreamer1.0-plugins-good; registered only on a Pi",
            "x264 [selected]: usable: ",
            "openh264: usable: ",
            "source:   v4l2-mjpeg (auto: first camera",
            "encoder:  x264 (auto: v4l2h264 not usable)",
            "pipeline: v4l2src device=\"/dev/video0\" ! image/jpeg",
        ] {
            assert!(r.contains(needle), "{needle:?} missing from:\n{r}");
        }
        let r = report_with(
            &CameraConfig::default(),
            shipped(),
            &Fake {
                webcam: false,
                hardware: true,
            },
        );
        assert!(r.contains("none found"), "{r}");
        assert!(r.contains("v4l2h264 [selected]: usable"), "{r}");
        assert!(r.contains("source:   test (auto: no camera found)"), "{r}");
    }

    #[test]
    fn a_failed_choice_is_reported_not_raised() {
        let camera = CameraConfig {
            encoder: "h265".into(),
            ..CameraConfig::default()
        };
        let fake = Fake {
            webcam: false,
            hardware: false,
        };
        let r = report_with(&camera, shipped(), &fake);
        assert!(r.contains("nothing: camera.encoder \"h265\""), "{r}");
        assert!(r.contains("encoders/h265.toml"), "{r}");
        let empty = PipelinesDir {
            path: PathBuf::from("/nonexistent/pipelines"),
            origin: DirOrigin::Config,
        };
        let r = report_with(&CameraConfig::default(), empty, &fake);
        assert!(
            r.contains("/nonexistent/pipelines/sources: cannot list"),
            "{r}"
        );
        assert!(r.contains("nothing: "), "{r}");
    }

    #[test]
    fn broken_files_are_listed_with_their_error() {
        let root = std::env::temp_dir().join(format!("peercam-check-{}", std::process::id()));
        for kind in ["sources", "encoders"] {
            std::fs::create_dir_all(root.join(kind)).unwrap();
            for entry in std::fs::read_dir(shipped().path.join(kind)).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, root.join(kind).join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(root.join("encoders/x264.toml"), "description = 1\n").unwrap();
        std::fs::remove_file(root.join("encoders/openh264.toml")).unwrap();
        let dir = PipelinesDir {
            path: root.clone(),
            origin: DirOrigin::Env,
        };
        let fake = Fake {
            webcam: false,
            hardware: false,
        };
        let r = report_with(&CameraConfig::default(), dir, &fake);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(r.contains("($PEERCAM_PIPELINES)"), "{r}");
        assert!(
            r.contains("x264: not usable: ") && r.contains("encoders/x264.toml"),
            "{r}"
        );
        assert!(
            r.contains("openh264: no description file (auto skips it)"),
            "{r}"
        );
        assert!(
            r.contains("nothing: camera.encoder \"auto\": no usable encoder"),
            "{r}"
        );
    }

    #[test]
    fn on_this_machine() {
        let config = Config {
            camera: CameraConfig {
                pipelines_dir: Some(shipped().path),
                ..CameraConfig::default()
            },
            ..Config::default()
        };
        let r = report(&config);
        // Shown with --nocapture, and on failure.
        println!("{r}");
        assert!(r.starts_with("GStreamer "), "{r}");
        assert!(r.contains("(camera.pipelines_dir in the config)"), "{r}");
        assert!(r.contains("would use:"), "{r}");
    }
}
