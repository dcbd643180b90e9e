//! The camera's sound against a receiving GStreamer `webrtcbin` that speaks the protocol over
//! a real WebSocket and decodes both the picture and the sound.
//!
//! ```text
//!   device: videotestsrc ! x264enc ! tee ! … ─┐
//!           audiotestsrc ! opusenc ! tee ! … ─┴─ webrtcbin ──ICE/DTLS/SRTP on 127.0.0.1──▶
//!   viewer: webrtcbin ─┬─ rtph264depay ! decodebin ! appsink
//!                      └─ rtpopusdepay ! opusdec ! appsink
//! ```

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use support::device::{camera_stats, media_program, Server};
use support::gst_viewer::Session;

const LIMIT: Duration = Duration::from_secs(20);

fn test_launch() -> String {
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
     ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=500 \
     ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
        .into()
}

/// A device sending the test picture, and the sound `audio.source` names from `pipelines`.
async fn start_device(source: &str, pipelines: Option<PathBuf>) -> Server {
    start_device_with(test_launch(), source, pipelines).await
}

async fn start_device_with(launch: String, source: &str, pipelines: Option<PathBuf>) -> Server {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = Config::default();
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    config.camera.pipelines_dir = pipelines;
    config.audio.source = source.into();
    let mut device = Device::new(&config);
    device
        .start_camera(&config, Capture::Launch(launch), &media_program())
        .expect("camera starts");
    Server::serve(device).await
}

/// A pipelines directory of its own (named `tag`) whose only audio source, `name`, is `launch`.
fn pipelines_with(tag: &str, name: &str, launch: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peercam-audio-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    std::fs::write(
        dir.join(format!("audio/{name}.toml")),
        format!(
            "description = \"{name}\"\nlaunch = \"{launch}\"\n\
             [[elements]]\nfactory = \"audiotestsrc\"\npackage = \"gstreamer1.0-plugins-base\"\n"
        ),
    )
    .unwrap();
    dir
}

/// A pipelines directory whose only audio source, `failing`, is the test tone that errors
/// after `buffers` buffers (about 23 ms each), as a microphone that is unplugged would.
fn failing_pipelines(buffers: u32) -> PathBuf {
    pipelines_with(
        "failing",
        "failing",
        &format!("audiotestsrc is-live=true ! identity error-after={buffers}"),
    )
}

fn offer_of(session: &Session) -> String {
    session
        .received
        .iter()
        .find(|m| m.signal == "answerRequest")
        .map(|m| m.content.clone())
        .expect("the camera offered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_hears_and_sees_the_camera() {
    let running = start_device("test", None).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    let heard = a.viewer.audio.clone();
    a.pump(LIMIT, |s| s.frames() >= 60 && heard.samples() >= 48_000)
        .await;
    assert!(a.frames() >= 60, "decoded {} frames", a.frames());
    // One second of sound at 48 kHz, and not silence: the test tone is at 0.2 of full scale.
    assert!(
        heard.samples() >= 48_000,
        "heard {} samples",
        heard.samples()
    );
    assert!(heard.peak() > 0.05, "the sound peaked at {}", heard.peak());

    // The video keeps the offer's first m-line; the sound comes after it, send-only.
    let offer = offer_of(&a);
    let video = offer.find("m=video").expect("a video section");
    let audio = offer.find("m=audio").expect("an audio section");
    assert!(video < audio, "{offer}");
    assert!(offer[audio..].contains("OPUS/48000/2"), "{offer}");
    assert!(offer[audio..].contains("a=sendonly"), "{offer}");

    let s = camera_stats(&running.device);
    assert_eq!((s.audio_encoders, s.listeners), (1, 1), "{s:?}");
    assert!(!s.audio_failed);

    // A second viewer shares the one encode.
    let mut b = Session::join(&running.ws_url(), "camera").await;
    let heard_b = b.viewer.audio.clone();
    b.pump(LIMIT, |s| s.frames() >= 30 && heard_b.samples() >= 24_000)
        .await;
    assert!(heard_b.samples() >= 24_000, "b heard {}", heard_b.samples());
    let s = camera_stats(&running.device);
    assert_eq!((s.audio_encoders, s.listeners), (1, 2), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sound_the_offer_is_video_only() {
    let running = start_device("none", None).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    assert!(a.play(30, LIMIT).await >= 30);
    assert!(!offer_of(&a).contains("m=audio"));
    assert_eq!(a.viewer.audio.samples(), 0);
    let s = camera_stats(&running.device);
    assert_eq!((s.audio_encoders, s.listeners), (0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_microphone_costs_the_sound_only() {
    // About three and a half seconds of sound from the first viewer's arrival (the viewer
    // connects within the first), then the source errors.
    let dir = failing_pipelines(150);
    let running = start_device("failing", Some(dir.clone())).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    let heard = a.viewer.audio.clone();
    a.pump(LIMIT, |s| s.frames() >= 1 && heard.samples() > 0)
        .await;
    assert!(heard.samples() > 0, "no sound before the failure");
    let (frames0, t0) = (a.frames(), Instant::now());
    let device0 = camera_stats(&running.device).frames;
    // Watch for six seconds: the failure comes within the first four.
    a.pump(Duration::from_secs(6), |_| false).await;
    let secs = t0.elapsed().as_secs_f64();
    let rate = (a.frames() - frames0) as f64 / secs;
    let encoded = (camera_stats(&running.device).frames - device0) as f64 / secs;
    assert!(
        rate >= 25.0,
        "the viewer decoded {rate:.1} frames/s after the failure (the camera encoded {encoded:.1})"
    );
    assert!(encoded >= 25.0, "the camera encoded {encoded:.1} frames/s");
    let s = camera_stats(&running.device);
    assert!(s.audio_failed, "{s:?}");
    assert_eq!((s.peers, s.connected, s.audio_encoders), (1, 1, 0), "{s:?}");
    // The sound stopped: nothing more arrives.
    let samples = heard.samples();
    a.pump(Duration::from_secs(1), |_| false).await;
    assert!(
        heard.samples() <= samples + 4_800,
        "sound still arrives: {} → {}",
        samples,
        heard.samples()
    );
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

/// Picture and sound stay together: the camera's sound beeps at every whole second of the
/// capture's running time and its picture lights up at the same instants (a spectrum drawn
/// from a second, identical, beep: both sources count from the pipeline's start, on its one
/// clock). The viewer finds each flash and each beep's onset on its own timeline; they must be
/// within ±80 ms of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_and_sound_stay_in_step() {
    // Dark while the beep is silent, bright bars while it sounds.
    let launch = "audiotestsrc is-live=true wave=ticks freq=1000 sine-periods-per-tick=100 \
         volume=0.8 ! spectrascope ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! videoconvert \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=500 \
         ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
        .to_owned();
    // A 100 ms beep at the start of every second, silence between.
    let dir = pipelines_with(
        "beep",
        "beep",
        "audiotestsrc is-live=true wave=ticks freq=1000 sine-periods-per-tick=100 volume=0.8",
    );
    let running = start_device_with(launch, "beep", Some(dir.clone())).await;
    let mut a = Session::join(&running.ws_url(), "camera").await;
    a.pump(LIMIT, |s| s.frames() >= 1).await;
    // Long enough for the sender reports (RTCP) that let the viewer line the streams up.
    a.pump(Duration::from_secs(9), |_| false).await;
    assert!(a.frames() >= 200, "decoded {} frames", a.frames());

    let frames = a.viewer.brightness.lock().unwrap().clone();
    // The silent picture is uniformly dark; the first frame of a beep is a little brighter.
    let (dark, bright) = frames
        .iter()
        .fold((u8::MAX, 0), |(lo, hi), f| (lo.min(f.1), hi.max(f.1)));
    assert!(
        bright >= dark + 8,
        "no flash seen: brightness {dark}..{bright}"
    );
    let lit = |f: &(gst::ClockTime, u8)| f.1 >= dark + 2;
    let flips: Vec<i128> = frames
        .windows(2)
        .filter(|w| !lit(&w[0]) && lit(&w[1]))
        .map(|w| w[1].0.nseconds() as i128)
        .collect();
    let onsets: Vec<i128> = {
        let heard = a.viewer.audio.onsets.lock().unwrap();
        heard
            .windows(2)
            .filter_map(|w| match (w[0].1, w[1].1) {
                (None, Some(at)) => Some(at.nseconds() as i128),
                _ => None,
            })
            .collect()
    };
    eprintln!("flips at {flips:?}\nbeeps at {onsets:?}");
    // Judged from the third second on, once the sender reports have come.
    let start = frames.first().map_or(0, |f| f.0.nseconds() as i128) + 2_000_000_000;
    let gaps: Vec<i128> = onsets
        .iter()
        .filter(|&&at| at >= start)
        .filter_map(|&at| flips.iter().map(|&f| f - at).min_by_key(|g| g.abs()))
        .collect();
    eprintln!(
        "picture minus sound, ms: {:?}",
        gaps.iter().map(|g| g / 1_000_000).collect::<Vec<_>>()
    );
    assert!(gaps.len() >= 3, "too few beeps to judge: {gaps:?}");
    for gap in &gaps {
        assert!(
            gap.abs() <= 80_000_000,
            "picture and sound {} ms apart",
            gap / 1_000_000
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Invited into a room, the camera answers a member's offer: its sound goes to the offer's
/// audio section, under the member's payload type; a member offering video alone gets video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_camera_sends_its_sound_to_a_member_that_offers_audio() {
    let running = start_device("test", None).await;
    let mut member = Session::open(&running.ws_url(), "create", "kitchen").await;
    member.viewer.offers_audio = true;
    let heard = member.viewer.audio.clone();
    member
        .pump(LIMIT, |s| s.signals().contains(&"created"))
        .await;
    member.ws.send("invite", "", "kitchen", &[]).await;
    member
        .pump(LIMIT, |s| s.frames() >= 30 && heard.samples() >= 24_000)
        .await;
    assert!(member.frames() >= 30, "decoded {} frames", member.frames());
    let answer = member
        .received
        .iter()
        .find(|m| m.signal == "finalize")
        .map(|m| m.content.clone())
        .expect("the camera answered");
    assert!(
        heard.samples() >= 24_000,
        "heard {} samples; {answer}",
        heard.samples()
    );
    assert!(heard.peak() > 0.05, "the sound peaked at {}", heard.peak());
    let audio = answer.find("m=audio").expect("an audio section");
    assert!(
        answer[audio..].contains("a=rtpmap:109 OPUS/48000/2"),
        "{answer}"
    );
    assert!(answer[audio..].contains("a=sendonly"), "{answer}");
    let s = camera_stats(&running.device);
    assert_eq!(s.listeners, 1, "{s:?}");

    // A member that offers video alone.
    let mut quiet = Session::open(&running.ws_url(), "create", "hall").await;
    quiet
        .pump(LIMIT, |s| s.signals().contains(&"created"))
        .await;
    quiet.ws.send("invite", "", "hall", &[]).await;
    assert!(quiet.play(30, LIMIT).await >= 30);
    assert_eq!(quiet.viewer.audio.samples(), 0);
}

/// A pipelines directory with the test tone as `tone` and a speaker `sink` that plays
/// nowhere, for talkback.
fn pipelines_with_speaker(tag: &str) -> PathBuf {
    let dir = pipelines_with(tag, "tone", "audiotestsrc is-live=true volume=0.2");
    support::fixtures::add_silent_speaker(&dir);
    dir
}

/// The offer's audio section's direction, if it has one.
fn audio_direction(offer: &str) -> Option<&'static str> {
    let audio = &offer[offer.find("m=audio")?..];
    ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"]
        .into_iter()
        .find(|d| audio.contains(d))
}

/// With a speaker for talkback, the camera's offer receives sound as well as sends it (or
/// receives only, when the camera has no microphone); switched off, it only sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_talkback_the_offer_receives_sound_and_switched_off_it_does_not() {
    let _ = env_logger::builder().is_test(true).try_init();
    for (tag, source, enabled, want) in [
        ("talk-both", "tone", true, "a=sendrecv"),
        ("talk-speaker-only", "none", true, "a=recvonly"),
        ("talk-off", "tone", false, "a=sendonly"),
    ] {
        let dir = pipelines_with_speaker(tag);
        let mut config = Config::default();
        config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
        config.camera.pipelines_dir = Some(dir.clone());
        config.audio.source = source.into();
        config.talkback.output = "sink".into();
        config.talkback.enabled = enabled;
        let mut device = Device::new(&config);
        device
            .start_camera(&config, Capture::Launch(test_launch()), &media_program())
            .expect("camera starts");
        let running = Server::serve(device).await;
        let mut a = Session::join(&running.ws_url(), "camera").await;
        assert!(a.play(30, LIMIT).await >= 30, "{tag}: the picture plays");
        let offer = offer_of(&a);
        assert_eq!(audio_direction(&offer), Some(want), "{tag}: {offer}");
        a.leave().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
