//! The camera's microphone: which audio source runs (the descriptions in `pipelines/audio/`,
//! the configuration and the machine's sound cards), and the shared Opus encode it feeds.
//!
//! ```text
//!   <audio source> ! audioconvert ! audioresample ! opusenc ! tee name=audio
//!                                                              ├─ listener chain (payload.rs)
//!                                                              └─ ...
//! ```
//!
//! The encode lives in the capture pipeline beside the video (see fanout.rs): one clock and
//! one base time, so both streams' timestamps count from the same instant and a receiver can
//! line them up. Choosing is pure ([`choose`]) apart from reading the files; this module never
//! starts a pipeline (fanout.rs builds the encode and uses the helpers at the end of this file).

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Deserialize;

use crate::pipeline::{pipelines_dir, valid_name, Element};
use peercam_wire::AudioCapture;

/// The audio tee's name in the capture pipeline.
pub const TEE: &str = "audio";

/// Where ALSA lists its PCM devices, each with whether it plays or captures.
pub(crate) const PCM_LIST: &str = "/proc/asound/pcm";

/// The description `auto` uses when the machine has a capture card.
const ALSA: &str = "alsa";

/// `audio/<name>.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioFile {
    description: String,
    /// The device it opens when the configuration names none and no card is found.
    #[serde(default)]
    default_device: Option<String>,
    /// Ends in raw audio; `{device}` is replaced by the device.
    launch: String,
    elements: Vec<Element>,
}

/// An audio source description, read.
#[derive(Debug)]
pub struct AudioSource {
    /// Its name (the file name without `.toml`).
    pub name: String,
    /// One line on what it is.
    pub description: String,
    default_device: Option<String>,
    launch: String,
    elements: Vec<Element>,
}

impl AudioSource {
    /// Reads `<dir>/audio/<name>.toml`.
    pub fn load(dir: &Path, name: &str) -> Result<AudioSource, String> {
        AudioSource::load_in(dir, "audio", name)
    }

    /// Reads `<dir>/<folder>/<name>.toml` (`speaker/`'s descriptions have the same shape,
    /// their launch text starting from raw audio instead of ending in it).
    pub fn load_in(dir: &Path, folder: &str, name: &str) -> Result<AudioSource, String> {
        if !valid_name(name) {
            return Err(format!("{name:?} is not a name from pipelines/{folder}/"));
        }
        let path = dir.join(folder).join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: AudioFile = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        Ok(AudioSource {
            name: name.to_owned(),
            description: file.description,
            default_device: file.default_device,
            launch: file.launch,
            elements: file.elements,
        })
    }

    /// The first of its elements that is not installed, with its package.
    pub fn missing(&self, installed: &dyn Fn(&str) -> bool) -> Option<String> {
        self.elements
            .iter()
            .find(|e| !installed(&e.factory))
            .map(|e| format!("{} (package {})", e.factory, e.package))
    }

    /// Its launch text for `device` (or its default device).
    pub fn launch(&self, device: Option<&str>) -> String {
        let device = device
            .or(self.default_device.as_deref())
            .unwrap_or("default");
        self.launch.replace("{device}", device)
    }
}

/// The first ALSA capture device in `/proc/asound/pcm`'s text (`CC-DD: id : name : playback 1
/// : capture 1`), as `plughw:C,D` (the plug layer converts whatever rate and format the card
/// has).
pub fn first_capture_device(pcm: &str) -> Option<String> {
    first_device(pcm.lines(), "capture")
}

/// The first ALSA playback device in `/proc/asound/pcm`'s text that is not HDMI, as
/// `plughw:C,D`: a screen's sound is not a speaker at a door (a Pi lists its HDMI outputs
/// beside its headphone jack and any USB speaker).
pub fn first_playback_device(pcm: &str) -> Option<String> {
    let speakers = pcm
        .lines()
        .filter(|line| !line.to_ascii_lowercase().contains("hdmi"));
    first_device(speakers, "playback")
}

fn first_device<'a>(mut lines: impl Iterator<Item = &'a str>, kind: &str) -> Option<String> {
    lines.find_map(|line| {
        let (numbers, rest) = line.split_once(':')?;
        if !rest.split(':').any(|part| part.trim().starts_with(kind)) {
            return None;
        }
        let (card, device) = numbers.trim().split_once('-')?;
        let card: u32 = card.parse().ok()?;
        let device: u32 = device.parse().ok()?;
        Some(format!("plughw:{card},{device}"))
    })
}

/// What was chosen: the source's raw-audio launch text (none: video only) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChoice {
    /// The source's launch text, ending in raw audio; `None`: no sound.
    pub launch: Option<String>,
    /// Opus bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// One line on what was chosen and why.
    pub why: String,
}

/// Chooses the audio source for `capture`, looking for capture cards with `pcm` (the text of
/// `/proc/asound/pcm`, `None` when it cannot be read) and for elements with `installed`.
pub fn choose(
    capture: &AudioCapture,
    pcm: Option<&str>,
    installed: &dyn Fn(&str) -> bool,
) -> Result<AudioChoice, String> {
    let (config, dir) = match capture {
        AudioCapture::None => {
            return Ok(AudioChoice {
                launch: None,
                bitrate_kbps: 0,
                why: "no sound: none asked for".into(),
            })
        }
        AudioCapture::Launch {
            launch,
            bitrate_kbps,
        } => {
            return Ok(AudioChoice {
                launch: Some(launch.clone()),
                bitrate_kbps: *bitrate_kbps,
                why: "the given audio source".into(),
            })
        }
        AudioCapture::Select {
            audio,
            pipelines_dir: dir,
        } => (audio, pipelines_dir(dir.as_deref()).path),
    };
    let bitrate_kbps = config.bitrate_kbps;
    let card = pcm.and_then(first_capture_device);
    let none = |why: String| AudioChoice {
        launch: None,
        bitrate_kbps,
        why,
    };
    match config.source.as_str() {
        "none" => Ok(none("no sound: audio.source is \"none\"".into())),
        "auto" => {
            let Some(card) = config.device.clone().or(card) else {
                return Ok(none(
                    "no sound: no ALSA capture device found in /proc/asound/pcm (plug in a \
                     microphone, or set audio.source)"
                        .into(),
                ));
            };
            let source = AudioSource::load(&dir, ALSA)?;
            if let Some(missing) = source.missing(installed) {
                return Ok(none(format!(
                    "no sound: capture device {card} found, but {missing} is not installed"
                )));
            }
            Ok(AudioChoice {
                launch: Some(source.launch(Some(&card))),
                bitrate_kbps,
                why: format!("{ALSA} on {card} (the first capture device)"),
            })
        }
        name => {
            let source = AudioSource::load(&dir, name)?;
            if let Some(missing) = source.missing(installed) {
                return Err(format!("audio source {name}: {missing} is not installed"));
            }
            let device = config.device.clone().or(card);
            let why = match &device {
                Some(d) if source.launch.contains("{device}") => {
                    format!("{name} on {d} (as configured)")
                }
                _ => format!("{name} (as configured): {}", source.description),
            };
            Ok(AudioChoice {
                launch: Some(source.launch(device.as_deref())),
                bitrate_kbps,
                why,
            })
        }
    }
}

/// Chooses for `capture` on this machine.
pub fn choose_here(capture: &AudioCapture) -> Result<AudioChoice, String> {
    let pcm = std::fs::read_to_string(PCM_LIST).ok();
    choose(capture, pcm.as_deref(), &|f| {
        gstreamer::ElementFactory::find(f).is_some()
    })
}

/// The audio section of a remote offer the device can send its sound to: its m-line and
/// Opus payload type, when the offer has an accepted audio section that receives and lists
/// Opus (a room's browser offering its microphone and speakers).
pub fn offered_opus(sdp: &str) -> Option<(u32, u8)> {
    let session = peercam_sdp::parse(sdp).ok()?;
    session
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind == "audio" && m.accepted() && m.direction.receives())
        .find_map(|(i, m)| {
            let pt = m.formats.iter().copied().find(|pt| {
                m.rtpmap
                    .get(pt)
                    .is_some_and(|r| r.encoding.eq_ignore_ascii_case("opus"))
            })?;
            Some((u32::try_from(i).ok()?, pt))
        })
}

/// The shared encode for a source's launch text: raw audio to Opus, into the tee [`TEE`].
/// Forward error correction lets a listener rebuild a lost packet from the next; DTX sends
/// almost nothing while the room is silent.
///
/// With `echo` (the name of the speaker's echo probe, when talkback plays on a speaker near
/// the microphone), the microphone's sound goes through `webrtcdsp` first, which takes out
/// what the speaker played (see crate::speaker). Only the echo canceller runs: noise
/// suppression and gain control would change a sound people listen to for what happens in
/// the room, not for speech alone. Delay-agnostic: the speaker plays in a pipeline of its
/// own, so the two running times cannot be compared, and the canceller finds the delay from
/// the sound itself.
pub fn encode_launch(source: &str, bitrate_kbps: u32, echo: Option<&str>) -> String {
    let dsp = match echo {
        Some(probe) => format!("{} ! audioconvert ! ", echo_canceller(probe)),
        None => String::new(),
    };
    format!(
        "{source} ! audioconvert ! audioresample ! {dsp}opusenc bitrate={} inband-fec=true \
         dtx=true ! tee name={TEE} allow-not-linked=true",
        bitrate_kbps.saturating_mul(1000)
    )
}

/// The echo canceller for raw audio (any format) heard by a microphone near the speaker whose
/// echo probe is named `probe` (see [`encode_launch`]). The suppressor is at its lowest
/// level: what the room sounds like while someone talks matters as much as the talker's echo
/// (measured in tests/echo.rs: 22 dB of echo taken out, the room's own sound kept at half its
/// level during the talk, where `moderate` took out 28 dB and kept a third).
pub fn echo_canceller(probe: &str) -> String {
    format!(
        "audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 \
         ! webrtcdsp probe={probe} echo-cancel=true echo-suppression-level=low delay-agnostic=true \
         noise-suppression=false gain-control=false"
    )
}

/// Stops an end-of-stream at the audio tee: a microphone that fails ends its stream, and
/// that must not reach the listeners' webrtcbins, whose sessions carry the video as well.
pub(crate) fn keep_eos_from_listeners(tee: &gst::Element) {
    if let Some(pad) = tee.static_pad("sink") {
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::Eos => {
                    // Handled, not Drop: see `crate::fanout::gate_keyframe_requests`.
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }
}

/// Every element upstream of `tee` (following each element's inputs), `tee` excepted.
pub(crate) fn upstream_of(tee: &gst::Element) -> Vec<gst::Element> {
    let mut found: Vec<gst::Element> = Vec::new();
    let mut todo: Vec<gst::Pad> = tee.sink_pads();
    while let Some(pad) = todo.pop() {
        let Some(element) = pad.peer().and_then(|p| p.parent_element()) else {
            continue;
        };
        if found.contains(&element) {
            continue;
        }
        todo.extend(element.sink_pads());
        found.push(element);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use peercam_wire::config::AudioConfig;

    const PCM: &str = "00-00: HDMI 0 : HDMI 0 : playback 1\n\
                       01-00: USB Audio : USB Audio : capture 1\n";

    fn tree() -> Option<std::path::PathBuf> {
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines"))
    }

    fn select(source: &str, device: Option<&str>) -> AudioCapture {
        AudioCapture::Select {
            audio: AudioConfig {
                source: source.into(),
                device: device.map(str::to_owned),
                bitrate_kbps: 32,
            },
            pipelines_dir: tree(),
        }
    }

    #[test]
    fn an_offers_opus_section_is_found() {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=sendrecv\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\na=rtpmap:109 opus/48000/2\r\n\
            a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
        assert_eq!(offered_opus(offer), Some((1, 109)));
        let sendonly = offer.replace("PCMU/8000\r\na=sendrecv", "PCMU/8000\r\na=sendonly");
        assert_eq!(offered_opus(&sendonly), None);
        let rejected = offer.replace("m=audio 9", "m=audio 0");
        assert_eq!(offered_opus(&rejected), None);
        let no_opus = offer.replace("opus/48000/2", "G722/8000");
        assert_eq!(offered_opus(&no_opus), None);
        assert_eq!(offered_opus("not sdp"), None);
    }

    #[test]
    fn the_first_capture_device_is_found() {
        assert_eq!(first_capture_device(PCM).as_deref(), Some("plughw:1,0"));
        assert_eq!(
            first_capture_device("00-00: HDMI : HDMI : playback 1\n"),
            None
        );
        assert_eq!(first_capture_device(""), None);
        assert_eq!(first_capture_device("garbage\n: : capture 1\n"), None);
    }

    #[test]
    fn auto_takes_the_card_when_there_is_one_else_none() {
        let all = |_: &str| true;
        let c = choose(&select("auto", None), Some(PCM), &all).unwrap();
        let launch = c.launch.unwrap();
        assert!(launch.contains("alsasrc device=plughw:1,0"), "{launch}");
        let c = choose(&select("auto", None), None, &all).unwrap();
        assert_eq!(c.launch, None);
        assert!(c.why.contains("no ALSA capture device"), "{}", c.why);
        let c = choose(&select("auto", None), Some(PCM), &|f| f != "alsasrc").unwrap();
        assert_eq!(c.launch, None);
        assert!(c.why.contains("alsasrc"), "{}", c.why);
    }

    #[test]
    fn a_named_source_is_used_as_given() {
        let all = |_: &str| true;
        let c = choose(&select("alsa", Some("hw:2")), Some(PCM), &all).unwrap();
        assert!(c.launch.unwrap().contains("device=hw:2"));
        let c = choose(&select("test", None), None, &all).unwrap();
        assert!(c.launch.unwrap().starts_with("audiotestsrc is-live=true"));
        assert!(choose(&select("none", None), Some(PCM), &all)
            .unwrap()
            .launch
            .is_none());
        assert!(choose(&select("nosuch", None), None, &all).is_err());
        assert!(choose(&select("alsa", None), None, &|_| false).is_err());
    }
}
