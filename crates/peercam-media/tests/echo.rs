//! The microphone's echo canceller against the speaker's probe, built as the device builds
//! them: the speaker in a pipeline of its own (crate::speaker) and the microphone's
//! `webrtcdsp` (crate::audio::echo_canceller) in another, finding the probe by name.
//!
//! ```text
//!   far end (noise) ──▶ speaker: appsrc ! queue ! webrtcechoprobe ! … ! fakesink sync=true
//!         │ 60 ms later, at half the level (the room's echo)
//!         ▼
//!   mic: appsrc ! webrtcdsp (delay-agnostic) ! appsink      ── how much of it is left
//! ```
//!
//! The far end is noise (speech-like in covering every frequency); the microphone hears only
//! its echo for the first seconds, then a 440 Hz tone of the room's own as well: the echo
//! must fall away and the room's sound must stay.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use peercam_media::speaker::{Speaker, CAPS, ECHO_PROBE};

const RATE: usize = 48_000;
/// Samples in 10 ms, what the canceller works on.
const CHUNK: usize = RATE / 100;
/// The room's echo: 60 ms late.
const ECHO_DELAY_CHUNKS: usize = 6;

/// A repeatable noise source.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 20_001) as f64 / 10_000.0 - 1.0
    }
}

fn buffer(samples: &[f64]) -> gst::Buffer {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    gst::Buffer::from_mut_slice(bytes)
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Loudness of `freq` in `samples` (Goertzel), same scale as [`rms`] for a pure tone.
fn tone_level(samples: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / RATE as f64;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    (2.0 * power).sqrt() / samples.len() as f64 * std::f64::consts::FRAC_1_SQRT_2
}

#[test]
fn the_speakers_echo_is_taken_out_of_the_microphone_and_the_room_stays() {
    gst::init().unwrap();
    for factory in ["webrtcdsp", "webrtcechoprobe"] {
        assert!(
            gst::ElementFactory::find(factory).is_some(),
            "{factory} (gstreamer1.0-plugins-bad) is needed"
        );
    }
    let (errors, _errors_rx) = tokio::sync::mpsc::channel(8);
    let speaker = Speaker::build("fakesink sync=true", true, errors).expect("speaker");
    speaker.start().unwrap();
    let far = speaker.input();

    let launch = format!(
        "appsrc name=mic is-live=true format=time do-timestamp=true caps={CAPS} ! {} \
         ! audioconvert ! audio/x-raw,format=S16LE ! appsink name=out sync=false",
        peercam_media::audio::echo_canceller(ECHO_PROBE)
    );
    let mic_pipeline = gst::parse::launch(&launch)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let mic = mic_pipeline
        .by_name("mic")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let out = mic_pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
    let sink = heard.clone();
    out.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                let mut heard = sink.lock().unwrap();
                heard.extend(
                    map.chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    mic_pipeline.set_state(gst::State::Playing).unwrap();

    // 8 s in real time: echo alone for 6 s, then echo and the room's tone.
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut played: Vec<Vec<f64>> = Vec::new();
    let mut mic_in: Vec<i16> = Vec::new();
    let start = Instant::now();
    let chunks: usize = 800;
    let tone_from = 600;
    for k in 0..chunks {
        let chunk: Vec<f64> = (0..CHUNK).map(|_| 0.3 * noise.next()).collect();
        far.push_buffer(buffer(&chunk)).unwrap();
        played.push(chunk);
        let echo = k
            .checked_sub(ECHO_DELAY_CHUNKS)
            .map(|j| played[j].clone())
            .unwrap_or_else(|| vec![0.0; CHUNK]);
        let room: Vec<f64> = (0..CHUNK)
            .map(|i| {
                let n = k * CHUNK + i;
                let tone = if k >= tone_from {
                    0.1 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / RATE as f64).sin()
                } else {
                    0.0
                };
                0.5 * echo[i] + tone
            })
            .collect();
        let b = buffer(&room);
        mic_in.extend(
            b.map_readable()
                .unwrap()
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        mic.push_buffer(b).unwrap();
        let due = start + Duration::from_millis(10 * (k as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(300));
    mic_pipeline.set_state(gst::State::Null).unwrap();
    speaker.stop();

    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.len() >= chunks * CHUNK * 9 / 10,
        "{} samples out",
        heard.len()
    );
    // Echo alone, the 2 s before the tone: how much the canceller took out.
    let window = (tone_from - 200) * CHUNK..tone_from * CHUNK;
    let before = rms(&mic_in[window.clone()]);
    let after = rms(&heard[window]);
    let erle = 20.0 * (before / after.max(1.0)).log10();
    // With the tone: the room's 440 Hz is still there.
    let with_tone = (chunks - 150) * CHUNK..(chunks - 20) * CHUNK;
    let tone_in = tone_level(&mic_in[with_tone.clone()], 440.0);
    let tone_out = tone_level(&heard[with_tone], 440.0);
    eprintln!(
        "echo alone: {before:.0} rms in, {after:.0} out ({erle:.1} dB taken out); the room's \
         440 Hz tone: {tone_in:.0} in, {tone_out:.0} out"
    );
    assert!(erle >= 10.0, "only {erle:.1} dB of echo taken out");
    assert!(
        tone_out >= tone_in * 0.3,
        "the room's own sound was taken out too: {tone_in:.0} in, {tone_out:.0} out"
    );
}
