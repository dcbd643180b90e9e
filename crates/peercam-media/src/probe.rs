//! What the machine has: cameras, installed GStreamer elements, the hardware encoder.
//!
//! [`Probe`] is the edge selection asks through; it is a trait so tests can describe a Pi with
//! a camera module and a working hardware encoder on a machine with neither.
//! [`SystemProbe`] is the real one. Nothing here decides what to use (that is `select`), and
//! nothing here keeps a device open.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::pipeline::DeviceApi;

/// A camera a source can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    /// How it is opened.
    pub api: DeviceApi,
    /// The libcamera camera id or the V4L2 device node: what `{device}` becomes.
    pub device: String,
    /// Name for people.
    pub name: String,
    /// Offers MJPEG (`image/jpeg`).
    pub mjpeg: bool,
    /// Offers uncompressed video (`video/x-raw`).
    pub raw: bool,
}

impl std::fmt::Display for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let formats = match (self.raw, self.mjpeg) {
            (true, true) => "raw, MJPEG",
            (true, false) => "raw",
            (false, true) => "MJPEG",
            (false, false) => "no usable format",
        };
        write!(
            f,
            "{} {:?} ({}; {formats})",
            self.api, self.name, self.device
        )
    }
}

/// A video source device that is not offered as a camera, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The device's name (and node, when it has one).
    pub name: String,
    /// Why it is not a camera for us.
    pub reason: String,
}

/// Cameras in the order `auto` prefers them, and the devices passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cameras {
    /// Usable cameras, best first, each once.
    pub found: Vec<Camera>,
    /// Devices that are not cameras for us.
    pub ignored: Vec<Ignored>,
}

/// The machine as selection sees it. A trait so tests can inject fakes; [`SystemProbe`] is
/// the real implementation.
pub trait Probe {
    /// Video capture devices, classified.
    fn cameras(&self) -> Cameras;
    /// Whether the GStreamer element factory is installed and registered.
    fn has_element(&self, factory: &str) -> bool;
    /// The start of a small file (sysfs), or `None` when it cannot be read.
    fn read_sysfs(&self, path: &Path) -> Option<String>;
    /// Runs a finite gst-launch pipeline; `Ok` when it reaches end-of-stream within `timeout`.
    fn trial(&self, launch: &str, timeout: Duration) -> Result<(), String>;
}

/// What a device monitor reports about one device, reduced to what classification needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Factory of the element the device creates (`libcamerasrc`, `v4l2src`, `pipewiresrc`).
    pub factory: Option<String>,
    /// Display name.
    pub name: String,
    /// libcamera's camera id (`camera-name` of the created `libcamerasrc`).
    pub camera_id: Option<String>,
    /// V4L2 device node.
    pub path: Option<String>,
    /// V4L2 driver name.
    pub driver: Option<String>,
    /// V4L2 card name.
    pub card: Option<String>,
    /// Media types of its caps (`video/x-raw`, `image/jpeg`, ...).
    pub media_types: Vec<String>,
}

/// V4L2 nodes of the Raspberry Pi's own media blocks. They show up as video sources once the
/// libcamera provider stops hiding V4L2 devices, but are not cameras: the ISP and codec nodes
/// never produce frames unless fed, and the CSI receivers deliver raw Bayer that libcamera
/// turns into video. Opening one would hang or fail instead of falling back to the next.
const PLATFORM_NODES: [&str; 6] = [
    "bcm2835-isp",
    "bcm2835-codec",
    "unicam",
    "rpivid",
    "pispbe",
    "rp1-cfe",
];

/// Turns monitor output into cameras: libcamera cameras first (a Pi camera module is only
/// usable through libcamera), then V4L2 devices, then libcamera's view of USB cameras (the
/// same webcams are better opened with v4l2src, which can ask for MJPEG). Each device once.
pub fn classify(devices: Vec<DeviceInfo>) -> Cameras {
    let mut ranked: Vec<(u8, Camera)> = Vec::new();
    let mut ignored = Vec::new();
    for d in devices {
        let has = |t: &str| d.media_types.iter().any(|m| m == t);
        let (mjpeg, raw) = (has("image/jpeg"), has("video/x-raw"));
        let ignore = |reason: String| Ignored {
            name: match &d.path {
                Some(p) => format!("{} ({p})", d.name),
                None => d.name.clone(),
            },
            reason,
        };
        let camera = if d.factory.as_deref() == Some("libcamerasrc") {
            match d.camera_id.as_deref().filter(|id| !id.is_empty()) {
                None => Err(ignore("libcamera device without a camera id".into())),
                // libcamera scales and converts in its ISP, so it always offers raw video even
                // when the device's caps are not filled in.
                Some(id) => Ok((
                    if is_usb_camera_id(id) { 2 } else { 0 },
                    Camera {
                        api: DeviceApi::Libcamera,
                        device: id.to_owned(),
                        name: d.name.clone(),
                        mjpeg: false,
                        raw: true,
                    },
                )),
            }
        } else if let Some(path) = d.path.as_deref().filter(|p| p.starts_with("/dev/")) {
            let platform = [&d.driver, &d.card].into_iter().flatten().find(|n| {
                PLATFORM_NODES
                    .iter()
                    .any(|p| n.to_ascii_lowercase().starts_with(p))
            });
            if let Some(node) = platform {
                Err(ignore(format!(
                    "{node} is a Raspberry Pi media node, not a camera"
                )))
            } else if !mjpeg && !raw {
                Err(ignore(format!(
                    "offers neither raw video nor MJPEG ({})",
                    d.media_types.join(", ")
                )))
            } else {
                Ok((
                    1,
                    Camera {
                        api: DeviceApi::V4l2,
                        device: path.to_owned(),
                        name: d.name.clone(),
                        mjpeg,
                        raw,
                    },
                ))
            }
        } else {
            Err(ignore(format!(
                "no V4L2 node or libcamera id (element {})",
                d.factory.as_deref().unwrap_or("unknown")
            )))
        };
        match camera {
            Err(i) => ignored.push(i),
            Ok((rank, camera)) => {
                // The same node can come from several providers (v4l2 and PipeWire): keep the
                // first, with every format any of them offered.
                match ranked
                    .iter_mut()
                    .find(|(_, c)| c.api == camera.api && c.device == camera.device)
                {
                    Some((_, seen)) => {
                        seen.mjpeg |= camera.mjpeg;
                        seen.raw |= camera.raw;
                    }
                    None => ranked.push((rank, camera)),
                }
            }
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    Cameras {
        found: ranked.into_iter().map(|(_, c)| c).collect(),
        ignored,
    }
}

/// libcamera names USB cameras after their port and USB ids (`...-1.2:1.0-046d:0825`); Pi
/// camera modules after their device-tree node. Only the ending matters here.
fn is_usb_camera_id(id: &str) -> bool {
    let Some((_, ids)) = id.rsplit_once('-') else {
        return false;
    };
    let Some((vendor, product)) = ids.split_once(':') else {
        return false;
    };
    let hex4 = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    hex4(vendor) && hex4(product)
}

/// How long device enumeration may take before it is given up on: a wedged driver must not
/// keep the service (or `peercam check`) from starting.
const ENUMERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra time a trial gets to shut down after its deadline before it is abandoned.
const TRIAL_GRACE: Duration = Duration::from_secs(1);

/// sysfs names are short; a mistaken path (a device node) must not be read without end.
const MAX_SYSFS_BYTES: u64 = 4096;

/// The real machine: GStreamer's device monitor and registry, and the file system.
#[derive(Debug)]
pub struct SystemProbe {
    _initialised: (),
}

impl SystemProbe {
    /// Initialises GStreamer (idempotent).
    pub fn new() -> Result<SystemProbe, gst::glib::Error> {
        gst::init()?;
        Ok(SystemProbe { _initialised: () })
    }
}

impl Probe for SystemProbe {
    fn cameras(&self) -> Cameras {
        match on_thread(ENUMERATION_TIMEOUT, enumerate) {
            Some(devices) => classify(devices),
            None => Cameras {
                found: Vec::new(),
                ignored: vec![Ignored {
                    name: "device monitor".into(),
                    reason: format!("enumeration did not finish within {ENUMERATION_TIMEOUT:?}"),
                }],
            },
        }
    }

    fn has_element(&self, factory: &str) -> bool {
        gst::ElementFactory::find(factory).is_some()
    }

    fn read_sysfs(&self, path: &Path) -> Option<String> {
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX_SYSFS_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    fn trial(&self, launch: &str, timeout: Duration) -> Result<(), String> {
        let launch = launch.to_owned();
        on_thread(timeout + TRIAL_GRACE, move || run_to_eos(&launch, timeout))
            .unwrap_or_else(|| Err(format!("did not stop within {:?}", timeout + TRIAL_GRACE)))
    }
}

/// Runs `f` on its own thread and waits at most `timeout`. A hardware element stuck in a
/// driver call can block a state change for good; then the thread is abandoned (with the
/// pipeline it holds) so the caller can go on with a software fallback.
fn on_thread<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("peercam-probe".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(timeout).ok()
}

fn enumerate() -> Vec<DeviceInfo> {
    let monitor = gst::DeviceMonitor::new();
    // Without a filter id there is nothing to match on: the monitor would list every class.
    if monitor.add_filter(Some("Video/Source"), None).is_none() {
        return Vec::new();
    }
    // The libcamera provider hides the V4L2 provider, which would hide USB webcams' MJPEG.
    monitor.set_show_all_devices(true);
    monitor.devices().iter().map(device_info).collect()
}

fn device_info(device: &gst::Device) -> DeviceInfo {
    let props = device.properties();
    let get = |keys: &[&str]| {
        let props = props.as_ref()?;
        keys.iter().find_map(|k| props.get::<String>(*k).ok())
    };
    // The element tells the provider apart reliably (device types and property names differ
    // between GStreamer and libcamera versions); creating it opens nothing.
    let element = device.create_element(None).ok();
    let factory = element
        .as_ref()
        .and_then(|e| e.factory())
        .map(|f| f.name().to_string());
    let camera_id = element
        .filter(|_| factory.as_deref() == Some("libcamerasrc"))
        .filter(|e| e.find_property("camera-name").is_some())
        .and_then(|e| e.property::<Option<String>>("camera-name"));
    let mut media_types: Vec<String> = device
        .caps()
        .map(|caps| caps.iter().map(|s| s.name().to_string()).collect())
        .unwrap_or_default();
    media_types.sort();
    media_types.dedup();
    DeviceInfo {
        factory,
        name: device.display_name().to_string(),
        camera_id,
        path: get(&["api.v4l2.path", "device.path"]),
        driver: get(&["api.v4l2.cap.driver", "v4l2.device.driver"]),
        card: get(&["api.v4l2.cap.card", "v4l2.device.card"]),
        media_types,
    }
}

fn run_to_eos(launch: &str, timeout: Duration) -> Result<(), String> {
    let pipeline = gst::parse::launch(launch).map_err(|e| e.to_string())?;
    let result = wait_for_eos(&pipeline, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn wait_for_eos(pipeline: &gst::Element, timeout: Duration) -> Result<(), String> {
    let bus = pipeline.bus().ok_or("pipeline has no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| first_error(&bus).unwrap_or_else(|| "could not start".into()))?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no end of stream within {timeout:?}"));
        }
        let wait =
            gst::ClockTime::from_nseconds(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX));
        let Some(msg) =
            bus.timed_pop_filtered(wait, &[gst::MessageType::Eos, gst::MessageType::Error])
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(describe_error(e)),
            _ => {}
        }
    }
}

fn first_error(bus: &gst::Bus) -> Option<String> {
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe_error(e)),
        _ => None,
    }
}

fn describe_error(e: &gst::message::Error) -> String {
    match e.debug() {
        Some(debug) => format!("{} ({debug})", e.error()),
        None => e.error().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4l2(name: &str, path: &str, types: &[&str]) -> DeviceInfo {
        DeviceInfo {
            factory: Some("v4l2src".into()),
            name: name.into(),
            path: Some(path.into()),
            driver: Some("uvcvideo".into()),
            media_types: types.iter().map(|t| t.to_string()).collect(),
            ..DeviceInfo::default()
        }
    }

    fn libcamera(id: &str) -> DeviceInfo {
        DeviceInfo {
            factory: Some("libcamerasrc".into()),
            name: id.into(),
            camera_id: Some(id.into()),
            ..DeviceInfo::default()
        }
    }

    #[test]
    fn libcamera_first_then_v4l2_then_usb_seen_by_libcamera() {
        let usb_id = "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1.2:1.0-046d:0825";
        let cams = classify(vec![
            libcamera(usb_id),
            v4l2("Webcam", "/dev/video0", &["image/jpeg", "video/x-raw"]),
            libcamera("/base/soc/i2c0mux/i2c@1/imx219@10"),
        ]);
        let order: Vec<_> = cams.found.iter().map(|c| c.device.as_str()).collect();
        assert_eq!(
            order,
            ["/base/soc/i2c0mux/i2c@1/imx219@10", "/dev/video0", usb_id]
        );
        assert_eq!(cams.found[0].api, DeviceApi::Libcamera);
        assert!(cams.found[1].mjpeg && cams.found[1].raw);
    }

    #[test]
    fn duplicates_merge_and_platform_nodes_are_ignored() {
        let mut isp = v4l2("bcm2835-isp-capture0", "/dev/video14", &["video/x-raw"]);
        isp.driver = Some("bcm2835-isp".into());
        let mut unicam = v4l2("unicam-image", "/dev/video0", &["video/x-bayer"]);
        unicam.driver = Some("unicam".into());
        let mut piped = v4l2("Webcam", "/dev/video2", &["image/jpeg"]);
        piped.factory = Some("pipewiresrc".into());
        let cams = classify(vec![
            isp,
            unicam,
            v4l2("Webcam", "/dev/video2", &["video/x-raw"]),
            piped,
            v4l2("Webcam metadata", "/dev/video3", &[]),
            DeviceInfo {
                name: "Screen".into(),
                factory: Some("ximagesrc".into()),
                ..DeviceInfo::default()
            },
            DeviceInfo {
                factory: Some("libcamerasrc".into()),
                name: "nameless".into(),
                ..DeviceInfo::default()
            },
        ]);
        assert_eq!(cams.found.len(), 1, "{cams:?}");
        let c = &cams.found[0];
        assert_eq!(
            (c.device.as_str(), c.mjpeg, c.raw),
            ("/dev/video2", true, true)
        );
        let ignored: Vec<_> = cams.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            ignored,
            [
                "bcm2835-isp-capture0 (/dev/video14)",
                "unicam-image (/dev/video0)",
                "Webcam metadata (/dev/video3)",
                "Screen",
                "nameless"
            ]
        );
        assert!(cams.ignored[0].reason.contains("not a camera"));
    }

    #[test]
    fn usb_camera_ids() {
        assert!(is_usb_camera_id(
            "\\_SB_.PCI0.XHC_.RHUB.HS05-5:1.0-0c45:6366"
        ));
        assert!(!is_usb_camera_id("/base/soc/i2c0mux/i2c@1/imx219@10"));
        assert!(!is_usb_camera_id(
            "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"
        ));
        assert!(!is_usb_camera_id("cam-12:34"));
    }

    #[test]
    fn real_probe_on_this_machine() {
        let probe = SystemProbe::new().unwrap();
        assert!(probe.has_element("videotestsrc"));
        assert!(!probe.has_element("no-such-element"));
        // Enumeration must finish and classify whatever is (or is not) attached.
        let cams = probe.cameras();
        for c in &cams.found {
            assert!(!c.device.is_empty());
        }
        assert_eq!(probe.read_sysfs(Path::new("/nonexistent/name")), None);
        let f = tempfile_path("sysfs");
        std::fs::write(&f, "bcm2835-codec-encode\n").unwrap();
        assert_eq!(
            probe.read_sysfs(&f).as_deref(),
            Some("bcm2835-codec-encode\n")
        );
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn real_trials_end_fail_or_time_out() {
        let probe = SystemProbe::new().unwrap();
        let second = Duration::from_secs(2);
        probe
            .trial("videotestsrc num-buffers=2 ! fakesink", second)
            .unwrap();
        let e = probe
            .trial("videotestsrc ! no-such-element ! fakesink", second)
            .unwrap_err();
        assert!(e.contains("no-such-element"), "{e}");
        let e = probe
            .trial(
                "videotestsrc num-buffers=2 ! video/x-h264 ! fakesink",
                second,
            )
            .unwrap_err();
        assert!(!e.is_empty());
        let started = Instant::now();
        let e = probe
            .trial(
                "videotestsrc is-live=true ! fakesink",
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(e.contains("no end of stream"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    fn tempfile_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("peercam-probe-{tag}-{}", std::process::id()))
    }
}
