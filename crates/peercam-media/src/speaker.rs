//! The device's speaker, for talkback: which output plays (the descriptions in
//! `pipelines/speaker/`, the configuration and the machine's sound cards), and the pipeline
//! that plays the talking viewer's sound.
//!
//! ```text
//!   viewer's webrtcbin ─▶ hearing chain (hearing.rs) ! appsink ──┐
//!                                                                 │ decoded 48 kHz mono
//!   appsrc ! queue leaky ! webrtcechoprobe ! audioconvert ! audioresample ! <output>
//! ```
//!
//! A pipeline of its own, not part of the capture: it opens the sound card only while
//! someone talks (other programs may use it the rest of the time), and a card that is busy
//! or gone fails talkback alone, never the viewers' pictures. The echo probe is made once
//! with the speaker and lives as long as it: the microphone's `webrtcdsp` finds it by name
//! when the capture starts (see crate::audio::encode_launch).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::audio::{first_playback_device, AudioSource, PCM_LIST};
use crate::pipeline::pipelines_dir;
use crate::MediaError;
use peercam_wire::config::TalkbackConfig;
use peercam_wire::Talkback;

/// The echo probe's name, which the microphone's `webrtcdsp` looks for.
pub const ECHO_PROBE: &str = "peercam-echo";

/// The description `auto` uses when the machine has a playback card.
const ALSA: &str = "alsa";

/// The folder of `pipelines/` the outputs are in.
const FOLDER: &str = "speaker";

/// The raw audio the hearing chains hand the speaker.
pub const CAPS: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1";

/// Sound the speaker's queue holds before it drops the oldest, nanoseconds: a card that
/// stalls costs a moment of speech, never a growing delay.
const QUEUE_TIME_NS: u64 = 200_000_000;

/// What was chosen: the output's launch text (none: no talkback), whether to cancel its echo
/// from the microphone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerChoice {
    /// The output's launch text, starting from raw audio; `None`: no talkback.
    pub launch: Option<String>,
    /// Cancel the speaker's sound out of the microphone's.
    pub echo_cancel: bool,
    /// One line on what was chosen and why.
    pub why: String,
}

/// Chooses the speaker for `talkback`, looking for playback cards with `pcm` (the text of
/// `/proc/asound/pcm`, `None` when it cannot be read) and for elements with `installed`.
pub fn choose(
    talkback: &Talkback,
    pcm: Option<&str>,
    installed: &dyn Fn(&str) -> bool,
) -> Result<SpeakerChoice, String> {
    let (config, dir): (&TalkbackConfig, _) = match talkback {
        Talkback::None => {
            return Ok(SpeakerChoice {
                launch: None,
                echo_cancel: false,
                why: "no talkback: switched off".into(),
            })
        }
        Talkback::Select {
            talkback,
            pipelines_dir: dir,
        } => (talkback, pipelines_dir(dir.as_deref()).path),
    };
    let none = |why: String| SpeakerChoice {
        launch: None,
        echo_cancel: false,
        why,
    };
    let card = pcm.and_then(first_playback_device);
    let (name, device, why) = match config.output.as_str() {
        "none" => return Ok(none("no talkback: talkback.output is \"none\"".into())),
        "auto" => {
            let Some(card) = config.device.clone().or(card) else {
                return Ok(none(
                    "no talkback: no ALSA playback device found in /proc/asound/pcm (plug in \
                     a speaker, or set talkback.output)"
                        .into(),
                ));
            };
            let why = format!("{ALSA} on {card} (the first playback device)");
            (ALSA, Some(card), why)
        }
        name => {
            let device = config.device.clone().or(card);
            let why = match &device {
                Some(d) => format!("{name} on {d} (as configured)"),
                None => format!("{name} (as configured)"),
            };
            (name, device, why)
        }
    };
    let output = AudioSource::load_in(&dir, FOLDER, name)?;
    if let Some(missing) = output.missing(installed) {
        if config.output == "auto" {
            return Ok(none(format!(
                "no talkback: playback device found, but {missing} is not installed"
            )));
        }
        return Err(format!(
            "talkback output {name}: {missing} is not installed"
        ));
    }
    let echo_cancel = config.echo_cancel && installed("webrtcdsp") && installed("webrtcechoprobe");
    let why = match (config.echo_cancel, echo_cancel) {
        (true, false) => format!(
            "{why}; no echo cancelling: webrtcdsp is not installed (gstreamer1.0-plugins-bad)"
        ),
        _ => why,
    };
    Ok(SpeakerChoice {
        launch: Some(output.launch(device.as_deref())),
        echo_cancel,
        why,
    })
}

/// Chooses for `talkback` on this machine.
pub fn choose_here(talkback: &Talkback) -> Result<SpeakerChoice, String> {
    let pcm = std::fs::read_to_string(PCM_LIST).ok();
    choose(talkback, pcm.as_deref(), &|f| {
        gst::ElementFactory::find(f).is_some()
    })
}

/// The speaker's pipeline, stopped until someone talks.
pub struct Speaker {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

impl Speaker {
    /// Builds the pipeline for `output` (a description's launch text, from raw audio), with
    /// the echo probe when `echo` is set; errors it meets later are sent to `errors`.
    pub fn build(
        output: &str,
        echo: bool,
        errors: mpsc::Sender<String>,
    ) -> Result<Speaker, MediaError> {
        let probe = if echo {
            format!("webrtcechoprobe name={ECHO_PROBE} ! ")
        } else {
            String::new()
        };
        let launch = format!(
            "appsrc name=talk is-live=true format=time do-timestamp=true caps={CAPS} \
             ! queue max-size-time={QUEUE_TIME_NS} max-size-buffers=0 max-size-bytes=0 \
             leaky=downstream ! {probe}audioconvert ! audioresample ! {output}"
        );
        let pipeline = gst::parse::launch(&launch)
            .map_err(|e| MediaError::Pipeline(format!("the speaker: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Pipeline("the speaker is not a pipeline".into()))?;
        let src = pipeline
            .by_name("talk")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| MediaError::Pipeline("the speaker has no input".into()))?;
        if let Some(bus) = pipeline.bus() {
            bus.set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    log::warn!("speaker: {} ({})", e.error(), e.debug().unwrap_or_default());
                    let _ = errors.try_send(e.error().to_string());
                }
                gst::BusSyncReply::Drop
            });
        }
        Ok(Speaker { pipeline, src })
    }

    /// Opens the output and plays what comes in.
    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|_| MediaError::Pipeline("the speaker could not be opened".into()))
    }

    /// Closes the output; what was queued is dropped.
    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// Where the hearing chains push the talking viewer's sound.
    pub fn input(&self) -> gst_app::AppSrc {
        self.src.clone()
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PCM: &str = "00-00: HDMI 0 : HDMI 0 : playback 1\n\
                       01-00: USB Audio : USB Audio : playback 1 : capture 1\n";

    fn select(output: &str, device: Option<&str>, echo_cancel: bool) -> Talkback {
        Talkback::Select {
            talkback: TalkbackConfig {
                enabled: true,
                output: output.into(),
                device: device.map(str::to_owned),
                echo_cancel,
            },
            pipelines_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines")),
        }
    }

    #[test]
    fn auto_plays_on_the_first_playback_card_else_there_is_no_talkback() {
        let all = |_: &str| true;
        let c = choose(&select("auto", None, true), Some(PCM), &all).unwrap();
        // Not the HDMI output: the USB card's.
        assert!(c.launch.unwrap().contains("alsasink device=plughw:1,0"));
        assert!(c.echo_cancel);
        assert!(c.why.contains("first playback device"), "{}", c.why);
        let c = choose(&select("auto", None, true), None, &all).unwrap();
        assert_eq!(c.launch, None);
        assert!(c.why.contains("no ALSA playback device"), "{}", c.why);
        let capture_only = "01-00: USB Audio : USB Audio : capture 1\n";
        let c = choose(&select("auto", None, true), Some(capture_only), &all).unwrap();
        assert_eq!(c.launch, None);
        let hdmi_only = "00-00: MAI PCM i2s-hifi-0 : vc4-hdmi-0 : playback 1\n";
        let c = choose(&select("auto", None, true), Some(hdmi_only), &all).unwrap();
        assert_eq!(c.launch, None);
        let c = choose(&select("auto", None, true), Some(PCM), &|f| f != "alsasink").unwrap();
        assert_eq!(c.launch, None);
        assert!(c.why.contains("alsasink"), "{}", c.why);
    }

    #[test]
    fn a_named_output_is_used_as_given_and_echo_cancelling_needs_webrtcdsp() {
        let all = |_: &str| true;
        let c = choose(&select("alsa", Some("hw:2"), false), Some(PCM), &all).unwrap();
        assert!(c.launch.unwrap().contains("device=hw:2"));
        assert!(!c.echo_cancel);
        let c = choose(&select("alsa", None, true), Some(PCM), &|f| {
            f != "webrtcdsp"
        })
        .unwrap();
        assert!(!c.echo_cancel);
        assert!(c.why.contains("no echo cancelling"), "{}", c.why);
        assert!(choose(&select("none", None, true), Some(PCM), &all)
            .unwrap()
            .launch
            .is_none());
        assert!(choose(&select("nosuch", None, true), Some(PCM), &all).is_err());
        assert!(choose(&select("alsa", None, true), Some(PCM), &|_| false).is_err());
        assert!(choose(&Talkback::None, Some(PCM), &all)
            .unwrap()
            .launch
            .is_none());
    }
}
