//! Arbitrary text as a remote member's offer or answer, through the camera's SDP policy.
//!
//! Properties:
//! - reading and checking never panic, whatever the text;
//! - an accepted offer's choice points at a receiving video section of the parsed session
//!   whose formats list the chosen payload type (0..=127), with an rtpmap of that codec at
//!   90 kHz; its rtx, if any, is another listed payload type;
//! - relabelling the chosen H.264 payload changes no line but that payload's fmtp, and
//!   relabelling twice is relabelling once;
//! - an answer check accepts only a session whose section at that index is accepted and lists
//!   one of the offered payload types.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_sdp::{check_answer, check_offer, relabel_h264, Codec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((session, choice)) = check_offer(text, &[Codec::H264, Codec::Vp8]) {
        assert!(choice.pt <= 127);
        let media = &session.media[choice.mline as usize];
        assert_eq!(media.kind, "video");
        assert!(media.accepted() && media.direction.receives());
        assert!(media.formats.contains(&choice.pt));
        let map = &media.rtpmap[&choice.pt];
        assert_eq!(map.clock_rate, 90000);
        if let Some(rtx) = choice.rtx {
            assert_ne!(rtx, choice.pt);
            assert!(media.formats.contains(&rtx));
        }
        if choice.codec == Codec::H264 {
            let once = relabel_h264(text, choice.pt, "42c01f");
            assert_eq!(relabel_h264(&once, choice.pt, "42c01f"), once);
            let prefix = format!("a=fmtp:{} ", choice.pt);
            let kept = |s: &str| -> Vec<String> {
                s.split_inclusive('\n')
                    .filter(|l| !l.starts_with(&prefix))
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(kept(text), kept(&once));
        }
    }
    if let Ok(offer) = peercam_sdp::parse(text) {
        if let Ok((session, choice)) = check_answer(text, &offer, &[Codec::H264, Codec::Vp8]) {
            let media = &session.media[choice.mline as usize];
            assert!(media.accepted());
            assert!(media.formats.contains(&choice.pt));
        }
    }
});
