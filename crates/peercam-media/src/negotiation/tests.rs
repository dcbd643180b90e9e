//! The negotiation driven by hand, with time passed in: caps and descriptions are labels.

use std::time::{Duration, Instant};

use peercam_signaling::Incoming;

use peercam_sdp::Codec;

use super::{Action, Connection, Event, Negotiation, OfferCaps, SdpKind, GATHER_WAIT};
use crate::peer::PeerKey;

type N = Negotiation<&'static str, &'static str>;
type E = Event<&'static str, &'static str>;
type A = Action<&'static str, &'static str>;

const TIMEOUT: Duration = Duration::from_secs(10);

const OFFER: &str = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n\
    a=fmtp:96 packetization-mode=1;level-asymmetry-allowed=1\r\n\
    a=ice-ufrag:4ZcD\r\na=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
    a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
    a=setup:actpass\r\na=mid:0\r\na=recvonly\r\n";

/// The device's offer answered by a browser: its video accepted under payload 96.
const ANSWER: &str = "v=0\r\no=- 2 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n\
    a=ice-ufrag:4ZcD\r\na=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n\
    a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
    a=setup:active\r\na=mid:0\r\na=recvonly\r\n";

/// The release of a peer the camera gives up on, and what its member is told: the reason
/// must contain `why`.
fn refused(actions: &[A], k: &PeerKey, why: &str) {
    match actions {
        [Action::Remove(removed), Action::Send { member, msg }] => {
            assert_eq!(removed, k);
            assert_eq!(*member, k.0);
            match msg {
                Incoming::NegotiationFailed { to, reason } => {
                    assert_eq!(*to, k.1);
                    assert!(reason.contains(why), "{reason:?} does not say {why:?}");
                }
                other => panic!("not a refusal: {other:?}"),
            }
        }
        other => panic!("expected Remove and NegotiationFailed: {other:?}"),
    }
}

/// What the member of a peer the camera never built is told.
fn told(actions: &[A], k: &PeerKey, why: &str) {
    match actions {
        [Action::Send {
            member,
            msg: Incoming::NegotiationFailed { to, reason },
        }] => {
            assert_eq!((member, to), (&k.0, &k.1));
            assert!(reason.contains(why), "{reason:?} does not say {why:?}");
        }
        other => panic!("expected one NegotiationFailed: {other:?}"),
    }
}

const HOST: &str = "candidate:1 1 UDP 2015363327 192.168.1.20 50000 typ host";
const SRFLX: &str =
    "candidate:2 1 UDP 1679819007 203.0.113.7 50001 typ srflx raddr 0.0.0.0 rport 0";

fn key(viewer: &str) -> PeerKey {
    ("camera".to_owned(), viewer.to_owned())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A negotiation with an offering peer for `viewer`, built at `t0`; the actions of its build.
fn offerer(n: &mut N, t0: Instant, viewer: &str, stream_caps: Option<&'static str>) -> Vec<A> {
    let k = key(viewer);
    assert_eq!(
        n.handle(t0, &k, Event::OfferRequest),
        vec![Action::BuildOfferer(k.clone())]
    );
    n.handle(t0, &k, Event::OffererBuilt { stream_caps })
}

/// The offer of an offering peer made, applied and sent (`sdp`, as webrtcbin wrote it).
fn offered(n: &mut N, t0: Instant, k: &PeerKey, sdp: &str) {
    assert_eq!(n.handle(t0, k, local(SdpKind::Offer, sdp)), held(k));
    let sent = n.handle(t0, k, Event::GatheringComplete);
    assert_eq!(sent_description(&sent, k).0, SdpKind::Offer);
}

fn local(kind: SdpKind, sdp: &str) -> E {
    Event::LocalDescription {
        kind,
        sdp: Ok(sdp.to_owned()),
        description: "desc",
    }
}

fn held(k: &PeerKey) -> Vec<A> {
    vec![
        Action::SetLocal {
            key: k.clone(),
            description: "desc",
        },
        Action::WakeAfter {
            key: k.clone(),
            after: GATHER_WAIT,
        },
    ]
}

fn candidate(mline: u32, line: &str) -> E {
    Event::LocalCandidate {
        mline,
        candidate: line.to_owned(),
    }
}

/// The SDP of the single `Send` of an offer or answer in `actions`.
fn sent_description(actions: &[A], k: &PeerKey) -> (SdpKind, String) {
    match actions {
        [Action::Send { member, msg }] if *member == k.0 => match msg {
            Incoming::OfferResponse { to, sdp } if *to == k.1 => (SdpKind::Offer, sdp.clone()),
            Incoming::AnswerResponse { to, sdp } if *to == k.1 => (SdpKind::Answer, sdp.clone()),
            other => panic!("not a description for {k:?}: {other:?}"),
        },
        other => panic!("expected one Send: {other:?}"),
    }
}

#[test]
fn offer_made_at_once_with_the_running_streams_caps() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    let built = offerer(&mut n, t0, "v1", Some("stream"));
    assert_eq!(
        built,
        vec![Action::CreateOffer {
            key: k.clone(),
            caps: OfferCaps::Caps("stream"),
        }]
    );
    assert_eq!(n.len(), 1);
    // The branch's first caps make no second offer, but teach the profile.
    let caps = n.handle(
        t0 + ms(5),
        &k,
        Event::CapsReady {
            caps: "branch",
            profile: Some("42c01f".into()),
        },
    );
    assert_eq!(caps, vec![Action::TellProfile("42c01f".into())]);
    assert_eq!(n.stream_profile(), Some("42c01f"));
}

#[test]
fn offer_waits_for_caps_when_no_profile_is_known() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    assert_eq!(offerer(&mut n, t0, "v1", None), vec![]);
    let caps = n.handle(
        t0 + ms(30),
        &k,
        Event::CapsReady {
            caps: "branch",
            profile: Some("42c01f".into()),
        },
    );
    assert_eq!(
        caps,
        vec![
            Action::CreateOffer {
                key: k.clone(),
                caps: OfferCaps::Caps("branch"),
            },
            Action::TellProfile("42c01f".into()),
        ]
    );
    // Caps again (the same profile): nothing more to do.
    let again = n.handle(
        t0 + ms(40),
        &k,
        Event::CapsReady {
            caps: "branch",
            profile: Some("42c01f".into()),
        },
    );
    assert_eq!(again, vec![]);
}

#[test]
fn offer_states_the_remembered_profile_when_the_caps_are_not_known() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, Some("42c01f".into()), None);
    let k = key("v1");
    assert_eq!(
        offerer(&mut n, t0, "v1", None),
        vec![Action::CreateOffer {
            key: k.clone(),
            caps: OfferCaps::AnyProfile,
        }]
    );
    assert_eq!(
        n.handle(t0 + ms(10), &k, local(SdpKind::Offer, OFFER)),
        held(&k)
    );
    let sent = n.handle(t0 + ms(12), &k, Event::GatheringComplete);
    let (kind, sdp) = sent_description(&sent, &k);
    assert_eq!(kind, SdpKind::Offer);
    assert!(sdp.contains("profile-level-id=42c01f"), "{sdp}");
    // The stream turns out to have another profile: no new offer; the device learns it.
    let caps = n.handle(
        t0 + ms(50),
        &k,
        Event::CapsReady {
            caps: "branch",
            profile: Some("640c1f".into()),
        },
    );
    assert_eq!(caps, vec![Action::TellProfile("640c1f".into())]);
    // A later offer states the new one.
    let k2 = key("v2");
    offerer(&mut n, t0 + ms(60), "v2", None);
    n.handle(t0 + ms(70), &k2, local(SdpKind::Offer, OFFER));
    let sent = n.handle(t0 + ms(71), &k2, Event::GatheringComplete);
    assert!(sent_description(&sent, &k2)
        .1
        .contains("profile-level-id=640c1f"));
}

#[test]
fn an_offer_made_with_caps_is_sent_as_made() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, Some("42c01f".into()), None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    n.handle(t0, &k, local(SdpKind::Offer, OFFER));
    let sent = n.handle(t0, &k, Event::GatheringComplete);
    assert!(!sent_description(&sent, &k).1.contains("profile-level-id"));
}

#[test]
fn candidates_gathered_while_held_go_out_inside_the_description_and_later_ones_trickle() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    assert_eq!(
        n.handle(t0 + ms(10), &k, local(SdpKind::Offer, OFFER)),
        held(&k)
    );
    assert_eq!(n.handle(t0 + ms(11), &k, candidate(0, HOST)), vec![]);
    let sent = n.handle(t0 + ms(13), &k, Event::GatheringComplete);
    let (_, sdp) = sent_description(&sent, &k);
    assert!(sdp.contains(&format!("a={HOST}\r\n")), "{sdp}");
    // Released: candidates now trickle, and the wait running out finds nothing held.
    assert_eq!(
        n.handle(t0 + ms(60), &k, candidate(0, SRFLX)),
        vec![Action::Send {
            member: k.0.clone(),
            msg: Incoming::Candidate {
                to: k.1.clone(),
                candidate: crate::ice::to_json(0, SRFLX),
            },
        }]
    );
    assert_eq!(n.handle(t0 + ms(110), &k, Event::GatheringWaitOver), vec![]);
}

#[test]
fn the_gather_wait_releases_a_held_description() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    n.handle(t0 + ms(10), &k, local(SdpKind::Offer, OFFER));
    n.handle(t0 + ms(11), &k, candidate(0, HOST));
    // A candidate for a media section the offer does not have stays out of it.
    n.handle(t0 + ms(12), &k, candidate(3, SRFLX));
    let sent = n.handle(t0 + ms(10) + GATHER_WAIT, &k, Event::GatheringWaitOver);
    let (_, sdp) = sent_description(&sent, &k);
    assert!(sdp.contains(HOST) && !sdp.contains(SRFLX), "{sdp}");
    // Gathering completing afterwards sends nothing twice.
    assert_eq!(n.handle(t0 + ms(300), &k, Event::GatheringComplete), vec![]);
}

#[test]
fn an_unreadable_description_is_not_held() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    let bad: E = Event::LocalDescription {
        kind: SdpKind::Offer,
        sdp: Err("no text".into()),
        description: "desc",
    };
    assert_eq!(n.handle(t0, &k, bad), vec![]);
    assert_eq!(n.handle(t0, &k, candidate(0, HOST)).len(), 1);
}

#[test]
fn answerer_waits_for_caps_then_applies_the_offer_then_answers() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, Some("42c01f".into()), None);
    let k = ("camera-2".to_owned(), "peer".to_owned());
    assert_eq!(
        n.handle(t0, &k, Event::AnswerRequest { sdp: OFFER.into() }),
        vec![Action::BuildAnswerer {
            key: k.clone(),
            sdp: OFFER.into(),
            mline: 0,
            pt: 96,
            codec: Codec::H264,
        }]
    );
    assert_eq!(n.handle(t0, &k, Event::AnswererBuilt), vec![]);
    assert_eq!(n.len(), 1);
    let caps = n.handle(
        t0 + ms(40),
        &k,
        Event::CapsReady {
            caps: "branch",
            profile: Some("42c01f".into()),
        },
    );
    assert_eq!(
        caps,
        vec![Action::ApplyOffer {
            key: k.clone(),
            caps: "branch",
        }]
    );
    assert_eq!(
        n.handle(t0 + ms(45), &k, Event::RemoteOfferSet),
        vec![Action::CreateAnswer(k.clone())]
    );
    assert_eq!(
        n.handle(t0 + ms(50), &k, local(SdpKind::Answer, OFFER)),
        held(&k)
    );
    n.handle(t0 + ms(51), &k, candidate(0, HOST));
    let sent = n.handle(t0 + ms(52), &k, Event::GatheringComplete);
    let (kind, sdp) = sent_description(&sent, &k);
    assert_eq!(kind, SdpKind::Answer);
    // An answer is sent as webrtcbin wrote it, with the gathered candidate.
    assert!(
        !sdp.contains("profile-level-id") && sdp.contains(HOST),
        "{sdp}"
    );
}

#[test]
fn the_remote_answer_is_applied_for_a_known_peer_only() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    offered(&mut n, t0, &k, OFFER);
    assert_eq!(
        n.handle(t0 + ms(200), &k, Event::RemoteAnswer { sdp: ANSWER.into() }),
        vec![Action::ApplyAnswer {
            key: k.clone(),
            sdp: ANSWER.into(),
            codec: Codec::H264,
        }]
    );
    let other = key("v2");
    assert_eq!(
        n.handle(t0, &other, Event::RemoteAnswer { sdp: ANSWER.into() }),
        vec![]
    );
}

#[test]
fn remote_candidates_are_added_resolved_or_skipped() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    let remote = |json: String| -> E { Event::RemoteCandidate { json } };
    assert_eq!(
        n.handle(t0, &k, remote(crate::ice::to_json(0, HOST))),
        vec![Action::AddCandidate {
            key: k.clone(),
            mline: 0,
            candidate: HOST.into(),
        }]
    );
    let mdns = "candidate:3 1 udp 2122260223 0b1e2c3d-aaaa.local 54321 typ host";
    assert_eq!(
        n.handle(t0, &k, remote(crate::ice::to_json(0, mdns))),
        vec![Action::Resolve {
            key: k.clone(),
            mline: 0,
            candidate: mdns.into(),
            host: "0b1e2c3d-aaaa.local".into(),
        }]
    );
    // End of candidates, and JSON that is not a candidate.
    assert_eq!(n.handle(t0, &k, remote(crate::ice::to_json(0, ""))), vec![]);
    assert_eq!(n.handle(t0, &k, remote("{not json".into())), vec![]);
    // A peer that is gone.
    assert_eq!(
        n.handle(t0, &key("gone"), remote(crate::ice::to_json(0, HOST))),
        vec![]
    );
}

#[test]
fn connected_refreshes_the_stream_and_is_never_timed_out() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    assert_eq!(
        n.handle(t0 + ms(300), &k, Event::State(Connection::Connecting)),
        vec![]
    );
    assert_eq!(n.connected(), 0);
    assert_eq!(
        n.handle(t0 + ms(400), &k, Event::State(Connection::Connected)),
        vec![Action::Refresh]
    );
    assert_eq!(n.connected(), 1);
    assert_eq!(n.tick(t0 + TIMEOUT * 10), vec![]);
    assert_eq!(n.len(), 1);
    // Disconnected may come back: the peer stays.
    assert_eq!(
        n.handle(t0 + ms(500), &k, Event::State(Connection::Disconnected)),
        vec![]
    );
    assert_eq!(n.len(), 1);
}

#[test]
fn an_unconnected_peer_is_released_after_the_negotiation_timeout() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", None);
    offerer(&mut n, t0 + ms(500), "v2", None);
    assert_eq!(n.tick(t0 + ms(250)), vec![]);
    // Exactly the time-out is not yet over it.
    assert_eq!(n.tick(t0 + TIMEOUT), vec![]);
    refused(
        &n.tick(t0 + TIMEOUT + ms(1)),
        &k,
        "did not come up within 10 s",
    );
    assert_eq!(n.len(), 1);
    // Its late events find nothing.
    assert_eq!(
        n.handle(
            t0 + TIMEOUT + ms(2),
            &k,
            Event::State(Connection::Connected)
        ),
        vec![]
    );
    refused(
        &n.tick(t0 + ms(500) + TIMEOUT + ms(1)),
        &key("v2"),
        "ICE or DTLS",
    );
    assert!(n.is_empty());
}

#[test]
fn failed_or_closed_connections_and_failures_release_the_peer() {
    let t0 = Instant::now();
    for (event, why) in [
        (
            Event::State(Connection::Failed),
            Some("ICE or DTLS could not be completed"),
        ),
        (Event::State(Connection::Closed), None),
        (
            Event::Failed("remote offer refused".into()),
            Some("could not negotiate with you: remote offer refused"),
        ),
        (
            Event::Fault("the DTLS handshake failed".into()),
            Some("the DTLS handshake failed"),
        ),
    ] {
        let mut n = N::new(TIMEOUT, None, None);
        let k = key("v1");
        offerer(&mut n, t0, "v1", Some("stream"));
        n.handle(t0, &k, Event::State(Connection::Connected));
        let e: E = event;
        // Removed, but the member is not released: only leaving does that. A failure is
        // said to the remote member; a closed connection (it went away) is not.
        let out = n.handle(t0 + ms(1), &k, e.clone());
        match why {
            Some(why) => refused(&out, &k, why),
            None => assert_eq!(out, vec![Action::Remove(k.clone())], "{e:?}"),
        }
        assert!(n.is_empty());
        assert_eq!(n.handle(t0 + ms(2), &k, e), vec![]);
    }
}

#[test]
fn an_unusable_offer_is_refused_in_words_before_anything_is_built() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = ("camera-2".to_owned(), "peer".to_owned());
    let cases = [
        ("not sdp", "not SDP"),
        (
            &*OFFER.replace("96\r\nc=", "200\r\nc="),
            "payload type \"200\"",
        ),
        (&*OFFER.replace("H264", "VP9"), "offered no H.264 video"),
        (
            &*OFFER.replace("a=ice-ufrag:4ZcD\r\n", ""),
            "no ICE username",
        ),
        (
            &*OFFER.replace("sha-256 1F:2A:3B", "sha-256 1F:2A"),
            "hex bytes",
        ),
        (
            &*OFFER.replace("m=video 9 ", "m=video 99999 "),
            "0 to 65535",
        ),
    ];
    for (sdp, why) in cases {
        let out = n.handle(t0, &k, Event::AnswerRequest { sdp: sdp.into() });
        told(&out, &k, why);
        assert!(n.is_empty());
    }
}

#[test]
fn an_unusable_answer_is_refused_and_the_peer_released() {
    let t0 = Instant::now();
    let k = key("v1");
    let cases = [
        ("garbage", "not SDP"),
        (
            &*ANSWER.replace("m=video 9 ", "m=video 0 "),
            "declined the camera's video",
        ),
        (&*ANSWER.replace("SAVPF 96", "SAVPF 97"), "did not offer"),
        (
            &*ANSWER.replace("a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfz\r\n", ""),
            "no ICE password",
        ),
        (
            &*ANSWER.replace("a=fingerprint:sha-256 ", "a=fingerprint:"),
            "fingerprint",
        ),
    ];
    for (sdp, why) in cases {
        let mut n = N::new(TIMEOUT, None, None);
        offerer(&mut n, t0, "v1", Some("stream"));
        offered(&mut n, t0, &k, OFFER);
        let out = n.handle(t0, &k, Event::RemoteAnswer { sdp: sdp.into() });
        refused(&out, &k, why);
        assert!(n.is_empty());
    }
}

/// The camera's offer when it can send VP8 too: H.264 under 96, VP8 under 97.
fn offer_with_vp8() -> String {
    OFFER
        .replace("SAVPF 96\r\n", "SAVPF 96 97 98 99\r\n")
        .replace(
            "a=rtpmap:96 H264/90000\r\n",
            "a=rtpmap:96 H264/90000\r\na=rtpmap:97 VP8/90000\r\n\
             a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=96\r\n\
             a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=97\r\n",
        )
}

#[test]
fn the_answers_codec_decides_which_encode_feeds_the_viewer() {
    let t0 = Instant::now();
    let k = key("v1");
    let vp8_answer = ANSWER
        .replace("SAVPF 96", "SAVPF 97")
        .replace("a=rtpmap:96 H264", "a=rtpmap:97 VP8");
    for (answer, codec) in [
        (ANSWER.to_owned(), Codec::H264),
        (vp8_answer.clone(), Codec::Vp8),
    ] {
        let mut n = N::new(TIMEOUT, None, None).with_codecs(&[Codec::H264, Codec::Vp8]);
        offerer(&mut n, t0, "v1", Some("stream"));
        offered(&mut n, t0, &k, &offer_with_vp8());
        assert_eq!(
            n.handle(
                t0,
                &k,
                Event::RemoteAnswer {
                    sdp: answer.clone()
                }
            ),
            vec![Action::ApplyAnswer {
                key: k.clone(),
                sdp: answer,
                codec,
            }]
        );
    }
    // A camera that cannot encode VP8 did not offer it, and says so if it is chosen anyway.
    let mut n = N::new(TIMEOUT, None, None);
    offerer(&mut n, t0, "v1", Some("stream"));
    offered(&mut n, t0, &k, OFFER);
    let out = n.handle(t0, &k, Event::RemoteAnswer { sdp: vp8_answer });
    refused(&out, &k, "a video format the camera did not offer");
    // An answer before the offer went out is refused in words.
    let mut n = N::new(TIMEOUT, None, None);
    offerer(&mut n, t0, "v1", Some("stream"));
    let out = n.handle(t0, &k, Event::RemoteAnswer { sdp: ANSWER.into() });
    refused(&out, &k, "before the camera's offer");
}

#[test]
fn a_vp8_only_offer_is_answered_with_vp8_where_the_camera_has_it() {
    let t0 = Instant::now();
    let k = ("camera-2".to_owned(), "peer".to_owned());
    let vp8_only = OFFER
        .replace("SAVPF 96", "SAVPF 120")
        .replace("a=rtpmap:96 H264/90000", "a=rtpmap:120 VP8/90000")
        .replace("a=fmtp:96 ", "a=fmtp:120 ");
    let mut n = N::new(TIMEOUT, None, None).with_codecs(&[Codec::H264, Codec::Vp8]);
    assert_eq!(
        n.handle(
            t0,
            &k,
            Event::AnswerRequest {
                sdp: vp8_only.clone()
            }
        ),
        vec![Action::BuildAnswerer {
            key: k.clone(),
            sdp: vp8_only.clone(),
            mline: 0,
            pt: 120,
            codec: Codec::Vp8,
        }]
    );
    let mut n = N::new(TIMEOUT, None, None);
    let out = n.handle(t0, &k, Event::AnswerRequest { sdp: vp8_only });
    told(&out, &k, "offered no H.264 video");
}

#[test]
fn a_branch_that_cannot_be_built_is_said() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    n.handle(t0, &k, Event::OfferRequest);
    let out = n.handle(t0, &k, Event::BuildFailed("webrtcbin is missing".into()));
    told(
        &out,
        &k,
        "could not start a stream for you: webrtcbin is missing",
    );
    assert!(n.is_empty());
}

#[test]
fn remote_candidates_are_bounded_per_peer() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    let json = |host: &str| {
        format!(
            r#"{{"candidate":"candidate:1 1 udp 2122260223 {host} 50000 typ host","sdpMLineIndex":0}}"#
        )
    };
    let mut resolved = 0;
    for i in 0..20 {
        let out = n.handle(
            t0,
            &k,
            Event::RemoteCandidate {
                json: json(&format!("h{i}.local")),
            },
        );
        resolved += out.len();
    }
    assert_eq!(resolved, super::MAX_RESOLVED);
    let mut added = 0;
    for _ in 0..200 {
        added += n
            .handle(
                t0,
                &k,
                Event::RemoteCandidate {
                    json: json("10.213.9.2"),
                },
            )
            .len();
    }
    assert_eq!(added, super::MAX_REMOTE_CANDIDATES - 20);
}

#[test]
fn leaving_removes_the_peer_and_releases_a_member_left_alone() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let (a, b) = (key("v1"), key("v2"));
    offerer(&mut n, t0, "v1", Some("stream"));
    offerer(&mut n, t0, "v2", Some("stream"));
    assert_eq!(
        n.handle(t0, &a, Event::Left),
        vec![Action::Remove(a.clone())]
    );
    assert_eq!(
        n.handle(t0, &b, Event::Left),
        vec![
            Action::Remove(b.clone()),
            Action::Release {
                member: "camera".into()
            }
        ]
    );
    // A member that had no peer is released at once.
    assert_eq!(
        n.handle(t0, &("camera-3".into(), "x".into()), Event::Left),
        vec![Action::Release {
            member: "camera-3".into()
        }]
    );
}

#[test]
fn an_ended_member_is_released_only_without_peers() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    offerer(&mut n, t0, "v1", Some("stream"));
    assert_eq!(n.member_done("camera"), vec![]);
    assert_eq!(
        n.member_done("camera-2"),
        vec![Action::Release {
            member: "camera-2".into()
        }]
    );
}

#[test]
fn a_second_offer_request_replaces_the_peer() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", None);
    let later = t0 + ms(9_000);
    assert_eq!(
        n.handle(later, &k, Event::OfferRequest),
        vec![Action::Remove(k.clone()), Action::BuildOfferer(k.clone())]
    );
    assert!(n.is_empty());
    n.handle(later, &k, Event::OffererBuilt { stream_caps: None });
    // The time-out counts from the new peer.
    assert_eq!(n.tick(t0 + TIMEOUT + ms(1)), vec![]);
    refused(&n.tick(later + TIMEOUT + ms(1)), &k, "did not come up");
}

#[test]
fn a_second_answer_request_replaces_the_peer() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("p");
    n.handle(t0, &k, Event::AnswerRequest { sdp: OFFER.into() });
    n.handle(t0, &k, Event::AnswererBuilt);
    assert_eq!(
        n.handle(t0, &k, Event::AnswerRequest { sdp: OFFER.into() }),
        vec![
            Action::Remove(k.clone()),
            Action::BuildAnswerer {
                key: k.clone(),
                sdp: OFFER.into(),
                mline: 0,
                pt: 96,
                codec: Codec::H264,
            }
        ]
    );
}

#[test]
fn a_peer_that_was_never_built_is_not_there() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    // The branch could not be built: the request leaves no peer behind.
    n.handle(t0, &k, Event::OfferRequest);
    assert!(n.is_empty());
    for event in [
        Event::CapsReady {
            caps: "branch",
            profile: Some("42c01f".into()),
        },
        Event::RemoteOfferSet,
        local(SdpKind::Offer, OFFER),
        candidate(0, HOST),
        Event::GatheringComplete,
        Event::GatheringWaitOver,
        Event::State(Connection::Connected),
        Event::Failed("x".into()),
        Event::Fault("x".into()),
    ] {
        assert_eq!(n.handle(t0, &k, event), vec![]);
    }
    assert_eq!(n.tick(t0 + TIMEOUT * 2), vec![]);
}

#[test]
fn clearing_removes_every_peer() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    offerer(&mut n, t0, "v1", Some("stream"));
    offerer(&mut n, t0, "v2", Some("stream"));
    let mut removed = n.clear();
    removed.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        removed,
        vec![Action::Remove(key("v1")), Action::Remove(key("v2"))]
    );
    assert!(n.is_empty());
    assert_eq!(n.clear(), vec![]);
}

/// The device's own certificate's fingerprint, as the device hands it to the worker.
const DEVICE_FP: &str = "43:86:4B:C1:04:4F:90:27:D1:6E:31:F8:17:98:5D:55:\
                         78:2E:17:56:0D:CD:1F:9F:95:BA:70:B1:55:F1:44:D0";

#[test]
fn offers_and_answers_state_the_devices_certificate_fingerprint() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, Some("42c01f".into()), Some(DEVICE_FP.into()));
    // An offer made before the stream's caps: its profile is stated too.
    let k = key("v1");
    offerer(&mut n, t0, "v1", None);
    n.handle(t0, &k, local(SdpKind::Offer, OFFER));
    let (_, offer) = sent_description(&n.handle(t0, &k, Event::GatheringComplete), &k);
    assert!(offer.contains(&format!("\r\na=fingerprint:sha-256 {DEVICE_FP}\r\n")));
    assert_eq!(offer.matches("a=fingerprint:").count(), 1, "{offer}");
    assert!(offer.contains("profile-level-id=42c01f"), "{offer}");
    // An answer, made as an invited member.
    let k = ("camera-2".to_owned(), "peer".to_owned());
    n.handle(t0, &k, Event::AnswerRequest { sdp: OFFER.into() });
    n.handle(t0, &k, Event::AnswererBuilt);
    n.handle(t0, &k, local(SdpKind::Answer, ANSWER));
    let (_, answer) = sent_description(&n.handle(t0, &k, Event::GatheringWaitOver), &k);
    assert!(answer.contains(&format!("\r\na=fingerprint:sha-256 {DEVICE_FP}\r\n")));
    assert!(!answer.contains("1F:2A:3B"), "{answer}");
}

#[test]
fn without_a_certificate_from_the_device_the_fingerprint_is_left_as_written() {
    let t0 = Instant::now();
    let mut n = N::new(TIMEOUT, None, None);
    let k = key("v1");
    offerer(&mut n, t0, "v1", Some("stream"));
    n.handle(t0, &k, local(SdpKind::Offer, OFFER));
    let (_, offer) = sent_description(&n.handle(t0, &k, Event::GatheringComplete), &k);
    assert_eq!(offer, OFFER);
}
