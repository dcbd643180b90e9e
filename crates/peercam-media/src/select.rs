//! Choosing the capture source and encoder, by name from the config or `auto`.
//!
//! - `auto` source: the first camera the probe finds (`libcamera` for libcamera cameras,
//!   `v4l2-mjpeg` for V4L2 devices that offer MJPEG, else `v4l2-raw`), else `test`.
//! - `auto` encoder: the first of [`AUTO_ENCODERS`] that passes [`check_encoder`]: installed
//!   elements, and for hardware the file's `[probe]` (sysfs name, two-frame trial).
//! - A name from the config is used as given: its elements must be installed, but hardware
//!   checks are skipped, so when it does not work the pipeline's own error says why.
//!
//! It decides only; the machine is asked through [`Probe`] and nothing is kept running.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::launch::{describe, trial_description};
use super::pipeline::{
    self, pipelines_dir, DeviceApi, Fragment, Kind, PipelineError, PipelinesDir, VideoParams,
};
use super::probe::{Camera, Cameras, Probe, SystemProbe};
use crate::config::CameraConfig;

/// The name that asks for automatic choice.
pub const AUTO: &str = "auto";

/// The source `auto` falls back to without a camera.
pub const TEST_SOURCE: &str = "test";

/// Encoders `auto` tries, best first: hardware costs no CPU; x264 is faster than openh264 at
/// the same quality.
pub const AUTO_ENCODERS: [&str; 3] = ["v4l2h264", "x264", "openh264"];

/// How long a hardware encoder's two-frame trial may take: a working one needs well under a
/// second, a wedged one never finishes.
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A chosen source or encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Its description.
    pub fragment: Fragment,
    /// What `{device}` becomes (`None`: the source takes no device, or uses its default).
    pub device: Option<String>,
    /// Why it was chosen, for logs and `peercam check`.
    pub why: String,
}

/// Something considered and passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The description's name, and the camera it was for.
    pub name: String,
    /// Why it was passed over.
    pub reason: String,
}

/// The capture pipeline to run, and how it was arrived at.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Where the descriptions came from.
    pub dir: PipelinesDir,
    /// Size, rate and bitrate.
    pub params: VideoParams,
    /// The source.
    pub source: Choice,
    /// The encoder.
    pub encoder: Choice,
    /// Cameras, when they had to be enumerated.
    pub cameras: Option<Cameras>,
    /// Sources passed over, in the order tried.
    pub rejected_sources: Vec<Rejected>,
    /// Encoders passed over, in the order tried.
    pub rejected_encoders: Vec<Rejected>,
    /// The gst-launch description, as [`crate::launch::describe`] documents: no sink, ends in
    /// [`crate::launch::H264_CAPS`]; append `! tee name=...`.
    pub launch: String,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "source {} ({}), encoder {} ({}), {}x{} at {} fps, {} kbit/s",
            self.source.fragment.name,
            self.source.why,
            self.encoder.fragment.name,
            self.encoder.why,
            self.params.width,
            self.params.height,
            self.params.fps,
            self.params.bitrate_kbps
        )
    }
}

/// No capture pipeline can be built.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The configured source (or, for `auto`, the test pattern) cannot be used.
    #[error("camera.source {name:?}: {error}")]
    Source { name: String, error: PipelineError },
    /// The configured encoder cannot be used.
    #[error("camera.encoder {name:?}: {error}")]
    Encoder { name: String, error: PipelineError },
    /// `auto` found no usable encoder.
    #[error("camera.encoder \"auto\": no usable encoder: {}", reasons(.rejected))]
    NoEncoder { rejected: Vec<Rejected> },
    /// GStreamer could not be initialised.
    #[error("GStreamer: {0}")]
    Gst(String),
}

fn reasons(rejected: &[Rejected]) -> String {
    let parts: Vec<String> = rejected
        .iter()
        .map(|r| format!("{}: {}", r.name, r.reason))
        .collect();
    parts.join("; ")
}

/// Chooses with the real machine, in the pipelines directory the config names (or the
/// default one, see [`pipelines_dir`]). This is what the service calls; run the result's
/// `launch` with a `tee` appended.
pub fn capture_pipeline(camera: &CameraConfig) -> Result<Selection, SelectError> {
    let probe = SystemProbe::new().map_err(|e| SelectError::Gst(e.to_string()))?;
    select(
        camera,
        pipelines_dir(camera.pipelines_dir.as_deref()),
        &probe,
    )
}

/// Chooses source and encoder for `camera` from the descriptions in `dir`.
pub fn select(
    camera: &CameraConfig,
    dir: PipelinesDir,
    probe: &dyn Probe,
) -> Result<Selection, SelectError> {
    let params = VideoParams::from(camera);
    let mut cameras = None;
    let mut rejected_sources = Vec::new();
    let mut rejected_encoders = Vec::new();
    let source = choose_source(
        &camera.source,
        &dir.path,
        probe,
        &mut cameras,
        &mut rejected_sources,
    )?;
    let encoder = choose_encoder(
        &camera.encoder,
        &dir.path,
        &params,
        probe,
        &mut rejected_encoders,
    )?;
    let launch = describe(
        &source.fragment,
        source.device.as_deref(),
        &encoder.fragment,
        &params,
    )
    .map_err(|error| SelectError::Source {
        name: camera.source.clone(),
        error,
    })?;
    Ok(Selection {
        dir,
        params,
        source,
        encoder,
        cameras,
        rejected_sources,
        rejected_encoders,
        launch,
    })
}

/// The source `auto` uses for a camera.
pub fn source_for(camera: &Camera) -> &'static str {
    match camera.api {
        DeviceApi::Libcamera => "libcamera",
        DeviceApi::V4l2 if camera.mjpeg => "v4l2-mjpeg",
        DeviceApi::V4l2 => "v4l2-raw",
    }
}

/// Loads a source and checks its elements are installed.
pub fn check_source(dir: &Path, name: &str, probe: &dyn Probe) -> Result<Fragment, PipelineError> {
    let f = pipeline::load(dir, Kind::Source, name)?;
    f.require_elements(|e| probe.has_element(e))?;
    Ok(f)
}

/// Everything `auto` asks of an encoder: the file loads, its elements are installed, and its
/// `[probe]` passes (the sysfs file names the hardware; two test frames encode in time).
/// The error is a sentence for people.
pub fn check_encoder(
    dir: &Path,
    name: &str,
    params: &VideoParams,
    probe: &dyn Probe,
) -> Result<Fragment, String> {
    let f = pipeline::load(dir, Kind::Encoder, name).map_err(|e| e.to_string())?;
    f.require_elements(|e| probe.has_element(e))
        .map_err(|e| e.to_string())?;
    if let (Some(path), Some(want)) = (&f.probe.sysfs_path, &f.probe.sysfs_contains) {
        match probe.read_sysfs(path) {
            None => {
                return Err(format!(
                    "{} cannot be read (no such hardware here)",
                    path.display()
                ))
            }
            Some(text) if !text.contains(want.as_str()) => {
                return Err(format!(
                    "{} reads {:?}, not {want:?}",
                    path.display(),
                    text.trim()
                ))
            }
            Some(_) => {}
        }
    }
    if f.probe.trial {
        let launch = trial_description(&f, params).map_err(|e| e.to_string())?;
        probe
            .trial(&launch, TRIAL_TIMEOUT)
            .map_err(|e| format!("encoding two test frames failed: {e}"))?;
    }
    Ok(f)
}

fn choose_source(
    name: &str,
    dir: &Path,
    probe: &dyn Probe,
    cameras: &mut Option<Cameras>,
    rejected: &mut Vec<Rejected>,
) -> Result<Choice, SelectError> {
    if name == AUTO {
        let cams = cameras.get_or_insert_with(|| probe.cameras());
        for cam in &cams.found {
            let source = source_for(cam);
            let checked = check_source(dir, source, probe).and_then(|f| match f.device {
                Some(api) if api == cam.api => Ok(f),
                _ => Err(PipelineError::Invalid {
                    path: f.path.clone(),
                    message: format!("does not open {} cameras", cam.api),
                }),
            });
            match checked {
                Ok(fragment) => {
                    return Ok(Choice {
                        fragment,
                        device: Some(cam.device.clone()),
                        why: format!("auto: first camera, {cam}"),
                    })
                }
                Err(e) => rejected.push(Rejected {
                    name: format!("{source} for {}", cam.device),
                    reason: e.to_string(),
                }),
            }
        }
        let why = if cams.found.is_empty() {
            "auto: no camera found"
        } else {
            "auto: no camera usable"
        };
        let fragment =
            check_source(dir, TEST_SOURCE, probe).map_err(|error| SelectError::Source {
                name: name.to_owned(),
                error,
            })?;
        return Ok(Choice {
            fragment,
            device: None,
            why: why.into(),
        });
    }
    let error = |error| SelectError::Source {
        name: name.to_owned(),
        error,
    };
    let fragment = check_source(dir, name, probe).map_err(error)?;
    let Some(api) = fragment.device else {
        return Ok(Choice {
            fragment,
            device: None,
            why: "camera.source".into(),
        });
    };
    // Prefer a camera auto would also open with this source (a forced v4l2-mjpeg takes the
    // MJPEG webcam), then any camera of the same kind, then the file's default device.
    let cams = cameras.get_or_insert_with(|| probe.cameras());
    let same_api: Vec<&Camera> = cams.found.iter().filter(|c| c.api == api).collect();
    let camera = same_api
        .iter()
        .find(|c| source_for(c) == name)
        .or(same_api.first());
    match (camera, &fragment.default_device) {
        (Some(cam), _) => Ok(Choice {
            device: Some(cam.device.clone()),
            why: format!("camera.source; first {api} camera, {cam}"),
            fragment,
        }),
        (None, Some(default)) => Ok(Choice {
            why: format!("camera.source; no {api} camera found, using default device {default}"),
            device: None,
            fragment,
        }),
        (None, None) => Err(error(PipelineError::NoDevice {
            path: fragment.path,
            api,
        })),
    }
}

fn choose_encoder(
    name: &str,
    dir: &Path,
    params: &VideoParams,
    probe: &dyn Probe,
    rejected: &mut Vec<Rejected>,
) -> Result<Choice, SelectError> {
    if name != AUTO {
        let fragment = pipeline::load(dir, Kind::Encoder, name)
            .and_then(|f| f.require_elements(|e| probe.has_element(e)).map(|()| f))
            .map_err(|error| SelectError::Encoder {
                name: name.to_owned(),
                error,
            })?;
        return Ok(Choice {
            fragment,
            device: None,
            why: "camera.encoder".into(),
        });
    }
    for candidate in AUTO_ENCODERS {
        match check_encoder(dir, candidate, params, probe) {
            Ok(fragment) => {
                let why = if rejected.is_empty() {
                    "auto: usable".to_owned()
                } else {
                    let passed: Vec<&str> = rejected.iter().map(|r| r.name.as_str()).collect();
                    format!("auto: {} not usable", passed.join(", "))
                };
                return Ok(Choice {
                    fragment,
                    device: None,
                    why,
                });
            }
            Err(reason) => rejected.push(Rejected {
                name: candidate.to_owned(),
                reason,
            }),
        }
    }
    Err(SelectError::NoEncoder {
        rejected: rejected.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::DirOrigin;
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// A machine described by its parts; records the trials it was asked to run.
    #[derive(Default)]
    struct Fake {
        cameras: Vec<Camera>,
        missing: Vec<&'static str>,
        sysfs: Option<&'static str>,
        trial_fails: bool,
        trials: RefCell<Vec<String>>,
        enumerations: RefCell<usize>,
    }

    impl Probe for Fake {
        fn cameras(&self) -> Cameras {
            *self.enumerations.borrow_mut() += 1;
            Cameras {
                found: self.cameras.clone(),
                ignored: Vec::new(),
            }
        }
        fn has_element(&self, factory: &str) -> bool {
            !self.missing.contains(&factory)
        }
        fn read_sysfs(&self, path: &Path) -> Option<String> {
            assert_eq!(path, Path::new("/sys/class/video4linux/video11/name"));
            self.sysfs.map(|s| format!("{s}\n"))
        }
        fn trial(&self, launch: &str, timeout: Duration) -> Result<(), String> {
            assert_eq!(timeout, TRIAL_TIMEOUT);
            self.trials.borrow_mut().push(launch.to_owned());
            if self.trial_fails {
                Err("Internal data stream error".into())
            } else {
                Ok(())
            }
        }
    }

    fn pi() -> Fake {
        Fake {
            sysfs: Some("bcm2835-codec-encode"),
            ..Fake::default()
        }
    }

    fn pc() -> Fake {
        Fake {
            missing: vec!["v4l2h264enc", "libcamerasrc"],
            ..Fake::default()
        }
    }

    fn shipped() -> PipelinesDir {
        PipelinesDir {
            path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pipelines"),
            origin: DirOrigin::SourceTree,
        }
    }

    fn config(source: &str, encoder: &str) -> CameraConfig {
        CameraConfig {
            source: source.into(),
            encoder: encoder.into(),
            ..CameraConfig::default()
        }
    }

    fn run(probe: &Fake, source: &str, encoder: &str) -> Result<Selection, SelectError> {
        select(&config(source, encoder), shipped(), probe)
    }

    fn camera_module() -> Camera {
        Camera {
            api: DeviceApi::Libcamera,
            device: "/base/soc/i2c0mux/i2c@1/imx219@10".into(),
            name: "imx219".into(),
            mjpeg: false,
            raw: true,
        }
    }

    fn webcam(path: &str, mjpeg: bool) -> Camera {
        Camera {
            api: DeviceApi::V4l2,
            device: path.into(),
            name: "USB webcam".into(),
            mjpeg,
            raw: true,
        }
    }

    #[test]
    fn pi_with_camera_module_uses_libcamera_and_the_hardware_encoder() {
        let fake = Fake {
            cameras: vec![camera_module(), webcam("/dev/video0", true)],
            ..pi()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.source.fragment.name, "libcamera");
        assert_eq!(s.encoder.fragment.name, "v4l2h264");
        assert!(s.launch.starts_with(
            "libcamerasrc camera-name=\"/base/soc/i2c0mux/i2c@1/imx219@10\" ! \
             video/x-raw,width=1280,height=720,framerate=30/1 ! "
        ));
        assert!(s
            .launch
            .contains("video_bitrate=2000000,h264_i_frame_period=60"));
        assert!(s.launch.ends_with(crate::launch::H264_CAPS), "{}", s.launch);
        let trials = fake.trials.borrow();
        assert_eq!(trials.len(), 1);
        assert!(
            trials[0].starts_with("videotestsrc num-buffers=2 ! "),
            "{}",
            trials[0]
        );
        assert!(trials[0].contains("v4l2h264enc") && trials[0].ends_with("! fakesink"));
        assert!(
            s.to_string()
                .contains("source libcamera (auto: first camera"),
            "{s}"
        );
    }

    #[test]
    fn webcams_use_mjpeg_when_offered_else_raw() {
        let fake = Fake {
            cameras: vec![webcam("/dev/video2", true)],
            ..pc()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.source.fragment.name, "v4l2-mjpeg");
        assert!(s
            .launch
            .starts_with("v4l2src device=\"/dev/video2\" ! image/jpeg,width=1280"));
        let fake = Fake {
            cameras: vec![webcam("/dev/video0", false)],
            ..pc()
        };
        assert_eq!(
            run(&fake, AUTO, AUTO).unwrap().source.fragment.name,
            "v4l2-raw"
        );
    }

    #[test]
    fn no_camera_means_test_pattern_and_software_encoder() {
        let fake = pc();
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.source.fragment.name, TEST_SOURCE);
        assert_eq!(s.source.why, "auto: no camera found");
        assert_eq!(s.encoder.fragment.name, "x264");
        assert_eq!(s.encoder.why, "auto: v4l2h264 not usable");
        assert_eq!(s.rejected_encoders.len(), 1);
        let reason = &s.rejected_encoders[0].reason;
        assert!(
            reason.contains("v4l2h264.toml")
                && reason.contains("v4l2h264enc")
                && reason.contains("gstreamer1.0-plugins-good"),
            "{reason}"
        );
        assert!(fake.trials.borrow().is_empty());
    }

    #[test]
    fn a_camera_whose_source_is_not_installed_is_passed_over() {
        let fake = Fake {
            cameras: vec![camera_module(), webcam("/dev/video0", true)],
            ..pc()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.source.fragment.name, "v4l2-mjpeg");
        assert_eq!(s.rejected_sources.len(), 1);
        assert!(s.rejected_sources[0]
            .reason
            .contains("gstreamer1.0-libcamera"));
        let fake = Fake {
            cameras: vec![camera_module()],
            ..pc()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(
            (s.source.fragment.name.as_str(), s.source.why.as_str()),
            ("test", "auto: no camera usable")
        );
    }

    #[test]
    fn hardware_encoder_needs_its_device_name_and_a_working_trial() {
        // Element registered but the sysfs name is another device: no trial is run.
        let fake = Fake {
            sysfs: Some("rpivid"),
            ..pi()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.encoder.fragment.name, "x264");
        assert!(s.rejected_encoders[0].reason.contains("rpivid"));
        assert!(fake.trials.borrow().is_empty());
        let fake = Fake {
            sysfs: None,
            ..pi()
        };
        assert_eq!(
            run(&fake, AUTO, AUTO).unwrap().encoder.fragment.name,
            "x264"
        );
        // Everything in place but the trial fails (firmware, busy encoder).
        let fake = Fake {
            trial_fails: true,
            ..pi()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.encoder.fragment.name, "x264");
        assert!(s.rejected_encoders[0].reason.contains("two test frames"));
    }

    #[test]
    fn openh264_when_x264_is_missing_and_an_error_when_nothing_is() {
        let fake = Fake {
            missing: vec!["v4l2h264enc", "x264enc"],
            ..Fake::default()
        };
        let s = run(&fake, AUTO, AUTO).unwrap();
        assert_eq!(s.encoder.fragment.name, "openh264");
        assert_eq!(s.encoder.why, "auto: v4l2h264, x264 not usable");
        let fake = Fake {
            missing: vec!["v4l2h264enc", "x264enc", "openh264enc"],
            ..Fake::default()
        };
        let e = run(&fake, AUTO, AUTO).unwrap_err();
        assert!(matches!(&e, SelectError::NoEncoder { rejected } if rejected.len() == 3));
        let e = e.to_string();
        assert!(
            e.contains("openh264enc") && e.contains("gstreamer1.0-plugins-bad"),
            "{e}"
        );
    }

    #[test]
    fn forced_names_skip_hardware_checks_but_not_elements() {
        let fake = Fake {
            sysfs: None,
            ..pi()
        };
        let s = run(&fake, "test", "v4l2h264").unwrap();
        assert_eq!(s.encoder.fragment.name, "v4l2h264");
        assert!(fake.trials.borrow().is_empty());
        assert_eq!(*fake.enumerations.borrow(), 0, "test needs no camera list");
        let e = run(&pc(), "test", "v4l2h264").unwrap_err();
        assert!(matches!(
            &e,
            SelectError::Encoder { error: PipelineError::MissingElement { element, .. }, .. }
                if element == "v4l2h264enc"
        ));
        let e = run(&pc(), "libcamera", "x264").unwrap_err().to_string();
        assert!(
            e.contains("libcamerasrc") && e.contains("gstreamer1.0-libcamera"),
            "{e}"
        );
        let e = run(&pc(), "nope", "x264").unwrap_err();
        assert!(matches!(
            &e,
            SelectError::Source {
                error: PipelineError::Missing { .. },
                ..
            }
        ));
        assert!(e.to_string().contains("sources/nope.toml"), "{e}");
        let e = run(&pc(), "test", "../x264").unwrap_err();
        assert!(matches!(
            e,
            SelectError::Encoder {
                error: PipelineError::BadName { .. },
                ..
            }
        ));
    }

    #[test]
    fn forced_v4l2_sources_find_a_device_or_use_the_default() {
        let fake = Fake {
            cameras: vec![webcam("/dev/video0", false), webcam("/dev/video4", true)],
            ..pc()
        };
        let s = run(&fake, "v4l2-mjpeg", "x264").unwrap();
        assert_eq!(s.source.device.as_deref(), Some("/dev/video4"));
        let s = run(&fake, "v4l2-raw", "x264").unwrap();
        assert_eq!(s.source.device.as_deref(), Some("/dev/video0"));
        let s = run(&pc(), "v4l2-raw", "x264").unwrap();
        assert_eq!(s.source.device, None);
        assert!(s.launch.starts_with("v4l2src device=\"/dev/video0\" ! "));
        let fake = Fake {
            missing: vec![],
            ..pc()
        };
        let e = run(&fake, "libcamera", "x264").unwrap_err();
        assert!(matches!(
            e,
            SelectError::Source {
                error: PipelineError::NoDevice {
                    api: DeviceApi::Libcamera,
                    ..
                },
                ..
            }
        ));
    }
}
