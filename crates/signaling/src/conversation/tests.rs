//! One test (or more) per row of PROTOCOL.md, driving the pure core directly.

use super::*;
use crate::protocol::{ConversationKind::*, ErrorCode::*};

fn core() -> Signaling {
    Signaling::new(Settings::default())
}

fn with_members(ids: &[&str]) -> Signaling {
    let mut s = core();
    for id in ids {
        assert!(s.connect(id));
    }
    s
}

fn create(s: &mut Signaling, who: &str, conv: &str, kind: ConversationKind) -> Vec<Delivery> {
    s.handle(
        who,
        Incoming::Create {
            conversation: conv.into(),
            kind,
        },
    )
}

fn join(s: &mut Signaling, who: &str, conv: &str) -> Vec<Delivery> {
    s.handle(
        who,
        Incoming::Join {
            conversation: conv.into(),
        },
    )
}

fn offer(s: &mut Signaling, from: &str, to: &str) -> Vec<Delivery> {
    s.handle(
        from,
        Incoming::OfferResponse {
            to: to.into(),
            sdp: format!("offer {from}->{to}"),
        },
    )
}

fn answer(s: &mut Signaling, from: &str, to: &str) -> Vec<Delivery> {
    s.handle(
        from,
        Incoming::AnswerResponse {
            to: to.into(),
            sdp: format!("answer {from}->{to}"),
        },
    )
}

fn cand(s: &mut Signaling, from: &str, to: &str, c: &str) -> Vec<Delivery> {
    s.handle(
        from,
        Incoming::Candidate {
            to: to.into(),
            candidate: c.into(),
        },
    )
}

fn d(to: &str, o: Outgoing) -> Delivery {
    (to.to_owned(), o)
}

fn error_code(out: &[Delivery]) -> Option<ErrorCode> {
    match out {
        [(_, Outgoing::Error { code, .. })] => Some(*code),
        _ => None,
    }
}

/// Runs the full offer/answer/finalize exchange between offerer `a` and answerer `b`.
fn negotiate(s: &mut Signaling, a: &str, b: &str) {
    assert_eq!(
        offer(s, a, b),
        vec![d(
            b,
            Outgoing::AnswerRequest {
                from: a.into(),
                sdp: format!("offer {a}->{b}")
            }
        )]
    );
    assert_eq!(
        answer(s, b, a),
        vec![d(
            a,
            Outgoing::Finalize {
                from: b.into(),
                sdp: format!("answer {b}->{a}")
            }
        )]
    );
    assert_eq!(s.pair_state(a, b), Some(PairState::ExchangeCandidates));
}

#[test]
fn create_replies_created_with_type() {
    let mut s = with_members(&["a"]);
    assert_eq!(
        create(&mut s, "a", "room", Broadcast),
        vec![d(
            "a",
            Outgoing::Created {
                conversation: "room".into(),
                kind: Broadcast
            }
        )]
    );
    assert_eq!(s.conversation_of("a"), Some("room"));
}

#[test]
fn create_with_empty_id_makes_a_uuid() {
    let mut s = with_members(&["a"]);
    let out = create(&mut s, "a", "", Mesh);
    let [(_, Outgoing::Created { conversation, kind })] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(*kind, Mesh);
    assert!(
        uuid::Uuid::parse_str(conversation).is_ok(),
        "{conversation}"
    );
}

#[test]
fn create_taken_name_is_occupied() {
    let mut s = with_members(&["a", "b"]);
    create(&mut s, "a", "room", Mesh);
    assert_eq!(
        error_code(&create(&mut s, "b", "room", Mesh)),
        Some(ConversationNameOccupied)
    );
    assert_eq!(s.conversation_of("b"), None);
}

#[test]
fn mesh_join_asks_every_existing_member_to_offer() {
    let mut s = with_members(&["a", "b", "c"]);
    create(&mut s, "a", "room", Mesh);
    assert_eq!(
        join(&mut s, "b", "room"),
        vec![
            d(
                "b",
                Outgoing::Joined {
                    conversation: "room".into()
                }
            ),
            d("a", Outgoing::NewJoined { member: "b".into() }),
            d("a", Outgoing::OfferRequest { from: "b".into() }),
        ]
    );
    assert_eq!(
        join(&mut s, "c", "room"),
        vec![
            d(
                "c",
                Outgoing::Joined {
                    conversation: "room".into()
                }
            ),
            d("a", Outgoing::NewJoined { member: "c".into() }),
            d("a", Outgoing::OfferRequest { from: "c".into() }),
            d("b", Outgoing::NewJoined { member: "c".into() }),
            d("b", Outgoing::OfferRequest { from: "c".into() }),
        ]
    );
    assert_eq!(s.pair_state("a", "c"), Some(PairState::OfferRequested));
    assert_eq!(s.pair_state("b", "c"), Some(PairState::OfferRequested));
    negotiate(&mut s, "a", "b");
    negotiate(&mut s, "a", "c");
    negotiate(&mut s, "b", "c");
    assert_eq!(s.pair_count(), 3);
}

#[test]
fn broadcast_viewers_connect_to_the_broadcaster_only() {
    let mut s = with_members(&["cam", "v1", "v2"]);
    create(&mut s, "cam", "live", Broadcast);
    join(&mut s, "v1", "live");
    assert_eq!(
        join(&mut s, "v2", "live"),
        vec![
            d(
                "v2",
                Outgoing::Joined {
                    conversation: "live".into()
                }
            ),
            d(
                "cam",
                Outgoing::NewJoined {
                    member: "v2".into()
                }
            ),
            d("cam", Outgoing::OfferRequest { from: "v2".into() }),
        ]
    );
    assert_eq!(s.pair_state("v1", "v2"), None);
    negotiate(&mut s, "cam", "v1");
    negotiate(&mut s, "cam", "v2");
}

#[test]
fn join_missing_creates_unless_join_only() {
    let mut s = with_members(&["a"]);
    assert_eq!(
        join(&mut s, "a", "new"),
        vec![d(
            "a",
            Outgoing::Created {
                conversation: "new".into(),
                kind: Mesh
            }
        )]
    );
    let mut s = Signaling::new(Settings {
        join_creates: false,
        ..Settings::default()
    });
    s.connect("a");
    assert_eq!(
        error_code(&join(&mut s, "a", "new")),
        Some(ConversationNotFound)
    );
    assert_eq!(s.conversation_count(), 0);
}

#[test]
fn a_member_is_in_one_conversation_at_a_time() {
    let mut s = with_members(&["a", "b"]);
    create(&mut s, "a", "one", Mesh);
    create(&mut s, "b", "two", Mesh);
    assert_eq!(
        error_code(&join(&mut s, "a", "two")),
        Some(MemberInOtherConversation)
    );
    assert_eq!(
        error_code(&create(&mut s, "a", "three", Mesh)),
        Some(MemberInOtherConversation)
    );
    assert_eq!(s.members_of("two"), Some(&["b".to_owned()][..]));
}

#[test]
fn offer_response_only_in_offer_requested() {
    let mut s = with_members(&["a", "b"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    // The answerer may not offer.
    assert_eq!(error_code(&offer(&mut s, "b", "a")), Some(InvalidState));
    offer(&mut s, "a", "b");
    // A second offer in ANSWER_REQUESTED is refused and changes nothing.
    assert_eq!(error_code(&offer(&mut s, "a", "b")), Some(InvalidState));
    assert_eq!(s.pair_state("a", "b"), Some(PairState::AnswerRequested));
}

#[test]
fn answer_response_only_in_answer_requested() {
    let mut s = with_members(&["a", "b"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    assert_eq!(error_code(&answer(&mut s, "b", "a")), Some(InvalidState));
    assert_eq!(s.pair_state("a", "b"), Some(PairState::OfferRequested));
    offer(&mut s, "a", "b");
    // The offerer may not answer its own offer.
    assert_eq!(error_code(&answer(&mut s, "a", "b")), Some(InvalidState));
    negotiate_answer_only(&mut s);
    assert_eq!(error_code(&answer(&mut s, "b", "a")), Some(InvalidState));
}

fn negotiate_answer_only(s: &mut Signaling) {
    assert!(matches!(
        answer(s, "b", "a").as_slice(),
        [(to, Outgoing::Finalize { .. })] if to == "a"
    ));
}

#[test]
fn candidates_are_held_until_finalize_then_released_in_order() {
    let mut s = with_members(&["a", "b"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    offer(&mut s, "a", "b");
    assert_eq!(cand(&mut s, "a", "b", "a1"), vec![]);
    assert_eq!(cand(&mut s, "b", "a", "b1"), vec![]);
    assert_eq!(cand(&mut s, "a", "b", "a2"), vec![]);
    assert_eq!(
        answer(&mut s, "b", "a"),
        vec![
            d(
                "a",
                Outgoing::Finalize {
                    from: "b".into(),
                    sdp: "answer b->a".into()
                }
            ),
            d(
                "b",
                Outgoing::Candidate {
                    from: "a".into(),
                    candidate: "a1".into()
                }
            ),
            d(
                "a",
                Outgoing::Candidate {
                    from: "b".into(),
                    candidate: "b1".into()
                }
            ),
            d(
                "b",
                Outgoing::Candidate {
                    from: "a".into(),
                    candidate: "a2".into()
                }
            ),
        ]
    );
    assert_eq!(
        cand(&mut s, "b", "a", "b2"),
        vec![d(
            "a",
            Outgoing::Candidate {
                from: "b".into(),
                candidate: "b2".into()
            }
        )]
    );
}

#[test]
fn held_candidates_are_bounded() {
    let mut s = Signaling::new(Settings {
        max_held_candidates: 2,
        ..Settings::default()
    });
    s.connect("a");
    s.connect("b");
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    cand(&mut s, "a", "b", "1");
    cand(&mut s, "a", "b", "2");
    assert_eq!(error_code(&cand(&mut s, "a", "b", "3")), Some(InvalidState));
}

#[test]
fn directed_messages_check_the_recipient() {
    let mut s = with_members(&["a", "b", "x"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    create(&mut s, "x", "other", Mesh);
    assert_eq!(
        error_code(&offer(&mut s, "a", "ghost")),
        Some(MemberNotFound)
    );
    assert_eq!(error_code(&offer(&mut s, "a", "x")), Some(InvalidRecipient));
    assert_eq!(error_code(&offer(&mut s, "a", "a")), Some(InvalidRecipient));
    assert_eq!(
        error_code(&cand(&mut s, "x", "a", "c")),
        Some(InvalidRecipient)
    );
    assert_eq!(s.pair_state("a", "b"), Some(PairState::OfferRequested));
}

#[test]
fn candidate_without_a_pair_is_invalid_state() {
    let mut s = with_members(&["cam", "v1", "v2"]);
    create(&mut s, "cam", "live", Broadcast);
    join(&mut s, "v1", "live");
    join(&mut s, "v2", "live");
    // Two viewers share a conversation but never negotiate with each other.
    assert_eq!(
        error_code(&cand(&mut s, "v1", "v2", "c")),
        Some(InvalidState)
    );
}

#[test]
fn text_to_one_and_to_all() {
    let mut s = with_members(&["a", "b", "c", "x"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    join(&mut s, "c", "room");
    let t = |from: &str| Outgoing::Text {
        from: from.into(),
        content: "hi".into(),
    };
    assert_eq!(
        s.handle(
            "a",
            Incoming::Text {
                to: Some("c".into()),
                content: "hi".into()
            }
        ),
        vec![d("c", t("a"))]
    );
    assert_eq!(
        s.handle(
            "b",
            Incoming::Text {
                to: None,
                content: "hi".into()
            }
        ),
        vec![d("a", t("b")), d("c", t("b"))]
    );
    assert_eq!(
        error_code(&s.handle(
            "a",
            Incoming::Text {
                to: Some("x".into()),
                content: "hi".into()
            }
        )),
        Some(InvalidRecipient)
    );
    assert_eq!(
        error_code(&s.handle(
            "a",
            Incoming::Text {
                to: Some("nobody".into()),
                content: "hi".into()
            }
        )),
        Some(MemberNotFound)
    );
    assert_eq!(
        error_code(&s.handle(
            "x",
            Incoming::Text {
                to: None,
                content: "hi".into()
            }
        )),
        Some(InvalidRecipient)
    );
}

#[test]
fn ping_is_ignored() {
    let mut s = with_members(&["a"]);
    assert_eq!(s.handle("a", Incoming::Ping), vec![]);
}

#[test]
fn mesh_leaving_tells_everyone_and_removes_empty_conversation() {
    let mut s = with_members(&["a", "b", "c"]);
    create(&mut s, "a", "room", Mesh);
    join(&mut s, "b", "room");
    join(&mut s, "c", "room");
    offer(&mut s, "a", "c"); // mid-negotiation
    assert_eq!(
        s.handle("c", Incoming::Left),
        vec![
            d("a", Outgoing::Left { from: "c".into() }),
            d("b", Outgoing::Left { from: "c".into() }),
        ]
    );
    assert_eq!(s.pair_state("a", "c"), None);
    assert_eq!(s.pair_state("b", "c"), None);
    assert_eq!(s.pair_count(), 1, "a-b remains");
    // The leaver can join elsewhere; messages to it about the old pair are refused.
    assert_eq!(
        error_code(&answer(&mut s, "c", "a")),
        Some(InvalidRecipient)
    );
    assert_eq!(
        s.disconnect("a"),
        vec![d("b", Outgoing::Left { from: "a".into() })]
    );
    s.disconnect("b");
    assert_eq!(s.conversation_count(), 0);
    assert_eq!(s.pair_count(), 0);
    assert_eq!(s.member_count(), 1);
}

#[test]
fn broadcast_viewer_leaving_tells_the_broadcaster_only() {
    let mut s = with_members(&["cam", "v1", "v2"]);
    create(&mut s, "cam", "live", Broadcast);
    join(&mut s, "v1", "live");
    join(&mut s, "v2", "live");
    assert_eq!(
        s.disconnect("v1"),
        vec![d("cam", Outgoing::Left { from: "v1".into() })]
    );
    assert_eq!(s.pair_count(), 1);
    s.disconnect("v2");
    assert_eq!(
        s.conversation_count(),
        1,
        "a broadcast outlives its viewers"
    );
}

#[test]
fn broadcaster_leaving_sends_left_then_end_and_removes_the_conversation() {
    let mut s = with_members(&["cam", "v1", "v2"]);
    create(&mut s, "cam", "live", Broadcast);
    join(&mut s, "v1", "live");
    join(&mut s, "v2", "live");
    let end = || Outgoing::End {
        from: "cam".into(),
        conversation: "live".into(),
    };
    assert_eq!(
        s.handle("cam", Incoming::Left),
        vec![
            d("v1", Outgoing::Left { from: "cam".into() }),
            d("v1", end()),
            d("v2", Outgoing::Left { from: "cam".into() }),
            d("v2", end()),
        ]
    );
    assert_eq!(s.conversation_count(), 0);
    assert_eq!(s.pair_count(), 0);
    assert_eq!(s.conversation_of("v1"), None);
    // Viewers are free to join something else.
    assert!(matches!(
        join(&mut s, "v1", "next").as_slice(),
        [(_, Outgoing::Created { .. })]
    ));
}

#[test]
fn viewer_limit_refuses_the_next_viewer_only() {
    let mut s = with_members(&["cam", "v1", "v2", "v3"]);
    create(&mut s, "cam", "live", Broadcast);
    s.set_viewer_limit("live", Some(2));
    join(&mut s, "v1", "live");
    join(&mut s, "v2", "live");
    assert_eq!(error_code(&join(&mut s, "v3", "live")), Some(ViewerLimit));
    assert_eq!(s.conversation_of("v3"), None);
    assert_eq!(s.pair_count(), 2);
    s.disconnect("v1");
    assert!(matches!(
        join(&mut s, "v3", "live").first(),
        Some((_, Outgoing::Joined { .. }))
    ));
}

#[test]
fn viewers_served_elsewhere_count_against_the_limit() {
    let mut s = with_members(&["cam", "v1", "v2"]);
    create(&mut s, "cam", "live", Broadcast);
    s.set_viewer_limit("live", Some(2));
    s.set_viewers_elsewhere("live", 1);
    join(&mut s, "v1", "live");
    assert_eq!(s.viewers_of("live"), Some(2));
    assert_eq!(s.viewer_limit_of("live"), Some(2));
    assert_eq!(error_code(&join(&mut s, "v2", "live")), Some(ViewerLimit));
    s.set_viewers_elsewhere("live", 0);
    assert!(matches!(
        join(&mut s, "v2", "live").first(),
        Some((_, Outgoing::Joined { .. }))
    ));
    assert_eq!(s.viewers_of("live"), Some(2));
    assert_eq!(s.viewers_of("nothing"), None);
}

#[test]
fn viewer_limit_says_the_limit_in_words() {
    let message = |limit: usize| {
        let mut s = with_members(&["cam", "v1", "v2", "v3"]);
        create(&mut s, "cam", "live", Broadcast);
        s.set_viewer_limit("live", Some(limit));
        for v in ["v1", "v2"].into_iter().take(limit) {
            join(&mut s, v, "live");
        }
        match join(&mut s, "v3", "live").as_slice() {
            [(_, Outgoing::Error { message, .. })] => message.clone(),
            other => panic!("expected an error, got {other:?}"),
        }
    };
    assert_eq!(message(1), "\"live\" already has its limit of 1 viewer");
    assert_eq!(message(2), "\"live\" already has its limit of 2 viewers");
}

#[test]
fn invite_goes_to_the_device() {
    let mut s = Signaling::new(Settings {
        device: Some("camera".into()),
        ..Settings::default()
    });
    for m in ["camera", "a", "b"] {
        s.connect(m);
    }
    create(&mut s, "a", "chat", Mesh);
    create(&mut s, "b", "live", Broadcast);
    assert_eq!(
        s.handle(
            "a",
            Incoming::Invite {
                conversation: "chat".into()
            }
        ),
        vec![d(
            "camera",
            Outgoing::Invite {
                from: "a".into(),
                conversation: "chat".into()
            }
        )]
    );
    let inv = |s: &mut Signaling, who: &str, c: &str| {
        error_code(&s.handle(
            who,
            Incoming::Invite {
                conversation: c.into(),
            },
        ))
    };
    assert_eq!(inv(&mut s, "a", "nowhere"), Some(ConversationNotFound));
    assert_eq!(inv(&mut s, "b", "chat"), Some(InvalidState), "not a member");
    assert_eq!(inv(&mut s, "b", "live"), Some(InvalidState), "not a mesh");
    s.disconnect("camera");
    assert_eq!(inv(&mut s, "a", "chat"), Some(MemberNotFound));
}

#[test]
fn duplicate_member_ids_are_refused() {
    let mut s = with_members(&["a"]);
    assert!(!s.connect("a"));
}

#[test]
fn messages_from_unknown_members_do_nothing() {
    let mut s = core();
    assert_eq!(s.handle("ghost", Incoming::Left), vec![]);
    assert_eq!(s.disconnect("ghost"), vec![]);
}

fn refuse(s: &mut Signaling, from: &str, to: &str, why: &str) -> Vec<Delivery> {
    s.handle(
        from,
        Incoming::NegotiationFailed {
            to: to.into(),
            reason: why.into(),
        },
    )
}

#[test]
fn negotiation_failed_abandons_the_pair_and_says_why_from_the_device() {
    let mut s = with_members(&["camera", "v"]);
    create(&mut s, "camera", "cam", Broadcast);
    join(&mut s, "v", "cam");
    offer(&mut s, "camera", "v");
    // A candidate held while the pair waits for the answer goes with the pair.
    assert!(cand(&mut s, "camera", "v", "c1").is_empty());
    let out = refuse(&mut s, "camera", "v", "this browser offered no H.264 video");
    assert_eq!(
        out,
        vec![d(
            "v",
            Outgoing::NegotiationFailed {
                from: "camera".into(),
                message: "this browser offered no H.264 video".into()
            }
        )]
    );
    assert_eq!(s.pair_state("camera", "v"), None);
    assert_eq!(s.pair_count(), 0);
    // The viewer stays in the conversation; its late answer finds no negotiation.
    assert_eq!(s.conversation_of("v"), Some("cam"));
    assert_eq!(
        error_code(&answer(&mut s, "v", "camera")),
        Some(InvalidState)
    );
    // Leaving and joining again starts a new negotiation.
    s.handle("v", Incoming::Left);
    join(&mut s, "v", "cam");
    assert_eq!(s.pair_state("camera", "v"), Some(PairState::OfferRequested));
}

#[test]
fn negotiation_failed_needs_a_pair() {
    let mut s = with_members(&["camera", "v", "x"]);
    create(&mut s, "camera", "cam", Broadcast);
    join(&mut s, "v", "cam");
    assert_eq!(
        error_code(&refuse(&mut s, "camera", "nobody", "r")),
        Some(MemberNotFound)
    );
    assert_eq!(
        error_code(&refuse(&mut s, "camera", "x", "r")),
        Some(InvalidRecipient)
    );
    assert_eq!(s.pair_state("camera", "v"), Some(PairState::OfferRequested));
}

#[test]
fn negotiation_failed_is_an_error_on_the_wire_from_the_device() {
    let env = Outgoing::NegotiationFailed {
        from: "camera".into(),
        message: "why".into(),
    }
    .to_envelope("v");
    assert_eq!(env.signal, "error");
    assert_eq!(env.from, "camera");
    assert_eq!(env.content, "NEGOTIATION_FAILED");
    assert_eq!(env.custom["message"], "why");
    // No client can send it.
    let sent = r#"{"signal":"negotiationFailed","to":"camera","content":"x"}"#;
    assert_eq!(
        Incoming::parse(sent).map_err(|e| e.code),
        Err(UnknownSignal)
    );
}

#[test]
fn talk_goes_from_a_viewer_to_its_broadcaster_and_the_state_back() {
    let mut s = with_members(&["camera", "v", "w", "m"]);
    create(&mut s, "camera", "cam", Broadcast);
    join(&mut s, "v", "cam");
    assert_eq!(
        s.handle("v", Incoming::Talk { start: true }),
        vec![d(
            "camera",
            Outgoing::Talk {
                from: "v".into(),
                start: true
            }
        )]
    );
    let state = |to: &str| Incoming::TalkState {
        to: to.into(),
        state: crate::TalkState::Busy,
        message: "someone is talking".into(),
    };
    assert_eq!(
        s.handle("camera", state("v")),
        vec![d(
            "v",
            Outgoing::TalkState {
                from: "camera".into(),
                state: crate::TalkState::Busy,
                message: "someone is talking".into()
            }
        )]
    );
    // Not to someone outside the broadcast, and not from the broadcaster or a room member.
    assert_eq!(s.handle("camera", state("w")), vec![]);
    assert_eq!(
        error_code(&s.handle("camera", Incoming::Talk { start: true })),
        Some(InvalidState)
    );
    assert_eq!(
        error_code(&s.handle("w", Incoming::Talk { start: false })),
        Some(InvalidState)
    );
    create(&mut s, "m", "room", Mesh);
    assert_eq!(
        error_code(&s.handle("m", Incoming::Talk { start: true })),
        Some(InvalidState)
    );
}
