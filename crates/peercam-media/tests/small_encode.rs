//! The small encode with real GStreamer: a viewer's branch moved from the main encode to the
//! small one and back sees each new stream start with a keyframe, at the new size, and never
//! a frame of the old stream after it; the small encode stops once no branch is on it.
//!
//! ```text
//!   videotestsrc 640x480 ! x264enc ! tee ─▶ branch: queue ! fakesink (probe: width, keyframe)
//!                 └─ raw tee ─▶ small encode (480x360) ! tee
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use peercam_media::fanout::Fanout;
use peercam_media::launch::H264_CAPS;
use peercam_sdp::Codec;

/// Each frame the branch got: its width and whether it is a keyframe.
type Seen = Arc<Mutex<Vec<(i32, bool)>>>;

/// A viewer's branch stand-in, with a probe recording what reaches its sink.
fn branch() -> (gst::Bin, Seen) {
    let bin = gst::parse::bin_from_description("queue ! fakesink name=out sync=false", true)
        .expect("branch");
    let seen: Seen = Arc::default();
    let out = bin.by_name("out").expect("fakesink");
    let pad = out.static_pad("sink").expect("sink pad");
    let record = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            let width = pad
                .current_caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<i32>("width").ok()))
                .unwrap_or(0);
            let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            record.lock().unwrap().push((width, key));
        }
        gst::PadProbeReturn::Ok
    });
    (bin, seen)
}

/// Waits up to 5 s for a frame `width` wide after the first `from` frames; its index.
fn wait_for(seen: &Seen, from: usize, width: i32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let at = seen.lock().unwrap()[from..]
            .iter()
            .position(|(w, _)| *w == width);
        if let Some(at) = at {
            return from + at;
        }
        assert!(
            Instant::now() < deadline,
            "no frame {width} wide within 5 s: {:?}",
            &seen.lock().unwrap()[from..]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that from `at` on, the stream is `width` wide and starts with a keyframe, after a
/// few more frames came.
fn switched_cleanly(seen: &Seen, at: usize, width: i32) {
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen.lock().unwrap();
    assert!(seen[at].1, "the first frame {width} wide is not a keyframe");
    let after = &seen[at..];
    assert!(after.len() > 5, "frames stopped after the move: {after:?}");
    assert!(
        after.iter().all(|(w, _)| *w == width),
        "the old stream came after the new one's keyframe: {after:?}"
    );
}

#[test]
fn a_branch_moves_to_the_small_encode_and_back_at_keyframes() {
    gst::init().unwrap();
    let launch = format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=480,framerate=30/1 \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency \
         speed-preset=ultrafast key-int-max=60 bitrate=1500 ! {H264_CAPS}"
    );
    let mut fanout = Fanout::new(&launch).expect("capture");
    assert!(fanout.small_available(), "x264enc and the raw tee are here");
    let (bin, seen) = branch();
    fanout.add(&bin).expect("add");
    let pad = fanout.link(&bin, Codec::H264).expect("link");
    wait_for(&seen, 0, 640);
    assert_eq!((fanout.small_encoders(), fanout.small_branches()), (0, 0));

    // To the small encode: 480x360 (the picture's shape at 360 lines) from its keyframe on.
    let from = seen.lock().unwrap().len();
    let small = fanout.move_to_small(&pad, 300_000).expect("to small");
    assert_eq!((fanout.small_encoders(), fanout.small_branches()), (1, 1));
    let at = wait_for(&seen, from, 480);
    switched_cleanly(&seen, at, 480);
    assert!(!fanout.stop_small_if_unwatched(), "a branch is on it");

    // Back to the main encode, which is asked for a keyframe: not two seconds of waiting.
    let from = seen.lock().unwrap().len();
    let asked = Instant::now();
    let main = fanout.move_to_main(&small).expect("to main");
    let at = wait_for(&seen, from, 640);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    switched_cleanly(&seen, at, 640);
    // Its last branch gone, the small encode stops.
    assert!(fanout.stop_small_if_unwatched());
    assert_eq!((fanout.small_encoders(), fanout.small_branches()), (0, 0));

    // A move given up (the viewer left before the keyframe): nothing stays behind.
    let small = fanout.move_to_small(&main, 300_000).expect("to small");
    fanout.detach(&bin, Some(&small), None);
    assert_eq!((fanout.small_encoders(), fanout.small_branches()), (0, 0));
    assert_eq!(fanout.branches(), 0);
    // Out of the pipeline, the branch is its owner's to stop.
    let _ = bin.set_state(gst::State::Null);
}
