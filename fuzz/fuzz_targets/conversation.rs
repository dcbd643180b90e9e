//! Drives the signaling core with arbitrary sequences of connects, disconnects and client
//! messages over a handful of member ids and conversation names, checking after every step
//! the invariants the transport and the device's peer rely on:
//!
//! - membership is consistent both ways (member → conversation → member list), no
//!   conversation is empty, and a member appears in one conversation only, once;
//! - every pair joins two connected members of the same conversation (in a broadcast, one of
//!   them the broadcaster), and `pair_count` is exactly the pairs seen and within what the
//!   membership allows;
//! - every delivery goes to a connected member, and errors only to the sender;
//! - accepted messages get exactly the replies PROTOCOL.md prescribes (join, create, text,
//!   invite, leaving), and offer and answer move their pair to the next state;
//! - a refused message changes nothing; candidates held before `finalize` stay within the
//!   limit and are all released with it;
//! - after everyone disconnects, nothing is left.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peercam_signaling::conversation::{Delivery, PairState, Settings, Signaling};
use peercam_signaling::protocol::{ConversationKind, Incoming, Outgoing};

/// Ids the server could hand out; `camera` doubles as the device when one is configured.
/// Three browsers and the camera are enough for every shape of conversation, and few ids
/// make members meet in the same conversations often.
const IDS: [&str; 4] = ["a", "b", "c", "camera"];

/// Picks among a few values with a single input byte. The derive spends four bytes on each
/// enum tag; with the small enums below costing one, adding or changing a step is a small
/// mutation, and the fuzzer reaches long negotiations (offer, answer, held candidates)
/// far sooner.
macro_rules! one_byte_choice {
    ($ty:ty: $($value:expr),+ $(,)?) => {
        impl<'a> Arbitrary<'a> for $ty {
            fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
                Ok(*u.choose(&[$($value),+])?)
            }

            fn size_hint(_depth: usize) -> (usize, Option<usize>) {
                (1, Some(1))
            }
        }
    };
}

#[derive(Debug, Clone, Copy)]
enum Who {
    A,
    B,
    C,
    Camera,
}

one_byte_choice!(Who: Who::A, Who::B, Who::C, Who::Camera);

impl Who {
    fn id(self) -> &'static str {
        IDS[self as usize]
    }
}

/// A message's recipient: a known id (connected or not) or one never seen.
#[derive(Debug, Clone, Copy)]
enum Peer {
    Member(Who),
    Stranger,
}

one_byte_choice!(Peer:
    Peer::Member(Who::A),
    Peer::Member(Who::B),
    Peer::Member(Who::C),
    Peer::Member(Who::Camera),
    Peer::Stranger,
);

impl Peer {
    fn id(self) -> String {
        match self {
            Peer::Member(w) => w.id().to_owned(),
            Peer::Stranger => "stranger".to_owned(),
        }
    }
}

/// Few names, so that members collide in the same conversations often.
#[derive(Debug, Clone, Copy)]
enum Conv {
    Room,
    Hall,
    Camera,
}

one_byte_choice!(Conv: Conv::Room, Conv::Hall, Conv::Camera);

impl Conv {
    fn name(self) -> String {
        match self {
            Conv::Room => "room",
            Conv::Hall => "hall",
            Conv::Camera => "camera",
        }
        .to_owned()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Mesh,
    Broadcast,
}

one_byte_choice!(Kind: Kind::Mesh, Kind::Broadcast);

#[derive(Debug)]
enum Op {
    Connect(Who),
    Disconnect(Who),
    /// `None` asks the server to name the conversation.
    Create(Who, Option<Conv>, Kind),
    Join(Who, Conv),
    OfferResponse(Who, Peer),
    AnswerResponse(Who, Peer),
    Candidate(Who, Peer),
    Left(Who),
    Text(Who, Option<Peer>),
    Ping(Who),
    Invite(Who, Conv),
    SetViewerLimit(Conv, Option<u8>),
    NegotiationFailed(Who, Peer),
}

/// What the derive would generate, except that the variant costs one byte instead of four
/// (see `one_byte_choice`): a step then takes two to four bytes, so inserting or rewriting
/// one (the answer after an offer, say) is a mutation libFuzzer makes often.
impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.choose_index(13)? {
            0 => Op::Connect(u.arbitrary()?),
            1 => Op::Disconnect(u.arbitrary()?),
            2 => Op::Create(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            3 => Op::Join(u.arbitrary()?, u.arbitrary()?),
            4 => Op::OfferResponse(u.arbitrary()?, u.arbitrary()?),
            5 => Op::AnswerResponse(u.arbitrary()?, u.arbitrary()?),
            6 => Op::Candidate(u.arbitrary()?, u.arbitrary()?),
            7 => Op::Left(u.arbitrary()?),
            8 => Op::Text(u.arbitrary()?, u.arbitrary()?),
            9 => Op::Ping(u.arbitrary()?),
            10 => Op::Invite(u.arbitrary()?, u.arbitrary()?),
            11 => Op::NegotiationFailed(u.arbitrary()?, u.arbitrary()?),
            _ => Op::SetViewerLimit(u.arbitrary()?, u.arbitrary()?),
        })
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    scene: Scene,
    join_creates: bool,
    max_viewers: Option<u8>,
    max_held_candidates: u8,
    with_device: bool,
    ops: Vec<Op>,
}

/// Everything observable through the public accessors, in a canonical order, so that
/// "changes nothing" can be checked by equality.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    members: BTreeMap<&'static str, Option<String>>,
    conversations: BTreeMap<String, (ConversationKind, Vec<String>)>,
    pairs: BTreeMap<(&'static str, &'static str), PairState>,
    counts: (usize, usize, usize),
}

fn snapshot(s: &Signaling) -> Snapshot {
    Snapshot {
        members: IDS
            .iter()
            .filter(|id| s.is_member(id))
            .map(|id| (*id, s.conversation_of(id).map(str::to_owned)))
            .collect(),
        conversations: s
            .conversation_ids()
            .map(|c| {
                let kind = s.kind_of(c).expect("listed conversation has a kind");
                let members = s.members_of(c).expect("listed conversation has members");
                (c.to_owned(), (kind, members.to_vec()))
            })
            .collect(),
        pairs: all_pairs()
            .filter_map(|(a, b)| s.pair_state(a, b).map(|st| ((a, b), st)))
            .collect(),
        counts: (s.member_count(), s.conversation_count(), s.pair_count()),
    }
}

fn all_pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
    IDS.iter()
        .enumerate()
        .flat_map(|(i, a)| IDS[i + 1..].iter().map(move |b| (*a, *b)))
}

fn check_invariants(s: &Signaling) {
    let snap = snapshot(s);

    // Members: every connected one is one of ours, and its conversation lists it once.
    assert_eq!(s.member_count(), snap.members.len(), "unknown member ids");
    for (id, conv) in &snap.members {
        if let Some(conv) = conv {
            let members = s
                .members_of(conv)
                .unwrap_or_else(|| panic!("{id} is in missing conversation {conv:?}"));
            let times = members.iter().filter(|m| m == id).count();
            assert_eq!(times, 1, "{id} listed {times} times in {conv:?}");
        }
    }
    for id in IDS.iter().filter(|id| !s.is_member(id)) {
        assert_eq!(s.conversation_of(id), None, "{id} disconnected yet in one");
    }

    // Conversations: all listed, none empty, every listed member connected and pointing back.
    assert_eq!(s.conversation_count(), snap.conversations.len());
    let mut allowed_pairs = 0;
    for (conv, (kind, members)) in &snap.conversations {
        assert!(!members.is_empty(), "empty {kind:?} conversation {conv:?}");
        for m in members {
            assert!(s.is_member(m), "{m} in {conv:?} is not connected");
            assert_eq!(s.conversation_of(m), Some(conv.as_str()), "{m} in {conv:?}");
        }
        let n = members.len();
        allowed_pairs += match kind {
            ConversationKind::Mesh => n * (n - 1) / 2,
            ConversationKind::Broadcast => n - 1,
        };
    }

    // Pairs: both ends connected, in the same conversation, and the lookup is symmetric.
    for (&(a, b), state) in &snap.pairs {
        assert_eq!(
            s.pair_state(b, a),
            Some(*state),
            "pair lookup not symmetric"
        );
        let conv = s
            .conversation_of(a)
            .unwrap_or_else(|| panic!("pair {a}-{b}: {a} is in no conversation"));
        assert_eq!(
            s.conversation_of(b),
            Some(conv),
            "pair {a}-{b} spans conversations"
        );
        if s.kind_of(conv) == Some(ConversationKind::Broadcast) {
            let broadcaster = s.members_of(conv).unwrap()[0].as_str();
            assert!(
                a == broadcaster || b == broadcaster,
                "broadcast viewers {a} and {b} paired"
            );
        }
    }
    for id in IDS {
        assert_eq!(s.pair_state(id, id), None, "{id} paired with itself");
    }
    assert_eq!(
        s.pair_count(),
        snap.pairs.len(),
        "pairs with unknown members"
    );
    assert!(
        s.pair_count() <= allowed_pairs,
        "{} pairs but membership allows {allowed_pairs}",
        s.pair_count()
    );
}

fn check_deliveries(s: &Signaling, sender: Option<&str>, out: &[Delivery]) {
    for (to, msg) in out {
        assert!(s.is_member(to), "delivery to disconnected {to}: {msg:?}");
        if let Outgoing::Error { .. } = msg {
            assert_eq!(Some(to.as_str()), sender, "error to someone else");
        }
    }
}

fn is_refusal(from: &str, out: &[Delivery]) -> bool {
    matches!(out, [(to, Outgoing::Error { .. })] if to == from)
}

/// Where a run starts. Getting two members through offer and answer by mutation alone takes
/// libFuzzer a long while; starting some runs mid-negotiation puts the interesting states
/// (finalized pairs, held candidates, pending answers) in every run's first few steps. The
/// scripted steps go through `Harness::step` and are checked like any other.
#[derive(Debug, Clone, Copy)]
enum Scene {
    /// Only the connected members.
    Empty,
    /// a, b, c in MESH `room`: a-b finalized, a-c waiting for c's answer with a candidate
    /// held, b-c waiting for b's offer.
    Mesh,
    /// camera broadcasting `camera` to a (finalized) and b (waiting for b's answer).
    Broadcast,
}

one_byte_choice!(Scene: Scene::Empty, Scene::Mesh, Scene::Broadcast);

impl Scene {
    fn script(self) -> Vec<Op> {
        use {Conv::*, Peer::Member, Who::*};
        match self {
            Scene::Empty => vec![],
            Scene::Mesh => vec![
                Op::Create(A, Some(Room), Kind::Mesh),
                Op::Join(B, Room),
                Op::Join(C, Room),
                Op::Candidate(B, Member(A)),
                Op::OfferResponse(A, Member(B)),
                Op::AnswerResponse(B, Member(A)),
                Op::OfferResponse(A, Member(C)),
                Op::Candidate(C, Member(A)),
            ],
            Scene::Broadcast => vec![
                Op::Create(Who::Camera, Some(Conv::Camera), Kind::Broadcast),
                Op::Join(A, Conv::Camera),
                Op::Join(B, Conv::Camera),
                Op::Candidate(A, Member(Who::Camera)),
                Op::OfferResponse(Who::Camera, Member(A)),
                Op::AnswerResponse(A, Member(Who::Camera)),
                Op::OfferResponse(Who::Camera, Member(B)),
                Op::Candidate(Who::Camera, Member(B)),
            ],
        }
    }
}

/// The core under test and what the harness knows that the core does not show.
struct Harness {
    s: Signaling,
    /// `max_held_candidates` in force.
    limit: usize,
    /// Candidates held per pair (keyed as `all_pairs` orders them), as the protocol implies.
    held: BTreeMap<(&'static str, &'static str), usize>,
    /// Makes every SDP distinct, so a relayed one is traceable to its step.
    sdp_serial: u32,
}

/// The key `all_pairs` uses for the pair of `a` and `b`; `None` if `b` is not one of ours.
fn key(a: &'static str, b: &str) -> Option<(&'static str, &'static str)> {
    let b = *IDS.iter().find(|id| **id == b)?;
    let index = |id: &str| IDS.iter().position(|i| *i == id);
    Some(if index(a) < index(b) { (a, b) } else { (b, a) })
}

impl Harness {
    fn step(&mut self, op: Op) {
        let s = &mut self.s;
        let before = snapshot(s);
        // Pairs that ended (in the previous step, whatever it was) took their held candidates
        // with them; a pair created again later starts with none.
        self.held.retain(|k, _| before.pairs.contains_key(k));
        let (sender, msg) = match op {
            Op::Connect(w) => {
                let fresh = !s.is_member(w.id());
                assert_eq!(s.connect(w.id()), fresh, "connect of {}", w.id());
                if !fresh {
                    assert_eq!(before, snapshot(s), "second connect changed state");
                }
                check_invariants(s);
                return;
            }
            Op::Disconnect(w) => {
                let out = s.disconnect(w.id());
                assert!(!s.is_member(w.id()));
                check_deliveries(s, None, &out);
                check_invariants(s);
                assert_eq!(
                    out,
                    leave_notices(&before, w.id()),
                    "{} disconnected",
                    w.id()
                );
                return;
            }
            Op::SetViewerLimit(c, limit) => {
                s.set_viewer_limit(&c.name(), limit.map(|l| usize::from(l % 4)));
                check_invariants(s);
                return;
            }
            Op::Create(w, c, kind) => (
                w,
                Incoming::Create {
                    conversation: c.map(Conv::name).unwrap_or_default(),
                    kind: match kind {
                        Kind::Mesh => ConversationKind::Mesh,
                        Kind::Broadcast => ConversationKind::Broadcast,
                    },
                },
            ),
            Op::Join(w, c) => (
                w,
                Incoming::Join {
                    conversation: c.name(),
                },
            ),
            Op::OfferResponse(w, p) => {
                self.sdp_serial += 1;
                (
                    w,
                    Incoming::OfferResponse {
                        to: p.id(),
                        sdp: format!("offer {}", self.sdp_serial),
                    },
                )
            }
            Op::AnswerResponse(w, p) => {
                self.sdp_serial += 1;
                (
                    w,
                    Incoming::AnswerResponse {
                        to: p.id(),
                        sdp: format!("answer {}", self.sdp_serial),
                    },
                )
            }
            Op::Candidate(w, p) => (
                w,
                Incoming::Candidate {
                    to: p.id(),
                    candidate: format!("{{\"from\":\"{}\"}}", w.id()),
                },
            ),
            Op::Left(w) => (w, Incoming::Left),
            Op::Text(w, p) => (
                w,
                Incoming::Text {
                    to: p.map(Peer::id),
                    content: "hi".into(),
                },
            ),
            Op::Ping(w) => (w, Incoming::Ping),
            Op::Invite(w, c) => (
                w,
                Incoming::Invite {
                    conversation: c.name(),
                },
            ),
            Op::NegotiationFailed(w, p) => (
                w,
                Incoming::NegotiationFailed {
                    to: p.id(),
                    reason: "no codec in common".into(),
                },
            ),
        };
        let from = sender.id();
        let out = s.handle(from, msg.clone());
        check_deliveries(s, Some(from), &out);
        check_invariants(s);
        let after = snapshot(s);

        if !before.members.contains_key(from) {
            // Stale calls for members that are gone do nothing at all.
            assert!(out.is_empty(), "{from} is not connected: {out:?}");
            assert_eq!(before, after);
            return;
        }
        if is_refusal(from, &out) || matches!(msg, Incoming::Ping) {
            assert_eq!(before, after, "refused {msg:?} changed state: {out:?}");
            if matches!(msg, Incoming::Ping) {
                assert!(out.is_empty());
            }
            return;
        }

        match &msg {
            Incoming::OfferResponse { to, sdp } => {
                let k = key(from, to).expect("offer accepted for a stranger");
                assert_eq!(before.pairs.get(&k), Some(&PairState::OfferRequested));
                assert_eq!(after.pairs.get(&k), Some(&PairState::AnswerRequested));
                let expected = Outgoing::AnswerRequest {
                    from: from.to_owned(),
                    sdp: sdp.clone(),
                };
                assert_eq!(out, [(to.clone(), expected)]);
            }
            Incoming::AnswerResponse { to, sdp } => {
                let k = key(from, to).expect("answer accepted for a stranger");
                assert_eq!(before.pairs.get(&k), Some(&PairState::AnswerRequested));
                assert_eq!(after.pairs.get(&k), Some(&PairState::ExchangeCandidates));
                let expected = Outgoing::Finalize {
                    from: from.to_owned(),
                    sdp: sdp.clone(),
                };
                assert_eq!(out.first(), Some(&(to.clone(), expected)));
                // Every held candidate is released, to the other end of the pair.
                let released = self.held.remove(&k).unwrap_or(0);
                assert_eq!(out.len(), 1 + released, "held {released}: {out:?}");
                for (rcpt, m) in &out[1..] {
                    let Outgoing::Candidate { from: f, .. } = m else {
                        panic!("after finalize: {m:?}");
                    };
                    assert!((rcpt == to && f == from) || (rcpt == from && f == to));
                }
            }
            Incoming::Candidate { to, candidate } => {
                let k = key(from, to).expect("candidate accepted for a stranger");
                match before.pairs.get(&k) {
                    Some(PairState::ExchangeCandidates) => {
                        let expected = Outgoing::Candidate {
                            from: from.to_owned(),
                            candidate: candidate.clone(),
                        };
                        assert_eq!(out, [(to.clone(), expected)]);
                    }
                    Some(_) => {
                        assert!(out.is_empty(), "candidate before finalize: {out:?}");
                        let n = self.held.entry(k).or_default();
                        *n += 1;
                        let limit = self.limit;
                        assert!(*n <= limit, "{n} candidates held, limit {limit}");
                    }
                    None => panic!("candidate accepted without a pair: {out:?}"),
                }
            }
            Incoming::Left => assert_eq!(out, leave_notices(&before, from)),
            Incoming::Create { .. } => {
                let [(to, Outgoing::Created { conversation, .. })] = out.as_slice() else {
                    panic!("create answered with {out:?}");
                };
                assert_eq!(to, from);
                assert!(!before.conversations.contains_key(conversation));
                assert_eq!(s.members_of(conversation), Some(&[from.to_owned()][..]));
            }
            Incoming::Join { conversation } => {
                let Some((kind, members)) = before.conversations.get(conversation) else {
                    // Joining a missing conversation creates it, as a MESH.
                    let created = Outgoing::Created {
                        conversation: conversation.clone(),
                        kind: ConversationKind::Mesh,
                    };
                    assert_eq!(out, [(from.to_owned(), created)]);
                    return;
                };
                // The newcomer hears `joined`; whoever must offer to it hears about it.
                let offerers = match kind {
                    ConversationKind::Mesh => &members[..],
                    ConversationKind::Broadcast => &members[..1],
                };
                let mut expected = vec![(
                    from.to_owned(),
                    Outgoing::Joined {
                        conversation: conversation.clone(),
                    },
                )];
                for o in offerers {
                    let newcomer = from.to_owned();
                    let new_joined = Outgoing::NewJoined {
                        member: newcomer.clone(),
                    };
                    expected.push((o.clone(), new_joined));
                    expected.push((o.clone(), Outgoing::OfferRequest { from: newcomer }));
                    assert_eq!(s.pair_state(o, from), Some(PairState::OfferRequested));
                }
                assert_eq!(out, expected);
            }
            Incoming::Text { to, content } => {
                let text = Outgoing::Text {
                    from: from.to_owned(),
                    content: content.clone(),
                };
                let expected: Vec<Delivery> = match to {
                    Some(to) => vec![(to.clone(), text)],
                    None => {
                        let conv = before.members[from].as_ref().expect("text outside");
                        let members = &before.conversations[conv].1;
                        let others = members.iter().filter(|m| *m != from);
                        others.map(|m| (m.clone(), text.clone())).collect()
                    }
                };
                assert_eq!(out, expected);
            }
            Incoming::Invite { conversation } => {
                let invite = Outgoing::Invite {
                    from: from.to_owned(),
                    conversation: conversation.clone(),
                };
                assert_eq!(out, [("camera".to_owned(), invite)]);
            }
            Incoming::NegotiationFailed { to, reason } => {
                // The pair goes, with its held candidates; nothing else changes.
                let k = key(from, to).expect("refusal accepted for a stranger");
                assert!(before.pairs.contains_key(&k), "no pair {k:?}");
                let mut expected = before.clone();
                expected.pairs.remove(&k);
                expected.counts.2 -= 1;
                assert_eq!(after, expected);
                let refusal = Outgoing::NegotiationFailed {
                    from: from.to_owned(),
                    message: reason.clone(),
                };
                assert_eq!(out, [(to.clone(), refusal)]);
            }
            Incoming::Ping => {}
        }
    }
}

/// What the others hear when `who` leaves, by PROTOCOL.md's "Leaving", from the state before.
fn leave_notices(before: &Snapshot, who: &str) -> Vec<Delivery> {
    let Some(Some(conv)) = before.members.get(who) else {
        return Vec::new();
    };
    let (kind, members) = &before.conversations[conv];
    let left = |to: &String| {
        let from = who.to_owned();
        (to.clone(), Outgoing::Left { from })
    };
    let others = members.iter().filter(|m| *m != who);
    match kind {
        ConversationKind::Mesh => others.map(left).collect(),
        ConversationKind::Broadcast if members[0] != who => vec![left(&members[0])],
        ConversationKind::Broadcast => others
            .flat_map(|viewer| {
                let end = Outgoing::End {
                    from: who.to_owned(),
                    conversation: conv.clone(),
                };
                [left(viewer), (viewer.clone(), end)]
            })
            .collect(),
    }
}

fn run(input: Input) {
    let limit = usize::from(input.max_held_candidates % 4);
    let mut h = Harness {
        s: Signaling::new(Settings {
            join_creates: input.join_creates,
            max_viewers: input.max_viewers.map(|v| usize::from(v % 4)),
            max_held_candidates: limit,
            device: input.with_device.then(|| "camera".to_owned()),
        }),
        limit,
        held: BTreeMap::new(),
        sdp_serial: 0,
    };
    // Everyone starts connected, so a negotiation is only two joins away; `Connect` still
    // covers reconnecting after a `Disconnect` and refusing an id that is taken.
    for id in IDS {
        assert!(h.s.connect(id));
    }
    check_invariants(&h.s);

    for op in input
        .scene
        .script()
        .into_iter()
        .chain(input.ops.into_iter().take(256))
    {
        h.step(op);
    }

    // Everyone leaves; the server must be empty again.
    let s = &mut h.s;
    for id in IDS {
        let out = s.disconnect(id);
        check_deliveries(s, None, &out);
        check_invariants(s);
    }
    assert_eq!(s.member_count(), 0);
    assert_eq!(s.conversation_count(), 0);
    assert_eq!(s.pair_count(), 0);
}

fuzz_target!(|input: Input| run(input));
