use super::*;
use crate::choose::Codec::{Vp8, H264};
use crate::parse::{Direction, Session};

/// What Chromium offers when it joins a room with a camera and a microphone (trimmed to
/// the lines that matter, candidates included).
const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:4ZcD\r\n\
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 127 125\r\n\
c=IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122260223 10.213.9.2 51820 typ host\r\n\
a=ice-ufrag:4ZcD\r\n\
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rtpmap:127 H264/90000\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=fmtp:125 apt=127\r\n";

fn with(from: &str, to: &str) -> String {
    assert!(CHROMIUM_OFFER.contains(from), "{from}");
    CHROMIUM_OFFER.replace(from, to)
}

fn refused(text: &str) -> String {
    match check_offer(text, &[H264]) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(Unusable(why)) => why,
    }
}

#[test]
fn a_browsers_offer_gets_constrained_baseline_h264_and_its_rtx() {
    let (session, choice) = check_offer(CHROMIUM_OFFER, &[H264, Vp8]).unwrap();
    assert_eq!(session.media.len(), 2);
    assert_eq!(choice.mline, 1);
    assert_eq!(choice.codec, H264);
    assert_eq!(choice.pt, 127, "42e0 ranks before 4200");
    assert_eq!(choice.profile_level_id.as_deref(), Some("42e01f"));
    assert_eq!(choice.rtx, Some(125));
    let video = &session.media[1];
    assert_eq!(video.rtcp_fb[&102], ["nack", "nack pli"]);
    assert_eq!(video.direction, Direction::SendRecv);
}

#[test]
fn without_h264_the_next_codec_is_chosen_and_said_when_there_is_none() {
    let no_h264 = with("a=rtpmap:102 H264/90000", "a=rtpmap:102 AV1/90000")
        .replace("a=rtpmap:127 H264/90000", "a=rtpmap:127 AV1/90000");
    let (_, choice) = check_offer(&no_h264, &[H264, Vp8]).unwrap();
    assert_eq!((choice.codec, choice.pt, choice.rtx), (Vp8, 96, Some(97)));
    let why = refused(&no_h264);
    assert!(why.contains("offered no H.264 video"), "{why}");
}

#[test]
fn packetization_mode_0_is_not_enough() {
    let mode0 = CHROMIUM_OFFER.replace("packetization-mode=1", "packetization-mode=0");
    assert!(refused(&mode0).contains("packetization mode 1"));
}

#[test]
fn out_of_range_numbers_are_refused_in_words_before_gstreamer() {
    let pt200 = with("96 97 102 103 127 125", "96 97 200 103 127 125");
    assert!(
        refused(&pt200).contains("payload type \"200\""),
        "{}",
        refused(&pt200)
    );
    let rtpmap200 = with("a=rtpmap:127 H264", "a=rtpmap:300 H264");
    assert!(refused(&rtpmap200).contains("0 to 127"));
    let port = with("m=video 9 ", "m=video 70000 ");
    assert!(refused(&port).contains("0 to 65535"));
    let negative = with("m=video 9 ", "m=video -1 ");
    assert!(refused(&negative).contains("port"));
}

#[test]
fn missing_or_malformed_transport_is_refused() {
    let no_ufrag = CHROMIUM_OFFER.replace("a=ice-ufrag:4ZcD\r\n", "");
    assert!(refused(&no_ufrag).contains("no ICE username"));
    let short_ufrag = CHROMIUM_OFFER.replace("a=ice-ufrag:4ZcD", "a=ice-ufrag:ab");
    assert!(refused(&short_ufrag).contains("4 to 256"));
    let no_pwd = CHROMIUM_OFFER.replace("a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n", "");
    assert!(refused(&no_pwd).contains("no ICE password"));
    let fp = "a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n";
    let no_fp = CHROMIUM_OFFER.replace(fp, "");
    assert!(refused(&no_fp).contains("no DTLS fingerprint"));
    let short_fp = CHROMIUM_OFFER.replace(fp, "a=fingerprint:sha-256 1F:2A\r\n");
    assert!(refused(&short_fp).contains("32 hex bytes"));
    let odd_hash = CHROMIUM_OFFER.replace("sha-256 1F", "md5 1F");
    assert!(refused(&odd_hash).contains("\"md5\""));
    let setup = CHROMIUM_OFFER.replace("a=setup:actpass", "a=setup:sideways");
    assert!(refused(&setup).contains("a=setup:sideways"));
}

#[test]
fn session_level_credentials_apply_to_every_section() {
    let moved = CHROMIUM_OFFER
        .replace("a=ice-ufrag:4ZcD\r\n", "")
        .replace("a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n", "")
        .replace(
            "a=group:BUNDLE 0 1\r\n",
            "a=group:BUNDLE 0 1\r\na=ice-ufrag:4ZcD\r\na=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n",
        );
    check_offer(&moved, &[H264]).unwrap();
}

#[test]
fn an_offer_that_does_not_want_video_is_told_so() {
    let sendonly = with("a=mid:1\r\na=sendrecv", "a=mid:1\r\na=sendonly");
    assert!(refused(&sendonly).contains("send-only or inactive"));
    let rejected = with("m=video 9 ", "m=video 0 ");
    assert!(refused(&rejected).contains("no video section"));
    let audio_only = CHROMIUM_OFFER[..CHROMIUM_OFFER.find("m=video").unwrap()].to_owned();
    assert!(refused(&audio_only).contains("no video section"));
}

#[test]
fn what_is_not_sdp_is_refused_in_words() {
    for text in ["", "hello", "{\"sdp\": 1}", "v=1\r\n", "\u{0}\u{0}"] {
        assert!(refused(text).contains("not SDP"), "{text:?}");
    }
    assert!(refused("v=0\r\nm video 9\r\n").contains("x=value"));
    assert!(refused("v=0\r\nm=video\r\n").contains("m= line"));
    let huge = format!("{CHROMIUM_OFFER}{}", "a=x\r\n".repeat(20_000));
    assert!(refused(&huge).contains("bytes"));
    let many = format!(
        "{CHROMIUM_OFFER}{}",
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n".repeat(40)
    );
    assert!(refused(&many).contains("media sections"));
    let formats: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let wide = with("96 97 102 103 127 125", &formats.join(" "));
    assert!(refused(&wide).contains("formats"));
}

#[test]
fn lf_line_ends_read_like_crlf() {
    let lf = CHROMIUM_OFFER.replace("\r\n", "\n");
    assert_eq!(
        check_offer(&lf, &[H264]).unwrap(),
        check_offer(CHROMIUM_OFFER, &[H264]).unwrap()
    );
}

/// Firefox without its H.264 plugin answering an H.264-only offer.
const FIREFOX_REJECTS: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-153.0 1 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=ice-options:trickle\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 120\r\n\
c=IN IP4 0.0.0.0\r\n\
a=inactive\r\n\
a=mid:video0\r\n\
a=rtpmap:120 VP8/90000\r\n";

/// The camera's offer as webrtcbin writes it for a viewer: H.264 first, VP8 second, each with
/// its retransmission payload type and feedback (trimmed to the lines that matter).
const DEVICE_OFFER: &str = "v=0\r\n\
o=- 1 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE video0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\n\
c=IN IP4 0.0.0.0\r\n\
a=setup:actpass\r\n\
a=ice-ufrag:4ZcD\r\n\
a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
a=rtcp-mux\r\n\
a=mid:video0\r\n\
a=sendonly\r\n\
a=rtpmap:96 H264/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=fmtp:96 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42c01f\r\n\
a=rtpmap:97 VP8/90000\r\n\
a=rtcp-fb:97 nack\r\n\
a=rtcp-fb:97 nack pli\r\n\
a=rtcp-fb:97 ccm fir\r\n\
a=rtcp-fb:97 transport-cc\r\n\
a=rtpmap:98 rtx/90000\r\n\
a=fmtp:98 apt=96\r\n\
a=rtpmap:99 rtx/90000\r\n\
a=fmtp:99 apt=97\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n";

fn device_offer() -> Session {
    crate::parse(DEVICE_OFFER).unwrap()
}

/// Firefox without its H.264 plugin answering the camera's offer: VP8 and its rtx only.
const FIREFOX_VP8_ANSWER: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-153.0 1 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=group:BUNDLE video0\r\n\
a=ice-options:trickle\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 97 99\r\n\
c=IN IP4 0.0.0.0\r\n\
a=recvonly\r\n\
a=fmtp:97 max-fs=12288;max-fr=60\r\n\
a=fmtp:99 apt=97\r\n\
a=ice-pwd:6f1c0a1b2c3d4e5f60718293a4b5c6d7\r\n\
a=ice-ufrag:8a9b0c1d\r\n\
a=mid:video0\r\n\
a=rtcp-fb:97 nack\r\n\
a=rtcp-fb:97 nack pli\r\n\
a=rtcp-fb:97 ccm fir\r\n\
a=rtcp-mux\r\n\
a=rtpmap:97 VP8/90000\r\n\
a=rtpmap:99 rtx/90000\r\n\
a=setup:active\r\n";

#[test]
fn an_answer_that_declines_the_video_is_told_why() {
    let Err(Unusable(why)) = check_answer(FIREFOX_REJECTS, &device_offer(), &[H264, Vp8]) else {
        panic!("accepted")
    };
    assert!(why.contains("declined the camera's video"), "{why}");
    assert!(why.contains("H.264 or VP8"), "{why}");
}

#[test]
fn the_format_the_answer_accepted_is_the_one_sent() {
    let offer = device_offer();
    // Firefox without H.264: VP8 under 97, its rtx under 99.
    let (_, choice) = check_answer(FIREFOX_VP8_ANSWER, &offer, &[H264, Vp8]).unwrap();
    assert_eq!(
        (choice.mline, choice.codec, choice.pt, choice.rtx),
        (0, Vp8, 97, Some(99))
    );
    assert_eq!(choice.profile_level_id, None);
    // A browser with H.264 keeps the offer's order: H.264 under 96 with its rtx.
    let chromium = FIREFOX_VP8_ANSWER
        .replace("SAVPF 97 99", "SAVPF 96 97 98 99")
        .replace(
            "a=rtpmap:97 VP8/90000\r\n",
            "a=rtpmap:97 VP8/90000\r\na=rtpmap:96 H264/90000\r\na=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=96\r\n",
        );
    let (_, choice) = check_answer(&chromium, &offer, &[H264, Vp8]).unwrap();
    assert_eq!((choice.codec, choice.pt, choice.rtx), (H264, 96, Some(98)));
    assert_eq!(choice.profile_level_id.as_deref(), Some("42c01f"));
    // The answer's order is its preference.
    let vp8_first = chromium.replace("SAVPF 96 97 98 99", "SAVPF 97 96 99 98");
    let (_, choice) = check_answer(&vp8_first, &offer, &[H264, Vp8]).unwrap();
    assert_eq!((choice.codec, choice.pt, choice.rtx), (Vp8, 97, Some(99)));
    // A codec the camera does not send here is not chosen, even when offered.
    let (_, choice) = check_answer(&vp8_first, &offer, &[H264]).unwrap();
    assert_eq!(choice.codec, H264);
    let Err(Unusable(why)) = check_answer(FIREFOX_VP8_ANSWER, &offer, &[H264]) else {
        panic!("accepted")
    };
    assert!(
        why.contains("did not offer") && why.contains("H.264"),
        "{why}"
    );
}

#[test]
fn an_answer_renaming_an_offered_format_does_not_get_it() {
    let renamed = FIREFOX_VP8_ANSWER.replace("a=rtpmap:97 VP8/90000", "a=rtpmap:97 VP9/90000");
    let Err(Unusable(why)) = check_answer(&renamed, &device_offer(), &[H264, Vp8]) else {
        panic!("accepted")
    };
    assert!(why.contains("did not offer"), "{why}");
}

#[test]
fn an_answer_is_checked_like_an_offer() {
    let offer = crate::parse(CHROMIUM_OFFER).unwrap();
    let answer = CHROMIUM_OFFER
        .replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 127 125",
            "m=video 9 UDP/TLS/RTP/SAVPF 127",
        )
        .replace("a=setup:actpass", "a=setup:active");
    let (_, choice) = check_answer(&answer, &offer, &[H264]).unwrap();
    assert_eq!((choice.mline, choice.pt), (1, 127));
    let without_127 = crate::parse(&with("96 97 102 103 127 125", "96 97 102 103")).unwrap();
    let Err(Unusable(why)) = check_answer(&answer, &without_127, &[H264]) else {
        panic!("accepted")
    };
    assert!(why.contains("did not offer"), "{why}");
    let audio_only = answer[..answer.find("m=video").unwrap()].to_owned();
    let Err(Unusable(why)) = check_answer(&audio_only, &offer, &[H264]) else {
        panic!("accepted")
    };
    assert!(why.contains("no video section"), "{why}");
    let no_pwd = answer.replace("a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n", "");
    assert!(check_answer(&no_pwd, &offer, &[H264]).is_err());
}
